"""The life of a stage process, and the one object that holds its state (`STATE`).

1. `main(app)` (every `python -m pipeline.<stage>` / `ginn-<stage>`): refuse output paths read from the
   environment, unblock SIGINT/SIGTERM and turn them into `Interrupted` (`install_interrupt_handlers`).
2. Hydra composes the config and runs the job (`HYDRA_FULL_ERROR=1` for the call, so it re-raises).
   In a sweep, `tracking.sweep.SweepTracking` first opens the parent run (`STATE.open_parents`).
3. `runner.run_stage`: validate (a bad input: one line, exit 2), seed, open the MLflow run, compute, swap the
   outputs in (`outputs.staged`; signals deferred during the swap), log, close FINISHED / FAILED / KILLED.
4. Back in `main`: an error becomes one line (`report_error`: exit 2 bad input, 1 disk full, numerical or any
   other failure); a signal exits 128 + signum (130 Ctrl-C, 143 SIGTERM) even if a callback swallowed it.
5. `clean_up`: close the sweep's parent run (no RUNNING run is left), repair dead staging folders, redact
   the sweep's saved config; a second signal does not cut it short.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from pipeline.config.presets import missing_preset_line
from pipeline.config.validate import ConfigError
from pipeline.tracking.provenance import SecretName, env_paths, redact_files, redact_text
from pipeline.tracking.run import Interrupted, curve_keys, process_alive
from pipeline.tracking.store import client

log = logging.getLogger("ginn")


@dataclass
class Lifecycle:
    """What this process knows about its own life (one instance: `STATE`)."""

    received: list[int] = field(default_factory=list)  # SIGINT/SIGTERM received (through our handler)
    full_error: bool = False  # the user set HYDRA_FULL_ERROR=1: errors keep their full traceback
    open_parents: list[tuple[str, str]] = field(default_factory=list)  # (uri, run id) of sweep parents opened here
    sweeps: dict[str, tuple] = field(default_factory=dict)  # parent run id -> (stage, sweep dir, monotonic start)
    sweep_dirs: list[Path] = field(default_factory=list)  # sweep dirs started here (clean-up at exit)
    hydra_files: dict[str, Any] = field(default_factory=dict)  # what Hydra replaced in the job's run dir (outputs)

    def reset(self) -> None:
        """Forget everything (in place: other modules hold `STATE`), as a new process would: for tests that run
        several entry points in one process."""
        self.received[:] = []
        self.open_parents[:] = []
        self.sweep_dirs[:] = []
        self.sweeps.clear()
        self.hydra_files.clear()
        self.full_error = False


STATE = Lifecycle()


# ---- signals ---------------------------------------------------------------------------------------------
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupted(signum: int) -> Interrupted:
    """The exception of an interrupt by `signum`: a KeyboardInterrupt (runs in flight end KILLED) that
    carries the signal number (the entry point exits 128 + signum: 130 for Ctrl-C, 143 for SIGTERM)."""
    exc = Interrupted(f"signal {signum}")
    exc.signum = signum
    return exc


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    STATE.received.append(signum)
    raise interrupted(signum)


def install_interrupt_handlers() -> None:
    """SIGTERM (cluster schedulers) and SIGINT (Ctrl-C) -> Interrupted, so runs in flight end KILLED, not
    RUNNING, and the process remembers it was interrupted (`STATE.received`). Only replaces the defaults: an
    ignored signal (SIG_IGN: `nohup`, `cmd &` in a script) or someone else's handler is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupt)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving inside the block are acted on right after it (never half-way).

    Done with Python-level handlers, not the thread's signal mask: the handlers are swapped for one that
    records the signal, and on the way out the original handlers are restored and the first recorded signal
    is handed to its original handler (KeyboardInterrupt, the SIGTERM handler, or the default action).

    Why not `pthread_sigmask`: a mask is per thread and inherited. In a process with other threads (torch's
    OpenMP pool, a multiprocessing queue's feeder thread, MLflow's) the kernel hands the signal to a thread
    that does not block it and CPython still runs the handler in the main thread, inside the block, so the
    mask deferred nothing; and a mask left blocked (an exception between block and unblock) or inherited by a
    thread or process created inside the block (children inherit it through fork and exec) makes Ctrl-C and
    SIGTERM vanish for good. Handlers live in the interpreter: nothing is inherited, nothing can stay behind.

    Outside the main thread this is a no-op: Python runs signal handlers in the main thread only, so the
    calling thread is never interrupted by them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum, frame):  # noqa: ARG001 - signal handler signature
        pending.append(signum)

    old: dict[int, Any] = {}
    try:
        for sig in DEFERRED_SIGNALS:
            if signal.getsignal(sig) is not None:  # None: a handler set outside Python, left alone
                old[sig] = signal.signal(sig, record)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if pending:
            _deliver(pending[0], old[pending[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Act on a signal recorded while deferred, as its original handler would have."""
    if callable(handler):
        handler(signum, None)  # KeyboardInterrupt, Interrupted (SIGTERM), or an outer block's recorder
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action (terminate)
    # SIG_IGN: ignored, as it would have been


def unblock_signals() -> None:
    """Unblock SIGINT/SIGTERM in the calling thread: a process can inherit a blocked mask from whatever
    started it (a mask is kept across fork and exec), and then Ctrl-C and SIGTERM would never arrive.
    Ignored signals (SIG_IGN, e.g. `nohup` or `cmd &` in a script) are left ignored, as intended there."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFERRED_SIGNALS)
    except (AttributeError, OSError, ValueError):  # not POSIX
        pass


def in_multirun() -> bool:
    """Inside a Hydra multirun job (a sweep goes on when one job fails)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


# ---- what a killed process left behind: staging folders ---------------------------------------------------
STAGING_PREFIX = ".staging-"  # `.staging-<folder>-<pid>-<id>[-old]`, beside the output folder (outputs.staged)


def recover(out_dir: Path) -> None:
    """Undo what a SIGKILL in an earlier swap left behind: staging folders of dead processes are
    removed; if the output folder itself is missing, the old one set aside is put back."""
    parent = out_dir.parent
    if not parent.is_dir():
        return
    for p in parent.glob(f"{STAGING_PREFIX}{out_dir.name}-*"):
        try:
            pid = int(p.name[len(STAGING_PREFIX) + len(out_dir.name) + 1 :].split("-")[0])
        except ValueError:
            continue
        if process_alive(pid) and pid != os.getpid():
            continue  # another live process is writing this folder
        if p.name.endswith("-old") and not out_dir.exists():
            os.rename(p, out_dir)
        else:
            shutil.rmtree(p, ignore_errors=True)
    for p in out_dir.glob(f"{STAGING_PREFIX}*") if out_dir.is_dir() else ():  # old layout: staging inside
        shutil.rmtree(p, ignore_errors=True)


def remove_dead_staging(root: Path) -> None:
    """Repair what killed processes left in `root` (a sweep dir whose workers a launcher killed):
    their staging folders are removed, a folder set aside mid-swap is put back."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in sorted(root.rglob(f"{STAGING_PREFIX}*")):
        name = p.name[len(STAGING_PREFIX) :]
        parts = name.rsplit("-", 3) if name.endswith("-old") else name.rsplit("-", 2)
        if p.is_dir() and len(parts) >= 3 and parts[1].isdigit():
            recover(p.parent / parts[0])


# ---- errors: one line at the entry point -----------------------------------------------------------------
class NumericalError(RuntimeError):
    """A stage produced non-finite results it cannot recover from (the reason names what diverged)."""


class JobFailed(BaseException):  # noqa: N818 - a carrier, not an error of its own
    """A single run's exception carried past Hydra's `run_job` (which catches only Exception and prints
    `Error executing job with overrides: [...]`, credentials included) to `main`, which reports it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line naming the key."""
    if isinstance(exc, ConfigError):
        return str(exc)
    preset = missing_preset_line(exc)  # `experiment=smok`: the presets and the nearest one
    if preset:
        return preset
    added = re.fullmatch(r"Error merging override \+([^+=][^=]*)=(.*)", str(exc).splitlines()[0] if str(exc) else "")
    if added and isinstance(exc.__cause__, InterpolationResolutionError):  # `+key` on an interpolated key (out_dir):
        k, v = added.groups()  # Hydra resolves it to check it exists, before HydraConfig is set; say what it means
        return (f"Could not append to config. An item is already at '{k}'. Either remove + prefix: '{k}={v}' "
                f"Or add a second + to add or override '{k}': '++{k}={v}'")  # fmt: skip
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if not key:  # a value of a preset file: Hydra names the key only on an indented `full_key:` line
        found = re.search(r"^\s*full_key: (\S+)", str(exc), re.M)
        key = found.group(1) if found else None
    lines = [
        ln.strip()
        for ln in str(exc).splitlines()
        if ln.strip() and not ln.startswith((" ", "\t")) and not ln.startswith("To append")
    ]
    if cause is not exc:
        lines += [ln.strip() for ln in str(cause).splitlines()[:1] if ln.strip() not in lines]
    text = " ".join(lines) or type(exc).__name__
    if "not in '" in text and "Could not override" in text:
        text = "unknown config key (" + text + ")"
    return f"{key}: {text}" if key and not text.startswith(str(key)) else text


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind `exc` (itself, its cause or the error being handled when it was
    raised: a PNG writer that fails while flushing raises another error on top of it), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_line(err: OSError) -> str:
    """One line for a full disk (or quota): where, and that nothing was half-written."""
    where = f" writing {err.filename}" if err.filename else ""
    return (
        f"error: no space left on the device{where} ({errno.errorcode.get(err.errno, err.errno)}): free space or "
        "choose another out_dir; the run is FAILED and the output folder was left as it was"
    )


def report_error(exc: BaseException) -> int:
    """Report an exception that ended the stage and return the exit code: bad input found by Hydra or by our
    validation (composition, types, unknown keys) -> one line `error: <key>: ...`, 2; a full disk -> one line, 1
    (staged outputs: nothing half-written); a NumericalError -> one line, 1; anything else -> its traceback
    (redacted), 1. After a Ctrl-C/SIGTERM anything else is a consequence of it (joblib's pool broken by a
    killed worker): the interrupt is raised instead. A user's HYDRA_FULL_ERROR=1 re-raises everything."""
    if STATE.full_error:
        raise exc
    if isinstance(exc, (ConfigError, HydraException, OmegaConfBaseException)):
        print(f"error: {redact_text(one_line(exc))}", file=sys.stderr)
        return 2
    if STATE.received:
        raise interrupted(STATE.received[0]) from exc
    full = disk_full(exc)
    if full is not None:  # stage_run closed the run FAILED
        print(redact_text(disk_full_line(full)), file=sys.stderr)
        return 1
    if isinstance(exc, NumericalError):  # a known failure class: the run is FAILED with its reason
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: numerical failure: {redact_text(first)}", file=sys.stderr)
        return 1
    text = "".join(traceback.format_exception(exc))
    print(redact_text(text).rstrip(), file=sys.stderr)
    print("(a bug, not a bad input: please report it with the command line above)", file=sys.stderr)
    return 1


def redact_logs() -> None:
    """Every log record's message goes through `redact_text` before any handler sees it (console, the job's
    log file): Hydra's launchers log each job's overrides (`#0 : tracking.uri=http://user:pw@host ...`) and
    libraries may log a URI. Installed once per process (the entry point, and each job: launchers' workers)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_ginn_redacts", False):
        return

    def make(*args, **kwargs):
        record = factory(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report
            return record
        clean = redact_text(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return record

    make._ginn_redacts = True
    logging.setLogRecordFactory(make)


def job(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The Hydra task around `task`: in a single run its exception goes to `main` as `JobFailed` (reported in
    one line there); in a sweep it stays an Exception, so Hydra records the job FAILED and runs the others."""

    def run(cfg):
        redact_logs()  # a launcher's worker process did not run `main`
        try:
            return task(cfg)
        except Exception as exc:
            if in_multirun():
                raise
            raise JobFailed(exc) from exc

    run.__name__ = run.__qualname__ = getattr(task, "__name__", "task")
    run.__module__ = getattr(task, "__module__", __name__)
    return run


# ---- the entry point ---------------------------------------------------------------------------------------
INTERRUPTED_LINE = (
    "interrupted: runs in flight are marked KILLED; finished jobs keep their runs and outputs. "
    "Re-run the same command with resume=true to run only the rest."
)


def main(app: Callable[[], Any]) -> None:
    """Run a Hydra app as a stage process (module docstring): one-line errors, 128 + signum on a signal, and
    the sweep closed whatever happened."""
    try:  # before Hydra creates the run or sweep folder and writes its config and log there
        env_paths([a for a in sys.argv[1:] if not a.startswith("-")])
    except SecretName as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    unblock_signals()  # a blocked SIGINT/SIGTERM inherited from whatever started us would make both vanish
    install_interrupt_handlers()
    redact_logs()
    user_setting = os.environ.get("HYDRA_FULL_ERROR")
    STATE.full_error = user_setting == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises (public switch); we format errors here
    signum = code = None
    failed = True  # until app() returns: a launcher that raises before or between jobs fails the sweep
    try:
        try:
            app()
            failed = False
        except SystemExit as exc:
            failed = exc.code not in (None, 0)
            raise
        except (Exception, JobFailed) as exc:
            code = report_error(exc.error if isinstance(exc, JobFailed) else exc)
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        print(INTERRUPTED_LINE, file=sys.stderr)
    finally:
        STATE.full_error = False
        if user_setting is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_setting
        if signum is None and STATE.received:  # Ctrl-C raised inside a callback that swallows exceptions (GC hook)
            signum = STATE.received[0]
        late = clean_up(interrupted=signum is not None, failed=failed)
    if signum is None:
        signum = late
    if signum is not None:  # the shell convention 128 + signal number: 143 for SIGTERM, 130 for Ctrl-C
        raise SystemExit(128 + signum)
    if code:
        raise SystemExit(code)


def clean_up(interrupted: bool, failed: bool = False) -> int | None:
    """Close the sweep's parent run (Hydra skips on_multirun_end when a job failed; KILLED when interrupted)
    and the runs of killed workers, remove dead staging folders, redact the sweep's saved config. A second
    Ctrl-C/SIGTERM does not cut this short: it is acted on afterwards (its signal number is returned)."""
    try:
        with signals_deferred():
            close_open_parents(interrupted=interrupted, failed=failed)
            while STATE.sweep_dirs:
                sweep_dir = STATE.sweep_dirs.pop()
                remove_dead_staging(sweep_dir)
                redact_files(sweep_dir)  # Hydra's multirun.yaml lists the overrides
    except KeyboardInterrupt as exc:
        return int(getattr(exc, "signum", signal.SIGINT))
    return None


# ---- sweep close-up: the parent run says what the sweep was ------------------------------------------------
PLANNED_TAG = "planned_jobs"  # the number of jobs the sweep was launched with (Hydra's basic sweeper)


def parent_name(stage: str, started: int, planned: int | None, when: str = "") -> str:
    """`<stage> <n> jobs <time>`; `<stage> <started> of <planned> jobs <time>` when fewer jobs started than
    planned (an interrupted sweep), never a count that reads as the whole sweep."""
    count = f"{started} of {planned}" if planned is not None and started != planned else f"{started}"
    return f"{stage} {count} jobs {when}".strip()


def _describe_parent(c, run_id: str, stage: str, children, sweep_dir, planned: int | None = None) -> None:
    """The parent says what the sweep was: its name with the job count, the swept axes as params (lists of the
    values the children took) and headline metrics (median of each child metric over the finished jobs)."""
    from mlflow.entities import Metric, Param  # lazy: mlflow costs ~1 s and only a tracked sweep gets here

    when = sweep_dir.name if sweep_dir is not None else ""
    c.set_tag(run_id, "mlflow.runName", parent_name(stage, len(children), planned, when))
    values: dict[str, set] = {}
    for ch in children:
        for k, v in ch.data.params.items():
            values.setdefault(k, set()).add(v)
    per_job = ("out_dir", "resume", "stage")  # bookkeeping that differs per job (or never), not a swept axis
    swept = {k: v for k, v in values.items() if len(v) > 1 and k not in per_job and not k.startswith("tracking.")}
    constant = {k: next(iter(v)) for k, v in values.items() if len(v) == 1}

    def order(vs):
        try:
            return sorted(vs, key=float)
        except ValueError:
            return sorted(vs)

    params = [Param(f"swept.{k}", ",".join(order(v))[:6000]) for k, v in sorted(swept.items())]
    params += [Param(k, v) for k, v in sorted(constant.items())]
    now = int(time.time() * 1000)
    metrics = []
    finished = [ch for ch in children if ch.info.status == "FINISHED"]
    curves = {k for ch in finished for k in curve_keys(ch.data.tags)}  # stepped: their last point is no headline
    keys = sorted({k for ch in finished for k in ch.data.metrics
                   if not k.startswith(("children_", "net.", "engine.")) and k not in curves})  # fmt: skip
    for k in keys:
        xs = [ch.data.metrics[k] for ch in finished if k in ch.data.metrics]
        if xs and len(keys) <= 40:
            metrics += [Metric(f"sweep.{k}.median", float(statistics.median(xs)), now, 0)]
    existing = set(c.get_run(run_id).data.params)
    params = [p for p in params if p.key not in existing]
    for i in range(0, len(params), 100):
        c.log_batch(run_id, params=params[i : i + 100])
    if metrics:
        c.log_batch(run_id, metrics=metrics[:1000])


def _next_steps(stage: str, sweep_dir, run_id: str) -> str:
    """The last line of a sweep: where it is and what to run next."""
    steps = [f"python -m pipeline.compare --experiment {stage} --parent {run_id} --x <swept param> --y <metric>"]
    if stage == "mlp_sweep":
        steps.insert(0, f"python -m pipeline.collect mlp_sweep --jobs {sweep_dir}")
    return f"sweep folder: {sweep_dir} | next: " + "  ;  ".join(steps)


def close_open_parents(interrupted: bool = False, failed: bool = False) -> None:
    """Close every parent opened here: FAILED if any child failed; KILLED if the sweep was interrupted
    (Ctrl-C/SIGTERM, even before any job started); FAILED if the sweep itself failed (`failed`: e.g. the
    launcher raised, a Ray cluster that cannot be reached); KILLED if a child was killed; else FINISHED."""
    while STATE.open_parents:
        uri, run_id = STATE.open_parents.pop()
        c = client(uri)
        parent = c.get_run(run_id)
        if parent.info.status != "RUNNING":
            continue
        children = _close_dead_children(c, parent.info.experiment_id, run_id)
        counts: dict[str, int] = {}
        for ch in children:
            counts[ch.info.status] = counts.get(ch.info.status, 0) + 1
        c.set_tag(run_id, "children", json.dumps(counts))
        for status, n in counts.items():
            c.log_metric(run_id, f"children_{status.lower()}", n)
        if counts.get("FAILED", 0):
            status = "FAILED"
        elif interrupted:
            status = "KILLED"
        elif failed:
            status = "FAILED"
        elif counts.get("KILLED", 0) or counts.get("RUNNING", 0):
            status = "KILLED"
        else:
            status = "FINISHED"
        stage, sweep_dir, started = STATE.sweeps.pop(run_id, (parent.data.tags.get("stage", "stage"), None, None))
        planned = parent.data.tags.get(PLANNED_TAG, "")
        _describe_parent(c, run_id, stage, children, sweep_dir, int(planned) if planned.isdigit() else None)
        c.set_terminated(run_id, status)
        failed_jobs = [ch.data.tags.get("overrides", "?") for ch in children if ch.info.status == "FAILED"]
        if interrupted:
            c.set_tag(run_id, "killed_reason", "interrupted (SIGINT/SIGTERM)")
        done = ", ".join(f"{n} {k.lower()}" for k, n in sorted(counts.items()))
        line = f"sweep {status}: " + (done or "no job started") + (" (interrupted)" if interrupted else "")
        if failed and not interrupted and not counts.get("FAILED", 0):
            line += " (the sweep itself failed: see the error above)"
            c.set_tag(run_id, "error", "the sweep failed outside its jobs (e.g. the launcher raised)")
        if started is not None:
            line += f" in {time.monotonic() - started:.0f} s"
        if failed_jobs:
            line += " | failed jobs: " + "; ".join(f"[{o}]" for o in failed_jobs)
        print(line, file=sys.stderr)
        if sweep_dir is not None:
            print(_next_steps(stage, sweep_dir, run_id), file=sys.stderr)
        log.info("sweep parent %s closed: %s", run_id, counts)


def _close_dead_children(c, experiment_id: str, run_id: str, wait: float = 5.0):
    """Children of `run_id`; those still RUNNING whose worker process is gone (a launcher's worker
    killed on Ctrl-C/SIGTERM before it could close its run) are closed KILLED with a reason. A worker
    still alive gets `wait` seconds to close its own run."""
    deadline = time.time() + wait
    while True:
        children = c.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=50000
        )
        waiting = False
        for ch in children:
            if ch.info.status != "RUNNING":
                continue
            tags = ch.data.tags
            pid = int(tags["ginn.pid"]) if tags.get("ginn.pid", "").isdigit() else None
            if pid is not None and pid != os.getpid() and process_alive(pid, tags.get("ginn.pid_start", "")):
                waiting = True
                continue
            c.set_tag(ch.info.run_id, "killed_reason", "interrupted: the sweep stopped before this job closed its run")
            c.set_terminated(ch.info.run_id, "KILLED")
        if not waiting or time.time() > deadline:
            return c.search_runs(
                [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=50000
            )
        time.sleep(0.2)
