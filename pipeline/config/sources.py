"""The job's config files composed again, as written: what `registry.check_config_sources` checks.

The stage's schema is left out (`~schema`), so the composed tree holds only the keys a file sets (a preset in
`experiments/<stage>/`, a `--config-dir`/`--config-name` file; the defaults live in the schema) with their
values as written, before OmegaConf converts `5` to true.
"""

from __future__ import annotations

from typing import Any

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf


def job_sources() -> tuple[str, list[str]] | None:
    """(primary config name, command-line overrides) of the running Hydra job; None outside one."""
    if not (HydraConfig.initialized() and GlobalHydra.instance().is_initialized()):
        return None
    hc = HydraConfig.get()
    return str(hc.job.config_name), list(hc.overrides.task)


def parse_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's parsed overrides ([] for a grammar error: Hydra itself reports it before the task runs)."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001
        return []


def override_keys(overrides: list[str]) -> list[str]:
    """The key of each command-line value override (`a.b=1`, `+a.b=1`, `++a.b=1`; not deletions, not `hydra.*`)."""
    keys = []
    for ov in map(str, overrides):
        if "=" in ov and not ov.startswith("~"):
            key = ov.split("=", 1)[0].lstrip("+")
            if not key.startswith("hydra"):
                keys.append(key)
    return keys


def _group_choices(overrides: list[str]) -> list[str]:
    """The overrides that choose a config group option (`experiment=smoke`): they decide which files compose."""
    return [o for o in map(str, overrides) if "=" in o and "." not in o.split("=", 1)[0] and not o.startswith("~")
            and o.split("=", 1)[0].lstrip("+") == "experiment"]  # fmt: skip


def compose_raw(config_name: str, overrides: list[str]) -> dict:
    """The keys the job's config files set, with their values as written, unresolved (composed by the job's
    initialised Hydra, with its `--config-dir`, without the stage schema)."""
    choices = _group_choices(overrides)
    try:
        cfg = compose(config_name, overrides=[*choices, "~schema"])
    except HydraException:  # a `--config-name` file without the schema entry: already untyped
        cfg = compose(config_name, overrides=choices)
    tree = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    tree.pop("hydra", None)
    tree.pop("stage", None)
    return tree


def leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested dict (a list is one leaf)."""
    if isinstance(tree, dict):
        return [kv for k, v in tree.items() for kv in leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, tree)]
