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
from pipeline.theory.mean_field import (
    c_star,
    chi1,
    correlation_map,
    depth_scale,
    gains,
    mean_field_grid,
    q_star,
    variance_map,
    variance_slope,
)
from tests.theory.reference import (
    PHI,
    chi1_quad,
    gauss_mean,
    kernel_quad,
    q_star_quad,
    q_star_quad_xi,
    variance_map_quad,
)

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


# ---- vectorized grid paths against independent references (issue 15): scipy quadrature of hand-written
# activations (tests/theory/reference.py), closed forms written out here, or hand-built inputs
@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_grid_chi1_and_q_star_at_q_star_match_scipy_quad(name):
    """chi_1(q*) on the vectorized (sigma_w2 x sigma_b2) grid path, each point against its own quad.

    Effect guarded: a 0.5% error in chi_1 (the planted bug; the O(1/N) shifts this project measures are
    1-3%). Tolerance 1e-9 relative, set by quad's accuracy (~1e-12), far below the effect.
    """
    sw = torch.tensor([1.2, 1.8, 2.6], dtype=T)[:, None]
    sb = torch.tensor([0.05, 0.4], dtype=T)[None, :]
    r = mean_field_grid(GaussianIntegrator(ACTIVATIONS[name]), sw, sb)
    assert bool((r.q_status == 0).all())
    for i in range(sw.shape[0]):
        for j in range(sb.shape[1]):
            s, b = float(sw[i, 0]), float(sb[0, j])
            q = q_star_quad(name, s, b)
            assert float(r.q_star[i, j]) == pytest.approx(q, rel=1e-9), (s, b)
            chi = chi1_quad(name, s, q)
            assert float(r.chi1[i, j]) == pytest.approx(chi, rel=1e-9), (s, b)
            assert float(r.lambda_mf[i, j]) == pytest.approx(0.5 * math.log(chi), abs=1e-9), (s, b)


@pytest.mark.parametrize("name,sw,sb", [("tanh", 2.0, 0.05), ("erf", 2.5, 0.1)])
def test_chi_c_column_is_the_price_slope_at_a_finite_fixed_point(name, sw, sb):
    """chi_c column = sigma_w2 E phi'(u1) phi'(u2) at (q*, q*, c*) where q* is finite (docs/science.md §1, Note),
    here in the chaotic phase (c* < 1); reference: scipy dblquad of the hand-written phi' (good to ~1e-11)."""
    r = mean_field_grid(GaussianIntegrator(ACTIVATIONS[name]), torch.tensor([sw], dtype=T), torch.tensor([sb], dtype=T))
    q, c = float(r.q_star.reshape(-1)[0]), float(r.c_star.reshape(-1)[0])
    assert 0 < c < 0.95
    dphi = PHI[name][1]
    assert float(r.chi_c.reshape(-1)[0]) == pytest.approx(sw * kernel_quad(dphi, dphi, q, q, c), abs=1e-9)


def test_linear_correlation_map_is_the_covariance_map():
    """phi(x) = x: q12' = sigma_w2 q12 + sigma_b2 for any xi (E phi = 0), written out."""
    g = GaussianIntegrator(ACTIVATIONS["linear"])
    for q1, q2, q12, xi in ((1.0, 2.0, 0.5, 1.0), (0.3, 4.0, -0.9, 0.2)):
        got = correlation_map(g, q1, q2, q12, 1.3, 0.2, xi)
        assert float(got) == pytest.approx(1.3 * q12 + 0.2, abs=1e-12)


