"""Atomic stage outputs: the whole folder is built aside, then swapped in as one unit.

A crash, an interrupt or a bad input never leaves half-written or mixed old/new files where DVC or a
user would read them, and a re-run never leaves stale files from the previous run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGING_PREFIX = ".staging-"

# Entries of an output folder that belong to its other owners, not to the stage's writer: carried
# over unchanged into the new folder (unless the writer produced an entry of the same name).
KEEP_NAMES = frozenset(
    {
        ".hydra",  # Hydra: the composed config of the job (hydra.run.dir = out_dir)
        "multirun.yaml",  # Hydra: a sweep dir's config
        ".gitignore",  # DVC: lists the folder's outs for git
        "jobs",  # the sweep dir of a multirun stage inside its merged folder (outputs/mlp_sweep/jobs)
        "mlflow_parent_run.json",  # the sweep's parent run (pipeline.tracking.sweep)
    }
)


def _kept(entry: Path) -> bool:
    """Hydra's `.hydra/` and `<job>.log`, DVC's `.gitignore`, a sweep's `jobs/` (see KEEP_NAMES)."""
    return entry.name in KEEP_NAMES or (entry.suffix == ".log" and entry.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out_dir: Path) -> None:
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
        if _pid_alive(pid) and pid != os.getpid():
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
            _recover(p.parent / parts[0])


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving during the swap are delivered right after it (never half-way)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):  # not POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """Yield an empty folder next to `out_dir` (same filesystem); on success it replaces `out_dir`.

    What is replaced: every entry of `out_dir` the writer owns -- everything except the kept entries
    below. A re-run that writes fewer files leaves no stale ones; on any failure (exception,
    Ctrl-C, SIGTERM) the old `out_dir` is untouched and the staging folder is removed.

    What is kept (moved unchanged into the new folder unless the writer wrote the same name):
    Hydra's `.hydra/`, `multirun.yaml` and `<job>.log` (Hydra's run dir is the output folder and its
    log file stays open: a rename keeps the handle valid), DVC's `.gitignore`, a multirun stage's
    `jobs/` sweep folder and `mlflow_parent_run.json`.

    The swap is three renames (kept entries into the new folder, old folder aside as
    `.staging-<name>-<pid>-<id>-old`, new folder in) with SIGINT/SIGTERM deferred until it is done,
    then the old folder is deleted. Not promised: a SIGKILL or power loss between the renames leaves
    `out_dir` missing and the old folder aside; the next `staged()` into the same folder puts it back
    and removes dead processes' staging folders. Renames are atomic on local filesystems, not
    necessarily on network filesystems.
    """
    out_dir = Path(out_dir)
    _recover(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{STAGING_PREFIX}{out_dir.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / tag
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, out_dir, tag)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no inf/NaN)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: dict) -> None:
    """Pretty, sorted, JSON-safe."""
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True) + "\n")
