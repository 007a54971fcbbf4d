"""Linear stochastic sector theory (pipeline/theory/field.py) against closed forms and the exact chain operator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.theory.field import ar1_spectrum, correlation_mode, k_derivatives, length_mode
from pipeline.theory.field_exact import exact_chain, kesten_tail_exponent
from pipeline.theory.quadrature import gauss_rule


def test_k_derivatives_of_a_polynomial():
    """f(h) = h^4 + h^2 at variance K: <f> = 3K^2 + K, then 6K + 1, 6, 0 (catches a wrong He_2n weight)."""
    rule, K = gauss_rule(200), 0.7
    h = math.sqrt(K) * rule.z
    got = k_derivatives(h**4 + h**2, K, rule.z, rule.w, 3)
    assert got == pytest.approx([3 * K**2 + K, 6 * K + 1, 6.0, 0.0], abs=1e-11)


def test_linear_activation_closed_forms():
    """phi(h) = h: F affine (c1 = 0), Sigma = 2 sw^2 K^2, Sigma' = 4 sw^2 K, kappa3 = 8 sw^3 K^3 (chi-square)."""
    sw, sb = 0.6, 0.2
    lm = length_mode("linear", sw, sb)
    K = sb / (1 - sw)
    assert lm.K == pytest.approx(K, rel=1e-12) and lm.chi == pytest.approx(sw, rel=1e-12)
    assert lm.sigma == pytest.approx(2 * sw**2 * K**2, rel=1e-10)
    assert lm.sigma_prime == pytest.approx(4 * sw**2 * K, rel=1e-10)
    assert lm.kappa3 == pytest.approx(8 * sw**3 * K**3, rel=1e-10)
    assert lm.c1 == pytest.approx(0.0, abs=1e-10)
    assert lm.plateau == pytest.approx(2 * sw**2 * K**2 / (1 - sw) ** 2, rel=1e-10)


@pytest.mark.parametrize("xi", [0.0, 0.5, 2.0])
def test_gauge_shift_is_exact_for_homogeneous_activations(xi):
    """E[G'|G] = F_xi(G) + sw (xi - 1) Var phi / N is affine in G for ReLU:
    rho_N = A_q(xi) + sw (xi - 1)(1/2 - 1/(2 pi))/N."""
    sw, sb = 1.0, 0.1
    lm = length_mode("relu", sw, sb, xi)
    a_q = sw * (math.pi - 1 + xi) / (2 * math.pi)  # docs/science.md §4
    assert lm.chi == pytest.approx(a_q, rel=1e-10)
    assert lm.K == pytest.approx(sb / (1 - a_q), rel=1e-8)
    assert lm.c1 == pytest.approx(sw * (xi - 1) * (0.5 - 0.5 / math.pi), rel=1e-5, abs=1e-6)  # kinked phi: quadrature
    assert lm.mass == pytest.approx(-math.log(a_q), rel=1e-10)


def test_erf_map_derivatives_match_the_arcsine_closed_form():
    """F(K) = sb + sw (2/pi) arcsin(2K/(1+2K)) for erf: chi, F'', F''' by autograd of the closed form."""
    sw, sb = 1.5, 0.05
    lm = length_mode("erf", sw, sb)
    K = torch.tensor(lm.K, dtype=torch.float64, requires_grad=True)
    F = sb + sw * (2 / math.pi) * torch.asin(2 * K / (1 + 2 * K))
    (d1,) = torch.autograd.grad(F, K, create_graph=True)
    (d2,) = torch.autograd.grad(d1, K, create_graph=True)
    (d3,) = torch.autograd.grad(d2, K)
    assert float(F.detach()) == pytest.approx(lm.K, rel=1e-10)
    assert (lm.chi, lm.f2, lm.f3) == pytest.approx((float(d1), float(d2), float(d3)), rel=1e-8)


def test_tanh_section7_point():
    """docs/science.md §7b: K* = 0.41804, chi_par = 0.55198, v1 = 0.182, mu1 = -0.180, N (rho_N - chi) = 0.126."""
    lm = length_mode("tanh", 1.5, 0.05)
    assert (lm.K, lm.chi) == pytest.approx((0.41804, 0.55198), abs=1e-5)
    assert (lm.v1, lm.mu1, lm.c1) == pytest.approx((0.1821, -0.1804, 0.1262), abs=2e-4)


