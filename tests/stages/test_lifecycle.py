"""Guarantee 2 under every documented launcher: SIGTERM exits 143, Ctrl-C 130; in-flight runs end KILLED,
no staging folder is left; runs orphaned by SIGKILL are closed KILLED (with a reason) by the next
sweep or resume that touches the experiment."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pipeline.stages import lifecycle
from pipeline.stages.lifecycle import signals_deferred
from tests.conftest import ROOT, default_signals, runs

LONG = ["experiment=smoke", "net.width=256", "engine.n_seeds=8"]


def blocked_signals() -> None:
    """Popen preexec_fn: SIGINT/SIGTERM at their defaults but *blocked*, as a process started from inside a
    `pthread_sigmask` block (or by a harness that leaked one) inherits them through fork and exec."""
    default_signals()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _start(args, store, sweep_dir, preexec=default_signals):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.mlp_sweep", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
        preexec_fn=preexec,
    )


def _wait_running(store, n, proc=None, timeout=120):
    """Poll with sqlite3, not MLflow: an MLflow client here would race the child's store creation."""
    import sqlite3

    db = store[len("sqlite:///") :]
    deadline = time.time() + timeout
    while time.time() < deadline and (proc is None or proc.poll() is None):
        try:
            con = sqlite3.connect(db, timeout=5)
            try:
                if con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0] >= n:
                    return
            finally:
                con.close()
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"runs never started: {proc.communicate()[1][-2000:] if proc else ''}")


def _staging(path):
    return [p for p in path.rglob(".staging-*")]


def _parent_status(store) -> str:
    import sqlite3

    con = sqlite3.connect(store[len("sqlite:///") :])
    try:
        (status,) = con.execute(
            "SELECT status FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
            "WHERE tags.key = 'sweep' AND tags.value = 'parent'"
        ).fetchone()
    finally:
        con.close()
    return status


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig,code,preexec",
    [
        (signal.SIGTERM, 143, default_signals),
        (signal.SIGINT, 130, default_signals),
        (signal.SIGINT, 130, blocked_signals),  # started with SIGINT/SIGTERM blocked: the entry point unblocks
    ],
    ids=["sigterm", "ctrl-c", "ctrl-c-inherited-mask"],
)
def test_joblib_sweep_interrupted_ends_children_killed_no_staging_and_exit_code(store, tmp_path, sig, code, preexec):
    sweep = tmp_path / "s"
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "net.depth=3000,3001,3002", *LONG]
    proc = _start(args, store, sweep, preexec)
    _wait_running(store, 3, proc)  # the parent and both workers' jobs
    os.killpg(proc.pid, sig)  # the whole group, as Ctrl-C in a terminal or a scheduler's kill does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    df = runs(store, "mlp_sweep")
    assert "RUNNING" not in set(df.status), df[["status"]]
    assert "KILLED" in set(df.status)
    assert _parent_status(store) == "KILLED"
    assert not _staging(tmp_path)


@pytest.mark.slow
def test_ctrl_c_before_any_job_started_closes_the_parent_killed(store, tmp_path):
    """The parent of a sweep interrupted while its joblib workers are still starting is KILLED, not FINISHED."""
    proc = _start(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "net.depth=600,601", *LONG], store, tmp_path / "s"
    )
    _wait_running(store, 1, proc)  # the parent only: the workers take seconds to import
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert _parent_status(store) == "KILLED", err[-2000:]
    assert "RUNNING" not in set(runs(store, "mlp_sweep").status)
    assert not _staging(tmp_path)


