"""pipeline.theory.gauge (docs/science.md §4) against ReLU's closed forms written out by hand: chi_1 = sigma_w2 / 2
and A_q = sigma_w2 (pi - 1 + xi) / (2 pi) at any q, thresholds 2 and 2 pi / (pi - 1 + xi), and lambda = 0.5 ln
max(chi_1, A_q) only for homogeneous activations without bias; tanh's xi independence. Float64, tolerances
1e-8 (the bisection's 1e-10) to 1e-12; the effects guarded are O(1e-2) or larger, or NaN against a number."""

import math

import pytest
import torch

from pipeline.activations import ACTIVATIONS
from pipeline.theory.gauge import gauge_theory, relu_length_threshold, thresholds
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.predictions import integrator

XI = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)


BIASES = (0.0, 0.05, 0.3, 1.0)


@pytest.fixture(scope="module")
def relu_thresholds():
    """ReLU thresholds at every XI, {sigma_b2: thresholds} for every sigma_b2 in BIASES, in one vectorized call
    (~12 s: ReLU's affine variance map converges slowly near A_q = 1, and a call costs about that for one bias or
    for all four; the values are identical to separate calls)."""
    sb = torch.tensor([b for b in BIASES for _ in XI], dtype=torch.float64)
    t = thresholds(integrator("relu", 5.0, max(BIASES)), sb, XI.repeat(len(BIASES)))
    n = len(XI)
    return {b: {k: v[i * n : (i + 1) * n] for k, v in t.items()} for i, b in enumerate(BIASES)}


def test_relu_length_threshold_matches_closed_form_for_every_xi(relu_thresholds):
    t = relu_thresholds[0.0]
    assert torch.allclose(t["len_threshold"], relu_length_threshold(XI), atol=1e-8)
    assert abs(float(t["len_threshold"][0]) - 2.934) < 1e-3


def test_relu_chaos_threshold_stays_at_two_up_to_xi_one_then_moves(relu_thresholds):
    t = relu_thresholds[0.0]
    expected = torch.where(XI <= 1, torch.full_like(XI, 2.0), relu_length_threshold(XI))
    assert torch.allclose(t["chaos_threshold"], expected, atol=1e-8)


@pytest.mark.parametrize("sb2", [0.05, 0.3, 1.0])
def test_relu_chaos_threshold_with_a_bias_is_the_bias_free_one(relu_thresholds, sb2):
    """Red-team finding: with a bias the chaos threshold was the transverse root 2 for every xi, while past
    A_q = 1 (sigma_w2 = 2 pi/(pi - 1 + xi), any bias: the ReLU variance map q' = A_q q + sigma_b2 is affine) q
    diverges and the longitudinal mode grows, as without bias (measured at xi = 2, N = 128: 1.57 +- 0.01, bias-free
    closed form 1.517, reported 2.0). Reference: the closed forms min(2, 2 pi/(pi - 1 + xi))."""
    t = relu_thresholds[sb2]
    expected = torch.fmin(torch.full_like(XI, 2.0), 2 * math.pi / (math.pi - 1 + XI))
    assert torch.allclose(t["chaos_threshold"], expected, atol=1e-8), t["chaos_threshold"]
    assert torch.allclose(t["len_threshold"], relu_length_threshold(XI), atol=1e-8)


def test_relu_worked_example_xi2():
    """docs/science.md §4: xi = 2, sigma_w2 = 1.8 predicts 0.085, while 0.5 ln chi_1 gives -0.053."""
    th = gauge_theory(integrator("relu"), torch.tensor([1.8], dtype=torch.float64), 0.0, 2.0)
    assert abs(float(th["lambda_theory"]) - 0.5 * math.log(1.8 * (0.5 + 1 / (2 * math.pi)))) < 1e-12
    assert abs(float(th["lambda_theory"]) - 0.085) < 1e-3
    assert abs(float(th["half_ln_chi1"]) + 0.053) < 1e-3


