"""Guarantee 8 (secrets): secret-looking values and values read from the environment never reach
params, tags or artifacts, nor Hydra's saved config on disk."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.tracking.provenance import config_params, redact_overrides, redact_text
from tests.conftest import ROOT, runs


def test_redaction_of_overrides_yaml_and_uris():
    tag = redact_overrides(["net.width=3", "+tracking.token=abc", "+db.password=pw", "tracking.uri=http://u:pw@h:1"])
    assert "abc" not in tag and "pw" not in tag and "net.width=3" in tag and "@h:1" in tag
    yaml = "tracking:\n  api_key: zzz\n  uri: https://bob:hunter2@host/x\n- +net.secret=qq\nexclude_keys: []\n"
    clean = redact_text(yaml)
    assert "zzz" not in clean and "hunter2" not in clean and "qq" not in clean and "exclude_keys: []" in clean
    params = config_params({"net": {"width": 4, "sigma_b2": 0.07}, "x": {"private_key": "k"}}, {"net.sigma_b2"})
    assert params["net.width"] == "4" and "0.07" not in str(params) and "x.private_key" not in params


def _grep_tree(root, needle):
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.fixture
def http_store(tmp_path):
    """An MLflow tracking server on loopback, in a thread of this process (no auth: it ignores the credentials a
    client sends): yields (base URI without credentials, its SQLite file, its artifact root)."""
    import logging
    import threading

    db, art = tmp_path / "srv" / "srv.db", tmp_path / "srv" / "art"
    art.mkdir(parents=True)
    env = {"_MLFLOW_SERVER_FILE_STORE": f"sqlite:///{db}", "_MLFLOW_SERVER_ARTIFACT_ROOT": str(art)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # how `mlflow server` hands the stores to its app (read at the first request)
    from mlflow.server import app, handlers
    from werkzeug.serving import make_server

    handlers._tracking_store = None  # a store cached by an earlier server in this process
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", db, art
    finally:
        server.shutdown()
        handlers._tracking_store = None
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_a_password_in_the_tracking_uri_reaches_no_tag_param_artifact_saved_config_or_stderr(http_store, tmp_path):
    """The schema accepts `tracking.uri=http://user:pw@host` (MLflow sends the credentials as basic auth): the
    password must reach no run (tags, params, names), no artifact, no saved config and no output line, even for
    a job that fails (Hydra prints `Error executing job with overrides: [...]`). A value read from the
    environment (`${oc.env:...}`) is withheld the same way. Before (the old test): a `+tracking.token=...` the
    schema rejects, so no redaction ever ran."""
    uri, db, art = http_store
    secret = "pw-hunter2XYZ"
    authed = uri.replace("http://", f"http://alice:{secret}@")
    env = {**os.environ, "TQDM_DISABLE": "1", "GINN_TEST_SB2": "0.0731"}
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.mlp_sweep", "-m", "experiment=smoke", "net.depth=4", "engine.burn_in=1",
         "net.width=16,1", f"tracking.uri={authed}", "net.sigma_b2=${oc.env:GINN_TEST_SB2}",
         f"hydra.sweep.dir={tmp_path / 's'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "sweep FAILED: 1 failed, 1 finished" in out, out[-3000:]
    assert secret not in out
    error_lines = [ln for ln in out.splitlines() if ln.startswith("Error executing job with overrides")]
    assert len(error_lines) == 1 and "<redacted>@127.0.0.1" in error_lines[0]  # not dropped
    for where in (db, *art.rglob("*"), *tmp_path.joinpath("s").rglob("*")):
        assert not where.is_file() or secret.encode() not in where.read_bytes(), where
    assert b"0.0731" not in db.read_bytes()  # not even in a run name (it shows sb2=...)
    saved = (tmp_path / "s" / "0" / ".hydra" / "overrides.yaml").read_text()
    assert "alice:<redacted>@127.0.0.1" in saved or "<redacted>" in saved, saved  # the key was saved, redacted
    df = runs(uri, "mlp_sweep")
    children = df[df["tags.mlflow.parentRunId"].notna()]
    assert sorted(children.status) == ["FAILED", "FINISHED"]
    done = children[children.status == "FINISHED"].iloc[0]
    assert "127.0.0.1" in done["tags.overrides"] and done["params.net.sigma_b2"].startswith("<from environment")
    assert any(art.rglob("config.yaml"))  # the job's artifacts were logged (and hold no password)


def _secret() -> str:
    """A secret of this test only: a value an earlier in-process test read from the environment is redacted
    from then on (`provenance.ENV_READ`), which must not let this test pass."""
    return f"hunter2{uuid.uuid4().hex[:10]}XYZ"


def test_a_name_from_the_environment_is_refused_before_anything_reaches_the_store_in_a_real_process(store, tmp_path):
    """The bug: tracking.run_name='${oc.env:GINN_SECRET}' (or tracking.experiment) stored the secret as a run or
    experiment name (6 copies in the store). Rejected with one line, exit 2: a name is meant to be read. A real
    multirun process here; the single run and the other key in-process below."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "GINN_SECRET": "hunter2XYZ"}
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.theory", "-m", "net.sigma_w2=1.0,2.0",
         "tracking.run_name=${oc.env:GINN_SECRET}", f"hydra.run.dir={tmp_path / 'o'}",
         f"hydra.sweep.dir={tmp_path / 's'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    _assert_name_refused(p, "tracking.run_name", "hunter2XYZ", store, tmp_path)


