"""Register each stage's schema in Hydra's ConfigStore as `schema/<stage>` (import once before composing).

`conf/<stage>.yaml` lists `schema: <stage>` first in its defaults, then picks the stage's own preset file with
`experiment/<stage>@_global_: ${preset:${experiment}}` (a defaults-list interpolation of the `experiment`
group choice; `preset` maps no choice to a name no file has, which `optional` skips).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pipeline.paths import repo_root
from pipeline.stages.registry import STAGES

NO_PRESET = "_none"  # experiment=null: no preset file is named so


def register() -> None:
    """Store every stage's schema, the `preset` resolver of the defaults lists and `repo_root` (idempotent)."""
    for spec in STAGES.values():
        ConfigStore.instance().store(group="schema", name=spec.stage, node=spec.schema, package="_global_")
    if not OmegaConf.has_resolver("preset"):
        OmegaConf.register_new_resolver("preset", lambda choice: NO_PRESET if choice is None else choice)
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(repo_root()))
