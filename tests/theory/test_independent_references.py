"""Theory on its vectorized grid paths against independent references (issue 15).

References are scipy quadrature of hand-written scalar activations (tests/theory/reference.py), closed
forms written out here, or hand-built inputs: never the function under test or a sibling sharing its code.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.activations import ACTIVATIONS
from pipeline.theory.critical import CriticalLine
from pipeline.theory.finite_width import relu_lyapunov_exact
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import (
    MeanFieldGrid,
    c_star,
    correlation_map,
    depth_scale,
    gains,
    mean_field_grid,
    q_star,
    variance_map,
    variance_slope,
)
from pipeline.theory.predictions import predictions
from pipeline.theory.tables import critical_table, finite_or_none, grid_table
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


ORDERS = {
    "reversed": lambda n: np.arange(n)[::-1].copy(),
    "random": lambda n: np.random.default_rng(7).permutation(n),
    "interleaved": lambda n: np.r_[np.arange(0, n, 2), np.arange(1, n, 2)[::-1]],
}


@pytest.mark.parametrize("order", sorted(ORDERS))
@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_prediction_rows_carry_the_theory_of_their_own_sigma_w2_in_any_grid_order(name, order):
    """Every row of the joined prediction table against the theory recomputed for that row's key alone.

    Effect guarded: theory columns joined in the wrong order (chi1 of a neighbouring sigma_w2: >= 0.03 apart
    on this grid, 0.45 end to end). Tolerances 1e-9 (same code on a one-point grid; only the node count may
    differ) and 1e-8 relative against scipy quad.
    """
    grid = np.round(np.linspace(1.0, 2.6, 7), 4)
    sw = grid[ORDERS[order](len(grid))]
    sb, depth = 0.05, 6
    table, iterates = predictions(name, torch.tensor(sw, dtype=T), sb, depth)
    assert sorted(table.sigma_w2.tolist()) == sorted(sw.tolist())
    assert len(iterates) == len(sw) * (depth + 1)
    for _, row in table.iterrows():
        alone, alone_it = predictions(name, [float(row.sigma_w2)], sb, depth)
        for col in ("q_L_theory", "c_L_theory", "q_star", "c_star", "chi1", "lambda_mf"):
            assert row[col] == pytest.approx(float(alone[col].iloc[0]), rel=1e-9, abs=1e-12), (col, row.sigma_w2)
        q = q_star_quad(name, float(row.sigma_w2), sb)
        assert row.q_star == pytest.approx(q, rel=1e-8)
        assert row.chi1 == pytest.approx(chi1_quad(name, float(row.sigma_w2), q), rel=1e-8)
        mine = iterates[iterates.sigma_w2 == row.sigma_w2].sort_values("layer")
        assert mine.layer.tolist() == list(range(depth + 1))
        assert np.allclose(mine.q11.to_numpy(), alone_it.q11.to_numpy(), rtol=1e-9, atol=0)
        # layer-by-layer variance by hand: q^{l+1} = sigma_w2 E phi(sqrt(q^l) z)^2 + sigma_b2 from q^0 = 1
        q_l = 1.0
        phi = PHI[name][0]

        for _ in range(depth):
            q_l = float(row.sigma_w2) * gauss_mean(lambda x: phi(x) ** 2, q_l) + sb
        assert row.q_L_theory == pytest.approx(q_l, rel=1e-9)


@pytest.mark.parametrize("name,sw,sb", [("tanh", 2.0, 0.05), ("erf", 2.5, 0.1)])
def test_chi_c_column_is_the_price_slope_at_a_finite_fixed_point(name, sw, sb):
    """chi_c column = sigma_w2 E phi'(u1) phi'(u2) at (q*, q*, c*) where q* is finite (docs/science.md §1, Note),
    here in the chaotic phase (c* < 1); reference: scipy dblquad of the hand-written phi' (good to ~1e-11)."""
    r = mean_field_grid(GaussianIntegrator(ACTIVATIONS[name]), torch.tensor([sw], dtype=T), torch.tensor([sb], dtype=T))
    q, c = float(r.q_star.reshape(-1)[0]), float(r.c_star.reshape(-1)[0])
    assert 0 < c < 0.95
    dphi = PHI[name][1]
    assert float(r.chi_c.reshape(-1)[0]) == pytest.approx(sw * kernel_quad(dphi, dphi, q, q, c), abs=1e-9)


@pytest.mark.parametrize("q1,q2,c", [(0.7, 1.9, 0.4), (2.5, 0.3, -0.8)])
def test_erf_closed_form_kernels_match_brute_force(q1, q2, c):
    """Williams' arcsine kernel and its derivative kernel (closed forms on) against scipy dblquad of math.erf."""
    act = ACTIVATIONS["erf"]
    args = (torch.tensor(q1, dtype=T), torch.tensor(q2, dtype=T), torch.tensor(c, dtype=T))
    phi, dphi = PHI["erf"]
    assert float(act.kernel(*args)) == pytest.approx(kernel_quad(phi, phi, q1, q2, c), abs=1e-9)
    assert float(act.grad_kernel(*args)) == pytest.approx(kernel_quad(dphi, dphi, q1, q2, c), abs=1e-9)


def test_linear_correlation_map_is_the_covariance_map():
    """phi(x) = x: q12' = sigma_w2 q12 + sigma_b2 for any xi (E phi = 0), written out."""
    g = GaussianIntegrator(ACTIVATIONS["linear"])
    for q1, q2, q12, xi in ((1.0, 2.0, 0.5, 1.0), (0.3, 4.0, -0.9, 0.2)):
        got = correlation_map(g, q1, q2, q12, 1.3, 0.2, xi)
        assert float(got) == pytest.approx(1.3 * q12 + 0.2, abs=1e-12)


