"""Gauge-parameter theory (docs/science.md §4) against its closed forms."""

import math

import pytest
import torch

from pipeline.theory.gauge import gauge_theory, relu_length_threshold, thresholds
from pipeline.theory.predictions import integrator

XI = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)


def test_relu_length_threshold_matches_closed_form_for_every_xi():
    t = thresholds(integrator("relu"), 0.0, XI)
    assert torch.allclose(t["len_threshold"], relu_length_threshold(XI), atol=1e-8)
    assert abs(float(t["len_threshold"][0]) - 2.934) < 1e-3


def test_relu_chaos_threshold_stays_at_two_up_to_xi_one_then_moves():
    t = thresholds(integrator("relu"), 0.0, XI)
    expected = torch.where(XI <= 1, torch.full_like(XI, 2.0), relu_length_threshold(XI))
    assert torch.allclose(t["chaos_threshold"], expected, atol=1e-8)


@pytest.mark.parametrize(
    "sb2", [pytest.param(0.05, marks=pytest.mark.slow), 0.3, pytest.param(1.0, marks=pytest.mark.slow)]
)  # ~4 s each
def test_relu_chaos_threshold_with_a_bias_is_the_bias_free_one(sb2):
    """Red-team finding: with a bias the chaos threshold was the transverse root 2 for every xi, while past
    A_q = 1 (sigma_w2 = 2 pi/(pi - 1 + xi), any bias: the ReLU variance map q' = A_q q + sigma_b2 is affine) q
    diverges and the longitudinal mode grows, as without bias (measured at xi = 2, N = 128: 1.57 +- 0.01, bias-free
    closed form 1.517, reported 2.0). Reference: the closed forms min(2, 2 pi/(pi - 1 + xi))."""
    t = thresholds(integrator("relu", 5.0, sb2), sb2, XI)
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


def test_theory_threshold_follows_xi_and_bias_rules():
    """issue 21: every stage's theory crossing came from chi_1 = 1 alone, 2.0 for ReLU at sigma_b2 = 0, xi = 2;
    the rule (docs/science.md §4) gives 2 pi/(pi + 1) = 1.517 there. References: that closed form, 2 for xi <= 1,
    and a brute-force scan of max(chi_1, A_q) = 1 for ReLU with a bias at xi = 4 (closed form 2 pi/(pi + 3))."""
    from pipeline.theory.critical import chaos_line
    from pipeline.theory.predictions import critical_sigma_w2, theory_threshold

    assert theory_threshold("relu", 0.0, 2.0) == (pytest.approx(2 * math.pi / (math.pi + 1), abs=1e-8), "ok")
    assert critical_sigma_w2("relu", 0.0, 2.0) == pytest.approx(1.5170939860, abs=1e-8)
    assert theory_threshold("relu", 0.0, 0.5) == (pytest.approx(2.0, abs=1e-8), "ok")
    value, status = theory_threshold("relu", 0.3, 4.0)
    assert status == "ok" and value == pytest.approx(2 * math.pi / (math.pi + 3), abs=1e-8)
    assert value == pytest.approx(_brute_force_threshold("relu", 0.3, 4.0), abs=1e-5)
    # the chaos line says which root it took; non-homogeneous activations keep chi_1 = 1 (tanh: 1.76 at 0.05)
    assert chaos_line(integrator("relu"), [0.0, 0.0], [0.5, 2.0]).gain == ("chi1", "a_q")
    assert theory_threshold("tanh", 0.05, 2.0) == (pytest.approx(1.760955, abs=1e-5), "ok")


def test_no_theory_value_is_nan_with_its_status():
    """gelu at sigma_b2 = 0.05: chi_1 jumps across 1 (docs/science.md §1), so there is no threshold: NaN, 'jump';
    and a search range without a root gives NaN, 'no_crossing' (never the nearest formula)."""
    from pipeline.theory.predictions import theory_threshold

    value, status = theory_threshold("gelu", 0.05, 1.0)
    assert math.isnan(value) and status == "jump"
    value, status = theory_threshold("tanh", 0.05, 1.0, sigma_w2_range=(0.1, 1.5))
    assert math.isnan(value) and status == "no_crossing"
