"""Guarantees 1-4: failed jobs, interrupted sweeps and resume, concurrency, unreachable tracking store."""

import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from tests.conftest import ROOT, default_signals, runs

SMOKE = ["experiment=smoke"]


def _children(df):
    if "tags.mlflow.parentRunId" not in df:
        return df.iloc[0:0]
    return df[df["tags.mlflow.parentRunId"].notna()]


def _parents(df):
    if "tags.mlflow.parentRunId" not in df:
        return df
    return df[df["tags.mlflow.parentRunId"].isna()]


def test_failed_job_leaves_a_failed_child_a_closed_parent_and_a_one_line_summary(run_inprocess, store, tmp_path):
    fast = ["net.depth=4", "engine.burn_in=1"]  # jobs of a second: the bookkeeping is the point
    p = run_inprocess("mlp_sweep", "-m", "net.width=16,1,32", *SMOKE, *fast, f"hydra.sweep.dir={tmp_path / 's'}")
    assert p.returncode == 2, p.stderr  # the failed job's ConfigError, re-raised by Hydra at the end of the sweep
    df = runs(store, "mlp_sweep")
    ch = _children(df)
    assert sorted(ch.status) == ["FAILED", "FINISHED", "FINISHED"]
    failed = ch[ch.status == "FAILED"].iloc[0]
    assert "net.width" in failed["tags.error"] and "net.width=1" in failed["tags.overrides"]
    parent = _parents(df).iloc[0]
    assert (
        parent.status == "FAILED"
        and parent["metrics.children_finished"] == 2
        and parent["metrics.children_failed"] == 1
    )
    summary = [line for line in p.stderr.splitlines() if line.startswith("sweep FAILED")]
    assert len(summary) == 1 and "net.width=1 " in summary[0] and "2 finished" in summary[0]


