"""The trainability depth law of Schoenholz et al. 2017 (arXiv:1611.01232), measured: L_max = a xi(sigma_w2).

From a map of training accuracy over (model, sigma_w2, depth, seed): per sigma_w2 the depth L_max where the
seed-mean accuracy falls to halfway between chance and its shallowest-depth value (interpolated in ln depth),
with a bootstrap SE over seeds; the fit of L_max = a xi on the ordered side, the chaotic side and both; the
sigma_w2 where L_max peaks (the trainability critical point) against the mean-field one (chi = 1).
xi is the model's depth scale (`depth_scales`): xi_c for the MLP (docs/science.md §1), 1/|ln chi_GINN| for the
GINN (§5).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import stats

from pipeline.activations import get_activation
from pipeline.theory.critical import critical_line
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.ginn import chi_ginn, ginn_critical_sigma_w2, ginn_q_star
from pipeline.theory.mean_field import mean_field_grid

SHALLOW_MIN_FRACTION = 0.5  # a sigma_w2 whose shallowest accuracy is not this far from chance to the best: untrainable
KEY = ["model", "sigma_w2", "depth", "seed"]


def depth_scales(model: str, sigma_w2: np.ndarray, activation: str, sigma_b2: float, offset: float) -> pd.DataFrame:
    """Mean-field gain and depth scale per sigma_w2 (both sides of the critical point), float64.

    mlp: chi = chi_1 and depth_scale = xi_c = -1/ln chi_c(c*) (docs/science.md §1; ordered side chi_c = chi_1,
    chaotic side the slope at c* < 1, falling again past the critical point). ginn: chi = chi_GINN(q*) and
    depth_scale = 1/|ln chi_GINN| (§5).

    Args:
        model: "mlp" or "ginn".
        sigma_w2: weight variances, 1-D array.
        activation: the MLP's activation or the GINN's modulus activation.
        sigma_b2: the MLP's bias variance (unused by the GINN: it has no bias).
        offset: modReLU offset (GINN only).

    Returns:
        DataFrame with columns model, sigma_w2, chi, depth_scale (inf at chi = 1).
    """
    sw = torch.as_tensor(np.asarray(sigma_w2, dtype=float), dtype=torch.float64)
    if model == "mlp":
        mf = mean_field_grid(GaussianIntegrator(get_activation(activation)), sw, sigma_b2)
        chi, scale = mf.chi1, mf.depth_scale_c
    else:
        q = ginn_q_star(sw, activation, offset).x
        chi = chi_ginn(torch.where(torch.isfinite(q), q, torch.full_like(q, 1e6)), sw, activation, offset)
        ln_chi = torch.log(chi).abs()
        scale = torch.where(ln_chi > 1e-12, 1 / ln_chi, torch.full_like(ln_chi, float("inf")))
    return pd.DataFrame({"model": model, "sigma_w2": sw.numpy(), "chi": chi.numpy(), "depth_scale": scale.numpy()})


def critical_sigma_w2(model: str, activation: str, sigma_b2: float, offset: float) -> float:
    """Mean-field critical point: chi_1 = 1 at sigma_b2 (MLP, `theory.critical.critical_line`) or chi_GINN = 1."""
    if model == "ginn":
        return ginn_critical_sigma_w2(activation, offset)
    return float(critical_line(GaussianIntegrator(get_activation(activation)), [sigma_b2]).sigma_w2_crit[0])


def crossing_depth(depths: np.ndarray, acc: np.ndarray, half: float) -> float:
    """First depth where acc falls below `half`, linearly interpolated in ln depth (nan if it never does).

    Args:
        depths: ascending depths, shape (D,).
        acc: accuracy at each depth, shape (D,); acc[0] is the shallow value.
        half: the level.

    Returns:
        The crossing depth (python float), nan if acc stays >= half on the grid.
    """
    below = np.nonzero(acc < half)[0]
    if len(below) == 0 or below[0] == 0:
        return math.nan
    i = below[0]
    t = (acc[i - 1] - half) / (acc[i - 1] - acc[i])
    return float(math.exp(math.log(depths[i - 1]) + t * (math.log(depths[i]) - math.log(depths[i - 1]))))


def _l_max(depths, acc, chance, best_shallow) -> tuple[float, str]:
    """(L_max, status) of one seed-mean accuracy curve; statuses: ok, above_grid, untrainable_shallow."""
    if acc[0] - chance < SHALLOW_MIN_FRACTION * (best_shallow - chance):
        return math.nan, "untrainable_shallow"
    value = crossing_depth(depths, acc, chance + 0.5 * (acc[0] - chance))
    return value, ("ok" if math.isfinite(value) else "above_grid")


def l_max_table(acc_map: pd.DataFrame, chance: float, n_boot: int, seed: int) -> pd.DataFrame:
    """L_max per (model, sigma_w2) with a bootstrap SE over seeds.

    The accuracy curve is the mean over seeds per depth; each bootstrap replicate resamples the seeds with
    replacement (numpy Generator seeded by `seed`) and recomputes L_max; the SE is the standard deviation of
    the finite replicates (nan if fewer than two are finite).

    Args:
        acc_map: columns model, sigma_w2, depth, seed, train_accuracy (one row per key, >= 2 depths).
        chance: chance accuracy (1 / number of classes).
        n_boot: bootstrap replicates.
        seed: seed of the bootstrap.

    Returns:
        DataFrame: model, sigma_w2, L_max, L_max_se, shallow_accuracy, status, n_seeds.

    Raises:
        ValueError: if the map has a repeated key or a model with fewer than 2 depths.
    """
    if acc_map.duplicated(KEY).any():
        raise ValueError(f"trainability map: repeated {KEY} rows")
    rng = np.random.default_rng(seed)
    rows = []
    for model, m in acc_map.groupby("model", sort=False):
        cube = m.pivot_table(index=["sigma_w2", "seed"], columns="depth", values="train_accuracy")
        depths = cube.columns.to_numpy(dtype=float)
        if len(depths) < 2:
            raise ValueError(f"ginn.trainability.depths: {len(depths)} depth(s) for {model}; L_max needs >= 2")
        best_shallow = cube.groupby(level="sigma_w2")[cube.columns[0]].mean().max()
        for sw, c in cube.groupby(level="sigma_w2"):
            a = c.to_numpy()  # (seeds, depths)
            value, status = _l_max(depths, a.mean(0), chance, best_shallow)
            boot = [
                _l_max(depths, a[rng.integers(0, len(a), len(a))].mean(0), chance, best_shallow)[0]
                for _ in range(n_boot)
            ]
            boot = np.array([b for b in boot if math.isfinite(b)])
            se = float(boot.std(ddof=1)) if len(boot) >= 2 else math.nan
            rows.append(
                dict(model=model, sigma_w2=sw, L_max=value, L_max_se=se, shallow_accuracy=float(a[:, 0].mean()),
                     status=status, n_seeds=len(a))
            )  # fmt: skip
    return pd.DataFrame(rows)


def fit_law(lmax: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Fit L_max = a xi per model on the ordered side (chi < 1), the chaotic side (chi > 1) and both.

    ln a = mean of ln(L_max / xi) over the cells with status ok and a finite xi; the CI is the t interval of that
    mean (it carries the scatter of the cells about the law, not only the seed noise), mapped back by exp.

    Args:
        lmax: `l_max_table` output joined (by model, sigma_w2) with `depth_scales` (columns chi, depth_scale).
        level: confidence level.

    Returns:
        DataFrame: model, branch (ordered, chaotic, both), a, a_lo, a_hi, n_cells, status (ok, too_few_cells).
    """
    d = lmax[(lmax.status == "ok") & np.isfinite(lmax.depth_scale) & (lmax.depth_scale > 0)]
    rows = []
    for model in lmax.model.unique():
        m = d[d.model == model]
        for branch, sel in (("ordered", m.chi < 1), ("chaotic", m.chi > 1), ("both", m.chi > 0)):
            r = np.log(m[sel].L_max / m[sel].depth_scale).to_numpy()
            row = dict(model=model, branch=branch, a=math.nan, a_lo=math.nan, a_hi=math.nan, n_cells=len(r))
            if len(r) >= 2:
                half = stats.t.ppf(0.5 + level / 2, len(r) - 1) * r.std(ddof=1) / math.sqrt(len(r))
                row.update(a=math.exp(r.mean()), a_lo=math.exp(r.mean() - half), a_hi=math.exp(r.mean() + half))
            rows.append({**row, "status": "ok" if len(r) >= 2 else "too_few_cells"})
    return pd.DataFrame(rows)


