"""pipeline.theory.mean_field: fixed points satisfy their maps, depth scales peak at the edge of chaos, q* stays
finite for bounded activations at any bias; ReLU, linear and tanh closed forms (docs/science.md §1, §4)."""

import math

import numpy as np
import pytest
import torch

from pipeline.activations import ACTIVATIONS, get_activation
from pipeline.theory.critical import critical_line
from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import chi1, correlation_map, mean_field_grid, q_star, variance_map, variance_slope
from tests.theory.reference import q_star_quad

T = torch.float64


def test_fixed_points_satisfy_both_maps():
    # unbounded activations have a finite q* only below sigma_w2 ~ 2 (q* -> inf above: tested below)
    for name, top in (("tanh", 4.0), ("erf", 4.0), ("gelu", 1.9), ("swish", 1.9), ("relu", 1.9)):
        g = GaussianIntegrator(ACTIVATIONS[name])
        sw = torch.linspace(0.3, top, 25, dtype=T)[:, None]
        sb = torch.linspace(0.05, 1.0, 9, dtype=T)[None, :]
        r = mean_field_grid(g, sw, sb)
        swe, sbe = sw.expand_as(r.q_star), sb.expand_as(r.q_star)
        # every point of this grid has a finite, stable q* and c*: a single failed solve is a bug, not noise
        bad = (r.q_status != 0) | (r.c_status != 0)
        assert not bool(bad.any()), (name, swe[bad].tolist(), sbe[bad].tolist(), r.q_status[bad], r.c_status[bad])
        q, c = r.q_star, r.c_star
        assert (variance_map(g, q, swe, sbe) - q).abs().max() < 1e-10, name
        assert (correlation_map(g, q, q, c * q, swe, sbe) / q - c).abs().max() < 1e-10, name
        # independent check at three points: q* is the root of sigma_w2 E phi^2 + sigma_b2 - q by scipy quad
        for i, j in ((0, 0), (12, 4), (24, 8)):
            ref = q_star_quad(name, float(sw[i, 0]), float(sb[0, j]))
            assert abs(float(r.q_star[i, j]) - ref) < 1e-9 * ref, (name, i, j)


def test_correlation_depth_scale_grows_toward_the_critical_line_from_both_sides():
    g = GaussianIntegrator(ACTIVATIONS["tanh"])
    sb2 = 0.05
    crit = float(critical_line(g, [sb2]).sigma_w2_crit[0])
    left = torch.linspace(crit - 0.8, crit - 0.01, 12, dtype=T)
    right = torch.linspace(crit + 0.01, crit + 1.5, 12, dtype=T)
    xl = mean_field_grid(g, left, sb2).depth_scale_c
    xr = mean_field_grid(g, right, sb2).depth_scale_c
    assert torch.all(xl[1:] > xl[:-1]), xl
    assert torch.all(xr[1:] < xr[:-1]), xr
    assert xl[-1] > 50 and xr[0] > 50


def test_ordered_phase_correlation_goes_to_one_and_chaotic_below_one():
    g = GaussianIntegrator(ACTIVATIONS["tanh"])
    r = mean_field_grid(g, torch.tensor([1.2, 3.0], dtype=T), 0.05)
    assert abs(float(r.c_star[0]) - 1) < 1e-10
    assert float(r.c_star[1]) < 0.95


def test_diverging_relu_variance_is_reported_not_silent():
    g = GaussianIntegrator(ACTIVATIONS["relu"])
    r = mean_field_grid(g, torch.tensor([1.5, 3.0], dtype=T), 0.1)
    assert int(r.q_status[0]) == 0 and abs(float(r.q_star[0]) - 0.1 / (1 - 0.75)) < 1e-10
    assert int(r.q_status[1]) == 1 and torch.isinf(r.q_star[1])


