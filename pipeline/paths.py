"""Where the project lives: repo root, Hydra config dir, default MLflow store and artifact root.

Resolved from $GINN_LAB_ROOT, else the source checkout this package sits in, else the nearest
parent of the working directory holding `conf/` and `dvc.yaml` (for non-editable installs).
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_root(path: Path) -> bool:
    return (path / "conf").is_dir() and (path / "dvc.yaml").is_file()


def repo_root() -> Path:
    """The ginn-lab project directory (raises with a hint when none can be found)."""
    env = os.environ.get("GINN_LAB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if _is_root(here):
        return here
    for cand in [Path.cwd(), *Path.cwd().parents]:
        if _is_root(cand):
            return cand
    raise RuntimeError("cannot find the ginn-lab project (conf/ and dvc.yaml): set GINN_LAB_ROOT")


def conf_dir() -> Path:
    """Hydra's primary config directory."""
    return repo_root() / "conf"


def default_tracking_uri() -> str:
    """sqlite:///<repo root>/mlflow.db, so a bare `mlflow ui` at the repo root sees every run."""
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def artifact_root() -> Path:
    """Local artifact root: <repo root>/mlartifacts."""
    return repo_root() / "mlartifacts"
