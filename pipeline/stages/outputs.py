"""Atomic stage outputs: the whole folder is built aside, then swapped in as one unit.

A crash, an interrupt or a bad input never leaves half-written or mixed old/new files where DVC or a
user would read them, and a re-run never leaves stale files from the previous run.

A stage only ever replaces a folder it owns: one that does not exist, is empty (but for Hydra's and DVC's
files), or carries the stage's marker file (`MARKER`, written into every folder a stage writes); anything
else (a user's folder, the working directory, the home folder, another stage's outputs) is refused before
compute (`check_out_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import hydra.core.utils
import numpy as np
import yaml
from hydra.core.hydra_config import HydraConfig

from pipeline.config.validate import ConfigError
from pipeline.paths import repo_root
from pipeline.stages.lifecycle import STAGING_PREFIX, STATE, recover, signals_deferred
from pipeline.stages.registry import STAGES
from pipeline.stages.tables import round_float

MARKER = ".ginn-stage"  # a stage's output folder: the stage name and a newline (deterministic: committed in git)
RUN_RECORD = "mlflow_run.json"  # {"mlflow_run_id": ...} of the run that wrote the folder (git-ignored, not a DVC out)

# Entries of an output folder that belong to its other owners, not to the stage's writer: carried
# over unchanged into the new folder (unless the writer produced an entry of the same name).
KEEP_NAMES = frozenset(
    {
        ".hydra",  # Hydra: the composed config of the job (hydra.run.dir = out_dir)
        "multirun.yaml",  # Hydra: a sweep dir's config
        ".gitignore",  # DVC: lists the folder's outs for git
        "jobs",  # the sweep dir of a multirun stage inside its merged folder (outputs/mlp_sweep/jobs)
        "mlflow_parent_run.json",  # the sweep's parent run (pipeline.tracking.sweep)
        MARKER,  # which stage owns the folder (carried over when a writer does not name its stage)
    }
)


@dataclass
class StageOutput:
    """What a stage's writer produced: scalar metrics (also metrics.json), curves, a summary line."""

    metrics: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)
    summary: str = ""
    failure: str = ""  # non-empty: outputs are kept and logged, then the run is marked FAILED with this reason


def _kept(entry: Path) -> bool:
    """Hydra's `.hydra/` and `<job>.log`, DVC's `.gitignore`, a sweep's `jobs/` (see KEEP_NAMES)."""
    return entry.name in KEEP_NAMES or (entry.suffix == ".log" and entry.is_file())


# ---- what Hydra wrote into the job's run dir before the task started --------------------------------------
# Hydra creates the run dir, opens `<job>.log` (append) and writes `.hydra/{config,hydra,overrides}.yaml` before
# our task runs, so a refused folder (a user's, the repository root) or a rejected job in an earlier run's folder
# would keep Hydra's writes: a user's `.hydra/config.yaml` overwritten, an earlier job's `.hydra/` describing a
# run whose outputs are not there. `_guard_hydra` remembers what was there just before Hydra wrote (the bytes of
# each file it replaces, the size of the log it appends to); `restore_job_files` puts it back exactly.
#
# Hydra has no public hook between creating the run dir and writing into it, so `_guard_hydra` wraps two private
# functions of `hydra.core.utils` that `run_job` looks up at call time. Checked with hydra-core 1.3.2-1.3.8 (pin
# `hydra-core>=1.3.2,<1.4`); tests/stages/test_outputs.py fails loudly if they are renamed or no longer called.
HYDRA_FILES = frozenset({"config.yaml", "hydra.yaml", "overrides.yaml"})
_PRIOR = STATE.hydra_files  # "dir": the job's run dir; "files": {path: bytes or None}; "log": (path, size or None)


def _remember_log() -> None:
    _PRIOR.clear()
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    log_file = out / f"{hc.job.name}.log"
    size = log_file.stat().st_size if log_file.is_file() else None
    _PRIOR.update({"dir": out, "files": {}, "log": (log_file, size), "hydra_dir": {}})


