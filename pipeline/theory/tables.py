"""Mean-field results as tidy tables (one row per activation x grid point)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .critical import CROSSING_STATUS, CriticalLine
from .fixed_point import STATUS_NAMES
from .mean_field import MeanFieldGrid


def _status(t) -> list[str]:
    return [STATUS_NAMES[int(s)] for s in t.reshape(-1)]


def grid_table(activation: str, r: MeanFieldGrid) -> pd.DataFrame:
    """theory.csv rows: fixed points, gains, depth scales, lambda_mf and solver status.

    The quantities of docs/science.md §1 (statuses as in §7), flattened from the grid.

    Args:
        activation: activation name, written to every row.
        r: the `MeanFieldGrid` of `mean_field_grid`.

    Returns:
        DataFrame with one row per grid point and columns activation, sigma_w2, sigma_b2, xi, q_star, c_star,
        chi1, a_q, chi_c, depth_scale_q, depth_scale_c, lambda_mf (float64), q_status, c_status (lower-case names),
        quad_status ("ok", or "inaccurate" where the quadrature is not verified at the row's variances to
        `theory.quad.tol`, docs/science.md §7: do not trust that row's values).
    """
    cols = {
        "activation": activation,
        "sigma_w2": r.sigma_w2,
        "sigma_b2": r.sigma_b2,
        "xi": r.xi,
        "q_star": r.q_star,
        "c_star": r.c_star,
        "chi1": r.chi1,
        "a_q": r.a_q,
        "chi_c": r.chi_c,
        "depth_scale_q": r.depth_scale_q,
        "depth_scale_c": r.depth_scale_c,
        "lambda_mf": r.lambda_mf,
    }
    df = pd.DataFrame({k: (v.reshape(-1).numpy() if hasattr(v, "numpy") else v) for k, v in cols.items()})
    df["q_status"] = _status(r.q_status)
    df["c_status"] = _status(r.c_status)
    if r.quad_ok is not None:  # always set by mean_field_grid; absent only for a hand-built grid
        df["quad_status"] = _quad_status(r.quad_ok, len(df))
    return df


def _quad_status(ok, n: int) -> list[str]:
    if ok is None:
        return ["ok"] * n
    return ["ok" if bool(v) else "inaccurate" for v in ok.reshape(-1)]


def critical_table(activation: str, cl: CriticalLine) -> pd.DataFrame:
    """critical_line.csv rows: the order-to-chaos threshold in sigma_w2 per sigma_b2, with q* there.

    The critical line of docs/science.md §1 (edge of chaos, Poole et al. 2016, arXiv:1606.05340).

    Args:
        activation: activation name, written to every row.
        cl: the `CriticalLine` of `critical.chaos_line` (chi_1 = 1, or for ReLU/linear the smaller of the
            chi_1 = 1 and A_q = 1 roots) or of `critical_line`.

    Returns:
        DataFrame with one row per (sigma_b2, xi) and columns activation, sigma_b2, xi (every key the value
        depends on: readers look rows up by all of them), sigma_w2_crit, q_star, q_status (status name), found
        (bool), crossing_status ("crossing", "none", or "jump": the gain jumps across 1 at `sigma_w2_jump`,
        where no point has gain = 1, so sigma_w2_crit is NaN), sigma_w2_jump, excess_gain_below and
        excess_gain_above (gain - 1 at the two ends of the final bisection bracket), quad_status ("ok" or
        "inaccurate", docs/science.md §7), gain (the gain whose root it is: "chi1" or "a_q"). Where found is
        False, q_star is a placeholder (see `CriticalLine`).
    """
    cols = {
        "activation": activation,
        "sigma_b2": cl.sigma_b2.numpy(),
        "xi": None if cl.xi is None else cl.xi.numpy(),
        "sigma_w2_crit": cl.sigma_w2_crit.numpy(),
        "q_star": cl.q_star.numpy(),
        "q_status": _status(cl.q_status),
        "found": cl.found.numpy().astype(bool),
        "crossing_status": None if cl.status is None else [CROSSING_STATUS[int(c)] for c in cl.status],
        "sigma_w2_jump": None if cl.sigma_w2_jump is None else cl.sigma_w2_jump.numpy(),
        "excess_gain_below": None if cl.gain_below is None else cl.gain_below.numpy(),
        "excess_gain_above": None if cl.gain_above is None else cl.gain_above.numpy(),
        "quad_status": None if cl.quad_ok is None else _quad_status(cl.quad_ok, cl.sigma_b2.numel()),
        "gain": None if cl.gain is None else list(cl.gain),
    }
    # every column is set by `critical_line`; a hand-built CriticalLine without the optional fields gets the
    # columns it has
    return pd.DataFrame({k: v for k, v in cols.items() if v is not None})


def finite_or_none(x: float) -> float | None:
    """A JSON-friendly number: float(x) if finite, else None.

    Args:
        x: a number (python or numpy scalar).

    Returns:
        Python float, or None for NaN and +-inf.
    """
    return float(x) if np.isfinite(x) else None
