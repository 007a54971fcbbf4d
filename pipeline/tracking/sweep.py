"""Multirun bookkeeping: one parent MLflow run per sweep, closed even when jobs fail.

The parent is opened by a Hydra callback in the launching process and its id written to the sweep
directory, where every job (in any launcher's worker) finds it. Hydra skips `on_multirun_end`
when a job raised, so the stage entry point also calls `close_open_parents()` on its way out.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline.config.validate import ConfigError

from .provenance import env_named, git_state, raw_overrides, redact_overrides, redact_text
from .run import _process_alive, close_orphans, process_tags
from .store import client, ensure_experiment, prepare_store, resolve_uri, use_sqlite_wal

PARENT_FILE = "mlflow_parent_run.json"
log = logging.getLogger(__name__)
_OPEN: list[tuple[str, str]] = []  # (uri, run_id) of parents opened by this process
SWEEP_DIRS: list[Path] = []  # sweep dirs started by this process (staging clean-up at exit)


class SweepTracking(Callback):
    """Hydra callback: open the sweep's parent run at start, close it at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the sweep folder is the stage's to write (`check_sweep_dir`), mark it, then open the parent
        run; if any of it fails the sweep stops here with one line and exit 2 (Hydra would only warn about a
        callback's exception and run every job without a parent). Hydra writes nothing before this."""
        try:
            check_jobs(config)
            check_sweep_dir(Path(config.hydra.sweep.dir), str(config.get("stage", "stage")))
            self._open_parent(config)  # a store fault stops the sweep here: nothing written yet
            claim_sweep_dir(Path(config.hydra.sweep.dir), str(config.get("stage", "stage")))
        except ConfigError as exc:  # a foreign sweep folder, a secret name: before any run or experiment exists
            print(f"error: sweep not started: {redact_text(str(exc))}", file=sys.stderr)
            raise SystemExit(2) from None
        except Exception as exc:  # noqa: BLE001 - any failure to open the parent fails the sweep
            text = str(exc).strip().splitlines()
            msg = redact_text(text[0] if text else type(exc).__name__)
            print(f"error: sweep not started, its parent run could not be created: {msg}", file=sys.stderr)
            raise SystemExit(2) from None  # BaseException: not swallowed by Hydra's callback wrapper

    def _open_parent(self, config: DictConfig) -> None:
        SWEEP_DIRS.append(Path(config.hydra.sweep.dir))
        tracking = config.get("tracking")
        if tracking is None or not tracking.get("enabled", True):
            return
        env_named(OmegaConf.to_container(config, resolve=False))  # no secret as the experiment or run name
        stage = str(config.get("stage", "stage"))
        use_sqlite_wal(bool(tracking.get("sqlite_wal", True)))
        uri = resolve_uri(tracking.get("uri"))
        prepare_store(uri)
        exp_id = ensure_experiment(tracking.get("experiment") or stage, uri)
        close_orphans(tracking.get("experiment") or stage, uri)  # runs left RUNNING by a SIGKILLed sweep
        sweep_dir = Path(config.hydra.sweep.dir)
        sha, dirty = git_state()
        run = client(
            uri
        ).create_run(
            exp_id,
            run_name=f"{stage} sweep {sweep_dir.name}",  # renamed with the job count when the sweep closes
            tags={
                "stage": stage,
                "sweep": "parent",
                "hydra_output_dir": str(sweep_dir.resolve()),
                "git_commit": sha,
                "git_dirty": str(dirty),
                "overrides": redact_overrides(config.hydra.overrides.task)[:5000],
                **process_tags(),
            },
        )
        planned = planned_jobs(config)
        if planned is not None:  # the parent's name counts the started jobs against it (interrupted sweeps)
            client(uri).set_tag(run.info.run_id, PLANNED_TAG, str(planned))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(json.dumps({"run_id": run.info.run_id, "uri": uri}))
        _OPEN.append((uri, run.info.run_id))
        _SWEEP_INFO[run.info.run_id] = (stage, sweep_dir, time.monotonic())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from pipeline.stages.runner import RECEIVED

        # a Ctrl-C/SIGTERM whose exception a callback swallowed (a GC hook) still ends the sweep KILLED
        close_open_parents(interrupted=bool(RECEIVED))


def sample_jobs(config: DictConfig) -> list[list[str]] | None:
    """Task overrides of jobs that together take every value of every swept axis once (the first job, then
    each further value of one axis with the others at their first): sum, not product, of the axes' lengths.
    None for a sweeper other than Hydra's basic one, or what cannot be parsed (left to the jobs)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        sweeper = config.hydra.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        params = sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
        lines = [f"{k}={v}" for k, v in params.items()] + raw_overrides(config.hydra.overrides.task)
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # noqa: BLE001 - the jobs report it
        return None
    axes = []
    for o in parsed:
        if o.is_sweep_override():
            key = o.get_key_element()
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()] or [o.input_line])
        else:
            axes.append([o.input_line])
    first = [a[0] for a in axes]
    jobs = [first]
    for i, axis in enumerate(axes):
        jobs += [first[:i] + [v] + first[i + 1 :] for v in axis[1:]]
    return jobs


def check_jobs(config: DictConfig) -> None:
    """Compose, before the sweep starts, a job for every value of every swept axis (`sample_jobs`) as Hydra
    will: a value that cannot be composed at all (`net.width=16,abc`: not an integer; an unknown config group
    option; a key the schema does not have) stops the sweep with one line naming the job, before any folder,
    parent run or job exists. A value that composes but fails the stage's checks (`net.sigma_w2=1,-1,2`) is
    left to its job: the sweep runs the others and records it as a FAILED child (README, guarantee 1)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    from pipeline.config.validate import check_schema_keys

    jobs = sample_jobs(config)
    if not jobs or not GlobalHydra.instance().is_initialized():
        return
    from pipeline.stages.hydra_app import _one_line

    loader = GlobalHydra.instance().config_loader()
    for job in jobs:
        try:
            task = loader.load_sweep_config(config, list(job))
            with read_write(task), open_dict(task):
                del task["hydra"]
            check_schema_keys(task)  # an unknown key (`+foo=1,2`) fails every job alike
        except (ConfigError, HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"job [{' '.join(job)}]: {_one_line(exc)}") from None


def sweep_owner(stage: str) -> str:
    """What the marker file of a sweep folder of `stage` holds (never a stage name: a single run of the stage
    refuses to replace a sweep folder, whose job folders it would delete)."""
    return f"{stage} sweep"


def _hydra_multirun_yaml(path: Path) -> bool:
    """`path` is a `multirun.yaml` Hydra wrote (a mapping with Hydra's own `hydra.sweep` section)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(errors="replace"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and isinstance(data.get("hydra"), dict) and "sweep" in data["hydra"]


def _our_parent_record(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(data) == {"run_id", "uri"}


def check_sweep_dir(sweep_dir: Path, stage: str) -> None:
    """Refuse (ForeignOutputDir, one line) a sweep folder `stage` may not write into, with the rule of
    `outputs.check_out_dir` for run folders: never the working directory, the repository root, $HOME, `/` or
    a parent of them, nor a file. A folder marked as this stage's sweep folder is accepted; an unmarked one
    (a sweep from before markers) only if it holds nothing but job folders the stage may replace, Hydra's
    own `multirun.yaml` and the parent-run record: a user's file there (even one named `multirun.yaml`, which
    Hydra would overwrite) is refused."""
    from pipeline.stages.outputs import MARKER, STAGING_PREFIX, ForeignOutputDir, check_out_dir

    key = "hydra.sweep.dir"
    shown = f"{key}={str(sweep_dir)!r}" if str(sweep_dir) in ("", ".") else f"{key}={sweep_dir}"
    try:
        check_out_dir(sweep_dir, sweep_owner(stage), key=key)  # the protected places, a file, another marker
    except ForeignOutputDir as exc:
        path = Path(sweep_dir).expanduser().resolve()
        if not path.is_dir() or (path / MARKER).exists() or "holds files no" not in str(exc):
            raise
    path = Path(sweep_dir).expanduser().resolve()
    if not path.is_dir() or (path / MARKER).is_file():
        return
    foreign = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(STAGING_PREFIX):
            continue
        if entry.name == "multirun.yaml" and entry.is_file() and _hydra_multirun_yaml(entry):
            continue
        if entry.name == PARENT_FILE and entry.is_file() and _our_parent_record(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            try:
                check_out_dir(entry, stage, key=key)
                continue
            except ForeignOutputDir:
                pass
        foreign.append(entry.name)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ForeignOutputDir(
            f"{shown} holds files no {stage} sweep wrote ({listed}): choose a new or empty folder "
            f"(a folder a {stage} sweep wrote carries {MARKER})"
        )


def claim_sweep_dir(sweep_dir: Path, stage: str) -> None:
    """`check_sweep_dir`, then create the folder with the marker of a `stage` sweep (before any job runs)."""
    from pipeline.stages.outputs import MARKER

    check_sweep_dir(sweep_dir, stage)
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    marker = sweep_dir / MARKER
    if not marker.is_file():
        marker.write_text(sweep_owner(stage) + "\n")


def parent_run_id() -> str | None:
    """The parent run id of the current multirun job, or None outside a tracked multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    path = Path(HydraConfig.get().sweep.dir) / PARENT_FILE
    return json.loads(path.read_text())["run_id"] if path.exists() else None


