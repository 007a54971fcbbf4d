"""One stage job: validate, seed, track, compute, write atomically, log, close (step 3 of `lifecycle`).

A stage supplies `compute(cfg) -> result` and `write(result, folder) -> StageOutput`; this module
does the bookkeeping so that a bad input exits early with one line, a failure leaves a FAILED run
and no partial outputs, and `metrics.json` names the MLflow run that produced it.
"""

from __future__ import annotations

import logging
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from pipeline.config.errors import ConfigError
from pipeline.stages.lifecycle import (
    STATE,
    NumericalError,
    in_multirun,
    install_interrupt_handlers,
    interrupted,
    signals_deferred,
)
from pipeline.stages.outputs import (
    MARKER,
    StageOutput,
    check_out_dir,
    outputs_digest,
    prior_hydra_entries,
    read_run_record,
    restore_job_files,
    staged,
    write_json,
    write_run_record,
)
from pipeline.stages.registry import get_stage, logged_params, validate_stage
from pipeline.stages.stage_inputs import input_files
from pipeline.tracking.provenance import (
    SecretName,
    code_version,
    config_hash,
    config_params,
    env_keys,
    env_named,
    files_digest,
    git_state,
    numeric_axes,
    path_tags,
    raw_overrides,
    redact_files,
    redact_overrides,
    redact_text,
)
from pipeline.tracking.run import (
    close_orphans,
    download_outputs,
    finished_run,
    record_failed_job,
    stage_run,
)
from pipeline.tracking.store import (
    StoreError,
    client,
    prepare_store,
    resolve_uri,
    run_link,
    sqlite_path,
    use_sqlite_wal,
)
from pipeline.tracking.sweep import parent_run_id

log = logging.getLogger("ginn")
DIGEST_TAG = "outputs_digest"  # the run's tag: hash of the outputs it wrote (`outputs.outputs_digest`)
__all__ = ["NumericalError", "StageOutput", "run_stage", "resume_key", "seed_everything", "validate_config"]


class _StoreFault(ConfigError):
    """The tracking store cannot be used: reported in one line, never retried or recorded in that store."""


def seed_everything(seed: int) -> None:
    """Same config and seed -> same numbers (also resets state a reused worker process carries)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def status_tags(d: dict, prefix: str = "") -> dict[str, str]:
    """The `*_status` / `*_reason` strings of a stage's metrics (why a headline is NaN), flattened: MLflow tags,
    so the UI shows the reason beside the missing number."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(status_tags(v, f"{prefix}{k}."))
        elif isinstance(v, str) and k.endswith(("_status", "_reason")):
            out[f"{prefix}{k}"] = v[:5000]
    return out


