"""Where the project lives: repo root, Hydra config dir, default MLflow store and artifact root.

Resolved from $GINN_LAB_ROOT, else the ginn-lab checkout the working directory is in (so a console script of
one clone's virtual environment, run inside another clone, reads and writes that other clone: the one you are
in), else the source checkout this package sits in (an editable install run from elsewhere).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT = "ginn-lab"  # pyproject.toml's [project] name: what makes a folder a checkout of this project


def _is_root(path: Path) -> bool:
    return (path / "conf").is_dir() and (path / "dvc.yaml").is_file()


def is_checkout(path: Path) -> bool:
    """A ginn-lab checkout: conf/, dvc.yaml and a pyproject.toml naming the project (not any Hydra+DVC repo)."""
    pyproject = Path(path) / "pyproject.toml"
    if not (_is_root(Path(path)) and pyproject.is_file()):
        return False
    return re.search(rf'^name\s*=\s*"{re.escape(PROJECT)}"', pyproject.read_text(), re.M) is not None


def repo_root() -> Path:
    """The ginn-lab project directory (raises with a hint when none can be found)."""
    env = os.environ.get("GINN_LAB_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for cand in [cwd, *cwd.parents]:
        if is_checkout(cand):
            return cand
    here = Path(__file__).resolve().parent.parent
    if _is_root(here):
        return here
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
