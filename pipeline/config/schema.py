"""Schemas of every stage's config: types, defaults and allowed ranges (field metadata).

YAML files in `conf/` set values on top of these dataclasses, so Hydra rejects a wrong type, an
unknown choice or a misspelt key at start-up; `validate.check_ranges` then enforces the ranges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from pipeline.theory.activations import ACTIVATIONS

# One member per registered activation: adding an activation needs no edit here.
ActivationName = Enum("ActivationName", {name: name for name in ACTIVATIONS}, type=str)


class WeightDist(str, Enum):
    """Weight ensemble of a random layer."""

    gaussian = "gaussian"
    orthogonal = "orthogonal"


def rng(default: Any, **bounds: Any) -> Any:
    """A dataclass field with range bounds (gt, ge, lt, le, min_len) checked by `check_ranges`."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: list(default) if isinstance(default, list) else dict(default),
                     metadata=bounds)
    return field(default=default, metadata=bounds)


@dataclass
class NetConfig:
    """One random network: the shared `net` group of every stage."""

    activation: ActivationName = ActivationName.tanh
    sigma_w2: float = rng(1.5, gt=0.0)
    sigma_b2: float = rng(0.05, ge=0.0)
    width: int = rng(256, ge=1)
    depth: int = rng(50, ge=1)
    xi: float = rng(1.0, ge=0.0)  # gauge parameter of the weight ensemble (science.md §4); 1 = i.i.d.
    weights: WeightDist = WeightDist.gaussian


@dataclass
class TrackingConfig:
    """Where and whether runs are recorded in MLflow."""

    enabled: bool = True
    uri: Optional[str] = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db
    experiment: Optional[str] = None  # default: the stage name
    run_name: Optional[str] = None


@dataclass
class GridSpec:
    """An evenly spaced grid start..stop with num points (inclusive)."""

    start: float = 0.0
    stop: float = 1.0
    num: int = rng(11, ge=1)


@dataclass
class QuadConfig:
    """Quadrature and fixed-point solver settings (science.md §1, Numerics)."""

    n_nodes: Optional[int] = rng(None, ge=2)  # None: chosen by the convergence check
    tol: float = rng(1e-12, gt=0.0)  # convergence check tolerance (relative)
    q_max: Optional[float] = rng(None, gt=0.0)  # largest variance the rule must resolve
    fixed_point_tol: float = rng(1e-13, gt=0.0)
    max_iter: int = rng(500, ge=1)


@dataclass
class IterateConfig:
    """Start values (layer-0 pre-activation statistics) for the layer-by-layer iterates."""

    q11: float = rng(1.0, gt=0.0)
    q22: float = rng(1.0, gt=0.0)
    c0: float = rng(0.5, ge=-1.0, le=1.0)


@dataclass
class TheorySettings:
    """What the `theory` stage computes."""

    activations: List[ActivationName] = rng(["tanh", "relu", "erf"], min_len=1)
    sigma_w2: GridSpec = field(default_factory=lambda: GridSpec(0.1, 5.0, 99))
    sigma_b2: GridSpec = field(default_factory=lambda: GridSpec(0.0, 1.0, 41))
    critical_sigma_b2: List[float] = rng([0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0], min_len=1, ge=0.0)
    sigma_w2_search: List[float] = rng([0.05, 10.0], len=2, gt=0.0)  # bracket for the critical-line root finder
    iterate: IterateConfig = field(default_factory=IterateConfig)
    quad: QuadConfig = field(default_factory=QuadConfig)


@dataclass
class TheoryTaskConfig:
    """Primary config of `python -m pipeline.theory`."""

    stage: str = "theory"
    seed: int = 0
    out_dir: str = "${hydra:runtime.output_dir}"
    net: NetConfig = field(default_factory=NetConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    theory: TheorySettings = field(default_factory=TheorySettings)