def test_a_launcher_that_raises_before_any_job_closes_the_parent_failed(run_inprocess, store, tmp_path):
    """joblib refuses n_jobs=0 when it launches: no job runs, the parent must not read FINISHED. (In this process:
    no worker is ever started, so the process boundary is not the point.)"""
    p = run_inprocess("theory", "-m", "net.sigma_w2=1.0,2.0", *SMOKE, "hydra/launcher=joblib",
                      "hydra.launcher.n_jobs=0", f"hydra.sweep.dir={tmp_path / 's'}")  # fmt: skip
    assert p.returncode != 0
    df = runs(store, "theory")
    assert len(_children(df)) == 0
    parent = _parents(df).iloc[0]
    assert parent.status == "FAILED" and "launcher" in parent["tags.error"]  # before: FINISHED
    summary = [line for line in p.stderr.splitlines() if line.startswith("sweep ")]
    assert summary and summary[0].startswith("sweep FAILED: no job started (the sweep itself failed")


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_interrupted_sweep_ends_killed_and_resume_runs_only_the_rest(store, tmp_path, sig, run_inprocess, monkeypatch):
    # the code version is pinned: others may edit the package between the run and its resume
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "GINN_LAB_CODE_VERSION": "pinned"}
    args = [
        sys.executable,
        "-m",
        "pipeline.mlp_sweep",
        "-m",
        "net.depth=20,600,21",  # job 2 takes seconds: a wide window to signal during it; job 3 is short
        *SMOKE,
        "net.width=256",
        "engine.n_seeds=8",
    ]
    proc = subprocess.Popen(
        args + [f"hydra.sweep.dir={tmp_path / 'a'}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # as from a shell, whatever earlier in-process tests left behind
    )
    import sqlite3

    db = store[len("sqlite:///") :]
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # until job 1 FINISHED and job 2 (and the parent) run
        try:  # sqlite3, not an MLflow client: a client here would race the sweep's own store creation
            con = sqlite3.connect(db, timeout=5)
            try:
                counts = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
            finally:
                con.close()
            if counts.get("FINISHED", 0) >= 1 and counts.get("RUNNING", 0) >= 2:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before the signal could be sent"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    df = runs(store, "mlp_sweep")
    assert "RUNNING" not in set(df.status), df[["status", "tags.overrides"]]
    assert "KILLED" in set(_children(df).status)
    assert (_children(df).status == "FINISHED").sum() >= 1
    assert "resume=true" in err
    first = df[df["tags.hydra_output_dir"] == str((tmp_path / "a").resolve())]
    assert first["tags.mlflow.runName"].item().startswith("mlp_sweep 2 of 3 jobs")  # was "3 jobs" for 2 started
    # the resume in this process (the signal above is the real process's part), with the same pinned code version
    # (code_version is cached per process: computed afresh here and again after the run)
    from pipeline.tracking.provenance import code_version

    monkeypatch.setenv("GINN_LAB_CODE_VERSION", "pinned")
    code_version.cache_clear()
    try:
        p = run_inprocess("mlp_sweep", *args[3:], "resume=true", f"hydra.sweep.dir={tmp_path / 'b'}")
    finally:
        code_version.cache_clear()
    assert p.returncode == 0, p.stderr
    df = runs(store, "mlp_sweep")
    fin = _children(df)[_children(df).status == "FINISHED"]
    assert fin["tags.config_hash"].nunique() == 3 and len(fin) == 3  # each config finished exactly once


# joblib on a fresh SQLite store (two workers start their jobs in it at once, nothing lost, no "database is locked"):
# tests/scale/test_launchers.py::test_launcher_gives_identical_csvs_to_the_basic_launcher[joblib], which runs that
# sweep anyway and compares each child's params, metrics and curve points with the basic launcher's.


def test_unreachable_tracking_server_fails_before_compute(run_inprocess, tmp_path):
    out = tmp_path / "o"
    p = run_inprocess("theory", *SMOKE, "tracking.uri=http://127.0.0.1:9", f"hydra.run.dir={out}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: tracking.uri=http://127.0.0.1:9")
    assert not out.exists()  # a rejected run leaves no output folder


@pytest.mark.slow
def test_multirun_against_a_real_mlflow_server_on_loopback(tmp_path):
    port = 5000 + os.getpid() % 1000
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--artifacts-destination",
            str(tmp_path / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        for _ in range(120):
            try:
                urllib.request.urlopen(uri + "/health", timeout=1)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.5)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.theory",
                "-m",
                "hydra/launcher=joblib",
                "hydra.launcher.n_jobs=2",
                "net.activation=tanh,relu,erf",
                *SMOKE,
                f"hydra.sweep.dir={tmp_path / 's'}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, p.stderr
        df = runs(uri, "theory")
        assert len(df) == 4 and set(df.status) == {"FINISHED"}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_sweeps_parent_is_named_by_its_planned_job_count():
    """The bug: an interrupted 6-job sweep's parent was named '3 jobs' (the jobs started so far)."""
    from omegaconf import OmegaConf

    from pipeline.stages.lifecycle import parent_name
    from pipeline.tracking.sweep import planned_jobs

    basic = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    cfg = OmegaConf.create(
        {"hydra": {"overrides": {"task": ["net.width=32,64,128", "net.activation=tanh,relu", "seed=1"]},
                   "sweeper": {"_target_": basic, "params": {"net.depth": "10,20"}}}}
    )  # fmt: skip
    assert planned_jobs(cfg) == 12
    cfg.hydra.sweeper._target_ = "some.other.Sweeper"
    assert planned_jobs(cfg) is None
    assert parent_name("mlp_sweep", 3, 6, "t0") == "mlp_sweep 3 of 6 jobs t0"
    assert parent_name("mlp_sweep", 6, 6, "t0") == "mlp_sweep 6 jobs t0"
    assert parent_name("mlp_sweep", 3, None) == "mlp_sweep 3 jobs"


def test_a_sweep_folder_is_checked_like_a_run_folder(tmp_path, monkeypatch):
    """The bug: hydra.sweep.dir holding a user's files (a `multirun.yaml`, which Hydra overwrote) or the repo
    root was accepted. Only a folder a sweep of the stage wrote (marker, or an old sweep's job folders and
    Hydra's own multirun.yaml) is written into."""
    from pipeline.stages.outputs import MARKER, ForeignOutputDir
    from pipeline.tracking.sweep import check_sweep_dir, claim_sweep_dir

    monkeypatch.chdir(tmp_path)
    user = tmp_path / "u"
    user.mkdir()
    (user / "multirun.yaml").write_text("mine\n")
    for where, why in [(user, "holds files no theory sweep wrote \\(multirun.yaml\\)"), (".", "working directory"),
                       (tmp_path.parent, "a parent of the working directory"), (ROOT, "repository root")]:  # fmt: skip
        with pytest.raises(ForeignOutputDir, match="hydra.sweep.dir=.*" + why):
            check_sweep_dir(where, "theory")
    run = tmp_path / "run"  # a single run's folder of the stage: a sweep would mix its jobs into it
    run.mkdir()
    (run / MARKER).write_text("theory\n")
    with pytest.raises(ForeignOutputDir, match="holds the outputs of stage 'theory'"):
        check_sweep_dir(run, "theory")
    old = tmp_path / "old"  # a sweep from before markers: its job folders and Hydra's multirun.yaml
    (old / "0").mkdir(parents=True)
    (old / "0" / MARKER).write_text("theory\n")
    (old / "1" / ".hydra").mkdir(parents=True)
    (old / "multirun.yaml").write_text("hydra:\n  sweep:\n    dir: x\n")
    check_sweep_dir(old, "theory")
    claim_sweep_dir(tmp_path / "new", "theory")  # created and marked: the next theory sweep may write there
    check_sweep_dir(tmp_path / "new", "theory")
    with pytest.raises(ForeignOutputDir, match="not 'lyapunov sweep'"):
        check_sweep_dir(tmp_path / "new", "lyapunov")
    (old / "notes.txt").write_text("mine")
    with pytest.raises(ForeignOutputDir, match=r"\(notes.txt\)"):
        check_sweep_dir(old, "theory")


def test_a_foreign_sweep_folder_is_refused_before_any_job_or_run(run_inprocess, store, tmp_path):
    user = tmp_path / "u"
    user.mkdir()
    (user / "multirun.yaml").write_text("mine\n")
    p = run_inprocess("theory", "-m", "net.sigma_w2=1.0,2.0", *SMOKE, f"hydra.sweep.dir={user}")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "hydra.sweep.dir=" in lines[0], p.stderr
    assert (
        sorted(x.name for x in user.iterdir()) == ["multirun.yaml"] and (user / "multirun.yaml").read_text() == "mine\n"
    )
    db = store[len("sqlite:///") :]
    assert not os.path.exists(db) or runs(store, "theory").empty  # no parent run left


def test_sampled_jobs_take_every_value_of_every_axis_once():
    from omegaconf import OmegaConf

    from pipeline.tracking.sweep import sample_jobs

    cfg = OmegaConf.create(
        {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
                   "overrides": {"task": ["experiment=smoke", "net.width=16,32,abc", "net.depth=2,3"]}}}
    )  # fmt: skip
    assert sample_jobs(cfg) == [
        ["experiment=smoke", "net.width=16", "net.depth=2"],
        ["experiment=smoke", "net.width=32", "net.depth=2"],
        ["experiment=smoke", "net.width=abc", "net.depth=2"],
        ["experiment=smoke", "net.width=16", "net.depth=3"],
    ]


