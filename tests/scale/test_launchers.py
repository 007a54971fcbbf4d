"""Results do not depend on the launcher: basic, joblib, submitit_local and Ray give identical tables."""

import filecmp
import importlib.util
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline.tracking.run import curve_keys
from tests.conftest import ROOT, SMOKE_WIDTHS, runs

LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}


@pytest.mark.parametrize("launcher", ["joblib", pytest.param("submitit_local", marks=pytest.mark.slow)])
def test_launcher_gives_identical_csvs_to_the_basic_launcher(run_cli, store, tmp_path, smoke_pipeline, launcher):
    """The same sweep as the session smoke pipeline's mlp_sweep (basic launcher, its own process) with another one.

    Also guarantee 3 (concurrency): the `store` is fresh (no experiment, no run) and joblib's two workers start
    their jobs in it at once; nothing may be lost on the way (each child's params, metrics and every curve point,
    as the basic launcher's child of the same width has them), and no 'database is locked'."""
    if launcher == "submitit_local" and importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher not installed (extra [slurm])")
    base, other = smoke_pipeline["mlp_sweep"] / "jobs", tmp_path / launcher
    sweep = ["-m", "experiment=smoke", SMOKE_WIDTHS, f"theory_outputs={smoke_pipeline['theory']}"]
    p = run_cli("mlp_sweep", *sweep, *LAUNCHERS[launcher], f"hydra.sweep.dir={other}")
    assert p.returncode == 0, (launcher, p.stderr[-2000:])
    assert "database is locked" not in p.stderr
    for job in ("0", "1"):
        for f in ("sweep.csv", "layers.csv"):
            assert filecmp.cmp(base / job / f, other / job / f, shallow=False), (launcher, job, f)
    assert not (other / "2").exists()
    df = runs(store, "mlp_sweep")
    assert (df.status == "FINISHED").sum() == len(df) == 3  # its parent and 2 children
    mine, ref = mlflow.MlflowClient(store), mlflow.MlflowClient(smoke_pipeline.store)
    basic = {int(r.width): r.mlflow_run_id for r in pd.read_csv(smoke_pipeline["mlp_sweep"] / "runs.csv").itertuples()}
    children = df[df["tags.mlflow.parentRunId"].notna()]
    assert sorted(int(w) for w in children["params.net.width"]) == sorted(basic) == [16, 32]
    for run_id, width in zip(children.run_id, children["params.net.width"]):
        run, want = mine.get_run(run_id).data, ref.get_run(basic[int(width)]).data
        assert set(run.params) == set(want.params) and len(run.params) > 20, width
        assert set(run.metrics) == set(want.metrics), width
        curves = curve_keys(want.tags)
        assert curves and curve_keys(run.tags) == curves, width
        for key in curves:  # every point at its step (the tables agree to 10 digits: so do the points)
            got = dict(sorted((m.step, m.value) for m in mine.get_metric_history(run_id, key)))
            exp = dict(sorted((m.step, m.value) for m in ref.get_metric_history(basic[int(width)], key)))
            assert list(got) == list(exp) and list(got.values()) == pytest.approx(list(exp.values()), rel=1e-9), key


# --- Ray -----------------------------------------------------------------------------------------------------------
# Ray lives in its own venv (README, "Ray, as it really works"). These tests run that README block's commands as
# written, with the venv's python in place of ~/venv-ray/bin/python: GINN_RAY_PYTHON=<venv>/bin/python, or this
# interpreter when it has Ray and the launcher. Elsewhere they skip.


def _ray_python() -> str | None:
    if os.environ.get("GINN_RAY_PYTHON"):
        return os.environ["GINN_RAY_PYTHON"]
    have = importlib.util.find_spec("ray") and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher")
    return sys.executable if have else None


RAY_PYTHON = _ray_python()
needs_ray = pytest.mark.skipif(
    RAY_PYTHON is None,
    reason="Ray is not installed here: make its venv as in the README's Ray section, then set "
    "GINN_RAY_PYTHON=<that venv>/bin/python",
)
SMALL = ["experiment=smoke"]  # the README's commands at smoke size
README_VENV = "~/venv-ray/bin/"


