"""Build an EnsembleSpec from the validated `net` and `engine` config sections (the config adapter of the engine)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config.schema import EngineConfig, MlpSweepNet
from pipeline.config.specs import spec_from
from pipeline.dynamics.ensemble import EnsembleSpec


def ensemble_spec(net, engine, sigma_w2: Sequence[float], seed: int, **override) -> EnsembleSpec:
    """EnsembleSpec for `net` at the given sigma_w2 values; `override` replaces any field.

    Args:
        net: validated `net` config section of the stage (`MlpSweepNet`, `LyapunovNet`, ...): a field its stage
            does not configure (the lyapunov curve's activation, the gauge scan's width) comes in `override`.
        engine: validated `engine` config section (`EngineConfig`: n_seeds, n_pairs, q0, c0, eps, ...).
        sigma_w2: the weight variances of the sweep (docs/science.md §2).
        seed: base seed of the random streams.
        **override: `EnsembleSpec` fields that replace the configured values.

    Returns:
        The `EnsembleSpec`.
    """
    return spec_from(EnsembleSpec, net, engine, sigma_w2=tuple(sigma_w2), seed=seed, **override)


def spec_with_defaults(**kw) -> EnsembleSpec:
    """EnsembleSpec with every value not given taken from the config schema (MlpSweepNet, EngineConfig),
    the defaults' one home; for scripts, benchmarks and tests that call the engine directly.

    Args:
        **kw: `EnsembleSpec` fields; `sigma_w2` (sequence of floats) is required, `seed` defaults to 0.

    Returns:
        The `EnsembleSpec`.
    """
    return ensemble_spec(MlpSweepNet(), EngineConfig(), tuple(kw.pop("sigma_w2")), kw.pop("seed", 0), **kw)
