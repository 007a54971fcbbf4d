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
_STORED: dict[str, type] = {}  # stage -> the schema class last stored for it


def register(*stages: str) -> None:
    """Store the named stages' schemas (default: every stage), the `preset` resolver of the defaults lists and
    `repo_root`. Idempotent: a stage's schema is stored again only if the registry now names another class
    (building one costs ~90 ms of OmegaConf work, and a stage's process needs only its own)."""
    cs = ConfigStore.instance()
    for stage in stages or STAGES:
        schema = STAGES[stage].schema
        if _STORED.get(stage) is not schema or f"{stage}.yaml" not in _stored(cs):
            cs.store(group="schema", name=stage, node=schema, package="_global_")
            _STORED[stage] = schema
    if not OmegaConf.has_resolver("preset"):
        OmegaConf.register_new_resolver("preset", lambda choice: NO_PRESET if choice is None else choice)
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(repo_root()))


def _stored(cs: ConfigStore) -> list[str]:
    """Names in the store's `schema` group (none before the first `register`)."""
    try:
        return cs.list("schema")
    except OSError:
        return []
