"""From raw ensemble measurements to estimates with standard errors, per sigma_w2 (docs/science.md §2–3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .ensemble import EnsembleMeasurement


def mean_se(x: torch.Tensor, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error and count along `dim`, ignoring NaN (flagged networks).

    SE = std(ddof=1) / sqrt(n) over the finite entries (docs/science.md §7); with n = 1 the SE is 0, with
    n = 0 the mean is NaN and the SE 0.

    Args:
        x: float64 tensor of any shape; non-finite entries are excluded.
        dim: axis to reduce.

    Returns:
        (mean, se, n) as numpy arrays of x.shape without `dim` (n an integer count).
    """
    ok = torch.isfinite(x)
    n = ok.sum(dim)
    mean = torch.where(ok, x, torch.zeros_like(x)).sum(dim) / n
    dev = torch.where(ok, x - mean.unsqueeze(dim), torch.zeros_like(x))
    se = torch.sqrt((dev**2).sum(dim) / (n - 1).clamp_min(1) / n.clamp_min(1))
    return mean.numpy(), se.numpy(), n.numpy()


def without_overflowed(x: torch.Tensor, m: EnsembleMeasurement) -> torch.Tensor:
    """x (S, K, ...) with every value of an overflowed network NaN: its layers before the overflow would bias
    the layer averages (docs/science.md §7). A network whose norm vanished keeps its finite layers."""
    bad = (m.overflow_layer >= 0).view(*m.overflow_layer.shape, *([1] * (x.dim() - 2)))
    return torch.where(bad, torch.full_like(x, float("nan")), x)


def summarize(m: EnsembleMeasurement, burn_in: int) -> pd.DataFrame:
    """One row per sigma_w2: q^L, c^L, chi, both Lyapunov estimates (per layer), spectrum, with SEs.

    Exponents and chi are averaged over layers after `burn_in`, then over the inputs of each
    network; mean and standard error are taken over seeds, the independent samples (inputs
    through one network are correlated, so treating them as independent would understate errors).
    Conventions of docs/science.md §7; the quantities are those of §2 and §3. An overflowed network
    enters no column (`without_overflowed`); a vanished one contributes its finite layers.

    Args:
        m: raw measurements of `ensemble.simulate`.
        burn_in: first transition included in the layer averages (transitions burn_in .. L-1); clamped to
            [0, depth - 1].

    Returns:
        DataFrame with K rows and columns sigma_w2; q_L, log_q_L, c_L (layer L); log_q_growth
        (ln q_hat^{l+1} - ln q_hat^l after burn-in, -> ln A_q where q -> 0 or inf, §4); chi, lambda_replica,
        lambda_tangent; each with a `_se` column; n_seeds_used (networks not overflowed with a finite
        lambda_tangent); n_failed_networks (flagged for either cause) = n_overflowed_networks (dropped) +
        n_vanished_networks (kept); and lambda_j, lambda_j_se for j = 1..k when the QR spectrum was measured.
    """
    spec = m.spec
    b = min(max(burn_in, 0), spec.depth - 1)
    per_seed = lambda x: without_overflowed(x, m).nanmean(2).T  # noqa: E731  (S, K, inputs) -> (K, S)
    after_burn_in = lambda x: x[..., b:].nanmean(-1)  # noqa: E731
    rows = {"sigma_w2": np.asarray(spec.sigma_w2)}
    rows["q_L"], rows["q_L_se"], _ = mean_se(per_seed(torch.exp(m.log_q[..., -1])), 1)  # inf beyond float64
    rows["log_q_L"], rows["log_q_L_se"], _ = mean_se(per_seed(m.log_q[..., -1]), 1)
    rows["c_L"], rows["c_L_se"], _ = mean_se(per_seed(m.c[..., -1]), 1)
    growth = m.log_q[..., 1:] - m.log_q[..., :-1]  # per-layer growth of ln q: ln A_q where q -> 0 or inf
    rows["log_q_growth"], rows["log_q_growth_se"], _ = mean_se(per_seed(after_burn_in(growth)), 1)
    for name, x in (("chi", m.chi), ("lambda_replica", m.log_growth_replica), ("lambda_tangent", m.log_growth_tangent)):
        rows[name], rows[f"{name}_se"], n = mean_se(per_seed(after_burn_in(x)), 1)
    rows["n_seeds_used"] = n
    rows["n_failed_networks"] = (m.failed_layer >= 0).sum(0).numpy()
    rows["n_overflowed_networks"] = (m.overflow_layer >= 0).sum(0).numpy()
    rows["n_vanished_networks"] = (m.vanish_layer >= 0).sum(0).numpy()
    if m.spectrum_log_r is not None:
        t = without_overflowed(after_burn_in(m.spectrum_log_r), m)  # (S, K, k)
        mean, se, _ = mean_se(t.permute(1, 2, 0), 2)
        for j in range(mean.shape[1]):
            rows[f"lambda_{j + 1}"] = mean[:, j]
            rows[f"lambda_{j + 1}_se"] = se[:, j]
    return pd.DataFrame(rows)


