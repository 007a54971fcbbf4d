"""Register every stage schema in Hydra's ConfigStore (import once before composing)."""
from __future__ import annotations

from hydra.core.config_store import ConfigStore

from .schema import LyapunovTaskConfig, MlpSweepTaskConfig, TheoryTaskConfig

SCHEMAS = {
    "theory": TheoryTaskConfig,
    "mlp_sweep": MlpSweepTaskConfig,
    "lyapunov": LyapunovTaskConfig,
}


def register() -> None:
    """Store `<stage>_schema` for each stage; primary YAML configs list it first in their defaults."""
    cs = ConfigStore.instance()
    for stage, schema in SCHEMAS.items():
        cs.store(name=f"{stage}_schema", node=schema)
