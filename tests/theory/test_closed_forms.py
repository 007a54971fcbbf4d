"""Mean-field quantities against closed forms (docs/science.md §1): ReLU, tanh, erf, linear."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from pipeline.activations import ACTIVATIONS
from pipeline.theory.critical import critical_line
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import chi1, correlation_map, mean_field_grid, q_star, variance_slope

T = torch.float64


def integ(name, **kw):
    return GaussianIntegrator(ACTIVATIONS[name], **kw)


def test_relu_gain_is_half_sigma_w2_everywhere():
    sw = torch.linspace(0.1, 5.0, 50, dtype=T)[:, None]
    sb = torch.linspace(0.0, 1.0, 11, dtype=T)[None, :]
    r = mean_field_grid(integ("relu"), sw, sb)
    assert torch.allclose(r.chi1, (sw / 2).expand_as(r.chi1), atol=1e-10, rtol=0)


def test_linear_gain_is_sigma_w2():
    sw = torch.linspace(0.1, 3.0, 20, dtype=T)
    assert torch.allclose(chi1(integ("linear"), torch.ones_like(sw), sw), sw, atol=1e-12, rtol=0)


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


def arccos1(q1, q2, c):
    """Cho & Saul degree-1 arc-cosine kernel, written independently of the package."""
    th = np.arccos(c)
    return np.sqrt(q1 * q2) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))


def arcsine(q1, q2, c):
    """Williams (1997) erf kernel."""
    q12 = c * np.sqrt(q1 * q2)
    return 2 / np.pi * np.arcsin(2 * q12 / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


CASES = [(1.0, 1.0, 0.3), (0.5, 2.0, -0.7), (2.5, 1.5, 0.95), (0.2, 0.3, 0.0), (1.3, 0.9, 0.999)]


@pytest.mark.parametrize("q1,q2,c", CASES)
def test_relu_correlation_map_is_arccos_kernel(q1, q2, c):
    sw, sb = 1.7, 0.2
    got = correlation_map(integ("relu"), q1, q2, c * math.sqrt(q1 * q2), sw, sb)
    assert abs(float(got) - (sw * arccos1(q1, q2, c) + sb)) < 1e-8


@pytest.mark.parametrize("q1,q2,c", CASES)
def test_erf_quadrature_path_matches_arcsine_kernel(q1, q2, c):
    """The generic Mehler/quadrature path (closed forms off) against Williams' kernel."""
    g = integ("erf", use_closed_forms=False)
    sw, sb = 2.0, 0.1
    got = correlation_map(g, q1, q2, c * math.sqrt(q1 * q2), sw, sb)
    assert abs(float(got) - (sw * arcsine(q1, q2, c) + sb)) < 1e-8


def test_tanh_kernel_against_brute_force_2d_integral():
    g = integ("tanh")
    q1, q2, c = 1.2, 0.7, 0.6
    s = math.sqrt(1 - c * c)

    def f(z2, z1):
        u1 = math.sqrt(q1) * z1
        u2 = math.sqrt(q2) * (c * z1 + s * z2)
        return math.tanh(u1) * math.tanh(u2) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    ref, _ = integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-13, epsrel=1e-12)
    got = g.kernel(torch.tensor(q1, dtype=T), torch.tensor(q2, dtype=T), torch.tensor(c, dtype=T))
    assert abs(float(got) - ref) < 1e-9


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "swish"])
def test_quadrature_moment_matches_scipy_quad(name):
    act = ACTIVATIONS[name]
    g = integ(name)
    for q in (0.05, 1.0, 4.0):
        ref, _ = integrate.quad(
            lambda z: (
                float(act.dphi(torch.tensor(math.sqrt(q) * z, dtype=T))) ** 2
                * math.exp(-z * z / 2)
                / math.sqrt(2 * math.pi)
            ),
            -12,
            12,
            epsabs=1e-14,
            limit=400,
        )
        assert abs(float(g.e_dphi2(torch.tensor(q, dtype=T))) - ref) < 1e-11


def test_relu_longitudinal_factor_closed_form_in_xi():
    """docs/science.md §4: A_q = sigma_w2 (1/2 - (1 - xi)/(2 pi)) for ReLU, any q."""
    g = integ("relu")
    for xi in (0.0, 0.5, 1.0, 2.0, 4.0):
        got = variance_slope(g, torch.tensor(0.8, dtype=T), 1.9, xi)
        assert abs(float(got) - 1.9 * (0.5 - (1 - xi) / (2 * math.pi))) < 1e-12


def test_tanh_zero_bias_ordered_phase_has_trivial_variance():
    fp = q_star(integ("tanh"), torch.tensor([0.5, 0.9], dtype=T), 0.0)
    assert torch.all(fp.x == 0)
