"""Register the stage schema in Hydra's ConfigStore (import once before composing)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from .schema import StageConfig


def register() -> None:
    """Store `stage_schema`; every primary YAML config lists it first in its defaults."""
    ConfigStore.instance().store(name="stage_schema", node=StageConfig)
