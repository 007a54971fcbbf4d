"""Red-team findings on the theory package, checked against independent references (closed forms, scipy quad).

Each test fails on the code before the fix (docs/science.md §7: quadrature verification, critical lines).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import erf

from pipeline.activations import get_activation
from pipeline.theory.critical import critical_line
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import c_star, mean_field_grid, q_star
from pipeline.theory.quadrature import converged_node_count

F64 = torch.float64
SQRT2 = math.sqrt(2.0)


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


def gauss_expect(f, q: float) -> float:
    """E f(h), h ~ N(0, q), by scipy quad in h, split at 0 and at +-1, +-5 (the activation's scale)."""
    s = math.sqrt(q)

    def g(h):
        return f(h) * math.exp(-h * h / (2 * q)) / (s * math.sqrt(2 * math.pi))

    pts = [-40 * s, -5.0, -1.0, 0.0, 1.0, 5.0, 40 * s] if s > 5 else [-40 * s, 0.0, 40 * s]
    pts = sorted(set(pts))
    return sum(quad(g, a, b, epsabs=0, epsrel=1e-13, limit=400)[0] for a, b in zip(pts[:-1], pts[1:]))


def erf_chi1(sigma_w2: float, q: float) -> float:
    """Closed form: E[erf'(h)^2] = (4/pi)/sqrt(1 + 4 q)."""
    return sigma_w2 * (4 / math.pi) / math.sqrt(1 + 4 * q)


def erf_q_star(sigma_w2: float, sigma_b2: float) -> float:
    """Closed form E erf(h)^2 = (2/pi) asin(2q/(1+2q)); q* by brentq on the fixed-point equation."""
    f = lambda q: sigma_w2 * (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)) + sigma_b2 - q  # noqa: E731
    return brentq(f, sigma_b2 + 1e-9, sigma_b2 + sigma_w2 + 1, xtol=1e-14, rtol=1e-15)  # above q = 0 (unstable)


# ---- finding 1: the convergence check was fooled at large q -----------------------------------------------------
def test_erf_large_bias_rows_are_right_or_flagged_never_silently_wrong():
    """Effect guarded: chi1 = 2.8e-84 at sigma_b2 = 1e4 (closed form 6.37e-3), 0 from 4e4 on, all 'converged'."""
    g = GaussianIntegrator(get_activation("erf"), q_max=1e5 + 10)
    sb = _t([0.0, 1e4, 2e4, 4e4, 1e5])
    r = mean_field_grid(g, _t(1.0), sb)
    n_ok = 0
    for i, b in enumerate(sb.tolist()):
        qs = erf_q_star(1.0, b)
        if bool(r.quad_ok[i]):
            n_ok += 1
            assert abs(float(r.chi1[i]) / erf_chi1(1.0, qs) - 1) < 1e-10, (b, float(r.chi1[i]))
            assert abs(float(r.q_star[i]) / qs - 1) < 1e-12
    assert n_ok >= 3  # sigma_b2 = 0, 1e4 and 2e4 are reached by escalating the node count
    if n_ok < len(sb):
        assert not g.accurate


def test_tanh_large_bias_rows_are_right_or_flagged():
    """Effect guarded: tanh 1.7% off at sigma_b2 = 1e5, marked converged; reference: scipy quad in h."""
    g = GaussianIntegrator(get_activation("tanh"), q_max=1e5 + 10)
    sb = _t([10.0, 1e3, 1e4, 1e5])
    r = mean_field_grid(g, _t(1.0), sb)
    for i in range(len(sb)):
        if bool(r.quad_ok[i]):
            q = float(r.q_star[i])
            ref = gauss_expect(lambda h: 1 / math.cosh(h) ** 4, q)
            assert abs(float(r.chi1[i]) / ref - 1) < 1e-9, (float(sb[i]), float(r.chi1[i]), ref)
    assert bool(r.quad_ok[0])


def test_convergence_check_is_not_fooled_by_an_unresolved_narrow_integrand():
    """erf'(sqrt(q) z)^2 at q = 1e4 has width 0.005 in z: coarse rungs all give ~0 and agree."""
    act = get_activation("erf")
    n, err = converged_node_count([lambda x: act.dphi(x) ** 2], _t([1.0, 1e4]), 1e-12, ladder=(128, 256, 512, 1024))
    assert err > 1e-12  # no rung of this ladder resolves it: reported as not converged, not 128 with 1e-16


