"""Atomic stage outputs: everything is written to a staging folder, then moved into place.

A crash or a bad input never leaves half-written files where DVC or a user would read them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh staging folder inside out_dir; on success move its entries into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".staging-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for entry in sorted(tmp.iterdir()):
            dest = out_dir / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(entry, dest)
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
