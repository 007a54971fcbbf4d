"""One tracked stage run: params, tags, batched metrics and curves, artifacts, and a final status.

`stage_run` always closes the run: FINISHED on success, FAILED (error tag) on an exception,
KILLED on Ctrl-C/SIGTERM. With tracking disabled the same calls are no-ops.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from .store import client, ensure_experiment, prepare_store, resolve_uri

# `mlflow.entities` is imported inside the logging methods: `import mlflow` costs ~1 s, which a run with
# tracking.enabled=false (and `--help`) never pays.
BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch
UI_DIGITS = 6  # significant digits of a metric in MLflow: far below any standard error; the CSVs keep full precision


def ui_value(v: float) -> float:
    """A metric value rounded to UI_DIGITS significant digits, so the UI shows 2.0 rather than 1.99999999996."""
    return float(f"{float(v):.{UI_DIGITS}g}")


CURVES_TAG = "curves"  # run tag: each stepped metric (`Curve`) of the run and what its step means


@dataclass(frozen=True)
class Curve:
    """A stepped metric: `values[i]` at step `steps[i]`, and what a step is (`step`, e.g. "layer"), so that two
    runs' curves overlay in MLflow's chart view. The meaning goes into the run's `curves` tag."""

    steps: Sequence[int]
    values: Sequence[float]
    step: str


def curves_tag(curves: Mapping[str, Sequence[float] | Curve]) -> str:
    """The `curves` tag: `key: step = meaning` per stepped metric (a plain sequence is stepped 0, 1, ...)."""
    return "; ".join(f"{k}: step = {c.step if isinstance(c, Curve) else 'index'}" for k, c in curves.items())


def curve_keys(tags: Mapping[str, str]) -> set[str]:
    """The stepped metrics a run's `curves` tag names (their latest value is no headline: no sweep median)."""
    return {part.split(": step = ")[0] for part in tags.get(CURVES_TAG, "").split("; ") if part}


class Interrupted(KeyboardInterrupt):
    """SIGTERM (as a cluster scheduler sends) turned into an interrupt, so runs end KILLED."""


# ---- which process owns a RUNNING run: orphans (SIGKILL, power loss) are found and closed later ----


def _start_ticks(pid: int) -> str:
    """Start time of process `pid` in clock ticks since boot ('' where /proc is unavailable): with the pid
    it identifies a process even after the pid is reused."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tags() -> dict[str, str]:
    """Tags naming the process that runs a run (`ginn.pid`, `ginn.pid_start`, `ginn.host`)."""
    pid = os.getpid()
    return {"ginn.pid": str(pid), "ginn.pid_start": _start_ticks(pid), "ginn.host": socket.gethostname()}


def process_alive(pid: int, start: str = "") -> bool:
    """Process `pid` is alive (and, given its start ticks, is still the same process: pids are reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _start_ticks(pid) in ("", start)


def close_orphans(experiment: str, uri: str | None) -> list[str]:
    """Close as KILLED (tag `killed_reason`) every RUNNING run of `experiment` whose recorded process on
    this host is gone (SIGKILL, OOM killer, power loss). Runs of other hosts or without process tags
    are left alone (their state cannot be known from here). Returns the closed run ids."""
    uri = resolve_uri(uri)
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    closed = []
    for run in c.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000):
        tags = run.data.tags
        if tags.get("ginn.host") != host or not tags.get("ginn.pid", "").isdigit():
            continue
        pid = int(tags["ginn.pid"])
        if process_alive(pid, tags.get("ginn.pid_start", "")):
            continue
        reason = f"orphaned: process {pid} on {host} ended without closing the run (SIGKILL or power loss)"
        c.set_tag(run.info.run_id, "killed_reason", reason)
        c.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    if closed:
        logging.getLogger("ginn").warning("closed %d orphaned RUNNING run(s) of %s as KILLED", len(closed), experiment)
    return closed


