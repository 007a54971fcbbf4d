"""pipeline.theory.critical against closed forms by hand and scipy brentq/quad (tests/theory/reference.py):
ReLU's edge of chaos sigma_w2 = 2 for every bias and its length threshold 2 pi / (pi - 1 + xi), tanh's 1 at
sigma_b2 = 0, erf's pi/4, gelu's A_q(0) = sigma_w2 phi'(0)^2 = sigma_w2 / 4. Default bisection tolerance 1e-10 in
sigma_w2: checks at 1e-8 or 1e-9 (the mutants of docs/mutation.md move roots by >= 1e-3 or lose them); a jump of
q* is not a chi_1 = 1 crossing (red team)."""

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from pipeline.activations import ACTIVATIONS, get_activation
from pipeline.theory.critical import chaos_line, critical_line
from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.tables import critical_table
from tests.theory.reference import gauss_expect, q_star_quad

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


# ---- red team: a jump of q* is not a chi_1 = 1 crossing; bisection accuracy at a transcritical bifurcation ----
SQRT2 = math.sqrt(2.0)


def _gelu(h):
    return 0.5 * h * (1 + erf(h / SQRT2))


def _swish(h):
    return h / (1 + math.exp(-h)) if h > -700 else 0.0


@pytest.mark.parametrize("name,phi,dphi0", [("gelu", _gelu, 0.5), ("swish", _swish, 0.5)])
def test_gelu_swish_bias_free_critical_point_is_a_jump_not_a_crossing(name, phi, dphi0):
    """Effect guarded: gelu 2.351716 / swish 2.810761 reported found=True; they equal 1/E phi^2 at q = 1 (the
    solver's start), where q* tips from 0 to inf and chi_1 jumps from sigma_w2 phi'(0)^2 to about sigma_w2/2."""
    g = GaussianIntegrator(get_activation(name), q_max=20.0)
    cl = critical_line(g, [0.0], 1.0, (0.05, 10.0))
    jump_ref = 1 / gauss_expect(lambda h: phi(h) ** 2, 1.0)
    assert not bool(cl.found[0]) and math.isnan(float(cl.sigma_w2_crit[0]))
    assert int(cl.status[0]) == 2  # "jump"
    assert abs(float(cl.sigma_w2_jump[0]) - jump_ref) < 1e-8
    below = jump_ref * dphi0**2  # chi_1 at q* = 0 just below: far from 1
    assert abs(float(cl.gain_below[0]) + 1 - below) < 1e-6


def test_gelu_default_bias_critical_point_is_a_jump_and_its_table_row_says_so():
    """sigma_b2 = 0.05 (the default sweep case): chi_1 goes from 0.734 (finite q* = 0.1645) to ~1.14 (q* = inf).
    critical_line.csv carries the jump (status "jump", NaN sigma_w2_crit, the jump's sigma_w2) and the xi of its
    chaos line (tanh, xi = 0.3: no xi dependence, docs/science.md §4)."""
    g = GaussianIntegrator(get_activation("gelu"), q_max=20.0)
    cl = chaos_line(g, [0.05], 1.0, (0.05, 10.0))  # non-homogeneous: the chi_1 line
    assert int(cl.status[0]) == 2 and math.isnan(float(cl.sigma_w2_crit[0]))
    assert float(cl.gain_below[0]) < -0.2 and float(cl.gain_above[0]) > 0.1
    row = critical_table("gelu", cl).iloc[0]
    assert (
        row.crossing_status == "jump"
        and math.isnan(row.sigma_w2_crit)
        and row.sigma_w2_jump == float(cl.sigma_w2_jump[0])
    )
    tanh = critical_table(
        "tanh", chaos_line(GaussianIntegrator(get_activation("tanh"), q_max=20.0), [0.05], 0.3, (0.05, 10.0))
    )
    assert tanh.xi.tolist() == [0.3] and tanh.crossing_status.tolist() == ["crossing"]
    assert tanh.sigma_w2_crit[0] == pytest.approx(1.760955, abs=1e-5)


def test_tanh_and_erf_bias_free_critical_points_reach_the_bisection_tolerance():
    """Effect guarded: tanh 1.000000365 (exact 1), erf 0.7853981840 (pi/4 = 0.7853981634): the gain only grazes
    1 above the bifurcation, so rounding decided the bisection's sign."""
    tanh = critical_line(GaussianIntegrator(get_activation("tanh"), q_max=11.0), [0.0], 1.0, (0.05, 10.0))
    assert abs(float(tanh.sigma_w2_crit[0]) - 1.0) < 1e-9
    g = GaussianIntegrator(get_activation("erf"), q_max=11.0)
    cl = critical_line(g, [0.0, 0.0, 0.0], [0.0, 0.5, 1.0], (0.05, 10.0))
    assert np.abs(cl.sigma_w2_crit.numpy() - math.pi / 4).max() < 1e-9, cl.sigma_w2_crit


def test_regular_critical_points_are_unchanged():
    """tanh at sigma_b2 = 0.05: chi_1 = 1 crossing, checked against scipy quad (q* and chi_1 at the crossing)."""
    g = GaussianIntegrator(get_activation("tanh"), q_max=11.0)
    cl = critical_line(g, [0.05], 1.0, (0.05, 10.0))
    sw, q = float(cl.sigma_w2_crit[0]), float(cl.q_star[0])
    assert int(cl.status[0]) == 0 and bool(cl.found[0])
    assert abs(sw * gauss_expect(lambda h: math.tanh(h) ** 2, q) + 0.05 - q) < 1e-10
    assert abs(sw * gauss_expect(lambda h: 1 / math.cosh(h) ** 4, q) - 1) < 1e-9


# ---- closed forms (docs/science.md §1): ReLU 2 at any bias, tanh 1 and erf pi/4 without bias, tanh 1.76095 at 0.05
@pytest.mark.parametrize("name,expected", [("tanh", 1.0), ("erf", math.pi / 4), ("linear", 1.0)])  # relu: below
def test_critical_point_at_zero_bias(name, expected):
    cl = critical_line(integ(name), [0.0])
    assert bool(cl.found[0])
    assert abs(float(cl.sigma_w2_crit[0]) - expected) < 1e-6


def test_relu_critical_point_is_two_for_every_bias():
    cl = critical_line(integ("relu"), [0.0, 0.05, 0.3, 1.0])
    assert bool(cl.found.all())
    assert torch.allclose(cl.sigma_w2_crit, torch.full((4,), 2.0, dtype=T), atol=1e-6)


def test_tanh_critical_point_at_small_bias_matches_science_value():
    # docs/science.md §1: theory crossing 1.76095 at sigma_b2 = 0.05
    cl = critical_line(integ("tanh"), [0.05])
    assert abs(float(cl.sigma_w2_crit[0]) - 1.76095) < 5e-5