_SWEEP_INFO: dict[str, tuple] = {}  # parent run id -> (stage, sweep dir, start time)
PLANNED_TAG = "planned_jobs"  # the number of jobs the sweep was launched with (Hydra's basic sweeper)


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep will launch: the product of the sweep overrides' lengths (Hydra's basic sweeper,
    the command line and `hydra.sweeper.params`); None for other sweepers or what cannot be parsed."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        sweeper = config.hydra.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        overrides = raw_overrides(config.hydra.overrides.task)
        params = sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
        overrides = [f"{k}={v}" for k, v in params.items()] + overrides
        parsed = OverridesParser.create().parse_overrides(overrides)
        return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # noqa: BLE001 - a name is not worth failing a sweep for
        return None


def parent_name(stage: str, started: int, planned: int | None, when: str = "") -> str:
    """`<stage> <n> jobs <time>`; `<stage> <started> of <planned> jobs <time>` when fewer jobs started than
    planned (an interrupted sweep), never a count that reads as the whole sweep."""
    count = f"{started} of {planned}" if planned is not None and started != planned else f"{started}"
    return f"{stage} {count} jobs {when}".strip()


SKIPPED_TAG = "resumed_from"  # set by the runner on a job skipped by resume=true


def _describe_parent(c, run_id: str, stage: str, children, sweep_dir, planned: int | None = None) -> None:
    """The parent says what the sweep was: its name with the job count, the swept axes as params (lists of the
    values the children took) and headline metrics (median/min/max of each child metric over the jobs)."""
    import statistics

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

    from mlflow.entities import Metric, Param

    params = [Param(f"swept.{k}", ",".join(order(v))[:6000]) for k, v in sorted(swept.items())]
    params += [Param(k, v) for k, v in sorted(constant.items())]
    now = int(time.time() * 1000)
    metrics = []
    finished = [ch for ch in children if ch.info.status == "FINISHED"]
    keys = sorted({k for ch in finished for k in ch.data.metrics if not k.startswith(("children_", "net.", "engine."))})
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


