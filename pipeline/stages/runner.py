"""Shared life cycle of every stage: validate, seed, track, compute, write atomically, log, close.

A stage supplies `compute(cfg) -> result` and `write(result, folder) -> StageOutput`; this module
does the bookkeeping so that a bad input exits early with one line, a failure leaves a FAILED run
and no partial outputs, and `metrics.json` names the MLflow run that produced it.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline.config.validate import ConfigError, to_validated
from pipeline.stages.outputs import staged, write_json
from pipeline.stages.registry import check_stage, get_stage
from pipeline.tracking.provenance import config_hash, config_params, git_state, numeric_axes
from pipeline.tracking.run import Interrupted, find_finished, record_failed_job, stage_run
from pipeline.tracking.store import check_reachable, resolve_uri, use_sqlite_wal
from pipeline.tracking.sweep import parent_run_id

log = logging.getLogger("ginn")


@dataclass
class StageOutput:
    """What a stage's writer produced: scalar metrics (also metrics.json), curves, a summary line."""

    metrics: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)
    summary: str = ""
    failure: str = ""  # non-empty: outputs are kept and logged, then the run is marked FAILED with this reason


class NumericalError(RuntimeError):
    """A stage produced non-finite results it cannot recover from (the reason names what diverged)."""


def seed_everything(seed: int) -> None:
    """Same config and seed -> same numbers (also resets state a reused worker process carries)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _flat_numeric(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_numeric(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def _raise_interrupt(signum, frame):
    raise Interrupted(f"signal {signum}")


def install_sigterm_handler() -> None:
    """SIGTERM (cluster schedulers) -> Interrupted, so runs in flight end KILLED, not RUNNING."""
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _raise_interrupt)


def run_stage(
    cfg: DictConfig,
    stage: str,
    compute: Callable[[Any], Any] | None = None,
    write: Callable[[Any, Path], StageOutput] | None = None,
) -> float | None:
    """Run one stage job end to end (see module docstring); compute/write default to the registry's."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    overrides = " ".join(HydraConfig.get().overrides.task) if HydraConfig.initialized() else ""
    try:
        obj = to_validated(cfg)
        if obj.stage != stage:
            raise ConfigError(f"stage={obj.stage!r}: this entry point runs {stage!r} (leave `stage` unset)")
        check_stage(obj)
        use_sqlite_wal(obj.tracking.sqlite_wal)
        if obj.tracking.enabled:
            try:
                check_reachable(resolve_uri(obj.tracking.uri))
            except RuntimeError as exc:
                raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        if multirun:  # the sweep goes on; this job is recorded as a FAILED child run
            tracking = cfg.get("tracking") or {}
            if tracking.get("enabled", True):
                try:
                    record_failed_job(
                        tracking.get("experiment") or stage,
                        tracking.get("uri"),
                        parent_run_id(),
                        {"stage": stage, "overrides": overrides[:5000]},
                        f"ConfigError: {exc}",
                    )
                except Exception as rec:  # noqa: BLE001 - the store itself may be the problem
                    log.error("could not record the failed job in MLflow: %s", rec)
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    seed_everything(obj.seed)
    install_sigterm_handler()
    out_dir = Path(obj.out_dir)
    if compute is None or write is None:
        compute, write = get_stage(stage).functions()
    container = OmegaConf.to_container(OmegaConf.structured(obj), enum_to_str=True)  # validated, migrated values
    sections = get_stage(stage).sections
    logged = {k: v for k, v in container.items() if v is not None and (not isinstance(v, dict) or k in sections)}
    sha, dirty = git_state()
    chash = config_hash({"stage": stage, **logged})
    tags = {
        "stage": stage,
        "git_commit": sha,
        "git_dirty": str(dirty),
        "hydra_output_dir": str(out_dir.resolve()),
        "config_hash": chash,
        "overrides": overrides[:5000],
    }
    if obj.resume and obj.tracking.enabled:
        done = find_finished(obj.tracking.experiment or stage, obj.tracking.uri, chash)
        if done:
            log.info("%s: resume=true and an identical config already FINISHED in run %s: skipped", stage, done)
            return None
    with stage_run(
        obj.tracking.experiment or stage,
        obj.tracking.enabled,
        obj.tracking.uri,
        obj.tracking.run_name,
        parent_run_id(),
        tags,
    ) as run:
        run.log_params(config_params(logged), metrics=numeric_axes(logged))
        result = compute(obj)
        with staged(out_dir) as folder:
            out = write(result, folder)
            write_json(folder / "metrics.json", {"mlflow_run_id": run.run_id, **out.metrics})
        run.log_curves(out.curves, scalars=_flat_numeric(out.metrics))  # one batch for both
        run.log_artifacts(out_dir)  # tables, figures, metrics.json, the log and .hydra/ in one call
        if out.failure:
            raise NumericalError(out.failure)
    log.info("%s done -> %s%s", stage, out_dir, f" | {out.summary}" if out.summary else "")
    return None