def layer_curves(m: EnsembleMeasurement) -> pd.DataFrame:
    """Per-layer means over seeds x inputs: q^l, c^l, chi^l and local exponents, one row per (sigma_w2, layer).

    Plain NaN-ignoring means over seeds and inputs (pairs for c), no SE (docs/science.md §7), without
    overflowed networks (as in `summarize`).

    Args:
        m: raw measurements of `ensemble.simulate`.

    Returns:
        DataFrame with K (L + 1) rows and columns sigma_w2, layer (0..L), q (mean of q_hat, not of ln q_hat),
        c, chi, lambda_replica, lambda_tangent; the last three in the row of layer l hold transition
        l-1 -> l (NaN at layer 0).
    """
    spec = m.spec
    K, L = len(spec.sigma_w2), spec.depth
    ok = lambda x: without_overflowed(x, m)  # noqa: E731
    q = ok(torch.exp(m.log_q)).nanmean((0, 2))  # (K, L+1)
    c = ok(m.c).nanmean((0, 2))
    pad = lambda x: torch.cat([torch.full((K, 1), float("nan"), dtype=torch.float64), ok(x).nanmean((0, 2))], 1)  # noqa: E731
    chi, rep, tan = pad(m.chi), pad(m.log_growth_replica), pad(m.log_growth_tangent)
    layers = np.arange(L + 1)
    return pd.DataFrame(
        {
            "sigma_w2": np.repeat(np.asarray(spec.sigma_w2), L + 1),
            "layer": np.tile(layers, K),
            "q": q.reshape(-1).numpy(),
            "c": c.reshape(-1).numpy(),
            "chi": chi.reshape(-1).numpy(),
            "lambda_replica": rep.reshape(-1).numpy(),
            "lambda_tangent": tan.reshape(-1).numpy(),
        }
    )


def zero_crossing(x: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """First upward crossing of y = 0 by linear interpolation, with SE propagated from the two points.

    For the first interval (after sorting by x) with finite y_i < 0 <= y_{i+1}: w = -y_i / (y_{i+1} - y_i),
    x0 = x_i + w (x_{i+1} - x_i), SE = sqrt(((1 - w) se_i)^2 + (w se_{i+1})^2) / |slope| (docs/science.md §7;
    treats the two points as independent).

    Args:
        x: grid, 1-D array (any order).
        y: values at x, 1-D array of the same length.
        se: standard errors of y, 1-D array of the same length.

    Returns:
        (x0, se_x0) as python floats; (nan, nan) when y does not change sign from negative to non-negative
        on the grid.
    """
    order = np.argsort(x)
    x, y, se = np.asarray(x)[order], np.asarray(y)[order], np.asarray(se)[order]
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            w = -y[i] / (y[i + 1] - y[i])
            x0 = x[i] + w * (x[i + 1] - x[i])
            slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
            err = math.sqrt(((1 - w) * se[i]) ** 2 + (w * se[i + 1]) ** 2) / abs(slope)
            return float(x0), float(err)
    return float("nan"), float("nan")
