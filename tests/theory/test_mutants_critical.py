"""Mutation-testing gaps of pipeline.theory.critical (docs/mutation.md), against closed forms by hand and
scipy brentq/quad (tests/theory/reference.py): ReLU's edge of chaos sigma_w2 = 2 for every bias and its length
threshold 2 pi / (pi - 1 + xi), tanh's 1 at sigma_b2 = 0, gelu's A_q(0) = sigma_w2 phi'(0)^2 = sigma_w2 / 4.
Default bisection tolerance 1e-10 in sigma_w2: checks at 1e-8 (the mutants move roots by >= 1e-3 or lose them)."""

import math

import pytest
import torch

from pipeline.activations import ACTIVATIONS
from pipeline.theory.critical import critical_line
from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from tests.theory.reference import q_star_quad

T = torch.float64


def integ(name):
    return GaussianIntegrator(ACTIVATIONS[name])


def test_unknown_gain_is_refused_with_its_name():
    with pytest.raises(ValueError, match="gain='a_q1'"):
        critical_line(integ("relu"), 0.0, gain="a_q1")


def test_no_crossing_in_range_is_nan_not_found_and_diverged_with_q_star_at_sigma_w2_one():
    """ReLU's chi_1 = sigma_w2 / 2 stays below 1 on [0.05, 1.5]; q* at the placeholder sigma_w2 = 1 with
    sigma_b2 = 0.2 solves q = q/2 + 0.2: 0.4."""
    cl = critical_line(integ("relu"), [0.2, 0.0], sigma_w2_range=(0.05, 1.5))
    assert cl.found.tolist() == [False, False]
    assert torch.isnan(cl.sigma_w2_crit).all()
    assert cl.q_status.tolist() == [int(Status.DIVERGED)] * 2
    assert abs(float(cl.q_star[0]) - 0.4) < 1e-12
    assert cl.sigma_b2.tolist() == [0.2, 0.0]
    above = critical_line(integ("relu"), 0.0, sigma_w2_range=(2.5, 5.0))  # chi_1 > 1 on the whole range
    assert above.found.tolist() == [False] and torch.isnan(above.sigma_w2_crit).all()


def test_a_crossing_in_the_last_scan_interval_is_found():
    """64 scan points on [0.05, 2.01]: the last interval [1.979, 2.01] holds ReLU's root 2."""
    cl = critical_line(integ("relu"), 0.0, sigma_w2_range=(0.05, 2.01))
    assert cl.found.tolist() == [True] and abs(float(cl.sigma_w2_crit[0]) - 2.0) < 1e-8


def test_roots_to_the_default_tolerance_and_q_star_there():
    cl = critical_line(integ("tanh"), [0.0, 0.05])
    assert cl.found.tolist() == [True, True]
    assert abs(float(cl.sigma_w2_crit[0]) - 1.0) < 1e-8
    sw = float(cl.sigma_w2_crit[1])
    assert abs(float(cl.q_star[1]) / q_star_quad("tanh", sw, 0.05) - 1) < 1e-9
    assert cl.q_status.tolist() == [int(Status.CONVERGED), int(Status.CONVERGED)]


def test_gelu_threshold_of_the_trivial_fixed_point_is_four_for_any_xi():
    """gain='a_q0' evaluates A_q at q = 0: sigma_w2 [phi'(0)^2 + phi(0) phi''(0) - 2 (1 - xi) phi(0) ...] =
    sigma_w2 / 4 for gelu (phi(0) = 0, phi'(0) = 1/2)."""
    cl = critical_line(integ("gelu"), 0.0, xi=[0.5, 1.0, 3.0], gain="a_q0")
    assert torch.allclose(cl.sigma_w2_crit, torch.full((3,), 4.0, dtype=T), atol=1e-8)


def test_relu_length_threshold_by_hand():
    xi = torch.tensor([0.5, 2.0], dtype=T)
    cl = critical_line(integ("relu"), 0.0, xi=xi, gain="a_q")
    assert torch.allclose(cl.sigma_w2_crit, 2 * math.pi / (math.pi - 1 + xi), atol=1e-8)


@pytest.mark.slow  # ~18 s: near A_q = 1 the q* = 0 solves converge slowly, at every scan and bisection point
def test_the_default_scan_range_ends_at_twenty():
    # a threshold at 20.5 lies beyond the default range (0.05, 20) and is found once the range covers it
    far = 2 * math.pi / 20.5 - math.pi + 1  # xi > 1 - pi, so A_q > 0
    assert critical_line(integ("relu"), 0.0, xi=far, gain="a_q").found.tolist() == [False]
    wide = critical_line(integ("relu"), 0.0, xi=far, gain="a_q", sigma_w2_range=(0.05, 25.0))
    assert abs(float(wide.sigma_w2_crit[0]) - 20.5) < 1e-8