@pytest.mark.parametrize("sb2", [0.0, 0.05])
def test_tanh_has_no_xi_dependence(sb2):
    sw = torch.linspace(0.5, 3.0, 11, dtype=torch.float64)
    ref = gauge_theory(integrator("tanh"), sw, sb2, 1.0)
    for xi in (0.0, 4.0):
        th = gauge_theory(integrator("tanh"), sw, sb2, xi)
        for k in ("q_star", "chi1", "a_q"):
            assert torch.allclose(th[k], ref[k], atol=1e-12), k


def test_tanh_length_threshold_is_the_loss_of_the_trivial_fixed_point():
    t = thresholds(integrator("tanh"), [0.0, 0.05], 1.0)
    assert abs(float(t["len_threshold"][0]) - 1.0) < 1e-8
    assert torch.isnan(t["len_threshold"][1])  # q* > 0 for every sigma_w2 once sigma_b2 > 0


def test_centered_weights_raise_relu_variance_fixed_point_less_than_iid():
    """xi < 1 removes the mean mode: q' = sigma_w2 [q/2 - (1 - xi) q / (2 pi)] + sigma_b2."""
    g = integrator("relu")
    th0 = gauge_theory(g, torch.tensor([1.5], dtype=torch.float64), 0.1, 0.0)
    th1 = gauge_theory(g, torch.tensor([1.5], dtype=torch.float64), 0.1, 1.0)
    a0 = 1.5 * (0.5 - 1 / (2 * math.pi))
    assert abs(float(th0["q_star"]) - 0.1 / (1 - a0)) < 1e-10
    assert abs(float(th1["q_star"]) - 0.1 / (1 - 0.75)) < 1e-10


# ---------------------------------------------------------------- one home of the order-to-chaos rule (issue 21)


def _brute_force_threshold(act: str, sb2: float, xi: float) -> float:
    """First sigma_w2 of a 0.0005 grid where max(chi_1, A_q) reaches 1 (homogeneous: both modes), interpolated."""
    sw = torch.arange(0.5, 3.0, 0.0005, dtype=torch.float64)
    th = gauge_theory(integrator(act, 3.0, sb2), sw, sb2, xi)
    gain = torch.maximum(th["chi1"], th["a_q"]) - 1
    i = int(torch.nonzero(gain >= 0)[0])
    return float(sw[i - 1] - gain[i - 1] * (sw[i] - sw[i - 1]) / (gain[i] - gain[i - 1]))


def test_theory_threshold_follows_xi_and_bias_rules(relu_thresholds):
    """issue 21: every stage's theory crossing came from chi_1 = 1 alone, 2.0 for ReLU at sigma_b2 = 0, xi = 2;
    the rule (docs/science.md §4) gives 2 pi/(pi + 1) = 1.517 there. References: that closed form, 2 for xi <= 1,
    and a brute-force scan of max(chi_1, A_q) = 1 for ReLU with a bias at xi = 4 (closed form 2 pi/(pi + 3))."""
    from pipeline.theory.critical import chaos_line
    from pipeline.theory.predictions import critical_sigma_w2, theory_threshold

    assert theory_threshold("relu", 0.0, 2.0) == (pytest.approx(2 * math.pi / (math.pi + 1), abs=1e-8), "ok")
    # the chaos line says which root it took (xi <= 1: chi_1, 2.0); non-homogeneous activations keep chi_1 = 1
    cl = chaos_line(integrator("relu"), [0.0, 0.0], [0.5, 2.0])
    assert cl.gain == ("chi1", "a_q")
    assert cl.sigma_w2_crit.tolist() == pytest.approx([2.0, 2 * math.pi / (math.pi + 1)], abs=1e-8)
    value = float(relu_thresholds[0.3]["chaos_threshold"][XI.tolist().index(4.0)])  # sigma_b2 = 0.3, xi = 4
    assert value == pytest.approx(2 * math.pi / (math.pi + 3), abs=1e-8)
    assert value == pytest.approx(_brute_force_threshold("relu", 0.3, 4.0), abs=1e-5)
    assert theory_threshold("tanh", 0.05, 2.0) == (pytest.approx(1.760955, abs=1e-5), "ok")  # tanh: 1.76 at 0.05
    assert critical_sigma_w2("tanh", 0.05, 2.0) == pytest.approx(1.760955, abs=1e-5)  # theory_threshold's value