def _next_steps(stage: str, sweep_dir, run_id: str, uri: str) -> str:
    """The last line of a sweep: where it is and what to run next."""
    steps = [f"python -m pipeline.compare --experiment {stage} --parent {run_id} --x <swept param> --y <metric>"]
    if stage == "mlp_sweep":
        steps.insert(0, f"python -m pipeline.collect mlp_sweep --jobs {sweep_dir}")
    return f"sweep folder: {sweep_dir} | next: " + "  ;  ".join(steps)


def close_open_parents(interrupted: bool = False, failed: bool = False) -> None:
    """Close every parent opened here: FAILED if any child failed; KILLED if the sweep was interrupted
    (Ctrl-C/SIGTERM, even before any job started); FAILED if the sweep itself failed (`failed`: e.g. the
    launcher raised, a Ray cluster that cannot be reached); KILLED if a child was killed; else FINISHED."""
    while _OPEN:
        uri, run_id = _OPEN.pop()
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
        stage, sweep_dir, started = _SWEEP_INFO.pop(run_id, (parent.data.tags.get("stage", "stage"), None, None))
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
            print(_next_steps(stage, sweep_dir, run_id, uri), file=sys.stderr)
        log.info("sweep parent %s closed: %s", run_id, counts)


def _close_dead_children(c, experiment_id: str, run_id: str, wait: float = 5.0):
    """Children of `run_id`; those still RUNNING whose worker process is gone (a launcher's worker
    killed on Ctrl-C/SIGTERM before it could close its run) are closed KILLED with a reason. A worker
    still alive gets `wait` seconds to close its own run."""
    import os
    import time

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
            if pid is not None and pid != os.getpid() and _process_alive(pid, tags.get("ginn.pid_start", "")):
                waiting = True
                continue
            c.set_tag(ch.info.run_id, "killed_reason", "interrupted: the sweep stopped before this job closed its run")
            c.set_terminated(ch.info.run_id, "KILLED")
        if not waiting or time.time() > deadline:
            return c.search_runs(
                [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=50000
            )
        time.sleep(0.2)