def _remember_file(path: Path) -> None:
    if _PRIOR.get("dir") != path.parent.parent:  # no configure_log before (configure_logging=False): a new job
        _PRIOR.clear()
        _PRIOR.update({"dir": path.parent.parent, "files": {}, "log": None, "hydra_dir": {}})
    _PRIOR["hydra_dir"].setdefault(path.parent, path.parent.is_dir())
    if path not in _PRIOR["files"]:
        _PRIOR["files"][path] = path.read_bytes() if path.is_file() else None


def _guard_hydra() -> None:
    """Wrap Hydra's `configure_log` and `_save_config` (looked up at call time by `run_job`) to remember what
    they are about to replace. Installed once, when this module is imported (every entry point imports it
    before `hydra.main` runs)."""
    hu = hydra.core.utils
    if getattr(hu._save_config, "_ginn_guard", False):
        return
    save, configure = hu._save_config, hu.configure_log

    def guarded_save(cfg, filename, output_dir):
        _remember_file(Path(output_dir) / filename)
        return save(cfg, filename, output_dir)

    def guarded_configure(*args, **kwargs):
        _remember_log()
        return configure(*args, **kwargs)

    guarded_save._ginn_guard = True
    hu._save_config, hu.configure_log = guarded_save, guarded_configure


_guard_hydra()