@pytest.mark.parametrize("xi", [0.3, 1.0, 2.0])
def test_xi_variance_map_and_its_slope_match_quad_and_a_finite_difference(xi):
    """GELU (E phi != 0, so xi matters): q' and A_q = dq'/dq of docs/science.md §4 against scipy quad and a
    central difference of the quad map (h = 1e-4: truncation ~1e-9).

    Effect guarded: the (1 - xi) terms, 0.03-0.1 in q' and A_q here. Tolerances 1e-10 (map) and 1e-7 (slope).
    """
    g = GaussianIntegrator(ACTIVATIONS["gelu"])
    sw, sb, h = 1.4, 0.1, 1e-4
    for q in (0.5, 1.7):
        ref = variance_map_quad("gelu", q, sw, sb, xi)
        assert float(variance_map(g, q, sw, sb, xi)) == pytest.approx(ref, abs=1e-10)
        fd = (variance_map_quad("gelu", q + h, sw, sb, xi) - variance_map_quad("gelu", q - h, sw, sb, xi)) / (2 * h)
        chi, a_q = gains(g, torch.tensor([q], dtype=T), sw, xi)
        assert float(a_q[0]) == pytest.approx(fd, abs=1e-7)
        assert float(variance_slope(g, q, sw, xi)) == pytest.approx(fd, abs=1e-7)
        assert float(chi[0]) == pytest.approx(chi1_quad("gelu", sw, q), abs=1e-10)
    r = mean_field_grid(g, torch.tensor([0.9, 1.3], dtype=T), sb, xi)  # finite q* (diverges above ~1.5 at xi = 2)
    for i, s in enumerate((0.9, 1.3)):
        q = q_star_quad_xi("gelu", s, sb, xi)
        assert float(r.q_star[i]) == pytest.approx(q, rel=1e-9)
        fd = (variance_map_quad("gelu", q + h, s, sb, xi) - variance_map_quad("gelu", q - h, s, sb, xi)) / (2 * h)
        assert float(r.a_q[i]) == pytest.approx(fd, abs=1e-7)
        assert float(r.chi1[i]) == pytest.approx(chi1_quad("gelu", s, q), rel=1e-9)


def test_relu_correlation_map_with_xi_is_arccos_minus_the_mean_mode():
    """ReLU: q12' = sigma_w2 [k1(q1, q2, c) - (1 - xi) sqrt(q1 q2) / (2 pi)] + sigma_b2, by hand."""
    g = GaussianIntegrator(ACTIVATIONS["relu"])
    q1, q2, c, sw, sb = 0.6, 2.2, 0.3, 1.7, 0.2
    th = math.acos(c)
    k1 = math.sqrt(q1 * q2) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * c)
    for xi in (0.0, 0.5, 3.0):
        want = sw * (k1 - (1 - xi) * math.sqrt(q1 * q2) / (2 * math.pi)) + sb
        assert float(correlation_map(g, q1, q2, c * math.sqrt(q1 * q2), sw, sb, xi)) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("xi", [None, 0.4])
def test_gelu_c_star_is_a_fixed_point_of_the_brute_force_correlation_map(xi):
    """c* of the normalised correlation map at q = 3 (GELU, Mehler path, E phi != 0) against scipy dblquad:
    c' = (sigma_w2 [E phi(u1) phi(u2) - (1 - xi) (E phi)^2] + sigma_b2) / q'. The map's slope is <= 0.97, so
    a residual of 1e-10 bounds the error in c* by ~3e-9. Effect guarded: xi = 0.4 moves c* from 0.91 to 0.46.
    """
    g = GaussianIntegrator(ACTIVATIONS["gelu"])
    q, sw, sb = 3.0, 3.0, 0.05
    fp = c_star(g, torch.tensor(q, dtype=T), sw, sb) if xi is None else c_star(g, torch.tensor(q, dtype=T), sw, sb, xi)
    x = 1.0 if xi is None else xi
    c = float(fp.x)
    assert int(fp.status) == 0 and 0 < c < 0.95
    phi = PHI["gelu"][0]
    m = gauss_mean(phi, q)
    c_next = (sw * (kernel_quad(phi, phi, q, q, c) - (1 - x) * m * m) + sb) / variance_map_quad("gelu", q, sw, sb, x)
    assert abs(c_next - c) < 1e-10


def test_c_star_degenerate_where_q_star_is_zero_or_infinite_unless_homogeneous_without_bias():
    """docs/science.md §1 Note: at q* = 0 or inf only ReLU/linear with sigma_b2 = 0 keep a correlation map."""
    tanh, relu = GaussianIntegrator(ACTIVATIONS["tanh"]), GaussianIntegrator(ACTIVATIONS["relu"])
    fp = c_star(tanh, torch.tensor([0.0], dtype=T), 0.5, 0.0)  # ordered tanh without bias: q* = 0
    assert int(fp.status[0]) == 4 and math.isnan(float(fp.x[0])) and math.isnan(float(fp.slope[0]))
    fp = c_star(relu, torch.tensor([math.inf, math.inf], dtype=T), 3.0, torch.tensor([0.1, 0.0], dtype=T))
    assert int(fp.status[0]) == 4 and math.isnan(float(fp.x[0]))
    # ReLU without bias: the correlation map is q-independent (evaluated at q = 1), its stable fixed point c* = 1
    assert int(fp.status[1]) != 4 and float(fp.x[1]) == pytest.approx(1.0, abs=1e-6)