def test_no_theory_value_is_nan_with_its_status():
    """gelu at sigma_b2 = 0.05: chi_1 jumps across 1 (docs/science.md §1), so there is no threshold: NaN, 'jump';
    and a search range without a root gives NaN, 'no_crossing' (never the nearest formula)."""
    from pipeline.theory.predictions import theory_threshold

    value, status = theory_threshold("gelu", 0.05, 1.0)
    assert math.isnan(value) and status == "jump"
    value, status = theory_threshold("tanh", 0.05, 1.0, sigma_w2_range=(0.1, 1.5))
    assert math.isnan(value) and status == "no_crossing"


# ---------------------------------------------------------------- gauge_theory columns and search range by hand
def test_relu_gauge_theory_columns_by_hand():
    g = GaussianIntegrator(ACTIVATIONS["relu"])
    sw = torch.tensor([1.0, 3.0], dtype=torch.float64)
    xi = 0.5
    out = gauge_theory(g, sw, 0.0, xi)
    assert set(out) == {"q_star", "chi1", "a_q", "half_ln_chi1", "half_ln_a_q", "lambda_theory"}
    for i, s in enumerate(sw.tolist()):
        chi, a_q = s / 2, s * (math.pi - 1 + xi) / (2 * math.pi)  # a_q = 0.42 < 1 at sigma_w2 = 1
        assert abs(float(out["chi1"][i]) - chi) < 1e-12
        assert abs(float(out["a_q"][i]) - a_q) < 1e-12
        assert abs(float(out["half_ln_chi1"][i]) - 0.5 * math.log(chi)) < 1e-12
        assert abs(float(out["half_ln_a_q"][i]) - 0.5 * math.log(a_q)) < 1e-12
        assert abs(float(out["lambda_theory"][i]) - 0.5 * math.log(max(chi, a_q))) < 1e-12


def test_lambda_theory_is_nan_unless_homogeneous_and_unbiased():
    relu, tanh = GaussianIntegrator(ACTIVATIONS["relu"]), GaussianIntegrator(ACTIVATIONS["tanh"])
    assert math.isnan(float(gauge_theory(relu, 1.5, 0.1, 1.0)["lambda_theory"]))  # bias
    assert math.isnan(float(gauge_theory(tanh, 1.5, 0.0, 1.0)["lambda_theory"]))  # not homogeneous
    assert not math.isnan(float(gauge_theory(relu, 1.5, 0.0, 1.0)["lambda_theory"]))


def test_half_ln_a_q_is_clamped_where_a_q_vanishes():
    """xi = 1 - pi makes ReLU's A_q = 0 exactly (up to rounding): 0.5 ln(1e-300) = -345.39, not -inf or 0."""
    out = gauge_theory(GaussianIntegrator(ACTIVATIONS["relu"]), 1.0, 0.0, 1 - math.pi)
    assert abs(float(out["a_q"])) < 1e-15
    assert abs(float(out["half_ln_a_q"]) - 0.5 * math.log(1e-300)) < 1e-9


def test_thresholds_search_only_the_given_sigma_w2_range():
    """ReLU at xi = 0: length threshold 2 pi / (pi - 1) = 2.934 and edge of chaos 2; gelu's trivial fixed point
    loses stability at sigma_w2 = 4 (A_q(0) = sigma_w2 / 4). A range ending at 1.5 holds none of them."""
    relu = thresholds(GaussianIntegrator(ACTIVATIONS["relu"]), 0.0, 0.0, sigma_w2_range=(0.05, 1.5))
    assert torch.isnan(relu["len_threshold"]).all() and torch.isnan(relu["transverse_threshold"]).all()
    gelu = thresholds(GaussianIntegrator(ACTIVATIONS["gelu"]), 0.0, 1.0, sigma_w2_range=(0.05, 1.5))
    assert torch.isnan(gelu["len_threshold"]).all()
    assert set(relu) == {"sigma_b2", "xi", "len_threshold", "transverse_threshold", "chaos_threshold"}
