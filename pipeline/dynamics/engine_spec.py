"""Build an EnsembleSpec from the validated `net` and `engine` config sections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.dynamics.ensemble import EnsembleSpec


def grid(spec) -> tuple[float, ...]:
    """The points of a GridSpec config as a tuple of floats."""
    return tuple(float(x) for x in np.linspace(spec.start, spec.stop, spec.num))


def ensemble_spec(net, engine, sigma_w2: Sequence[float], seed: int, **override) -> EnsembleSpec:
    """EnsembleSpec for `net` at the given sigma_w2 values; `override` replaces any field."""
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
