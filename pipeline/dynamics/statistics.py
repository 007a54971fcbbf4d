"""From raw ensemble measurements to estimates with standard errors, per sigma_w2 (docs/science.md §2–3)."""

from __future__ import annotations

import math
from typing import NamedTuple

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


LAYER_AVERAGED = {  # per-transition quantities averaged over layers burn_in..L-1 (summarize's columns)
    "log_q_growth": lambda m: m.log_q[..., 1:] - m.log_q[..., :-1],  # growth of ln q: ln A_q where q -> 0 or inf
    "chi": lambda m: m.chi,
    "lambda_replica": lambda m: m.log_growth_replica,
    "lambda_tangent": lambda m: m.log_growth_tangent,
}


def network_values(m: EnsembleMeasurement, burn_in: int, name: str) -> np.ndarray:
    """One number per (sigma_w2, network): `name` averaged over transitions burn_in..L-1, then over the inputs.

    The per-network values whose mean and SE over networks are `summarize`'s columns (docs/science.md §7); the
    networks are the independent samples, and with common random numbers column s of every sigma_w2 is the same
    network (same standard-normal weights), so the rows of one column are correlated.

    Args:
        m: raw measurements of `ensemble.simulate`.
        burn_in: first transition of the layer average; clamped to [0, depth - 1].
        name: one of `LAYER_AVERAGED` (log_q_growth, chi, lambda_replica, lambda_tangent).

    Returns:
        float64 array (K, S); NaN for an overflowed network (`without_overflowed`) or one with no finite layer.
    """
    if name not in LAYER_AVERAGED:
        raise ValueError(f"name={name!r}: allowed {', '.join(LAYER_AVERAGED)}")
    b = min(max(burn_in, 0), m.spec.depth - 1)
    x = LAYER_AVERAGED[name](m)[..., b:].nanmean(-1)  # (S, K, inputs)
    return without_overflowed(x, m).nanmean(2).T.numpy()


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
    for name in ("log_q_growth", "chi", "lambda_replica", "lambda_tangent"):
        rows[name], rows[f"{name}_se"], n = mean_se(torch.from_numpy(network_values(m, burn_in, name)), 1)
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
    """First upward crossing of y = 0 by linear interpolation, with SE propagated from two *independent* points.

    For the first interval (after sorting by x) with finite y_i < 0 <= y_{i+1}: w = -y_i / (y_{i+1} - y_i),
    x0 = x_i + w (x_{i+1} - x_i), SE = sqrt(((1 - w) se_i)^2 + (w se_{i+1})^2) / |slope|. The SE holds only for
    independent points: the stages' curves share each network across sigma_w2 (common random numbers) and take
    their crossing and SE from `network_crossing` (docs/science.md §7).

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
    i = _first_upward(x, y)
    if i is None:
        return float("nan"), float("nan")
    w = -y[i] / (y[i + 1] - y[i])
    x0 = x[i] + w * (x[i + 1] - x[i])
    slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    err = math.sqrt(((1 - w) * se[i]) ** 2 + (w * se[i + 1]) ** 2) / abs(slope)
    return float(x0), float(err)


class Crossing(NamedTuple):
    """A measured zero crossing: value, standard error, `status` ("ok" or why there is none) and its `reason`.

    Where status is not "ok", x and se are NaN and `reason` says why in words (for the log line and metrics).
    """

    x: float
    se: float
    status: str
    reason: str

    def text(self, digits: int = 4) -> str:
        """'x +- se', or 'nan (status: reason)' where there is no crossing (for log lines and summaries)."""
        if self.status == "ok":
            return f"{self.x:.{digits}f} +- {self.se:.{digits}f}"
        return f"nan ({self.status}: {self.reason})"


CROSSING_STATUS = ("ok", "too_few_points", "no_sign_change", "no_upward_crossing", "too_few_networks")


def _first_upward(x: np.ndarray, y: np.ndarray) -> int | None:
    """Index i of the first interval (x sorted) with finite y_i < 0 <= y_{i+1}, else None."""
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            return i
    return None


def _no_crossing(x: np.ndarray, y: np.ndarray, what: str) -> Crossing:
    """The Crossing (NaN, NaN, status, reason) of a curve y(x) without an upward zero crossing."""
    ok = np.isfinite(y)
    nan = float("nan")
    if ok.sum() < 2:
        return Crossing(nan, nan, "too_few_points", f"{int(ok.sum())} grid point(s) with a finite {what}: needs >= 2")
    lo, hi = float(x[ok].min()), float(x[ok].max())
    if (y[ok] < 0).all():
        return Crossing(nan, nan, "no_sign_change", f"{what} < 0 at every sigma_w2 in [{lo:g}, {hi:g}]")
    if (y[ok] >= 0).all():
        return Crossing(nan, nan, "no_sign_change", f"{what} >= 0 at every sigma_w2 in [{lo:g}, {hi:g}]")
    why = f"{what} changes sign on [{lo:g}, {hi:g}] only downward or across a missing point"
    return Crossing(nan, nan, "no_upward_crossing", why)


def network_crossing(x: np.ndarray, per_network: np.ndarray, what: str = "lambda", window: float = 0.0) -> Crossing:
    """First upward zero crossing of the mean curve over networks, with a jackknife-over-networks SE.

    Estimator (docs/science.md §7): ybar_k = mean over finite networks of y_ks; i is the first interval with
    ybar_i < 0 <= ybar_i+1 and x2 its linear interpolation, x2 = x_i + w (x_i+1 - x_i), w = -ybar_i/(ybar_i+1 -
    ybar_i) (the crossing `zero_crossing` takes). With `window` > 0 the crossing is the zero of the least-squares
    line through the means at every grid point within `window` of x2 (the bracket always included): on a grid
    refined around the crossing the bracket's two points are close and the slope between them is mostly noise,
    which a line over the refined window averages out (curvature of lambda(sigma_w2) biases it by ~0.1 SE at
    window 0.12). With `window` = 0 (or no other point within it) it is x2.
    Its SE is the delete-one jackknife over networks, SE^2 = (n - 1)/n sum_s (x0_(s) - mean_s x0_(s))^2, with
    x0_(s) the same construction through the means without network s. Every sigma_w2 of one network shares its
    weights (common random numbers), so the means, and the slope between them, are correlated; leaving out whole
    networks carries that (to first order the delta method with the full covariance), where the two-point formula
    of `zero_crossing` treats the points as independent.

    Args:
        x: grid, 1-D array of length K (any order).
        per_network: (K, S) values of each network at each grid point (`network_values`); NaN = not measured.
        what: name of the quantity, for the reason text.
        window: half-width in x of the local line fit around the interpolated crossing (0: the bracket only).

    Returns:
        `Crossing`; (nan, nan, status, reason) when there is no upward crossing on the grid, fewer than 2
        networks are finite at both bracketing points, or the fitted line does not rise.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(per_network, dtype=float).reshape(len(x), -1)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    fin = np.isfinite(y)
    n_k = fin.sum(1)
    mean = mean_se(torch.from_numpy(y), 1)[0]  # bit-identical to summarize's column
    i = _first_upward(x, mean)
    if i is None:
        return _no_crossing(x, mean, what)
    nan = float("nan")
    used = fin[i] & fin[i + 1]  # networks measured at both ends of the bracket
    if used.sum() < 2:
        return Crossing(nan, nan, "too_few_networks",
                        f"{int(used.sum())} network(s) finite at both sigma_w2 = {x[i]:g} and {x[i + 1]:g}: "
                        "needs >= 2 for a standard error")  # fmt: skip
    x2 = x[i] + (-mean[i] / (mean[i + 1] - mean[i])) * (x[i + 1] - x[i])  # as zero_crossing computes it
    near = (np.abs(x - x2) <= window) & (n_k >= 2) & np.isfinite(mean)
    near[[i, i + 1]] = True
    pts = np.flatnonzero(near)
    if len(pts) > 2 and x[pts].max() == x[pts].min():  # tied grid points: the mean jumps at x_i, as for the bracket
        return Crossing(float(x[i]), 0.0, "ok", "")
    members = fin[pts].any(0)
    n = int(members.sum())
    # leave-one-out means at every point used (a network missing at a point leaves that mean unchanged)
    yk = np.where(fin[pts], y[pts], 0.0)
    loo = ((yk.sum(1, keepdims=True) - yk) / (n_k[pts, None] - fin[pts]))[:, members]
    with np.errstate(invalid="ignore", divide="ignore"):
        if len(pts) == 2:  # the bracket: the interpolation line, exactly as zero_crossing
            x0 = x2
            h = x[i + 1] - x[i]
            x_loo = x[i] - loo[0] * h / (loo[1] - loo[0])
        else:
            xs = x[pts] - x[pts].mean()
            sxx = float((xs**2).sum())
            slope = float((xs * mean[pts]).sum()) / sxx
            if not slope > 0:
                return Crossing(nan, nan, "no_upward_crossing",
                                f"the line fitted to {what} over sigma_w2 in [{x[pts].min():g}, {x[pts].max():g}] "
                                "does not rise")  # fmt: skip
            x0 = x[pts].mean() - float(mean[pts].mean()) / slope
            x_loo = x[pts].mean() - loo.mean(0) / ((xs[:, None] * loo).sum(0) / sxx)
    se = math.sqrt((n - 1) / n * float(((x_loo - x_loo.mean()) ** 2).sum()))
    if not np.isfinite(se):
        return Crossing(nan, nan, "too_few_networks", "a leave-one-network-out curve has no slope at the bracket")
    return Crossing(float(x0), se, "ok", "")
