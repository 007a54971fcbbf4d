"""Build an EnsembleSpec from the validated `net` and `engine` config sections (the config adapter of the engine)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.dynamics.ensemble import EnsembleSpec


def ensemble_spec(net, engine, sigma_w2: Sequence[float], seed: int, **override) -> EnsembleSpec:
    """EnsembleSpec for `net` at the given sigma_w2 values; `override` replaces any field.

    Args:
        net: validated `net` config section (`NetConfig`: activation, width, depth, sigma_b2, xi, weights).
        engine: validated `engine` config section (`EngineConfig`: n_seeds, n_pairs, q0, c0, eps, ...).
        sigma_w2: the weight variances of the sweep (docs/science.md §2).
        seed: base seed of the random streams.
        **override: `EnsembleSpec` fields that replace the configured values.

    Returns:
        The `EnsembleSpec`.
    """
    kw = dict(
        activation=net.activation.value,
        width=net.width,
        depth=net.depth,
        sigma_w2=tuple(sigma_w2),
        sigma_b2=net.sigma_b2,
        xi=net.xi,
        weights=net.weights.value,
        n_seeds=engine.n_seeds,
        n_pairs=engine.n_pairs,
        q0=engine.q0,
        c0=engine.c0,
        eps=engine.eps,
        n_spectrum=engine.n_spectrum,
        seed=seed,
        dtype=engine.dtype.value,
        device=engine.device,
        memory_budget_gb=engine.memory_budget_gb,
    )
    kw.update(override)
    return EnsembleSpec(**kw)


def spec_with_defaults(**kw) -> EnsembleSpec:
    """EnsembleSpec with every value not given taken from the config schema (NetConfig, EngineConfig),
    the defaults' one home; for scripts, benchmarks and tests that call the engine directly.

    Args:
        **kw: `EnsembleSpec` fields; `sigma_w2` (sequence of floats) is required, `seed` defaults to 0.

    Returns:
        The `EnsembleSpec`.
    """
    from pipeline.config.schema import EngineConfig, NetConfig

    return ensemble_spec(NetConfig(), EngineConfig(), tuple(kw.pop("sigma_w2")), kw.pop("seed", 0), **kw)