def peak_sigma_w2(acc_map: pd.DataFrame, chance: float, n_boot: int, seed: int) -> pd.DataFrame:
    """The sigma_w2 of the deepest trainable networks per model (the trainability critical point), with an SE.

    Per curve the sigma_w2 values of maximal L_max (above_grid counts as deeper than any crossing) and their
    mean; SE = bootstrap over seeds (as `l_max_table`) and the grid step / sqrt(12), in quadrature.

    Returns:
        DataFrame: model, sigma_w2_peak, sigma_w2_peak_se.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for model, m in acc_map.groupby("model", sort=False):
        cube = m.pivot_table(index=["sigma_w2", "seed"], columns="depth", values="train_accuracy")
        depths = cube.columns.to_numpy(dtype=float)
        sws = np.array(sorted(cube.index.get_level_values("sigma_w2").unique()))
        best = cube.groupby(level="sigma_w2")[cube.columns[0]].mean().max()
        per = [cube.xs(sw, level="sigma_w2").to_numpy() for sw in sws]

        def peak(curves):
            l = np.array([_depth_rank(depths, c, chance, best) for c in curves])
            return float(sws[l == l.max()].mean()) if l.max() > 0 else math.nan

        value = peak([a.mean(0) for a in per])
        boot = [peak([a[rng.integers(0, len(a), len(a))].mean(0) for a in per]) for _ in range(n_boot)]
        grid = float(np.median(np.diff(sws))) / math.sqrt(12) if len(sws) > 1 else math.nan
        boot = np.array(boot)[np.isfinite(boot)]
        se = math.hypot(float(np.std(boot, ddof=1)), grid) if len(boot) >= 2 else math.nan
        rows.append(dict(model=model, sigma_w2_peak=value, sigma_w2_peak_se=se))
    return pd.DataFrame(rows)


def _depth_rank(depths, acc, chance, best) -> float:
    value, status = _l_max(depths, acc, chance, best)
    return {"ok": value, "above_grid": math.inf, "untrainable_shallow": 0.0}[status]