def test_grid_and_critical_tables_flatten_by_hand_built_inputs():
    t = lambda *v: torch.tensor(v, dtype=T)  # noqa: E731
    grid = MeanFieldGrid(
        sigma_w2=t(1.0, 2.0),
        sigma_b2=t(0.1, 0.2),
        xi=t(1.0, 0.5),
        q_star=t(0.3, math.inf),
        q_status=torch.tensor([0, 1]),
        c_star=t(1.0, math.nan),
        c_status=torch.tensor([3, 4]),
        chi1=t(0.7, 1.1),
        a_q=t(0.6, 1.2),
        chi_c=t(0.5, 0.9),
        depth_scale_q=t(2.0, math.inf),
        depth_scale_c=t(1.5, 9.0),
        lambda_mf=t(-0.2, 0.05),
    )
    df = grid_table("tanh", grid)
    expected = pd.DataFrame(
        {
            "activation": ["tanh", "tanh"],
            "sigma_w2": [1.0, 2.0],
            "sigma_b2": [0.1, 0.2],
            "xi": [1.0, 0.5],
            "q_star": [0.3, math.inf],
            "c_star": [1.0, math.nan],
            "chi1": [0.7, 1.1],
            "a_q": [0.6, 1.2],
            "chi_c": [0.5, 0.9],
            "depth_scale_q": [2.0, math.inf],
            "depth_scale_c": [1.5, 9.0],
            "lambda_mf": [-0.2, 0.05],
            "q_status": ["converged", "diverged"],
            "c_status": ["unstable", "degenerate"],
        }
    )
    pd.testing.assert_frame_equal(df, expected)
    cl = CriticalLine(
        sigma_b2=t(0.0, 0.5),
        sigma_w2_crit=t(1.0, math.nan),
        q_star=t(0.0, 2.0),
        q_status=torch.tensor([0, 2]),
        found=torch.tensor([True, False]),
    )
    expected = pd.DataFrame(
        {
            "activation": ["erf", "erf"],
            "sigma_b2": [0.0, 0.5],
            "sigma_w2_crit": [1.0, math.nan],
            "q_star": [0.0, 2.0],
            "q_status": ["converged", "max_iter"],
            "found": [True, False],
        }
    )
    pd.testing.assert_frame_equal(critical_table("erf", cl), expected)
    assert finite_or_none(2.5) == 2.5 and isinstance(finite_or_none(np.float64(1.0)), float)
    assert finite_or_none(math.nan) is None and finite_or_none(math.inf) is None and finite_or_none(-math.inf) is None


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
def test_gelu_prediction_rows_use_their_xi_and_key(xi):
    """predictions() at xi (default 1) for GELU, whose q* depends on xi: each row against quad for its key.

    Effect guarded: a dropped or wrong xi shifts q* by 0.02-0.1 here. Tolerance 1e-8 relative.
    """
    sw, sb, depth = np.array([1.5, 0.9, 1.2]), 0.1, 4
    kw = {} if xi is None else {"xi": xi}
    x = 1.0 if xi is None else xi
    table, _ = predictions("gelu", torch.tensor(sw, dtype=T), sb, depth, **kw)
    for _, row in table.iterrows():
        s = float(row.sigma_w2)
        q = q_star_quad_xi("gelu", s, sb, x)
        assert row.q_star == pytest.approx(q, rel=1e-8)
        assert row.chi1 == pytest.approx(chi1_quad("gelu", s, q), rel=1e-8)
        q_l = 1.0
        for _ in range(depth):
            q_l = variance_map_quad("gelu", q_l, s, sb, x)
        assert row.q_L_theory == pytest.approx(q_l, rel=1e-9)


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


def test_relu_kernels_clamp_rounded_correlations_to_plus_minus_one():
    """c = +-(1 + 1e-12) (rounding at c* -> 1) gives the c = +-1 values, by hand: k1 = sqrt(q1 q2)/2 or 0,
    k0 = 1/2 or 0, never NaN."""
    act = ACTIVATIONS["relu"]
    q1, q2 = torch.tensor(0.5, dtype=T), torch.tensor(2.0, dtype=T)
    up, down = torch.tensor(1 + 1e-12, dtype=T), torch.tensor(-1 - 1e-12, dtype=T)
    assert float(act.kernel(q1, q2, up)) == pytest.approx(0.5, abs=1e-12)  # sqrt(0.5 * 2) / 2
    assert float(act.kernel(q1, q2, down)) == pytest.approx(0.0, abs=1e-12)
    assert float(act.grad_kernel(q1, q2, up)) == pytest.approx(0.5, abs=1e-12)
    assert float(act.grad_kernel(q1, q2, down)) == pytest.approx(0.0, abs=1e-12)


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


def test_relu_exact_finite_width_exponent_by_explicit_binomial_sums():
    """lambda_N = 0.5 [ln(2 sigma_w2 / N) + E_k psi(k/2)], k ~ Bin(N, 1/2) given k >= 1, summed by hand."""
    from scipy.special import digamma

    for n, sw in ((1, 2.0), (2, 1.5), (5, 3.0)):
        weights = [math.comb(n, k) for k in range(1, n + 1)]
        e_psi = sum(w * digamma(k / 2) for w, k in zip(weights, range(1, n + 1))) / sum(weights)
        assert relu_lyapunov_exact(n, sw) == pytest.approx(0.5 * (math.log(2 * sw / n) + e_psi), abs=1e-13)


def test_predictions_refuse_a_grid_with_a_repeated_key():
    """A repeated sigma_w2 would make the key join ambiguous (a 2 x 2 cross product of rows): refused."""
    with pytest.raises(pd.errors.MergeError):
        predictions("tanh", [1.5, 2.0, 1.5], 0.05, 3)


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
