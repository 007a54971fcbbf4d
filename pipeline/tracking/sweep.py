"""Multirun bookkeeping: one parent MLflow run per sweep, closed even when jobs fail.

The parent is opened by a Hydra callback in the launching process and its id written to the sweep
directory, where every job (in any launcher's worker) finds it. Hydra skips `on_multirun_end`
when a job raised, so the stage entry point (`stages.lifecycle.main`) also closes it on its way out
(`lifecycle.close_open_parents`); what this process opened is kept in `lifecycle.STATE`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.validate import ConfigError, check_schema_keys
from pipeline.stages.lifecycle import PLANNED_TAG, STATE, close_open_parents, one_line
from pipeline.stages.outputs import MARKER, STAGING_PREFIX, ForeignOutputDir, check_out_dir

from .provenance import env_named, git_state, raw_overrides, redact_overrides, redact_text, without_credentials
from .run import close_orphans, process_tags
from .store import client, ensure_experiment, prepare_store, resolve_uri, use_sqlite_wal

PARENT_FILE = "mlflow_parent_run.json"


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
        STATE.sweep_dirs.append(Path(config.hydra.sweep.dir))
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
        record = {"run_id": run.info.run_id, "uri": without_credentials(uri)}  # a file in the sweep folder
        (sweep_dir / PARENT_FILE).write_text(json.dumps(record))
        STATE.open_parents.append((uri, run.info.run_id))
        STATE.sweeps[run.info.run_id] = (stage, sweep_dir, time.monotonic())

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Hydra prints `Error executing job with overrides: <job_return.overrides>` for a failed sweep job:
        the overrides may carry credentials (`tracking.uri=http://user:pw@host`), so they are redacted."""
        if job_return.overrides:
            job_return.overrides = [redact_text(str(o)) for o in job_return.overrides]

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # a Ctrl-C/SIGTERM whose exception a callback swallowed (a GC hook) still ends the sweep KILLED
        close_open_parents(interrupted=bool(STATE.received))


def _axes(config: DictConfig) -> list[list[str]] | None:
    """The sweep's axes as Hydra's basic sweeper takes them (`hydra.sweeper.params`, then the command line):
    one list of `key=value` overrides per axis (a single entry for a plain override). None for a sweeper other
    than Hydra's basic one, or what cannot be parsed (left to the jobs to report)."""
    try:
        sweeper = config.hydra.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        params = sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
        lines = [f"{k}={v}" for k, v in params.items()] + raw_overrides(config.hydra.overrides.task)
        parsed = OverridesParser.create().parse_overrides(lines)
        axes = []
        for o in parsed:
            if o.is_sweep_override():
                key = o.get_key_element()
                axes.append([f"{key}={v}" for v in o.sweep_string_iterator()] or [o.input_line])
            else:
                axes.append([o.input_line])
    except Exception:  # noqa: BLE001 - the jobs report it
        return None
    return axes


def sample_jobs(config: DictConfig) -> list[list[str]] | None:
    """Task overrides of jobs that together take every value of every swept axis once (the first job, then
    each further value of one axis with the others at their first): sum, not product, of the axes' lengths.
    None for a sweeper other than Hydra's basic one, or what cannot be parsed (left to the jobs)."""
    axes = _axes(config)
    if axes is None:
        return None
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
    jobs = sample_jobs(config)
    if not jobs or not GlobalHydra.instance().is_initialized():
        return
    loader = GlobalHydra.instance().config_loader()
    for job in jobs:
        try:
            task = loader.load_sweep_config(config, list(job))
            with read_write(task), open_dict(task):
                del task["hydra"]
            check_schema_keys(task)  # an unknown key (`+foo=1,2`) fails every job alike
        except (ConfigError, HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"job [{' '.join(job)}]: {one_line(exc)}") from None


def sweep_owner(stage: str) -> str:
    """What the marker file of a sweep folder of `stage` holds (never a stage name: a single run of the stage
    refuses to replace a sweep folder, whose job folders it would delete)."""
    return f"{stage} sweep"


def _hydra_multirun_yaml(path: Path) -> bool:
    """`path` is a `multirun.yaml` Hydra wrote (a mapping with Hydra's own `hydra.sweep` section)."""
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


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep will launch: the product of the sweep axes' lengths (Hydra's basic sweeper,
    the command line and `hydra.sweeper.params`); None for other sweepers or what cannot be parsed."""
    axes = _axes(config)
    return None if axes is None else math.prod(len(a) for a in axes)