@pytest.mark.parametrize(
    "key,multirun", [("tracking.run_name", False), ("tracking.experiment", False), ("tracking.experiment", True)]
)
def test_a_name_from_the_environment_is_refused_before_anything_reaches_the_store(
    run_inprocess, monkeypatch, store, tmp_path, key, multirun
):
    secret = _secret()
    monkeypatch.setenv("GINN_SECRET", secret)
    sweep = ["-m", "net.sigma_w2=1.0,2.0"] if multirun else []
    p = run_inprocess("theory", *sweep, f"{key}=${{oc.env:GINN_SECRET}}", f"hydra.run.dir={tmp_path / 'o'}",
                      f"hydra.sweep.dir={tmp_path / 's'}")  # fmt: skip
    _assert_name_refused(p, key, secret, store, tmp_path)


def _assert_name_refused(p, key: str, secret: str, store: str, tmp_path) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and secret not in p.stderr + p.stdout, p.stderr
    db = Path(store[len("sqlite:///") :])
    assert not db.exists() or secret.encode() not in db.read_bytes()
    assert not _grep_tree(tmp_path, secret)


def test_credentials_in_a_tracking_uri_never_reach_an_error_line():
    """The bug: tracking.uri=http://user:pw@host was echoed in the one-line store errors."""
    from pipeline.tracking.store import StoreError, check_reachable, run_link

    with pytest.raises(StoreError) as e:
        check_reachable("http://alice:pw-hunter2@127.0.0.1:9")
    assert "hunter2" not in str(e.value) and "127.0.0.1:9" in str(e.value)
    assert "hunter2" not in run_link("http://alice:pw-hunter2@127.0.0.1:9", "abc")


def test_a_value_read_from_the_environment_is_redacted_from_every_error_line(monkeypatch):
    """The bug: `engine.device=${oc.env:SECRET}` printed `error: engine.device='hunter2XYZ': allowed ...`.
    redact_text knows every value `oc.env` read (and the short ones only as whole tokens)."""
    from omegaconf import OmegaConf

    monkeypatch.setenv("GINN_T_SECRET", "hunter2XYZ")
    monkeypatch.setenv("GINN_T_SHORT", "7")
    cfg = OmegaConf.create({"a": "/tmp/${oc.env:GINN_T_SECRET}/x", "b": "${oc.env:GINN_T_SHORT}"})
    assert cfg.a == "/tmp/hunter2XYZ/x" and cfg.b == "7"
    line = redact_text("error: report.inputs=/tmp/hunter2XYZ/x and o2_hunter2XYZ; b=7, width 17, 0.7")
    assert line == "error: report.inputs=/tmp/<redacted>/x and o2_<redacted>; b=<redacted>, width 17, 0.7"


def test_a_rejected_value_from_the_environment_never_reaches_stderr(run_inprocess, monkeypatch, tmp_path):
    """In-process (the entry point's error line), with a secret no earlier test read."""
    secret = _secret()
    monkeypatch.setenv("GINN_SECRET", secret)
    p = run_inprocess("mlp_sweep", "experiment=smoke", "engine.device=${oc.env:GINN_SECRET}",
                      "tracking.enabled=false", f"hydra.run.dir={tmp_path / 'o'}")  # fmt: skip
    assert p.returncode == 2 and "engine.device" in p.stderr and "<redacted>" in p.stderr, p.stderr
    assert p.error.startswith("error: engine.device") and secret not in p.stderr + p.stdout


def test_an_output_path_from_the_environment_is_refused_on_the_raw_arguments():
    from pipeline.tracking.provenance import SecretName, env_paths

    for args in (
        ["out_dir=/tmp/o3_${oc.env:X}"],
        ["hydra.run.dir=/tmp/${oc.env:X,d}"],
        ["hydra.sweep.dir=${a}", "+a=/tmp/${oc.env:X}"],
        ["++hydra.sweep.subdir=${oc.decode:${oc.env:X}}"],
    ):
        with pytest.raises(SecretName, match=args[0].lstrip("+").split("=")[0] + ": taken from the environment"):
            env_paths(args)
    env_paths(["out_dir=/tmp/o", "net.sigma_b2=${oc.env:X}", "hydra.run.dir=${out_dir}"])  # accepted


def test_an_output_path_from_the_environment_is_refused_before_anything(store, tmp_path):
    """The bug: `hydra.run.dir=/tmp/o2_${oc.env:SECRET}` put the secret in params, tags, .hydra/hydra.yaml, the
    log and stdout. Refused with one line, exit 2, before any folder, store or run exists (a real process; the
    same for `out_dir`: in-process, below)."""
    env = {**os.environ, "TQDM_DISABLE": "1", "GINN_SECRET": "hunter2XYZ"}
    db = tmp_path / "s.db"
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.theory", "experiment=smoke", f"hydra.run.dir={tmp_path / 'w' / 'run'}",
         f"hydra.run.dir={tmp_path / 'w'}/o2_${{oc.env:GINN_SECRET}}", f"tracking.uri=sqlite:///{db}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "taken from the environment" in lines[0], p.stderr
    assert "hunter2XYZ" not in p.stderr + p.stdout and not db.exists() and not (tmp_path / "w").exists()


def test_an_output_dir_from_the_environment_is_refused_before_anything(run_inprocess, monkeypatch, tmp_path):
    secret = _secret()
    monkeypatch.setenv("GINN_SECRET", secret)
    db = tmp_path / "s.db"
    p = run_inprocess("theory", "experiment=smoke", f"hydra.run.dir={tmp_path / 'w' / 'run'}",
                      f"out_dir={tmp_path / 'w'}/o3_${{oc.env:GINN_SECRET}}",
                      f"tracking.uri=sqlite:///{db}")  # fmt: skip
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "taken from the environment" in lines[0], p.stderr
    assert lines[0].startswith("error: out_dir") and secret not in p.stderr + p.stdout
    assert not db.exists() and not (tmp_path / "w").exists()