def test_exact_operator_confirms_the_one_loop_moments():
    """The transition operator at N = 64 (no sampling) against v1, mu1, s3 and the plateau of the 1/N theory."""
    lm = length_mode("tanh", 1.5, 0.05)
    ex = exact_chain("tanh", 1.5, 0.05, 64, n_nodes=64, n_bins=512)
    assert ex.mass_loss < 1e-5
    for got, want in ((ex.var, lm.v1), (ex.mean_shift, lm.mu1), (ex.skew, lm.s3), (ex.plateau, lm.plateau)):
        assert got == pytest.approx(want, rel=0.02)  # O(1/N) = 1.6% corrections; the effects are O(1)


def test_exact_operator_confirms_the_dressed_multiplier():
    """N (rho_N - chi) at N = 64 and 128 extrapolated as c + d/N: c within 0.003 of the formula (0.126).

    Without the third-moment term the formula would give 0.393, without F''' or mu1 terms it is off by > 0.1."""
    lm = length_mode("tanh", 1.5, 0.05)
    c = [n * (exact_chain("tanh", 1.5, 0.05, n, n_nodes=64, n_bins=256).rho - lm.chi) for n in (64, 128)]
    c_inf = 2 * c[1] - c[0]
    assert c_inf == pytest.approx(lm.c1, abs=3e-3)


def test_correlation_mass_vanishes_at_the_edge_of_chaos():
    """tanh, sb = 0.05: chi_c(c*) -> 1 as sigma_w2 -> 1.76095+ (the critical line), mass increasing away from it."""
    masses = [correlation_mode("tanh", sw, 0.05).mass for sw in (1.77, 1.9, 2.3)]
    assert 0 < masses[0] < 0.01 and masses[0] < masses[1] < masses[2]
    with pytest.raises(ValueError, match="ordered phase"):
        correlation_mode("tanh", 1.5, 0.05)


def test_ar1_spectrum_plateau_and_shape():
    s = ar1_spectrum(np.array([0.0, math.pi]), 0.5, 2.0)
    assert s.tolist() == pytest.approx([2.0 / 0.25, 2.0 / 2.25])


def test_length_mode_rejects_a_non_stationary_point():
    with pytest.raises(ValueError, match="no finite q"):
        length_mode("relu", 3.0, 0.1)


def _relu_log_moment_xi1(kappa: float, sw: float, n: int) -> float:
    """ln E X^kappa for ReLU at xi = 1, exactly: X = (sw/N) chi^2_B with B ~ Binomial(N, 1/2) units on."""
    terms = [math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(n - b + 1) - n * math.log(2)
             + kappa * math.log(2 * sw / n) + math.lgamma(b / 2 + kappa) - math.lgamma(b / 2)
             for b in range(1, n + 1)]  # fmt: skip
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


@pytest.mark.parametrize("sw,n", [(1.5, 16), (1.9, 64), (1.9, 256)])
def test_kesten_tail_exponent_matches_the_exact_relu_mixture(sw, n):
    """E X^kappa = 1 by the binomial-chi-square mixture (a root by bisection, another path than the Monte Carlo);
    the Monte Carlo over 2^17 draws is within 3% (its error near kappa = 2-7 is ~1%)."""
    lo, hi = 0.5, 50.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _relu_log_moment_xi1(mid, sw, n) < 0 else (lo, mid)
    assert kesten_tail_exponent("relu", sw, 1.0, n) == pytest.approx(lo, rel=0.03)


def test_kesten_tail_exponent_is_two_where_the_gauge_chain_loses_its_variance():
    """At xi = 1.8 the sigma_w2 with E X^2 = 1 has kappa = 2 (the xi term checked: X = sigma_w2 [mean r^2 + (xi - 1)
    (mean r)^2], E X^2 here from 2^20 numpy draws of the definition, ~0.2% relative); bounded activations: inf."""
    n, xi = 64, 1.8
    r = np.maximum(np.random.default_rng(5).standard_normal((1 << 20, n)), 0.0)
    y = (r * r).mean(1) + (xi - 1) * r.mean(1) ** 2
    sw = float(np.mean(y * y)) ** -0.5
    assert kesten_tail_exponent("relu", sw, xi, n) == pytest.approx(2.0, rel=0.02)
    assert kesten_tail_exponent("tanh", 1.5, 1.0, n) == math.inf