@dataclass
class RunLogger:
    """Logging handle of one run; `run_id` is None when tracking is disabled."""

    run_id: str | None
    uri: str | None = None
    skipped: list[str] = field(default_factory=list)

    def _client(self):
        return client(self.uri)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Scalar metrics in batches; non-finite values are not sent but listed in a tag."""
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        items = []
        for k, v in metrics.items():
            if v is None or not math.isfinite(float(v)):
                self.skipped.append(k)
                continue
            items.append(Metric(k, ui_value(v), now, step))
        self._send(items)

    def log_curves(
        self,
        curves: Mapping[str, Sequence[float] | Curve],
        start_step: int = 0,
        scalars: Mapping[str, float] | None = None,
    ) -> None:
        """Curves as stepped metrics (a sequence at steps start_step, start_step + 1, ...; a `Curve` at its own
        steps) and any scalars in shared batches; non-finite points are left out. Tag `curves` says what each
        curve's step is."""
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        items = []
        for k, c in curves.items():
            steps, values = (c.steps, c.values) if isinstance(c, Curve) else (range(start_step, start_step + len(c)), c)
            if len(steps) != len(values):
                raise ValueError(f"curve {k}: {len(steps)} steps for {len(values)} values")
            items += [Metric(k, ui_value(v), now, int(s)) for s, v in zip(steps, values) if math.isfinite(float(v))]
        for k, v in (scalars or {}).items():
            if v is None or not math.isfinite(float(v)):
                self.skipped.append(k)
            else:
                items.append(Metric(k, ui_value(v), now, 0))
        self._send(items)
        if curves:
            self.set_tags({CURVES_TAG: curves_tag(curves)[:5000]})

    def _send(self, items) -> None:
        for s in range(0, len(items), BATCH):
            self._client().log_batch(self.run_id, metrics=items[s : s + BATCH])

    def log_params(self, params: Mapping[str, str], metrics: Mapping[str, float] | None = None) -> None:
        """Params (and optionally scalar metrics) in as few batches as MLflow allows (100 params per call)."""
        from mlflow.entities import Metric, Param

        if self.run_id is None:
            return
        items = [Param(k, v) for k, v in params.items()]
        now = int(time.time() * 1000)
        extra = [Metric(k, ui_value(v), now, 0) for k, v in (metrics or {}).items() if math.isfinite(float(v))]
        for s in range(0, max(len(items), 1), 100):
            self._client().log_batch(self.run_id, params=items[s : s + 100], metrics=extra if s == 0 else [])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        if self.run_id is None:
            return
        self._client().log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        if self.run_id is None:
            return
        self._client().log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.run_id is None:
            return
        self._client().log_artifact(self.run_id, str(path), artifact_path)


@contextmanager
def stage_run(
    experiment: str,
    enabled: bool = True,
    uri: str | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    guard: Callable[[], AbstractContextManager] = nullcontext,
) -> Iterator[RunLogger]:
    """Open a run in `experiment` (a child of `parent_run_id` if given) and always close it.

    `guard` wraps the run's creation (the stages pass `lifecycle.signals_deferred`): a SIGTERM arriving while
    the store is writing the new run is acted on once the run is known, so it still ends KILLED, not RUNNING.
    """
    if not enabled:
        yield RunLogger(run_id=None)
        return
    uri = resolve_uri(uri)
    prepare_store(uri)
    exp_id = ensure_experiment(experiment, uri)
    all_tags = {**(tags or {}), **process_tags()}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    logger = RunLogger(run_id=None, uri=uri)
    try:
        with guard():
            logger.run_id = client(uri).create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id
        yield logger
    except KeyboardInterrupt:
        if logger.run_id is not None:
            _close(logger, "KILLED", "interrupted (SIGINT/SIGTERM)")
        raise
    except BaseException as exc:
        if logger.run_id is not None:
            _close(logger, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
    else:
        if logger.skipped:
            logger.set_tags({"nonfinite_metrics": ",".join(logger.skipped)[:5000]})
        client(uri).set_terminated(logger.run_id, "FINISHED")


def _close(logger: RunLogger, status: str, error: str) -> None:
    """End a run with `status` and the error text as a tag, even if the store is flaky."""
    try:
        logger.set_tags({"error": error[:5000]})
    finally:
        client(logger.uri).set_terminated(logger.run_id, status)


def attach_to_run(
    run_id: str, uri: str, metrics: Mapping[str, float], files: Sequence[Path], artifact_path: str | None = None
) -> None:
    """Add metrics and artifacts to an existing (e.g. a sweep's parent) run without changing its status."""
    logger = RunLogger(run_id=run_id, uri=uri)
    logger.log_metrics(metrics)
    for f in files:
        if f.is_dir():
            logger.log_artifacts(f, f"{artifact_path}/{f.name}" if artifact_path else f.name)
        else:
            logger.log_artifact(f, artifact_path)


def record_failed_job(
    experiment: str, uri: str | None, parent_run_id: str | None, tags: Mapping[str, str], error: str
) -> None:
    """A FAILED run for a job that failed before its run could start (e.g. a config error in a sweep)."""
    uri = resolve_uri(uri)
    exp_id = ensure_experiment(experiment, uri)
    all_tags = {**tags, "error": error[:5000]}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client(uri).create_run(exp_id, tags=all_tags)
    client(uri).set_terminated(run.info.run_id, "FAILED")


def find_finished(experiment: str, uri: str | None, config_hash: str) -> str | None:
    """run_id of a FINISHED run of `experiment` with this config hash, if any (for resume)."""
    uri = resolve_uri(uri)
    exp = client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = client(uri).search_runs(
        [exp.experiment_id],
        max_results=1,
        filter_string=f"tags.config_hash = '{config_hash}' and attributes.status = 'FINISHED'",
    )
    return found[0].info.run_id if found else None


def finished_run(experiment: str, uri: str | None, config_hash: str) -> tuple[str, str] | None:
    """(run_id, its output dir tag) of a FINISHED run of `experiment` with this config hash, if any."""
    run_id = find_finished(experiment, uri, config_hash)
    if run_id is None:
        return None
    return run_id, client(resolve_uri(uri)).get_run(run_id).data.tags.get("hydra_output_dir", "")


def download_outputs(run_id: str, uri: str | None, dst: Path) -> None:
    """The run's logged output folder (its artifacts) into `dst`."""
    client(resolve_uri(uri)).download_artifacts(run_id, "", str(dst))
