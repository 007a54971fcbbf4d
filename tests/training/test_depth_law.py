"""The measured depth law (pipeline.training.depth_law) against planted laws and closed forms."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.plots.trainability import verdict
from pipeline.training import depth_law as law
from tests.config.test_schema import rejected

CHANCE = 0.1


def test_crossing_is_exact_for_accuracy_linear_in_log_depth():
    depths = np.array([4.0, 16.0, 64.0, 256.0, 1024.0])
    acc = 0.9 - 0.1 * np.log(depths / 4)  # falls to 0.5 (halfway from 0.9 to chance 0.1) at 4 e^4
    assert law.crossing_depth(depths, acc, 0.5) == pytest.approx(4 * math.e**4, rel=1e-12)
    assert math.isnan(law.crossing_depth(depths, np.full(5, 0.9), 0.5))  # never falls: above the grid


def _planted_map(a: float, scales: pd.DataFrame, depths: np.ndarray, seeds=(0, 1)) -> pd.DataFrame:
    """Accuracy = chance + 0.8 sigmoid(-(ln L - ln(a xi)) / 0.05): falls halfway exactly at L = a xi."""
    rows = []
    for r in scales.itertuples():
        for d in depths:
            x = (math.log(d) - math.log(a * r.depth_scale)) / 0.05
            acc = CHANCE + 0.8 / (1 + math.exp(min(x, 700)))
            rows += [dict(model=r.model, sigma_w2=r.sigma_w2, depth=d, seed=s, train_accuracy=acc) for s in seeds]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model", ["mlp", "ginn"])
def test_a_planted_law_is_recovered_on_both_sides_and_its_peak_at_chi_one(model):
    sw = np.linspace(0.5, 4.0, 15)
    scales = law.depth_scales(model, sw, "tanh", 0.05, -0.1)
    depths = np.geomspace(2, 2000, 60)
    acc = _planted_map(4.0, scales, depths)
    lmax = law.l_max_table(acc, CHANCE, 20, 0).merge(scales, on=["model", "sigma_w2"], validate="one_to_one")
    fit = law.fit_law(lmax).set_index("branch")
    inside = lmax.status == "ok"
    assert (inside & (lmax.chi < 1)).sum() >= 2 and (inside & (lmax.chi > 1)).sum() >= 2  # both sides in the fit
    for branch in ("ordered", "chaotic", "both"):
        assert fit.a[branch] == pytest.approx(4.0, rel=0.01), fit
        assert fit.a_lo[branch] <= 4.0 * 1.01 and fit.a_hi[branch] >= 4.0 / 1.01
    assert (lmax.L_max_se[inside] < 1e-9).all()  # identical seeds: no bootstrap spread
    peak = law.peak_sigma_w2(acc, CHANCE, 20, 0).iloc[0]
    crit = law.critical_sigma_w2(model, "tanh", 0.05, -0.1)
    assert abs(peak.sigma_w2_peak - crit) <= 0.25 + 1e-9  # the grid step
    assert "within" in verdict(fit.reset_index().assign(model=model, **peak[["sigma_w2_peak", "sigma_w2_peak_se"]],
                                                          sigma_w2_critical_theory=crit))  # fmt: skip


def test_depth_scales_closed_forms_and_the_chaotic_branch():
    # GINN with identity modulus: chi_GINN = sigma_w2, so the scale is 1/|ln sigma_w2| exactly (docs/science.md §5)
    g = law.depth_scales("ginn", np.array([0.5, 2.0, 3.0]), "identity", 0.0, -0.1)
    np.testing.assert_allclose(g.depth_scale, 1 / np.abs(np.log([0.5, 2.0, 3.0])), rtol=1e-9)
    # MLP tanh: ordered side c* = 1, so xi_c = -1/ln chi_1; chaotic side falls again past the critical point
    m = law.depth_scales("mlp", np.linspace(1.0, 4.0, 31), "tanh", 0.05, 0.0)
    ordered = m[m.chi < 1]
    np.testing.assert_allclose(ordered.depth_scale, -1 / np.log(ordered.chi), rtol=1e-6)
    chaotic = m[m.chi > 1].depth_scale.to_numpy()
    assert len(chaotic) > 5 and np.all(np.isfinite(chaotic)) and np.all(np.diff(chaotic) < 0)


def test_a_fit_with_too_few_cells_says_so_and_a_repeated_key_is_refused():
    lmax = pd.DataFrame(dict(model="mlp", sigma_w2=[1.0, 2.0], L_max=[10.0, np.nan], L_max_se=0.0,
                             status=["ok", "above_grid"], chi=[0.8, 1.1], depth_scale=[4.0, 10.0]))  # fmt: skip
    fit = law.fit_law(lmax).set_index("branch")
    assert fit.status["both"] == "too_few_cells" and math.isnan(fit.a["both"])
    acc = pd.DataFrame(dict(model="mlp", sigma_w2=1.0, depth=[4, 4], seed=0, train_accuracy=0.5))
    with pytest.raises(ValueError, match="repeated"):
        law.l_max_table(acc, CHANCE, 20, 0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("ginn.trainability.depths=[10]", "ginn.trainability.depths"),
        ("ginn.trainability.sigma_w2=[1.0,2.0]", "ginn.trainability.sigma_w2"),
        ("ginn.trainability.n_seeds=1", "ginn.trainability.n_seeds"),
        ("ginn.trainability.optimizer=langevin", "ginn.trainability.optimizer"),
    ],
)
def test_a_map_that_cannot_give_the_law_is_rejected_naming_the_field(override, key):
    assert key in rejected("ginn_train", override)