def test_sigterm_to_a_single_run_exits_143_and_ends_killed(store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.mlp_sweep", *LONG, "net.depth=600", f"hydra.run.dir={tmp_path / 'o'}"],
        cwd=ROOT,
        env=env,
        preexec_fn=default_signals,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_running(store, 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert list(runs(store, "mlp_sweep").status) == ["KILLED"]
    assert not _staging(tmp_path)


def test_runs_orphaned_by_sigkill_are_closed_killed_by_the_next_resume(store, tmp_path, run_inprocess):
    sweep = tmp_path / "s"
    args = ["net.depth=600,20", *LONG]
    proc = _start(args, store, sweep)
    _wait_running(store, 2, proc)  # the parent and the first job
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (runs(store, "mlp_sweep").status == "RUNNING").sum() == 2  # what SIGKILL leaves
    # a smaller resume touching the experiment; in this process (the SIGKILL above is the real process's part)
    p = run_inprocess("mlp_sweep", "-m", *args, "net.depth=20", "resume=true", f"hydra.sweep.dir={sweep}")
    err = p.stderr
    assert p.returncode == 0, err[-2000:]
    df = runs(store, "mlp_sweep")
    assert "RUNNING" not in set(df.status)
    orphans = df[df["tags.killed_reason"].fillna("").str.startswith("orphaned")]
    assert len(orphans) == 2 and set(orphans.status) == {"KILLED"}


# ---- signals_deferred: what the output swap and the sweep's clean-up rely on (fast, in-process) ----------


@pytest.fixture
def python_handlers():
    """SIGINT at Python's default (KeyboardInterrupt) for the test, whatever earlier tests installed."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for s, h in before.items():
        signal.signal(s, h)


@pytest.fixture
def helper_thread():
    """An idle second thread, as every stage process has (torch's pool, a queue's feeder, MLflow's): the
    kernel may hand a process-directed signal to it."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    yield t
    stop.set()
    t.join()


def _busy(seconds: float = 0.2) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)  # bytecode and syscalls: where Python runs pending signal handlers


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_signals_deferred_is_acted_on_after_the_block_even_with_other_threads(
    python_handlers, helper_thread, sig
):
    class Term(Exception):
        pass

    def term(signum, frame):
        raise Term

    signal.signal(signal.SIGTERM, term)
    done = []
    with pytest.raises(KeyboardInterrupt if sig == signal.SIGINT else Term):
        with signals_deferred():
            os.kill(os.getpid(), sig)
            _busy()
            done.append("block ran to its end")
    assert done == ["block ran to its end"]
    assert signal.getsignal(signal.SIGTERM) is term and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_deferred_leaves_no_mask_for_threads_or_children_and_nests(python_handlers):
    """Nothing created inside the block inherits a blocked SIGINT/SIGTERM (a child started there can be
    interrupted); nested blocks hand the signal outwards; an ignored signal stays ignored."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with signals_deferred():
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
        status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
        blocked = int(status.split("SigBlk:")[1].split()[0], 16)
        assert not blocked & (1 << (signal.SIGINT - 1) | 1 << (signal.SIGTERM - 1))
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                _busy()
                steps.append("inner")
            _busy(0.05)
            steps.append("outer")
    assert steps == ["inner", "outer"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        _busy(0.05)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_an_error_after_ctrl_c_or_sigterm_exits_as_the_interrupt(monkeypatch):
    """After a Ctrl-C/SIGTERM, whatever the sweep raises next (joblib's pool broken by a killed worker, ...)
    is reported as the interrupt: exit 128 + signum, runs KILLED."""
    monkeypatch.setattr(lifecycle.STATE, "received", [signal.SIGTERM])
    with pytest.raises(KeyboardInterrupt) as err:
        lifecycle.report_error(RuntimeError("A task has failed to un-serialize / the executor is broken"))
    assert err.value.signum == signal.SIGTERM


@pytest.mark.parametrize(
    "error,code,first",
    [
        (lifecycle.ConfigError("net.width=0 is out of range"), 2, "error: net.width=0 is out of range"),
        (lifecycle.NumericalError("lambda diverged\nmore"), 1, "error: numerical failure: lambda diverged"),
        (RuntimeError("a bug"), 1, "Traceback"),
    ],
)
@pytest.mark.parametrize("single_run", [True, False])
def test_main_reports_each_error_with_its_exit_code(monkeypatch, capsys, error, code, first, single_run):
    """What a stage's entry point prints and returns for what Hydra re-raises (HYDRA_FULL_ERROR=1 only while it
    runs): a bad input one line, exit 2; a numerical failure one line, exit 1; a bug its traceback, exit 1. A single
    run's error arrives wrapped (`JobFailed`: Hydra's own error line skipped), a sweep's as itself."""
    monkeypatch.setattr(sys, "argv", ["pipeline.theory"])
    monkeypatch.setattr(lifecycle, "install_interrupt_handlers", lambda: None)  # pytest keeps its Ctrl-C
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    seen = []

    def app():
        seen.append(os.environ.get("HYDRA_FULL_ERROR"))
        try:
            raise error
        except Exception as exc:
            if single_run:
                raise lifecycle.JobFailed(exc) from exc
            raise

    with pytest.raises(SystemExit) as e:
        lifecycle.main(app)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == code and err[0].startswith(first), err
    assert len(err) == 1 or first == "Traceback"
    assert seen == ["1"] and "HYDRA_FULL_ERROR" not in os.environ  # set for the call only


def test_a_users_hydra_full_error_keeps_the_full_traceback(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pipeline.theory"])
    monkeypatch.setattr(lifecycle, "install_interrupt_handlers", lambda: None)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")

    def app():
        raise lifecycle.ConfigError("net.width=0 is out of range")

    with pytest.raises(lifecycle.ConfigError):
        lifecycle.main(app)
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_a_ctrl_c_that_a_callback_swallowed_still_exits_130_and_closes_the_sweep_killed(monkeypatch):
    """A KeyboardInterrupt raised inside a callback that swallows exceptions (a GC callback, Hydra's callback
    wrapper) never reaches `main`: the signal is remembered (`STATE.received`) and still decides the ending."""
    from pipeline.tracking import sweep

    monkeypatch.setattr(sys, "argv", ["pipeline.mlp_sweep"])
    monkeypatch.setattr(lifecycle, "install_interrupt_handlers", lambda: None)
    monkeypatch.setattr(lifecycle.STATE, "received", [])
    closed = []
    monkeypatch.setattr(lifecycle, "close_open_parents", lambda interrupted, failed: closed.append(interrupted))
    monkeypatch.setattr(sweep, "close_open_parents", lambda interrupted: closed.append(interrupted))

    def app():
        try:
            lifecycle._raise_interrupt(signal.SIGINT, None)  # the handler, run inside the swallowing callback
        except KeyboardInterrupt:
            pass
        sweep.SweepTracking().on_multirun_end(config=None)  # Hydra closes the sweep normally

    with pytest.raises(SystemExit) as e:
        lifecycle.main(app)
    assert e.value.code == 130 and closed == [True, True]


def test_ctrl_c_while_the_stage_imports_ends_with_one_line_and_the_sigint_status(tmp_path):
    """Before the stage installs its handlers (torch and Hydra still importing): before, a 20-line import
    traceback. The process still dies by SIGINT, so a shell sees 130."""
    p = subprocess.Popen(
        [sys.executable, "-m", "pipeline.theory", "experiment=smoke", "tracking.enabled=false",
         f"out_dir={tmp_path}/o"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
    )  # fmt: skip
    time.sleep(0.4)  # python is up, `pipeline` imported, torch not yet
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode in (-signal.SIGINT, 128 + signal.SIGINT), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