def test_relu_and_linear_with_a_bias_at_or_past_a_q_1_diverge_not_max_iter():
    """Affine variance map q' = A_q q + sigma_b2: at A_q >= 1 with a bias there is no finite q* (exact). The
    iteration creeps toward the search bound (~700 steps at A_q = 1.025) and stopped at max_iter with q ~ 1e6,
    which the theory stage then masked as unconverged: the relu cells next to the critical line were blank."""
    fp = q_star(GaussianIntegrator(ACTIVATIONS["relu"]), torch.tensor([1.9, 2.0, 2.05], dtype=T), 0.5)
    assert abs(fp.x[0].item() - 0.5 / (1 - 0.95)) < 1e-8  # sigma_b2 / (1 - A_q)
    assert torch.isinf(fp.x[1:]).all() and fp.status[1:].tolist() == [int(Status.DIVERGED)] * 2
    lin = q_star(GaussianIntegrator(ACTIVATIONS["linear"]), torch.tensor([1.0, 1.05], dtype=T), 0.3)
    assert torch.isinf(lin.x).all() and lin.status.tolist() == [int(Status.DIVERGED)] * 2


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_bounded_activation_at_huge_bias_has_a_finite_fixed_point(name):
    """Effect guarded: q* = inf, status diverged, from a hard-coded solver bound of 1e8."""
    g = GaussianIntegrator(get_activation(name), q_max=20.0)
    fp = q_star(g, torch.tensor([1.0, 1.0], dtype=T), torch.tensor([1e8, 1e9], dtype=T))
    assert (fp.status == 0).all(), fp.status
    # q* = sigma_b2 + sigma_w2 E phi^2, 0 < E phi^2 < 1
    assert ((fp.x > torch.tensor([1e8, 1e9], dtype=T)) & (fp.x <= torch.tensor([1e8, 1e9], dtype=T) + 1)).all()


# ---- closed forms (docs/science.md §1, §4): ReLU chi_1 = sigma_w2/2, arc-cosine map and A_q(xi); linear chi_1
def test_relu_gain_is_half_sigma_w2_everywhere():
    sw = torch.linspace(0.1, 5.0, 50, dtype=T)[:, None]
    sb = torch.linspace(0.0, 1.0, 11, dtype=T)[None, :]
    r = mean_field_grid(GaussianIntegrator(ACTIVATIONS["relu"]), sw, sb)
    assert torch.allclose(r.chi1, (sw / 2).expand_as(r.chi1), atol=1e-10, rtol=0)


def test_linear_gain_is_sigma_w2():
    sw = torch.linspace(0.1, 3.0, 20, dtype=T)
    assert torch.allclose(
        chi1(GaussianIntegrator(ACTIVATIONS["linear"]), torch.ones_like(sw), sw), sw, atol=1e-12, rtol=0
    )


def arccos1(q1, q2, c):
    """Cho & Saul degree-1 arc-cosine kernel, written independently of the package."""
    th = np.arccos(c)
    return np.sqrt(q1 * q2) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))


KERNEL_CASES = [(1.0, 1.0, 0.3), (0.5, 2.0, -0.7), (2.5, 1.5, 0.95), (0.2, 0.3, 0.0), (1.3, 0.9, 0.999)]


@pytest.mark.parametrize("q1,q2,c", KERNEL_CASES)
def test_relu_correlation_map_is_arccos_kernel(q1, q2, c):
    sw, sb = 1.7, 0.2
    got = correlation_map(GaussianIntegrator(ACTIVATIONS["relu"]), q1, q2, c * math.sqrt(q1 * q2), sw, sb)
    assert abs(float(got) - (sw * arccos1(q1, q2, c) + sb)) < 1e-8


def test_relu_longitudinal_factor_closed_form_in_xi():
    """docs/science.md §4: A_q = sigma_w2 (1/2 - (1 - xi)/(2 pi)) for ReLU, any q."""
    g = GaussianIntegrator(ACTIVATIONS["relu"])
    for xi in (0.0, 0.5, 1.0, 2.0, 4.0):
        got = variance_slope(g, torch.tensor(0.8, dtype=T), 1.9, xi)
        assert abs(float(got) - 1.9 * (0.5 - (1 - xi) / (2 * math.pi))) < 1e-12


def test_tanh_zero_bias_ordered_phase_has_trivial_variance():
    fp = q_star(GaussianIntegrator(ACTIVATIONS["tanh"]), torch.tensor([0.5, 0.9], dtype=T), 0.0)
    assert torch.all(fp.x == 0)
