"""Every source of a config value through one check: compose the job's config the way Hydra did, untyped
(to see the values as written, before OmegaConf converts `5` to true) and typed (to compare with the stage's
own defaults), so that a value from an experiment preset, a `--config-dir`/`--config-name` file or the command
line meets the same rules (`pipeline.stages.registry.check_config_sources`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from omegaconf import OmegaConf

SCHEMA_NODE = "stage_schema"


def job_sources() -> tuple[str, list[str]] | None:
    """(primary config name, command-line overrides) of the running Hydra job; None outside one."""
    try:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        if not (HydraConfig.initialized() and GlobalHydra.instance().is_initialized()):
            return None
        hc = HydraConfig.get()
        return str(hc.job.config_name), list(hc.overrides.task)
    except Exception:  # noqa: BLE001 - no Hydra context: nothing to compose
        return None


def _container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)


@contextlib.contextmanager
def _untyped_schema() -> Iterator[None]:
    """The schema node replaced by its default values without types, so a composed value stays as written."""
    from hydra.core.config_store import ConfigStore

    from pipeline.config.schema import StageConfig
    from pipeline.config.store import register

    ConfigStore.instance().store(name=SCHEMA_NODE, node=_container(OmegaConf.structured(StageConfig)))
    try:
        yield
    finally:
        register()


def compose_typed(config_name: str, overrides: list[str]) -> tuple[dict, str | None]:
    """The job's config (schema-typed, unresolved) and its experiment choice, composed by the initialised Hydra."""
    from hydra import compose

    cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.experiment")
    return {k: v for k, v in _container(cfg).items() if k != "hydra"}, (None if choice in (None, "null") else choice)


def compose_raw(config_name: str, overrides: list[str]) -> dict:
    """The job's config with every value as written in its file or override (no type conversion), unresolved."""
    from hydra import compose

    with _untyped_schema():
        cfg = compose(config_name, overrides=list(overrides))
    return _container(cfg)


def without_experiment(overrides: list[str]) -> list[str]:
    """`overrides` less any choice of the `experiment` group."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "experiment"]


@functools.cache
def _stage_defaults(stage: str) -> str:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    from pipeline.config.store import register
    from pipeline.paths import conf_dir

    register()
    saved = Singleton._instances.pop(GlobalHydra, None)  # the job's Hydra (with its --config-dir): put back below
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(stage)
    finally:
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved
        else:
            Singleton._instances.pop(GlobalHydra, None)
    return OmegaConf.to_yaml(OmegaConf.create(_container(cfg)))


def stage_defaults(stage: str) -> dict:
    """The stage's own defaults: `conf/<stage>.yaml` of the package composed alone (no preset, no override),
    typed and unresolved; a `--config-dir` of the job cannot shadow it."""
    return _container(OmegaConf.create(_stage_defaults(stage)))


def leaf_diff(value: Any, default: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of `value` that differs from `default` (lists compare whole)."""
    if isinstance(value, dict):
        out = []
        base = default if isinstance(default, dict) else {}
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in base:
                out.append((key, v))
            else:
                out.extend(leaf_diff(v, base[k], key))
        return out
    return [] if value == default else [(prefix, value)]
