"""Theory values next to finite-width measurements: per sigma_w2, and per (sigma_w2, layer)."""

from __future__ import annotations

import functools

import pandas as pd
import torch

from pipeline.activations import get_activation

from .critical import SIGMA_W2_SEARCH, THRESHOLD_OK, chaos_line, threshold_status
from .gaussian import GaussianIntegrator
from .mean_field import as_t, mean_field_grid
from .propagation import layer_iterates


def integrator(activation: str, sigma_w2_max: float = 5.0, sigma_b2_max: float = 1.0) -> GaussianIntegrator:
    """Quadrature for an activation, sized to the variances a grid can reach.

    q_max = sigma_w2_max sup phi^2 + sigma_b2_max for bounded activations, else 20 (docs/science.md §7).

    Args:
        activation: activation name known to `pipeline.activations.get_activation`.
        sigma_w2_max: largest weight variance of the grid.
        sigma_b2_max: largest bias variance of the grid.

    Returns:
        A `GaussianIntegrator` (float64) with its node count fixed by the convergence check.
    """
    act = get_activation(activation)
    q_max = sigma_w2_max * act.sup_phi2 + sigma_b2_max if act.sup_phi2 else 20.0
    return GaussianIntegrator(act, q_max=q_max)


def predictions(
    activation: str, sigma_w2, sigma_b2: float, depth: int, q0: float = 1.0, c0: float = 0.5, xi: float = 1.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sigma_w2 table, per-layer iterates) of the mean-field theory for a finite-width run.

    Per sigma_w2: q^L and c^L after `depth` layers from (q0, c0), q*, c*, chi1 at q*, and
    lambda_mf = 0.5 ln chi1 (docs/science.md §1). Both tables carry their `sigma_w2` key (and
    `layer`): callers join them to measurements by key, never by position, in any grid order.
    The iterates and q*, c* use `xi`; lambda_mf stays 0.5 ln chi_1 for any xi (see the Note in
    docs/science.md §4: for ReLU/linear without bias and xi > 1 the right prediction is `gauge_theory`).

    Args:
        activation: activation name known to `pipeline.activations.get_activation`.
        sigma_w2: weight variances, float or 1-D array-like (flattened); float64.
        sigma_b2: bias variance, python float.
        depth: number of layers L.
        q0: variance of the layer-0 pre-activations of both inputs.
        c0: correlation of the two layer-0 inputs.
        xi: gauge parameter of the weight ensemble.

    Returns:
        (table, iterates): `table` has one row per sigma_w2 and columns sigma_w2, q_L_theory, c_L_theory,
        q_star, c_star, chi1, lambda_mf (float64); `iterates` is `layer_iterates`' frame with
        (depth + 1) rows per sigma_w2.
    """
    sw = tuple(as_t(sigma_w2).reshape(-1).tolist())
    key = (float(sigma_b2), int(depth), float(q0), float(c0), float(xi))
    table, it = _predictions(get_activation(activation), sw, *key)
    return table.copy(), it.copy()


@functools.lru_cache(maxsize=16)
def _predictions(
    act, sigma_w2: tuple[float, ...], sigma_b2: float, depth: int, q0: float, c0: float, xi: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`predictions`, computed once per process and key: a multirun's widths share it (Hydra's basic launcher
    runs the jobs in one process) wherever their grids agree, e.g. gelu, whose gain jumps across 1, so no job
    refines its grid: 10 of the default sweep's 12 gelu jobs (~10 s of theory each) reuse it. A fresh
    integrator per key keeps the numbers independent of what ran before. Keyed by the `Activation` object."""
    sw = torch.tensor(sigma_w2, dtype=torch.float64)
    g = integrator(act.name, float(sw.max()), sigma_b2)
    it = layer_iterates(g, sw, sigma_b2, depth, q0, q0, c0, xi)
    grid = mean_field_grid(g, sw, sigma_b2, xi)
    per_point = pd.DataFrame(
        {
            "sigma_w2": sw.numpy(),
            "q_star": grid.q_star.numpy(),
            "c_star": grid.c_star.numpy(),
            "chi1": grid.chi1.numpy(),
            "lambda_mf": grid.lambda_mf.numpy(),
        }
    )
    last = it.loc[it.layer == depth, ["sigma_w2", "q11", "c"]].rename(columns={"q11": "q_L_theory", "c": "c_L_theory"})
    table = last.merge(per_point, on="sigma_w2", validate="one_to_one")
    return table, it


def theory_threshold(
    activation: str, sigma_b2: float, xi: float = 1.0, sigma_w2_range: tuple[float, float] = SIGMA_W2_SEARCH
) -> tuple[float, str]:
    """(order-to-chaos threshold in sigma_w2, status) at (sigma_b2, xi): the theory value of every stage's crossing.

    `critical.chaos_line`, the one home of the rule (docs/science.md §1, §4): chi_1(q*) = 1 (Poole et al. 2016,
    arXiv:1606.05340), for ReLU/linear the smaller of that root and the length root A_q = 1 (ReLU, sigma_b2 = 0,
    xi = 2: 2 pi / (pi + 1) = 1.517, not 2).

    Args:
        activation: activation name known to `pipeline.activations.get_activation`.
        sigma_b2: bias variance, python float.
        xi: gauge parameter, python float.
        sigma_w2_range: (lo, hi) bracket searched (the theory stage passes `theory.sigma_w2_search`).

    Returns:
        (value, status): status "ok", or "no_crossing" / "jump" / "inaccurate" (`critical.threshold_status`), in
        which case value is NaN.
    """
    act = get_activation(activation)
    return _threshold(act, float(sigma_b2), float(xi), tuple(float(v) for v in sigma_w2_range))


@functools.lru_cache(maxsize=512)
def _threshold(act, sigma_b2: float, xi: float, sigma_w2_range: tuple[float, float]) -> tuple[float, str]:
    """`theory_threshold`, computed once per process and key: a multirun's jobs share (activation, sigma_b2, xi),
    and for ReLU the root search costs ~10 s (the affine variance map past A_q = 1 runs the solver to max_iter).
    Keyed by the `Activation` object itself, so a re-registered name is a new key."""
    cl = chaos_line(integrator(act.name), [sigma_b2], xi, sigma_w2_range)
    status = threshold_status(cl)[0]
    return (float(cl.sigma_w2_crit[0]) if status == THRESHOLD_OK else float("nan")), status


def critical_sigma_w2(
    activation: str, sigma_b2: float, xi: float = 1.0, sigma_w2_range: tuple[float, float] = SIGMA_W2_SEARCH
) -> float:
    """The value of `theory_threshold` (NaN where its status is not "ok"); see there (docs/science.md §1, §4)."""
    return theory_threshold(activation, sigma_b2, xi, sigma_w2_range)[0]