def test_a_too_coarse_user_node_count_is_flagged():
    """n_nodes = 8 was accepted with quad_error 0: tanh (2, 0.1) gave q* = 2.0066, chi1 = 0.0044."""
    g = GaussianIntegrator(get_activation("tanh"), q_max=20.0, n_nodes=8)
    r = mean_field_grid(g, _t(2.0), _t(0.1))
    assert not g.accurate
    assert not bool(r.quad_ok)
    good = mean_field_grid(GaussianIntegrator(get_activation("tanh"), q_max=20.0), _t(2.0), _t(0.1))
    ref = gauss_expect(lambda h: 1 / math.cosh(h) ** 4, float(good.q_star))
    assert abs(float(good.chi1) / (2.0 * ref) - 1) < 1e-10 and bool(good.quad_ok)


def test_tanh_correlation_fixed_point_matches_a_truncation_free_reference():
    """Mehler's series at 160 orders missed 4e-6 of tanh's kernel at q = 11 (c* off by up to 3e-7).

    Reference: c' at c = 1 must equal 1 exactly in the ordered phase: sigma_w2 E phi^2 + sigma_b2 = q*, and the
    kernel at c = 1 is E phi^2, here by scipy quad."""
    g = GaussianIntegrator(get_activation("tanh"), q_max=20.0)
    sw, sb = _t(4.0), _t(1.0)
    fp = q_star(g, sw, sb)
    ref = gauss_expect(lambda h: math.tanh(h) ** 2, float(fp.x))
    assert abs(float(g.kernel(fp.x, fp.x, _t(1.0))) / ref - 1) < 1e-11
    cs = c_star(g, fp.x, sw, sb)
    assert bool(cs.series_ok)


# ---- finding 2: a jump of q* is not a chi_1 = 1 crossing --------------------------------------------------------
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


def test_gelu_default_bias_critical_point_is_a_jump():
    """sigma_b2 = 0.05 (the default sweep case): chi_1 goes from 0.734 (finite q* = 0.1645) to ~1.14 (q* = inf)."""
    g = GaussianIntegrator(get_activation("gelu"), q_max=20.0)
    cl = critical_line(g, [0.05], 1.0, (0.05, 10.0))
    assert int(cl.status[0]) == 2 and math.isnan(float(cl.sigma_w2_crit[0]))
    assert float(cl.gain_below[0]) < -0.2 and float(cl.gain_above[0]) > 0.1


# ---- finding 4: bounded activations at sigma_b2 >= 1e8 ----------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_bounded_activation_at_huge_bias_has_a_finite_fixed_point(name):
    """Effect guarded: q* = inf, status diverged, from a hard-coded solver bound of 1e8."""
    g = GaussianIntegrator(get_activation(name), q_max=20.0)
    fp = q_star(g, _t([1.0, 1.0]), _t([1e8, 1e9]))
    assert (fp.status == 0).all(), fp.status
    # q* = sigma_b2 + sigma_w2 E phi^2, 0 < E phi^2 < 1
    assert ((fp.x > _t([1e8, 1e9])) & (fp.x <= _t([1e8, 1e9]) + 1)).all()


# ---- finding 5: critical-line accuracy at a transcritical bifurcation --------------------------------------------
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


# ---- the stage: flags reach theory.csv, critical_line.csv and metrics.json --------------------------------------
def _stage_cfg(activations, sw, sb, crit_sb, n_nodes=None, xi=1.0):
    from pipeline.config.schema import ActivationName, GridSpec, StageConfig

    cfg = StageConfig()
    th = cfg.theory
    th.activations = [ActivationName(a) for a in activations]
    th.sigma_w2, th.sigma_b2 = GridSpec(sw, sw, 1), GridSpec(*sb)
    th.critical_sigma_b2 = list(crit_sb)
    th.quad.n_nodes = n_nodes
    th.one_loop.enabled = False
    th.figures = False
    cfg.net.xi = xi
    return cfg


def test_stage_flags_a_too_coarse_node_count_per_row_and_in_metrics():
    from pipeline.stages.theory import compute

    r = compute(_stage_cfg(["tanh"], 2.0, (0.1, 0.1, 1), [0.05], n_nodes=8))
    assert list(r.theory.quad_status) == ["inaccurate"]
    assert r.quadrature["tanh"]["accurate"] is False
    assert r.output.metrics["grid_points_inaccurate"] == 1


def test_stage_critical_table_carries_xi_and_the_jump():
    from pipeline.stages.theory import compute

    r = compute(_stage_cfg(["gelu", "tanh"], 1.0, (0.0, 0.0, 1), [0.0, 0.05], xi=0.3))
    crit = r.critical.set_index(["activation", "sigma_b2"])
    assert (r.critical.xi == 0.3).all()
    assert crit.loc[("gelu", 0.0), "crossing_status"] == "jump" and math.isnan(crit.loc[("gelu", 0.0), "sigma_w2_crit"])
    assert crit.loc[("tanh", 0.05), "crossing_status"] == "crossing"
    assert "gelu_sb0" in r.output.metrics["critical_jumps"]