def _flat_numeric(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_numeric(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def validate_config(cfg: DictConfig, stage: str, overrides: list[str] = ()) -> Any:
    """Every check a stage's config gets before compute (`registry.validate_stage`: the stage's schema, ranges,
    cross-field checks, every source): the validated object, or a one-line ConfigError naming the key."""
    return validate_stage(cfg, stage, list(overrides))


def _remove_hydra_only_dir() -> None:
    """A rejected job leaves nothing behind: what Hydra wrote into the job's run dir before the task started
    (`.hydra/*.yaml`, `<job>.log`) is put back as it was (`restore_job_files`: an earlier job's `.hydra/` keeps
    describing the outputs beside it, a user's files are theirs again); the run dir goes if that leaves it
    empty."""
    if not HydraConfig.initialized():
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    restore_job_files()
    try:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    except OSError:
        pass


def _check_store_outside(obj: Any) -> None:
    """Refuse (one line, before compute) a file-based MLflow store inside the output folder: the stage replaces
    its whole output folder, so the swap would have to delete the store."""
    if not obj.tracking.enabled:
        return
    uri = resolve_uri(obj.tracking.uri)
    db = sqlite_path(uri)
    if db is None and uri.startswith("file:"):
        db = Path(urlparse(uri).path)
    elif db is None and "://" not in uri:
        db = Path(uri)
    if db is None:
        return
    out, store = Path(obj.out_dir).resolve(), db.resolve()
    if store == out or out in store.parents:
        raise ConfigError(
            f"tracking.uri={uri} is inside out_dir={obj.out_dir}: a stage replaces its whole output folder; "
            "keep the MLflow store outside it"
        )


def resume_key(stage: str, obj: Any, logged: dict) -> tuple[str, str]:
    """(config hash, inputs digest): what `resume=true` matches. The hash covers the config the stage reads,
    the code version and the contents of every file it reads (`stage_inputs.input_files`): a FINISHED run is
    reused only if all of them are unchanged (an edited critical_line.csv is a new job)."""
    inputs_digest = files_digest(input_files(stage, obj))
    return config_hash({"stage": stage, **logged, "input_files": inputs_digest}), inputs_digest


def _reuse_outputs(run_id: str, src: Path | None, out_dir: Path, uri: str | None, stage: str) -> None:
    """A job skipped by resume still gets its outputs in this run's folder, whatever sweep dir the resume
    runs in: copied from the finished run's folder if it still holds that run's outputs, else downloaded
    from its artifacts. Hydra's files of the current job are kept (see `staged`)."""
    if src is not None and src.resolve() == out_dir.resolve():
        return

    def owned_by_run(folder: Path) -> bool:
        return read_run_record(folder) == run_id

    def unedited(folder: Path) -> bool:  # the outputs the run wrote, byte for byte (the digest it was tagged with)
        try:
            recorded = client(resolve_uri(uri)).get_run(run_id).data.tags.get(DIGEST_TAG)
        except Exception:  # noqa: BLE001 - no store answer: do not trust the folder
            return False
        return bool(recorded) and outputs_digest(folder) == recorded

    with staged(out_dir, owner=stage) as folder:
        if src is not None and owned_by_run(src) and unedited(src):
            for entry in src.iterdir():
                if entry.name.startswith(".staging-") or entry.name == ".hydra" or entry.suffix == ".log":
                    continue
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, folder / entry.name)
        else:
            try:
                download_outputs(run_id, uri, folder)
            except Exception as exc:  # noqa: BLE001 - any failure: say exactly what to do instead
                raise ConfigError(
                    f"resume=true: run {run_id} has this config but its outputs are neither in {src} nor in its "
                    f"artifacts ({type(exc).__name__}); re-run without resume=true"
                ) from None
            for name in (".hydra",):
                shutil.rmtree(folder / name, ignore_errors=True)
            for log_file in folder.glob("*.log"):
                log_file.unlink()
        if not owned_by_run(folder):
            raise ConfigError(f"resume=true: the outputs of run {run_id} are incomplete (no matching mlflow_run.json)")


def run_stage(
    cfg: DictConfig,
    stage: str,
    compute: Callable[[Any], Any] | None = None,
    write: Callable[[Any, Path], StageOutput] | None = None,
) -> float | None:
    """Run one stage job end to end (see module docstring); compute/write default to the registry's."""
    multirun = in_multirun()
    if multirun and STATE.received:  # a launcher's reused worker after Ctrl-C/SIGTERM: start no new job (and run)
        _remove_hydra_only_dir()
        raise interrupted(STATE.received[0])
    task_overrides = raw_overrides(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    overrides = redact_overrides(task_overrides)  # the `overrides` tag: secrets never reach MLflow
    try:
        obj = validate_config(cfg, stage, task_overrides)
        check_out_dir(obj.out_dir, stage)  # a folder the stage may replace, before compute and before any run
        _check_store_outside(obj)
        if obj.tracking.enabled:
            env_named(OmegaConf.to_container(cfg, resolve=False))  # no secret as an experiment or run name
        use_sqlite_wal(obj.tracking.sqlite_wal)
        if obj.tracking.enabled:
            try:
                prepare_store(resolve_uri(obj.tracking.uri))
            except StoreError as exc:
                raise _StoreFault(str(exc)) from None
    except ConfigError as exc:
        _remove_hydra_only_dir()
        if multirun:  # the sweep goes on; this job is recorded as a FAILED child run
            tracking = cfg.get("tracking") or {}
            if tracking.get("enabled", True) and not isinstance(exc, (_StoreFault, SecretName)):
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
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(2)
    try:
        return _run_validated(cfg, obj, stage, compute, write, overrides)
    except BaseException:
        out = Path(obj.out_dir)
        if (out / MARKER).is_file() or prior_hydra_entries(out):  # an earlier run's outputs stay, so does its
            restore_job_files(log_too=False)  # .hydra/ (the log keeps this job's lines: why it failed)
        raise


def _run_validated(cfg: DictConfig, obj: Any, stage: str, compute, write, overrides: str) -> float | None:
    """`run_stage` after validation: seed, track, compute, write the outputs atomically, log them."""
    seed_everything(obj.seed)
    install_interrupt_handlers()
    out_dir = Path(obj.out_dir)
    redact_files(out_dir)  # Hydra's saved .hydra/*.yaml: on disk and as artifacts, without secrets
    if compute is None or write is None:
        compute, write = get_stage(stage).functions()
    spec = get_stage(stage)
    logged = logged_params(obj)  # the stage's schema holds only the keys it reads
    sha, dirty = git_state()
    chash, inputs_digest = resume_key(stage, obj, logged)
    tags = {
        "stage": stage,
        "git_commit": sha,
        "git_dirty": str(dirty),
        "hydra_output_dir": str(out_dir.resolve()),
        "config_hash": chash,
        "inputs_digest": inputs_digest,
        "code_version": code_version(),
        "overrides": overrides[:5000],
    }
    if obj.resume and obj.tracking.enabled:
        close_orphans(obj.tracking.experiment or stage, obj.tracking.uri)  # runs a SIGKILL left RUNNING
        done = finished_run(obj.tracking.experiment or stage, obj.tracking.uri, chash)
        if done:
            _reuse_outputs(done[0], Path(done[1]) if done[1] else None, out_dir, obj.tracking.uri, stage)
            log.info("%s: resume=true and an identical config already FINISHED in run %s: skipped", stage, done[0])
            return None
    started = time.monotonic()
    from_env = env_keys(OmegaConf.to_container(cfg, resolve=False))
    run_name = obj.tracking.run_name or spec.run_name(obj)
    if not obj.tracking.run_name and from_env - {"tracking.uri"}:  # the name shows config values: withheld
        run_name = f"{stage} (values from the environment)"
    with stage_run(
        obj.tracking.experiment or stage,
        obj.tracking.enabled,
        obj.tracking.uri,
        run_name,
        parent_run_id(),
        {**tags, **path_tags(logged, from_env)},  # folders are tags, not params
        guard=signals_deferred,  # a SIGTERM while the run is being created still ends it KILLED
    ) as run:
        axes = {k: v for k, v in numeric_axes(logged).items() if k not in from_env}
        run.log_params(config_params(logged, from_env), metrics=axes)
        result = compute(obj)
        with staged(out_dir, owner=stage) as folder:
            out = write(result, folder)
            write_json(folder / "metrics.json", out.metrics)  # no run id: DVC-tracked, the same on every repro
            digest = outputs_digest(folder)  # tagged on the run: a resume copies only unedited outputs
            write_run_record(folder, run.run_id)
        run.log_curves(out.curves, scalars=_flat_numeric(out.metrics))  # one batch for both
        run.set_tags({**status_tags(out.metrics), DIGEST_TAG: digest})
        run.log_artifacts(out_dir)  # tables, figures, metrics.json, the log and .hydra/ in one call
        if out.failure:
            raise NumericalError(out.failure)
    link = run_link(obj.tracking.uri, run.run_id, obj.tracking.experiment or stage) if obj.tracking.enabled else ""
    log.info("%s done in %.1f s -> %s%s%s", stage, time.monotonic() - started, out_dir,
             f" | {out.summary}" if out.summary else "", f" | {link}" if link else "")  # fmt: skip
    return None
