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
