"""Mutation-testing gaps of pipeline.theory.gauge (docs/mutation.md): `gauge_theory` against ReLU's closed
forms written out by hand (docs/science.md §4): chi_1 = sigma_w2 / 2 and A_q = sigma_w2 (pi - 1 + xi) / (2 pi)
at any q, and lambda = 0.5 ln max(chi_1, A_q) only for homogeneous activations without bias. Float64,
tolerance 1e-12; the mutants change values by O(1) or turn NaN into numbers."""

import math

import torch

from pipeline.activations import ACTIVATIONS
from pipeline.theory.gauge import gauge_theory, has_exact_top_exponent, thresholds
from pipeline.theory.gaussian import GaussianIntegrator


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


def test_has_exact_top_exponent_only_for_homogeneous_activations_without_bias():
    relu, tanh = GaussianIntegrator(ACTIVATIONS["relu"]), GaussianIntegrator(ACTIVATIONS["tanh"])
    assert has_exact_top_exponent(relu, 0.0) is True
    assert has_exact_top_exponent(relu, 0.1) is False
    assert has_exact_top_exponent(tanh, 0.0) is False


def test_thresholds_search_only_the_given_sigma_w2_range():
    """ReLU at xi = 0: length threshold 2 pi / (pi - 1) = 2.934 and edge of chaos 2; gelu's trivial fixed point
    loses stability at sigma_w2 = 4 (A_q(0) = sigma_w2 / 4). A range ending at 1.5 holds none of them."""
    relu = thresholds(GaussianIntegrator(ACTIVATIONS["relu"]), 0.0, 0.0, sigma_w2_range=(0.05, 1.5))
    assert torch.isnan(relu["len_threshold"]).all() and torch.isnan(relu["transverse_threshold"]).all()
    gelu = thresholds(GaussianIntegrator(ACTIVATIONS["gelu"]), 0.0, 1.0, sigma_w2_range=(0.05, 1.5))
    assert torch.isnan(gelu["len_threshold"]).all()
    assert set(relu) == {"sigma_b2", "xi", "len_threshold", "transverse_threshold", "chaos_threshold"}