def test_depth_scale_by_hand():
    got = depth_scale(torch.tensor([0.5, math.exp(-1), 1.0, 1.5, 0.0], dtype=T))
    assert got[0] == pytest.approx(1 / math.log(2), abs=1e-15) and got[1] == pytest.approx(1.0, abs=1e-15)
    assert got[2] == math.inf and got[3] == math.inf and got[4] == 0.0


def test_mean_field_grid_fields_and_solver_options():
    """Every field of the grid by an independent route (gelu, xi = 0.6): inputs broadcast as given,
    depth scales -1/ln of the slopes, lambda_mf = 0.5 ln chi_1; solver options reach both solves."""
    g = GaussianIntegrator(ACTIVATIONS["gelu"])
    sw, sb, xi = torch.tensor([[0.9], [1.3]], dtype=T), torch.tensor([[0.05, 0.2]], dtype=T), 0.6
    r = mean_field_grid(g, sw, sb, xi)
    assert torch.equal(r.sigma_w2, sw.expand(2, 2)) and torch.equal(r.sigma_b2, sb.expand(2, 2))
    assert torch.equal(r.xi, torch.full((2, 2), 0.6, dtype=T))
    h = 1e-4
    for i, j in ((0, 0), (1, 1)):
        s, b = float(sw[i, 0]), float(sb[0, j])
        q = q_star_quad_xi("gelu", s, b, xi)
        a_q = (variance_map_quad("gelu", q + h, s, b, xi) - variance_map_quad("gelu", q - h, s, b, xi)) / (2 * h)
        assert float(r.a_q[i, j]) == pytest.approx(a_q, abs=1e-7)
        assert float(r.depth_scale_q[i, j]) == pytest.approx(-1 / math.log(a_q), rel=1e-6)
        assert float(r.depth_scale_c[i, j]) == pytest.approx(-1 / math.log(float(r.chi_c[i, j])), rel=1e-12)
        assert float(r.lambda_mf[i, j]) == pytest.approx(0.5 * math.log(chi1_quad("gelu", s, q)), abs=1e-9)
        assert 0 < float(r.chi_c[i, j]) < 1  # ordered phase: c* = 1 is stable
    stopped = mean_field_grid(g, sw, sb, xi, max_iter=1)
    assert bool((stopped.q_status == 2).all()) and bool((stopped.c_status == 2).all())


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_longitudinal_factor_a_q_is_the_slope_of_the_brute_force_variance_map(name):
    """A_q = sigma_w2 (E phi'^2 + E phi phi'') = dq'/dq at xi = 1 against a central difference of the quad map
    (h = 1e-4, truncation ~1e-9). Effect guarded: the E phi phi'' term, -0.1 to -0.5 of A_q here."""
    g = GaussianIntegrator(ACTIVATIONS[name])
    sw, sb, h = 1.8, 0.05, 1e-4
    for q in (0.3, 1.2):
        fd = (variance_map_quad(name, q + h, sw, sb) - variance_map_quad(name, q - h, sw, sb)) / (2 * h)
        assert float(variance_slope(g, q, sw)) == pytest.approx(fd, abs=1e-7)
        assert float(gains(g, torch.tensor([q], dtype=T), sw)[1][0]) == pytest.approx(fd, abs=1e-7)


def test_q_star_reports_the_xi_slope_of_the_brute_force_map_at_its_fixed_point():
    """q_star's FixedPoint.slope is A_q(q*; xi) (docs/science.md §4): GELU, xi = 0.4, vs a central difference
    of the quad map (truncation ~1e-9). Effect guarded: the xi term of A_q, ~0.05 here. Tolerance 1e-7."""
    g = GaussianIntegrator(ACTIVATIONS["gelu"])
    sw, sb, xi, h = 1.3, 0.1, 0.4, 1e-4
    fp = q_star(g, torch.tensor([sw], dtype=T), sb, xi)
    q = q_star_quad_xi("gelu", sw, sb, xi)
    assert float(fp.x[0]) == pytest.approx(q, rel=1e-9)
    fd = (variance_map_quad("gelu", q + h, sw, sb, xi) - variance_map_quad("gelu", q - h, sw, sb, xi)) / (2 * h)
    assert float(fp.slope[0]) == pytest.approx(fd, abs=1e-7)
