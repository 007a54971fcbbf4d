"""What a run records about where it came from: flattened config params and git state."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from enum import Enum
from functools import lru_cache
from typing import Any

from pipeline.paths import repo_root

SECRET_HINTS = ("token", "password", "secret", "api_key", "apikey", "credential")


def flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted (key, leaf) pairs of a nested dict/list config; lists stay whole as leaves."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), tree.value if isinstance(tree, Enum) else tree


def config_params(tree: dict) -> dict[str, str]:
    """Params for MLflow: every leaf as text, secrets-looking keys dropped."""
    out = {}
    for k, v in flatten(tree):
        if any(h in k.lower() for h in SECRET_HINTS):
            continue
        if isinstance(v, list):
            v = [x.value if isinstance(x, Enum) else x for x in v]
        out[k] = str(v)[:6000]
    return out


def numeric_axes(tree: dict, sections: tuple[str, ...] = ("net", "seed")) -> dict[str, float]:
    """Numeric leaves of the sweep axes, mirrored as metrics so the UI sorts them as numbers."""
    out = {}
    for k, v in flatten(tree):
        if k.split(".")[0] in sections and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit sha or 'unknown', dirty?) of the project checkout."""
    root = str(repo_root())
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return sha, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def config_hash(tree: dict) -> str:
    """Stable short hash of a resolved config (what a run computes; output dirs and tracking excluded)."""
    keep = {k: v for k, v in tree.items() if k not in ("out_dir", "tracking", "hydra", "resume")}
    blob = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