def _ray_block() -> list[str]:
    """The README's Ray commands, one per line (continuations joined, comments dropped)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"Ray, as it really works.*?```bash\n(.*?)```", text, flags=re.S)
    assert m, "the README lost its Ray section"
    lines = m.group(1).replace("\\\n", " ").splitlines()
    return [ln.split("  #")[0].strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _readme_cmd(test) -> list[str]:
    """The one README Ray command for which `test(line)` holds, with the Ray venv in place of ~/venv-ray."""
    found = [ln for ln in _ray_block() if test(ln)]
    assert len(found) == 1, found
    words = shlex.split(found[0])
    for i, w in enumerate(words):
        if w.startswith(README_VENV):
            name = w[len(README_VENV) :]
            words[i] = RAY_PYTHON if name == "python" else str(Path(RAY_PYTHON).parent / name)
    return words


def _readme_env() -> dict[str, str]:
    """The environment the README's `export` line sets."""
    (line,) = [ln for ln in _ray_block() if ln.startswith("export ")]
    return dict(w.split("=", 1) for w in shlex.split(line)[1:])


def _env(store: str) -> dict[str, str]:
    return {**os.environ, **_readme_env(), "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "0"}


def _ray_address_file() -> Path:
    """Where `ray start` records its cluster; `ray.init()` without an address joins the cluster recorded there
    (Ray's rule: $RAY_TMPDIR, else $TMPDIR, else /tmp, then ray/ray_current_cluster)."""
    return Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray" / "ray_current_cluster"


def _listening(port: int) -> bool:
    import psutil

    return any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in psutil.net_connections("tcp"))


def _stop_group(pgid: int) -> None:
    """Stop one process group (a Ray cluster started here), never another Ray on the machine (`ray stop` would)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.3)


class _Listeners(threading.Thread):
    """Every listening socket of the given process groups (Ray's daemons, the sweep, its workers), polled."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pgids: set[int] = set()
        self.seen: set[tuple[str, int, str]] = set()
        self.done = threading.Event()

    def run(self):
        import psutil

        while not self.done.is_set():
            for c in psutil.net_connections("inet"):
                if c.pid is None or (c.status != psutil.CONN_LISTEN and c.status != psutil.CONN_NONE) or c.raddr:
                    continue
                try:
                    if os.getpgid(c.pid) in self.pgids:
                        self.seen.add((c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()))
                except (ProcessLookupError, psutil.Error):
                    continue
            self.done.wait(0.5)

    def stop(self):
        self.done.set()
        self.join(timeout=30)

    def not_loopback(self) -> list:
        def loopback(ip: str) -> bool:
            a = ipaddress.ip_address(ip.split("%")[0])
            return a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback)

        return sorted(s for s in self.seen if not loopback(s[0]))