def _prior_stage(hydra_dir: Path) -> str | None:
    """The `stage` of the `.hydra/config.yaml` that was there before this job's Hydra replaced it (None if none)."""
    old = _PRIOR.get("files", {}).get(hydra_dir / "config.yaml")
    try:
        found = (yaml.safe_load(old) or {}).get("stage") if old else None
    except (yaml.YAMLError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def prior_hydra_entries(path: Path, stage: str | None = None) -> set[str]:
    """The names of `.hydra` (if it held files before this job's Hydra wrote into it) and `<job>.log` (if it
    existed before): entries of the run dir `path` Hydra did not create for this job. An earlier job of the same
    `stage` (its `.hydra/config.yaml` says that stage: a job killed before its outputs were swapped in, then
    resumed) is not foreign."""
    if not _PRIOR or Path(_PRIOR["dir"]).resolve() != Path(path).resolve():
        return set()
    if stage is not None and _prior_stage(Path(path) / ".hydra") == stage:
        return set()
    names = set()
    if any(existed for existed in _PRIOR["hydra_dir"].values()):
        names.add(".hydra")
    if _PRIOR.get("log") and _PRIOR["log"][1] is not None:
        names.add(_PRIOR["log"][0].name)
    return names


def close_log_handlers(path: Path) -> None:
    """Close the logging file handlers writing to `path` (Hydra's on `<job>.log`)."""
    for h in list(logging.getLogger().handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == Path(path):
            logging.getLogger().removeHandler(h)
            h.close()


def restore_job_files(log_too: bool = True) -> None:
    """Put back what Hydra replaced in the job's run dir: each `.hydra/*.yaml` as it was (or gone if it was not
    there), `.hydra/` gone if Hydra created it; with `log_too`, `<job>.log` cut back to its earlier size (gone
    if Hydra created it). Nothing else is touched. A no-op once the job's outputs were swapped in."""
    if not _PRIOR:
        return
    try:
        for path, old in _PRIOR["files"].items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
        for folder, existed in _PRIOR["hydra_dir"].items():
            if not existed and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if log_too and _PRIOR.get("log"):
            log_file, size = _PRIOR["log"]
            close_log_handlers(log_file)
            if size is None:
                log_file.unlink(missing_ok=True)
            elif log_file.is_file():
                os.truncate(log_file, size)
    except OSError:
        pass
    finally:
        _PRIOR.clear()


def _swap(new: Path, out_dir: Path, tag: str) -> None:
    """Make `new` the folder `out_dir`, carrying kept entries over; on any failure `out_dir` is as before."""
    moved: list[str] = []
    aside = out_dir.parent / f"{tag}-old"
    with signals_deferred():
        try:
            if out_dir.exists():
                for entry in sorted(out_dir.iterdir()):
                    if _kept(entry) and not (new / entry.name).exists():
                        os.rename(entry, new / entry.name)
                        moved.append(entry.name)
                os.rename(out_dir, aside)
            try:
                os.rename(new, out_dir)
            except BaseException:
                if aside.exists():
                    os.rename(aside, out_dir)
                raise
        except BaseException:
            for name in moved:  # put Hydra's/DVC's entries back where they were
                if (new / name).exists():
                    os.rename(new / name, out_dir / name)
            raise
        # still deferred: a signal that arrived during the swap is acted on once the old folder is gone,
        # so it never leaves the `-old` folder behind
        shutil.rmtree(aside, ignore_errors=True)


class ForeignOutputDir(ConfigError):
    """An output folder the stage does not own: replacing it would delete files it did not write."""


def _protected(path: Path) -> str:
    """Why `path` can never be an output folder ('' if it can): the working directory, the repository root,
    $HOME, `/`, or any parent of them (swapping one of them would take everything under it)."""
    places = {"the working directory": Path.cwd(), "the filesystem root": Path("/")}
    try:
        places["the repository root"] = repo_root()
    except RuntimeError:
        pass
    if os.environ.get("HOME"):
        places["$HOME"] = Path(os.environ["HOME"])
    resolved = {what: place.resolve() for what, place in places.items()}
    for what, place in resolved.items():
        if path == place:
            return what
    for what, place in resolved.items():
        if path in place.parents:
            return f"a parent of {what} ({place})"
    return ""


def _ours(folder: Path, stage: str) -> bool:
    """A folder without a marker but holding only what `stage` writes (metrics.json, its DVC outs): an earlier
    output of the stage from before markers existed (outputs/<stage>/ of an older clone)."""
    spec = STAGES.get(stage)
    if spec is None:
        return False
    names = {*spec.outs, "metrics.json", RUN_RECORD}
    entries = [e for e in folder.iterdir() if not _kept(e) and not e.name.startswith(STAGING_PREFIX)]
    return bool(entries) and all(e.name in names for e in entries)


def check_out_dir(out_dir: Path | str, stage: str, key: str = "out_dir") -> None:
    """Refuse (ForeignOutputDir, one line) an output folder `stage` may not replace: the working directory,
    the repository root, $HOME, `/` or a parent of them; a file; a folder holding anything but Hydra's and
    DVC's files that carries no marker of `stage` (another stage's marker, or a user's files)."""
    shown = f"{key}={str(out_dir)!r}" if str(out_dir) in ("", ".") else f"{key}={out_dir}"
    if str(out_dir).startswith("~"):
        raise ForeignOutputDir(
            f"{shown} starts with '~', which is not expanded (it would name a folder called '~'): give the full path"
        )
    path = Path(out_dir).resolve()
    why = _protected(path)
    if why:
        raise ForeignOutputDir(
            f"{shown} is {why}: a stage replaces its whole output folder; choose a new or empty folder"
        )
    if not path.exists():
        return
    if not path.is_dir():
        raise ForeignOutputDir(f"{shown} is a file, not a folder: choose a new or empty folder")
    marker = path / MARKER
    if marker.is_file():
        owner = marker.read_text(errors="replace").strip()
        if owner == stage:
            return
        raise ForeignOutputDir(
            f"{shown} holds the outputs of stage {owner!r}, not {stage!r}: choose a new or empty folder"
        )
    foreign = sorted(e.name for e in path.iterdir() if not _kept(e) and not e.name.startswith(STAGING_PREFIX))
    if _ours(path, stage):
        return
    hydra = path / ".hydra"  # Hydra's only if it holds just Hydra's files and this job's Hydra created them
    if hydra.is_dir() and any(e.name not in HYDRA_FILES for e in hydra.iterdir()):
        foreign.append(".hydra")
    foreign = sorted({*foreign, *prior_hydra_entries(path, stage)})
    if not foreign:
        return
    listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    raise ForeignOutputDir(
        f"{shown} holds files no {stage} run wrote ({listed}) and a stage replaces its whole output folder: "
        f"choose a new or empty folder (a folder a {stage} run wrote carries {MARKER})"
    )


@contextmanager
def staged(out_dir: Path, owner: str | None = None) -> Iterator[Path]:
    """Yield an empty folder next to `out_dir` (same filesystem); on success it replaces `out_dir`.

    `owner` (a stage name): `out_dir` is first checked to be that stage's to replace (`check_out_dir`; raises
    ForeignOutputDir before anything is written) and the new folder gets the stage's marker file. Without an
    owner the folder's marker (if any) is carried over unchanged.

    What is replaced: every entry of `out_dir` the writer owns -- everything except the kept entries
    below. A re-run that writes fewer files leaves no stale ones; on any failure (exception,
    Ctrl-C, SIGTERM) the old `out_dir` is untouched and the staging folder is removed.

    What is kept (moved unchanged into the new folder unless the writer wrote the same name):
    Hydra's `.hydra/`, `multirun.yaml` and `<job>.log` (Hydra's run dir is the output folder and its
    log file stays open: a rename keeps the handle valid), DVC's `.gitignore`, a multirun stage's
    `jobs/` sweep folder and `mlflow_parent_run.json`.

    The swap is three renames (kept entries into the new folder, old folder aside as
    `.staging-<name>-<pid>-<id>-old`, new folder in), then the old folder is deleted, with SIGINT/SIGTERM
    deferred until all of it is done (`signals_deferred`). Not promised: a SIGKILL or power loss between
    the renames leaves `out_dir` missing and the old folder aside; the next `staged()` into the same folder puts it back
    and removes dead processes' staging folders. Renames are atomic on local filesystems, not
    necessarily on network filesystems.
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink():  # a user's link to the real folder: the link stays, the folder it names is replaced
        out_dir = Path(os.path.realpath(out_dir))
    recover(out_dir)
    if owner is not None:
        check_out_dir(out_dir, owner)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{STAGING_PREFIX}{out_dir.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / tag
    try:
        tmp.mkdir()
        yield tmp
        if owner is not None:
            (tmp / MARKER).write_text(f"{owner}\n")
        _swap(tmp, out_dir, tag)
        if _PRIOR and Path(_PRIOR["dir"]).resolve() == out_dir.resolve():
            _PRIOR.clear()  # the job's outputs are in: its Hydra files describe them, nothing to put back
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no inf/NaN); finite floats (NumPy's too) at the
    project's on-disk precision (`tables.round_float`, 10 significant digits), so the file is the same on every
    machine (summation order and SIMD paths change the last digits of a float64)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return round_float(float(obj)) if math.isfinite(obj) else None
    return obj


def write_json(path: Path, data: dict) -> None:
    """Pretty, sorted, JSON-safe, floats at 10 significant digits (see `_clean`)."""
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True) + "\n")


def outputs_digest(folder: Path) -> str:
    """Hash of what a stage wrote into `folder` (relative names and bytes of every file), leaving out the kept
    entries of other owners (Hydra's, DVC's, the marker), the run record and staging folders: the same in the
    staging folder and in the output folder it became. An edited output changes it."""
    folder = Path(folder)
    h = hashlib.sha256()
    top = [
        e for e in folder.iterdir() if not _kept(e) and e.name != RUN_RECORD and not e.name.startswith(STAGING_PREFIX)
    ]
    files = [f for e in top for f in ([e] if not e.is_dir() else sorted(e.rglob("*"))) if f.is_file()]
    for f in sorted(files):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def write_run_record(folder: Path, run_id: str | None) -> None:
    """`<folder>/mlflow_run.json` = {"mlflow_run_id": run_id}: which MLflow run wrote the folder. Kept out of
    metrics.json and every DVC-tracked file (a fresh id per run would make each reproduction differ);
    git-ignored. Write it inside the same `staged` folder as the outputs it describes. (The run itself is tagged
    with `outputs_digest` of the folder, so a resume copies the folder only if its outputs are unedited.)"""
    (Path(folder) / RUN_RECORD).write_text(json.dumps({"mlflow_run_id": run_id}) + "\n")


def read_run_record(folder: Path) -> str | None:
    """The MLflow run id that wrote `folder` (`write_run_record`), or None. Folders written before the record
    existed: the `mlflow_run_id` their metrics.json carried."""
    folder = Path(folder)
    for name in (RUN_RECORD, "metrics.json"):
        try:
            run_id = json.loads((folder / name).read_text()).get("mlflow_run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if run_id:
            return str(run_id)
    return None