@pytest.mark.parametrize("bad", ["net.width=16,abc", "+foo=1,2"])
def test_a_sweep_value_that_cannot_compose_stops_the_sweep_before_anything(run_inprocess, store, tmp_path, bad):
    """The bug: `-m 'net.width=16,abc'` printed 4 lines, left a sweep folder and a FAILED parent run. A value
    no job can compose (a type, an unknown key) is refused with one line naming the job, exit 2."""
    p = run_inprocess("theory", "-m", *SMOKE, bad, f"hydra.sweep.dir={tmp_path / 's'}")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith("error: sweep not started: job [") and bad.split("=")[0].lstrip("+") in lines[0]
    assert not (tmp_path / "s").exists()
    db = store[len("sqlite:///") :]
    assert not os.path.exists(db) or runs(store, "theory").empty


# ---- the everyday path in MLflow (issue 16): runs named for what they are, a parent that describes its sweep,
# no params a job does not use, artifacts beside the store, and last lines that say where things are ----------


def test_a_sweep_is_named_described_and_stored_beside_its_store(run_inprocess, store, tmp_path):
    p = run_inprocess("mlp_sweep", "-m", "net.width=16,32", *SMOKE, f"hydra.sweep.dir={tmp_path / 's'}")
    assert p.returncode == 0, p.stderr
    df = runs(store, "mlp_sweep")
    children = df[df["tags.mlflow.parentRunId"].notna()]
    parent = df[df["tags.mlflow.parentRunId"].isna()].iloc[0]
    names = sorted(children["tags.mlflow.runName"])
    assert names == ["tanh N=16 L=10 sb2=0.05", "tanh N=32 L=10 sb2=0.05"]  # never a seeded random name
    assert parent["tags.mlflow.runName"].startswith("mlp_sweep 2 jobs ")
    assert parent["params.swept.net.width"] == "16,32" and parent["params.net.activation"] == "tanh"
    assert "metrics.sweep.crossing_measured.median" in parent.index
    assert "params.net.sigma_w2" not in children.columns  # mlp_sweep sweeps grid.sigma_w2, never net.sigma_w2
    client = mlflow.MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("mlp_sweep")
    assert exp.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())  # beside the store, not the repo
    out = p.stdout + p.stderr
    assert "done in" in out and "mlflow ui --backend-store-uri" in out
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("sweep folder: ") and "python -m pipeline.collect mlp_sweep --jobs" in last


def test_an_option_the_stage_replaces_is_rejected_in_one_line(run_inprocess, tmp_path):
    p = run_inprocess("mlp_sweep", *SMOKE, "net.sigma_w2=2.0", f"hydra.run.dir={tmp_path / 'o'}")
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: net.sigma_w2: "), p.stderr
    assert not (tmp_path / "o").exists() and not (ROOT / "compare.png").exists()