@pytest.fixture(scope="module")
def basic_tables(tmp_path_factory):
    """The README's sweep at smoke size with the basic launcher, in the Ray venv (the reference tables)."""
    d = tmp_path_factory.mktemp("basic")
    words = _readme_cmd(lambda ln: "address=auto" in ln)
    words = [w for w in words if not w.startswith(("hydra/launcher=", "+hydra.launcher."))]
    p = subprocess.run([*words, *SMALL, f"hydra.sweep.dir={d / 's'}"], cwd=ROOT, env=_env(f"sqlite:///{d / 'm.db'}"),
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return d / "s"


def _sweep(words: list[str], sweep_dir: Path, store: str, listeners: _Listeners) -> subprocess.CompletedProcess:
    """Run a README sweep command at smoke size in its own process group, watched by `listeners`."""
    with subprocess.Popen([*words, *SMALL, f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=_env(store), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True) as proc:  # fmt: skip
        listeners.pgids.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=600)
        finally:
            _stop_group(proc.pid)  # a local Ray the sweep started and left behind, if any
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check_sweep(p: subprocess.CompletedProcess, store: str, sweep_dir: Path, basic: Path, listeners: _Listeners):
    assert p.returncode == 0, p.stderr[-3000:]
    assert "sweep FINISHED: 2 finished" in p.stderr, p.stderr[-3000:]
    df = runs(store, "mlp_sweep")
    parent = df[df["tags.sweep"] == "parent"]
    assert len(parent) == 1 and json.loads(parent["tags.children"].iloc[0]) == {"FINISHED": 2}
    children = df[df["tags.mlflow.parentRunId"] == parent.run_id.iloc[0]]
    assert sorted(children.status) == ["FINISHED", "FINISHED"]
    for job in ("0", "1"):
        for f in ("sweep.csv", "layers.csv"):
            assert filecmp.cmp(basic / job / f, sweep_dir / job / f, shallow=False), (job, f)
    names = {name for _, _, name in listeners.seen}
    assert "gcs_server" in names and "raylet" in names, listeners.seen  # the watch saw Ray's own ports
    assert listeners.not_loopback() == [], f"Ray ports off loopback: {listeners.not_loopback()}"


@pytest.mark.slow
@needs_ray
def test_ray_attaches_to_a_running_loopback_cluster(store, tmp_path, basic_tables):
    """The README's path: `ray start --head --node-ip-address=127.0.0.1`, then a sweep with address=auto; tables
    equal the basic launcher's, the MLflow parent counts both jobs, and every port is on 127.0.0.1."""
    pytest.importorskip("psutil")
    if _listening(6379):
        pytest.skip("port 6379 is taken (another Ray cluster?): `ray start --head` would not get its default port")
    start = _readme_cmd(lambda ln: " start --head" in ln)
    listeners = _Listeners()
    listeners.start()
    # The README's `ray start`, in a new session: the cluster it leaves running is this process group, stopped
    # below by group instead of the README's `ray stop` (which stops every Ray process on the machine).
    s = subprocess.Popen(start, cwd=ROOT, env=_env(store), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)  # fmt: skip
    listeners.pgids.add(s.pid)
    recorded = None
    try:
        out, _ = s.communicate(timeout=180)
        assert s.returncode == 0, out[-3000:]
        assert "Local node IP: 127.0.0.1" in re.sub(r"\x1b\[[0-9;]*m", "", out), out[-3000:]
        recorded = _ray_address_file().read_text()
        p = _sweep(_readme_cmd(lambda ln: "address=auto" in ln), tmp_path / "s", store, listeners)
    finally:
        _stop_group(s.pid)
        listeners.stop()
        f = _ray_address_file()  # what `ray stop` does too: forget the stopped cluster, or ray.init() would join it
        if recorded is not None and f.exists() and f.read_text() == recorded:
            f.unlink()
    _check_sweep(p, store, tmp_path / "s", basic_tables, listeners)


@pytest.mark.slow
@needs_ray
def test_ray_launcher_runs_locally(store, tmp_path, basic_tables):
    """The README's last Ray line: a local Ray started by the sweep itself (no `ray start`), loopback only."""
    pytest.importorskip("psutil")
    f = _ray_address_file()
    if f.exists():
        if _listening(int(f.read_text().strip().rpartition(":")[2])):
            pytest.skip(f"a `ray start` cluster is running ({f}): the README's local line would join it ('num_cpus "
                        "must not be provided'); it runs after `ray stop`")  # fmt: skip
        f.unlink(missing_ok=True)  # the record of a cluster stopped without `ray stop`: ray.init() would try to join it
    listeners = _Listeners()
    listeners.start()
    try:
        p = _sweep(_readme_cmd(lambda ln: "init.num_cpus" in ln), tmp_path / "s", store, listeners)
    finally:
        listeners.stop()
    _check_sweep(p, store, tmp_path / "s", basic_tables, listeners)


def test_the_ray_tests_find_the_readme_commands():
    """Fast guard (runs everywhere): the README's Ray block still has the lines the Ray tests run."""
    block = _ray_block()
    assert any(" start --head --node-ip-address=127.0.0.1" in ln for ln in block)
    assert sum("hydra/launcher=ray" in ln for ln in block) == 2
    assert any("address=auto" in ln and "object_store_memory=null" in ln for ln in block)
    assert _readme_env().get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    for ln in block:
        if "hydra/launcher=ray" in ln:
            assert shlex.split(ln)[0] == README_VENV + "python", ln
