"""One-loop finite-width theory (docs/science.md §6) against independent references.

References: closed forms (ReLU, linear), the exact bias-free ReLU exponent (docs/science.md §2), finite
differences of the mean-field variance map, and Monte Carlo of random networks written here
(explicit weight matrices, or the exact per-layer law of (W phi, W u)), never the recursions.
Each science test states the size of the effect and why its tolerance is well below it.

The last part (from the mutation-testing gaps of docs/mutation.md) checks every output against reference
moments by a fine NumPy trapezoid in z on [-14, 14] (20,001 nodes, weights exp(-z^2/2) normalised; agrees with
scipy quad to 3e-16 for tanh^2 (z^4 - 6 z^2 + 3) and sech^8 at K = 0.3..6) and the formulas of docs/science.md §6
written out once more (layer loop, fixed point), q* by Brent's method; closed forms: ReLU (chi1 = s/2, c1 = -5/4,
K-independent), the linearised tanh network at q* = 0 (c1 = -1/2). The module's own moments agree with the
reference to ~1e-11 relative; checks at 1e-8 relative (1e-10 absolute); the mutants change values by >= 1e-4
relative or change shapes, statuses, NaNs or column names.
"""

import math

import numpy as np
import pytest
import torch
from scipy import optimize
from scipy.special import erf

from pipeline.activations import get_activation
from pipeline.dynamics import ensemble, statistics
from pipeline.theory import one_loop as ol
from pipeline.theory.finite_width import relu_lyapunov_exact
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import variance_map
from pipeline.theory.one_loop import common, crossing, moments, recursion
from pipeline.theory.quadrature import one_thread

T = torch.float64
SB = 0.05


# ---------------------------------------------------------------------------------------------
# Monte Carlo of random networks (independent of the recursions)
# ---------------------------------------------------------------------------------------------
def network_q(name, width, depth, n, sigma_w2, sigma_b2, q0=1.0, seed=0):
    """q_hat^l and G^l (= E[q_hat^l | layer l-1]) of n explicit random networks, shape (n, L+1).

    h^0: uniform direction with |h^0|^2 = N q0 (the engine's input); h^{l+1} = W phi(h^l) + b.
    """
    act = get_activation(name)
    gen = torch.Generator().manual_seed(seed)
    chunk = max(1, int(4e7 // (width * width)))
    qs, gs = [], []
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        h = torch.randn(m, width, dtype=T, generator=gen)
        h = h / h.norm(dim=1, keepdim=True) * math.sqrt(width * q0)
        q, g = [h.pow(2).mean(1)], [torch.full((m,), q0, dtype=T)]
        for _ in range(depth):
            p = act.phi(h)
            g.append(sigma_w2 * p.pow(2).mean(1) + sigma_b2)
            W = torch.randn(m, width, width, dtype=T, generator=gen) * math.sqrt(sigma_w2 / width)
            h = torch.bmm(W, p.unsqueeze(-1)).squeeze(-1) + math.sqrt(sigma_b2) * torch.randn(
                m, width, dtype=T, generator=gen
            )
            q.append(h.pow(2).mean(1))
        qs.append(torch.stack(q, 1))
        gs.append(torch.stack(g, 1))
    return torch.cat(qs), torch.cat(gs)


def var_and_se(x):
    """Sample variance along axis 0 and its standard error sqrt((mu4 - var^2)/n)."""
    c = x - x.mean(0)
    var = x.var(0)
    return var, (((c**4).mean(0) - var**2).clamp_min(0) / x.shape[0]).sqrt()


def tangent_growth(name, width, depth, burn_in, n, sigma_w2, sigma_b2, explicit=False, decorrelate=False, seed=0):
    """Per-network mean over transitions burn_in..L-1 of ln(||t^{l+1}|| / ||t^l||), shape (n,).

    The tangent t^{l+1} = W (phi'(h^l) t^l) uses the same W as h^{l+1} = W phi(h^l) + b. With
    explicit=False, (W phi, W u) is drawn from its exact joint Gaussian law given layer l (2N
    normals instead of N^2: the same random network, in law). decorrelate=True zeroes their
    covariance (the spec's assumption), to show what the correlation term does.
    """
    act = get_activation(name)
    gen = torch.Generator().manual_seed(seed)
    chunk = max(1, int((4e7 if not explicit else 2e7) // (width * (1 if not explicit else width))))
    out = []
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        h = torch.randn(m, width, dtype=T, generator=gen)
        h = h / h.norm(dim=1, keepdim=True) * math.sqrt(width)
        t = torch.randn(m, width, dtype=T, generator=gen)
        t = t / t.norm(dim=1, keepdim=True)
        acc = torch.zeros(m, dtype=T)
        for layer in range(depth):
            p, u = act.phi(h), act.dphi(h) * t
            if explicit:
                W = torch.randn(m, width, width, dtype=T, generator=gen) * math.sqrt(sigma_w2 / width)
                a, c = torch.bmm(W, torch.stack([p, u], -1)).unbind(-1)
            else:
                pp, pu, uu = ((x * y).sum(1, keepdim=True) for x, y in ((p, p), (p, u), (u, u)))
                if decorrelate:
                    pu = torch.zeros_like(pu)
                a = (sigma_w2 * pp / width).sqrt() * torch.randn(m, width, dtype=T, generator=gen)
                resid = (sigma_w2 / width * (uu - pu * pu / pp)).clamp_min(0).sqrt()
                c = pu / pp * a + resid * torch.randn(m, width, dtype=T, generator=gen)
            h = a + math.sqrt(sigma_b2) * torch.randn(m, width, dtype=T, generator=gen)
            norm = c.norm(dim=1, keepdim=True)
            if layer >= burn_in:
                acc += norm.squeeze(1).log()
            t = c / norm
        out.append(acc / (depth - burn_in))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# ReLU: coefficient, exact formula, crossing
# ---------------------------------------------------------------------------------------------
def test_relu_coefficient_is_minus_five_quarters():
    # closed form: m4/m2^2 = (1/2)/(1/4) = 2 and ln chi1 = ln(s/2) has no K dependence, so
    # c1 = -(3*2 - 1)/4 = -5/4 at every (sigma_w2, sigma_b2), including q* = 0 or infinite
    sw = torch.linspace(0.5, 4.0, 15, dtype=T)
    for sb in (0.0, 0.3):
        c1 = ol.lambda_coeff_1overN("relu", sw, sb)
        assert (c1 + 1.25).abs().max() < 1e-6, (sb, c1)
        m = ol.layer_moments("relu", torch.tensor([0.3, 1.0, 7.0], dtype=T))
        assert torch.allclose(m.m4 / m.m2**2, torch.full((3,), 2.0, dtype=T), atol=1e-12)


def test_relu_exact_formula_at_4096_is_one_loop_plus_order_inverse_n_squared():
    # Expanding E psi(k/2), k ~ Bin(N, 1/2) (E e^2 = 1/N, E e^4 = (3N-2)/N^3 for k = N/2 (1+e)):
    # lambda_N = 0.5 ln(s/2) - 5/(4N) - 49/(24 N^2) + O(N^-3). The 1/N term is 3e-4 at N = 4096;
    # the residual times N^2 must be -49/24 up to O(1/N) = c3/N with |c3| ~ 6 (seen at N = 512..8192),
    # i.e. within 6/4096 = 0.0015; roundoff (1e-15 in lambda) contributes 2e-8. Tolerance 0.003.
    N = 4096
    for s in (1.0, 2.0, 3.7):
        res = relu_lyapunov_exact(N, s) - (0.5 * math.log(s / 2) - 5 / (4 * N))
        assert abs(res * N * N + 49 / 24) < 0.003, (s, res * N * N)


def test_relu_fit_of_exact_formula_has_intercept_minus_five_quarters():
    # y(N) = N (exact - mean field) = -5/4 - (49/24)/N + c3/N^2, c3 ~ -6. A straight-line fit in x = 1/N
    # over N = 512..8192 has intercept bias c3 * a2, where a2 is the fitted intercept of x^2 itself
    # (computed below: about -3.3e-7, so the bias is ~2e-6, above the brief's 1e-6: the honest
    # tolerance is 1.5 |c3| |a2| + roundoff). A quadratic fit removes it down to O(N^-3) ~ 1e-9.
    Ns = np.array([512, 1024, 2048, 4096, 8192])
    x = 1.0 / Ns
    y = np.array([n * (relu_lyapunov_exact(int(n), 1.3) - 0.5 * math.log(1.3 / 2)) for n in Ns])
    A = np.stack([np.ones_like(x), x], 1)
    a2 = np.linalg.lstsq(A, x**2, rcond=None)[0][0]
    intercept = np.linalg.lstsq(A, y, rcond=None)[0][0]
    tol = 1.5 * 6.0 * abs(a2) + 1e-10
    assert abs(intercept + 1.25) < tol, (intercept + 1.25, tol)
    quad = np.polyfit(x, y, 2)[-1]
    assert abs(quad + 1.25) < 1e-8, quad + 1.25


def test_relu_one_loop_crossing_matches_exact_root():
    # exact root s* = exp(-2 lambda_N(1)) = 2 exp(5/(2N) + 49/(12 N^2) + ...); one loop drops the
    # 1/N^2 term, so one_loop - exact = -2 * 49/(12 N^2) + O(N^-3): 0.008 at N = 32, against a 1/N
    # shift of 0.16. Tolerance on the difference: 25% of the predicted 1/N^2 gap (the next orders,
    # exp(5/(2N)) - 1 and 12/N^3 in the exponent, are 8% + 9% of it at N = 32).
    widths = [32, 64, 256]
    df = ol.crossing_table("relu", [0.0], widths)
    for _, row in df.iterrows():
        n = row.width
        assert abs(row.crossing_mean_field - 2.0) < 1e-8
        assert abs(row.crossing_one_loop - 2 * math.exp(5 / (2 * n))) < 1e-8
        gap = row.crossing_one_loop - row.crossing_exact
        assert abs(gap + 49 / (6 * n * n)) < 0.25 * 49 / (6 * n * n), (n, gap)
        assert row.status == "ok"
    assert list(df.columns[:8]) == [
        "activation",
        "sigma_b2",
        "width",
        "crossing_mean_field",
        "crossing_one_loop",
        "crossing_one_loop_spec",
        "crossing_annealed",
        "crossing_exact",
    ]


# ---------------------------------------------------------------------------------------------
# Moments and fixed points
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "swish", "relu", "linear"])
def test_chi_par_is_the_slope_of_the_mean_field_variance_map(name):
    # central difference of mean_field.variance_map with step h = 1e-4 K: truncation error
    # h^2 |q'''|/6 ~ 1e-9, roundoff 1e-16/h ~ 1e-12; chi_par is O(1), so 1e-7 is far below it
    g = GaussianIntegrator(get_activation(name))
    K = torch.tensor([0.02, 0.3, 1.0, 4.0], dtype=T)
    sw = torch.tensor([0.9, 1.5, 2.0, 1.2], dtype=T)
    h = 1e-4 * K
    fd = (variance_map(g, K + h, sw, SB) - variance_map(g, K - h, sw, SB)) / (2 * h)
    m = ol.layer_moments(name, K)
    assert (sw * m.dphi2 - fd).abs().max() < 1e-7
    # and the second derivative against a finite difference of the first (closed-form check for relu/linear: 0)
    fd2 = (ol.layer_moments(name, K + h).dphi2 - ol.layer_moments(name, K - h).dphi2) / (2 * h)
    assert (m.d2phi2 - fd2).abs().max() < 1e-6


def test_moments_converged_against_twice_the_nodes():
    K = torch.tensor([1e-3, 0.2, 1.5, 12.0], dtype=T)
    for name in ("tanh", "erf", "gelu", "swish"):
        n = moments._rule_for(name, None).n
        a, b = ol.layer_moments(name, K), ol.layer_moments(name, K, n_nodes=2 * n)
        for f in ("phi2", "phi4", "dphi2", "d2phi2", "m2", "m4", "dm2", "d2m2", "phi2_dphi2"):
            x, y = getattr(a, f), getattr(b, f)
            assert ((x - y).abs() / (1 + y.abs())).max() < 1e-9, (name, f)


@pytest.mark.parametrize(
    "name,sw",
    [("tanh", [1.2, 1.8, 2.6]), ("erf", [1.0, 1.5, 2.5]), ("gelu", [1.0, 1.5, 1.8]), ("swish", [1.2, 1.6, 1.8])],
)
def test_fixed_points_equal_the_recursion_iterated_to_convergence(name, sw):
    # The recursions contract with chi_par^2, chi_par and chi_par^2/chi1 (all <= 0.8 here): 300 layers
    # leave < 1e-29 of the initial condition; the values are O(0.01-10), compared to 1e-9 relative.
    fp = ol.fixed_point(name, sw, SB)
    assert all(s in ("ok",) for s in fp.status), fp.status
    rec = ol.layer_recursion(name, sw, SB, depth=300)
    for mine, deep in (
        (fp.q_star, rec.K[:, -1]),
        (fp.V_star, rec.V[:, -1]),
        (fp.K1_star, rec.K1[:, -1]),
        (fp.R_star, rec.R[:, -1]),
        (fp.c1, rec.c1[:, -1]),
        (fp.c1_spec, rec.c1_spec[:, -1]),
        (fp.chi1_1overN, rec.chi1_1overN[:, -1]),
    ):
        assert torch.allclose(mine, deep, rtol=1e-9, atol=1e-12), (name, mine, deep)


def test_linear_activation_closed_forms():
    # phi(x) = x: <phi^2> = K, Var(phi^2) = 2K^2, chi_par = chi1 = s, <phi^2>'' = 0. So
    # K^l = s^l q0 + sb (1 - s^l)/(1 - s), K1 = 0, V^l = 2 s^2 sum_{j<l} s^{2(l-1-j)} (K^j)^2 + s^{2l} V^0;
    # with the fixed-norm input V^0 = -2 q0^2 and at sb = 0 this is V^l = 2 (l-1) (K^l)^2 (q_hat^l is
    # K^l times a product of l-1 independent chi^2_N/N factors after the deterministic G^1: its variance
    # is 2 l (K^l)^2 / N). Fixed point: V* = 2 s^2 K*^2/(1 - s^2), c1 = -(3 - 1)/4 = -1/2, which is the
    # 1/N term of the exact linear exponent 0.5 [ln(2 s/N) + psi(N/2)].
    s = torch.tensor([0.5, 0.8, 0.95], dtype=T)
    L, q0 = 12, 1.3
    for sb in (0.0, 0.2):
        rec = ol.layer_recursion("linear", s, sb, depth=L, q0=q0)
        l = torch.arange(L + 1, dtype=T)
        K = s[:, None] ** l * q0 + sb * (1 - s[:, None] ** l) / (1 - s[:, None])
        V = torch.zeros_like(K)
        V[:, 0] = -2 * q0**2
        for j in range(L):
            V[:, j + 1] = 2 * s**2 * K[:, j] ** 2 + s**2 * V[:, j]
        assert torch.allclose(rec.K, K, rtol=1e-12)
        assert torch.allclose(rec.V, V, rtol=1e-10, atol=1e-12)
        assert rec.K1.abs().max() < 1e-12
        if sb == 0.0:
            assert torch.allclose(rec.V, 2 * (l - 1) * K**2, rtol=1e-10, atol=1e-12)
    sb = 0.2
    fp = ol.fixed_point("linear", s, sb)
    Ks = sb / (1 - s)
    assert torch.allclose(fp.q_star, Ks, rtol=1e-10)
    assert torch.allclose(fp.V_star, 2 * s**2 * Ks**2 / (1 - s**2), rtol=1e-9)
    assert torch.allclose(fp.c1, torch.full_like(s, -0.5), atol=1e-12)
    from scipy.special import digamma

    for n in (1024, 4096):
        exact = 0.5 * (math.log(2 * 0.8 / n) + digamma(n / 2))
        assert abs(n * (exact - 0.5 * math.log(0.8)) + 0.5) < 2.0 / n  # next order is O(1/N)


# ---------------------------------------------------------------------------------------------
# Recursions against Monte Carlo of explicit networks
# ---------------------------------------------------------------------------------------------
def test_first_layer_variance_needs_the_fixed_norm_input_correction():
    # tanh, s = 1.8, sb = 0.05, q0 = 1: layer 1 has N Var(q_hat^1) = V^1 + 2K^2 = 1.256 with
    # V^1 = s^2 [Var(phi^2) - 2 q0^2 <phi^2>'^2] = 0.102 (correction 1); the brief's V^1 = 0 gives 1.154,
    # the spec's Gaussian-input V^1 = s^2 Var(phi^2) gives 1.470. n = 20000 networks at N = 64: the SE
    # of N Var is ~0.013 (1%), so 4 SE = 0.05 resolves the 0.10 gap; the O(1/N) residual measured with
    # 2e6 exact-law networks is +0.018 at N = 64 (+0.009 at N = 128), added to the tolerance.
    N, n = 64, 20000
    q, _ = network_q("tanh", N, 1, n, 1.8, SB, seed=1)
    var, se = var_and_se(q[:, 1])
    rec = ol.layer_recursion("tanh", [1.8], SB, depth=1)
    pred = float(rec.V[0, 1] + 2 * rec.K[0, 1] ** 2)
    tol = 4 * N * se + 0.018
    assert abs(N * var - pred) < tol, (N * var, pred, N * se)
    assert abs(N * var - float(2 * rec.K[0, 1] ** 2)) > tol  # V^1 = 0 is rejected
    gauss = ol.layer_recursion("tanh", [1.8], SB, depth=1, input_law="gaussian")
    assert abs(N * var - float(gauss.V[0, 1] + 2 * gauss.K[0, 1] ** 2)) > tol


@pytest.mark.parametrize(
    "name,sw,N,depth,n,allowance",
    [
        # allowance = the O(1/N) residual of N Var seen with 1e6-2e6 exact-law networks (relative):
        # tanh N = 64 up to 1.5%, gelu N = 128 at layer 2: 2.1%
        ("tanh", 1.8, 64, 6, 6000, 0.015),
        ("gelu", 2.5, 128, 2, 3000, 0.021),
    ],
)
def test_q_hat_variance_matches_vertex_recursion(name, sw, N, depth, n, allowance):
    # effect: V is 31% of N Var(q_hat^6) for tanh (V = 0.32 vs 2K^2 = 0.72) and 83% at layer 2 for
    # gelu (V = 15.0 vs 2K^2 = 3.1); the tolerance is 4 SE (SE from the sample fourth moment, ~2-6%)
    # plus the O(1/N) allowance, well below the effect
    q, _ = network_q(name, N, depth, n, sw, SB, seed=2)
    rec = ol.layer_recursion(name, [sw], SB, depth=depth)
    var, se = var_and_se(q)
    pred = rec.V[0] + 2 * rec.K[0] ** 2
    for l in range(1, depth + 1):
        tol = 4 * N * se[l] + allowance * pred[l]
        assert abs(N * var[l] - pred[l]) < tol, (l, N * var[l], pred[l], tol)
        if l >= 2:  # the vertex itself is resolved (layer 1 has its own test above)
            assert rec.V[0, l] > tol, (l, rec.V[0, l], tol)
    l = depth
    assert abs(N * var[l] - 2 * rec.K[0, l] ** 2) > 4 * N * se[l] + allowance * pred[l]


@pytest.mark.parametrize("name,sw", [("tanh", 1.8), ("erf", 1.5)])
def test_mean_shift_matches_k1_recursion(name, sw):
    # Effect: K1^l = +0.30 at layer 1 (the fixed-norm input's sphere correction) then -0.04..-0.19 for
    # tanh (erf: +0.30 .. -0.11), i.e. N (E q_hat - K). Estimator: G^l = E[q_hat^l | layer l-1] from
    # the same explicit networks (Rao-Blackwell: variance V/N instead of (V + 2K^2)/N). 25000 networks
    # at N = 32 give SE(N (E G - K)) ~ 0.01 (layer 1) to 0.02 (layer 4); tolerance 4 SE plus the O(1/N)
    # residual, <= 0.01 at N = 32 in 2e6 exact-law networks (tanh). Resolved: |K1| > 4 SE at layers 1, 4.
    # The spec's Gaussian-input K1 (no sphere term, K1^1 = 0) is off by 0.25-0.3 at layer 1.
    N, n, L = 32, 25000, 4
    _, G = network_q(name, N, L, n, sw, SB, seed=3)
    rec = ol.layer_recursion(name, [sw], SB, depth=L)
    shift = N * (G.mean(0) - rec.K[0])
    se = N * G.std(0) / math.sqrt(n)
    for l in range(1, L + 1):
        assert abs(shift[l] - rec.K1[0, l]) < 4 * se[l] + 0.01, (l, shift[l], rec.K1[0, l], se[l])
    assert rec.K1[0, 1].abs() > 4 * se[1] + 0.01 and rec.K1[0, L].abs() > 4 * se[L] + 0.01
    gauss = ol.layer_recursion(name, [sw], SB, depth=L, input_law="gaussian")
    assert abs(shift[1] - gauss.K1[0, 1]) > 10 * se[1]


# ---------------------------------------------------------------------------------------------
# Lyapunov exponent: the tangent-signal correlation term
# ---------------------------------------------------------------------------------------------
def test_typical_exponent_needs_the_tangent_signal_correlation_term():
    # tanh, s = 1.8, sb = 0.05, N = 64, depth 30, burn-in 10. N (lambda - lambda_MF): one loop with the
    # correlation term -0.849, spec formula -0.652: the term is -0.197, i.e. 0.0031 in lambda. With
    # 5000 networks the SE of N (mean log growth) is ~0.025, so 4 SE = 0.10 resolves it; the O(1/N)
    # residual at N = 64 is < 0.02 (2e4 networks gave -0.849 +- 0.013). Decorrelating (W phi, W u) by
    # hand reproduces the spec's formula, which locates the missing term.
    N, L, b, n, sw = 64, 30, 10, 5000, 1.8
    rec = ol.layer_recursion("tanh", [sw], SB, depth=L)
    lmf = float(0.5 * torch.log(rec.chi1[0, b:L]).mean())
    full = float(rec.lambda_average(N, b)[0])
    spec = float(rec.lambda_average(N, b, include_correlation=False)[0])
    for decorrelate, target, other in ((False, full, spec), (True, spec, full)):
        g = tangent_growth("tanh", N, L, b, n, sw, SB, decorrelate=decorrelate, seed=4 + decorrelate)
        mean, se = float(g.mean()), float(g.std() / math.sqrt(n))
        assert abs(N * (mean - target)) < 4 * N * se + 0.02, (decorrelate, N * (mean - lmf), N * (target - lmf))
        assert abs(N * (mean - other)) > 4 * N * se, (decorrelate, N * (mean - lmf), N * (other - lmf))


@pytest.mark.slow
def test_typical_exponent_with_explicit_weight_matrices():
    # same check with explicit N x N matrices (the network itself, not its per-layer law): 4000
    # networks at N = 64, SE ~0.028 in N (lambda - lambda_MF), effect of the correlation term 0.197
    N, L, b, n, sw = 64, 30, 10, 4000, 1.8
    rec = ol.layer_recursion("tanh", [sw], SB, depth=L)
    g = tangent_growth("tanh", N, L, b, n, sw, SB, explicit=True, seed=7)
    mean, se = float(g.mean()), float(g.std() / math.sqrt(n))
    assert abs(N * (mean - float(rec.lambda_average(N, b)[0]))) < 4 * N * se + 0.02
    assert abs(N * (mean - float(rec.lambda_average(N, b, include_correlation=False)[0]))) > 4 * N * se


# ---------------------------------------------------------------------------------------------
# Crossings and tables
# ---------------------------------------------------------------------------------------------
def test_crossing_and_tables_are_consistent():
    # the one-loop root solves 0.5 ln chi1(q*) + c1/N = 0 (checked by evaluating lambda there), moves
    # right of the mean-field root 1.76095 by ~ -c1/(N d lambda/ds) ~ 7.4/N for tanh at sb = 0.05
    cr = ol.one_loop_crossing("tanh", [0.05], [32, 256])
    mf = float(cr.mean_field[0])
    assert abs(mf - 1.76095) < 5e-5
    for j, n in enumerate((32, 256)):
        root = float(cr.one_loop[0, j])
        assert abs(float(ol.lambda_one_loop("tanh", [root], 0.05, n)[0])) < 1e-9
        assert 4 / n < root - mf < 12 / n
        assert cr.status[0, j] == "ok" and float(cr.expansion_parameter[0, j]) < 0.3
    df = ol.one_loop_table("tanh", torch.linspace(1.0, 3.0, 5, dtype=T), 0.05, widths=[64, 128])
    for col in (
        "activation",
        "sigma_w2",
        "sigma_b2",
        "q_star",
        "chi_par",
        "V_star",
        "K1_star",
        "lambda_coeff_1overN",
        "expansion_parameter",
        "status",
        "width",
    ):
        assert col in df.columns
    assert len(df) == 10 and set(df.status) == {"ok"}
    # tanh at sb = 0 just above s = 1 (q* -> 0, V*/K^2 ~ 1/(2 q*)): flagged, not silently trusted
    fp = ol.fixed_point("tanh", torch.tensor([1.01, 1.5], dtype=T), 0.0)
    assert list(fp.status_at(64)) == ["expansion_breakdown", "ok"]
    # homogeneous activations: lambda's kernel terms vanish identically, so no breakdown flag for ReLU
    assert list(ol.fixed_point("relu", torch.tensor([1.99], dtype=T), 0.1).status_at(32)) == ["ok"]


@pytest.mark.slow
def test_engine_exponent_matches_one_loop_with_correlation_term():
    # The batched engine (pipeline.dynamics), tanh, sb = 0.05, N = 64, depth 40, burn-in 10, 2500 seeds:
    # N (lambda_tangent - lambda_MF) has SE ~0.027 per point; the one-loop finite-depth average with
    # the correlation term vs the spec's formula differ by 0.2 (7 SE). 1500 seeds at depth 50 gave
    # agreement to 1 SE at every sigma_w2 in 1.4..2.6 (crossing 1.8966 +- 0.0040 vs 1.8964).
    N, L, b, grid = 64, 40, 10, (1.6, 1.9, 2.2)
    spec = ensemble.EnsembleSpec(
        activation="tanh",
        width=N,
        depth=L,
        sigma_w2=grid,
        sigma_b2=SB,
        n_seeds=2500,
        n_pairs=1,
        q0=1.0,
        c0=0.5,
        eps=1e-6,
        n_spectrum=0,
        seed=0,
        dtype="float64",
        device="cpu",
        memory_budget_gb=2.0,
        xi=1.0,
        weights="gaussian",
    )
    df = statistics.summarize(ensemble.simulate(spec), b)
    rec = ol.layer_recursion("tanh", list(grid), SB, depth=L)
    full = rec.lambda_average(N, b).numpy()
    spec_only = rec.lambda_average(N, b, include_correlation=False).numpy()
    y, se = df["lambda_tangent"].to_numpy(), df["lambda_tangent_se"].to_numpy()
    assert np.all(np.abs(y - full) < 4 * se + 0.02 / N), (N * (y - full), N * se)
    assert np.all(np.abs(y - spec_only) > 4 * se), (N * (y - spec_only), N * se)


# ---------------------------------------------------------------------------------------------
# Depth scaling of the finite-depth recursion (issue 21)
# ---------------------------------------------------------------------------------------------
def _layer_by_layer(name, sw, sb, depth, q0=1.0):
    """The recursion as first written: every moment re-evaluated at every layer for every sigma_w2 (no reuse)."""
    sw = torch.as_tensor(sw, dtype=T)
    K, V, K1, R = torch.full_like(sw, q0), torch.full_like(sw, -2 * q0**2), torch.zeros_like(sw), torch.zeros_like(sw)
    out = {k: [] for k in ("K", "V", "K1", "R", "chi1", "c1")}
    for _ in range(depth + 1):  # (one torch thread: see the next test)
        m = ol.layer_moments(name, K.clamp_min(1e-150))
        chi_par, chi1 = sw * m.dphi2, sw * m.m2
        samp, kern, corr = recursion._c1_terms(m, sw, K1, V, R)
        for k, v in zip(out, (K, V, K1, R, chi1, samp + kern + corr)):
            out[k].append(v)
        Kn = sw * m.phi2 + sb
        V, K1, R = (
            sw**2 * m.var_phi2 + chi_par**2 * V,
            chi_par * K1 + 0.5 * sw * m.d2phi2 * V,
            (chi_par**2 * K * R + sw**2 * m.phi2_dphi2) / (Kn * chi1),
        )
        K = Kn
    return {k: torch.stack(v, 1) for k, v in out.items()}


@pytest.mark.parametrize("sb", [0.0, 0.05])
def test_deep_recursion_reuses_converged_moments_and_keeps_every_number(sb, monkeypatch):
    # Rows whose K stopped moving (sb = 0.05: all of them within ~100 layers; sb = 0: all but the ~40 near
    # s = 1 and the ordered rows once K reaches its 1e-150 floor) reuse their moments. The numbers must not
    # change (the old algorithm re-evaluated every moment: compared at 1e-12 relative, the moments themselves
    # are converged to 1e-11), while the moment work of 240 layers stays within 3x that of 60 layers
    # (re-evaluating every row and layer: 4x; issue 21: depth 1000 took > 15x depth 100 under load).
    grid = torch.linspace(0.2, 6.0, 30, dtype=T)
    rows = []
    real = moments._moments

    def counting(act, K, rule, chunk=4096):
        rows.append(K.numel())
        return real(act, K, rule, chunk)

    monkeypatch.setattr(moments, "_moments", counting)
    ol.layer_recursion("tanh", grid, sb, depth=60)
    work_60, rows[:] = sum(rows), []
    rec = ol.layer_recursion("tanh", grid, sb, depth=240)
    assert sum(rows) < 3 * work_60, (sum(rows), work_60)
    monkeypatch.setattr(moments, "_moments", real)
    with one_thread():
        ref = _layer_by_layer("tanh", grid, sb, 240)
    for k, want in ref.items():
        got = getattr(rec, k)
        assert torch.equal(torch.isfinite(got), torch.isfinite(want)), k
        ok = torch.isfinite(want)
        assert torch.allclose(got[ok], want[ok], rtol=1e-12, atol=1e-300), k


def test_recursion_runs_torch_single_threaded_and_restores_the_thread_count(monkeypatch):
    # Small tensors in a Python loop over layers: split over intra-op threads every operation waits for the
    # others, which on a loaded 2-core machine made a layer 4-15x slower (issue 21, measured 20-65 ms against
    # 1-5 ms per layer). The recursion runs on one thread and gives the caller's setting back.
    seen = []
    real = moments._moments

    def spy(act, K, rule, chunk=4096):
        seen.append(torch.get_num_threads())
        return real(act, K, rule, chunk)

    monkeypatch.setattr(moments, "_moments", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ol.layer_recursion("tanh", [1.5, 2.0], SB, depth=3)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_long_recursion_reports_progress_per_layer(monkeypatch, caplog):
    # a depth-1000 recursion over a fine grid can exceed 30 s under load: it reports through pipeline.progress
    import logging

    monkeypatch.setenv("GINN_PROGRESS_SECONDS", "0")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    caplog.set_level(logging.INFO, logger="ginn.progress")
    ol.layer_recursion("tanh", [1.5, 2.0], SB, depth=3)
    lines = [r.message for r in caplog.records if r.name == "ginn.progress"]
    assert any("one-loop recursion tanh" in s and "1/4" in s for s in lines), lines
    assert lines[-1].endswith("(done)") and "4/4" in lines[-1]


# ---------------------------------------------------------------------------------------------
# Status before number (issue 21): a non-ok row carries NaN in the values its status speaks for
# ---------------------------------------------------------------------------------------------
def test_one_loop_table_rows_that_are_not_ok_carry_no_one_loop_value():
    # tanh at sb = 0: s = 0.5 has the trivial fixed point q* = 0, s = 1.01 breaks the expansion at N = 64
    # (V*/(N K^2) ~ 1/(2 q* N) > 0.3), s = 1.5 is ok. Mean-field columns and the expansion parameter stay.
    sw = torch.tensor([0.5, 1.01, 1.5], dtype=T)
    wide = ol.one_loop_table("tanh", sw, 0.0, widths=[64])
    assert list(wide.status) == ["trivial_fixed_point", "expansion_breakdown", "ok"]
    bad = wide.status == "expansion_breakdown"  # the trivial fixed point's values are the exact K -> 0+ limit
    for col in ol.ONE_LOOP_VALUE_COLUMNS:
        assert wide.loc[bad, col].isna().all() and wide.loc[~bad, col].notna().all(), col
    assert wide[["q_star", "chi1", "lambda_mf", "expansion_parameter"]].notna().all().all()
    assert float(wide.expansion_parameter[1]) > 0.3  # the diagnostic that explains the breakdown is kept
    per_unit = ol.one_loop_table("tanh", sw, 0.0)  # no width: the fixed-point status alone
    assert list(per_unit.status) == ["trivial_fixed_point", "ok", "ok"]
    assert per_unit.lambda_coeff_1overN.notna().all()
    assert abs(per_unit.lambda_coeff_1overN[0] + 0.5) < 1e-5  # the linearized network's c1 = -1/2 stays


def test_crossing_table_no_crossing_and_breakdown_rows_carry_no_one_loop_root():
    # ReLU scanned only up to 2.05: the mean-field root 2 is found, the one-loop root 2 exp(5/(2N)) (2.17 at
    # N = 32) is not, while the annealed root (2 at every N) is: a "no_crossing" row must not carry it.
    df = ol.crossing_table("relu", [0.0], [32], sigma_w2_range=(0.2, 2.05))
    assert list(df.status) == ["no_crossing"]
    assert df[ol.CROSSING_VALUE_COLUMNS].isna().all().all()
    assert abs(float(df.crossing_mean_field[0]) - 2.0) < 1e-8
    assert abs(float(df.crossing_exact[0]) - ol.relu_exact_crossing(32)) < 1e-12  # the exact anchor is kept
    ok = ol.crossing_table("relu", [0.0], [32])
    assert list(ok.status) == ["ok"] and ok[ol.CROSSING_VALUE_COLUMNS].notna().all().all()


def test_finite_depth_crossing_is_flagged_where_the_expansion_breaks_down():
    # gelu near its crossing: K^l runs away from an unstable fixed point, V^l/(N (K^l)^2) reaches ~100 at N = 32
    # and the layer-averaged one-loop "root" (2.16 at depth 50) is noise of a broken expansion; issue 21 found
    # gelu crossings with a non-ok status that still carried a value. tanh at sb = 0.05 stays ok (0.025).
    gelu = ol.finite_depth_crossing("gelu", 0.05, 32, 50, 10)
    assert gelu.status == "expansion_breakdown" and math.isnan(gelu.one_loop) and gelu.expansion_parameter > 1
    assert math.isfinite(gelu.mean_field)  # N -> inf at the same depth: not what the status speaks for
    tanh = ol.finite_depth_crossing("tanh", 0.05, 32, 50, 10)
    assert tanh.status == "ok" and abs(tanh.one_loop - 2.0622) < 2e-3 and tanh.expansion_parameter < 0.05
    none = ol.finite_depth_crossing("tanh", 0.05, 32, 50, 10, sigma_w2_range=(0.2, 1.5))
    assert none.status == "no_crossing" and math.isnan(none.one_loop)


def test_read_only_grids_are_copied_not_shared():
    # a pandas column (copy-on-write) is a read-only array: sharing its memory made torch warn ("not writable",
    # seen in the mlp_sweep stage test) and would let any in-place write reach the caller's data
    grid = np.array([1.5, 2.0])
    grid.flags.writeable = False
    t = common._t(grid)
    t[0] = 9.0
    assert grid[0] == 1.5


# ---------------------------------------------------------------------------------------------
# Every output against reference moments and the §6 recursions written out once more
# ---------------------------------------------------------------------------------------------
Z = np.linspace(-14.0, 14.0, 20001)
W = np.exp(-0.5 * Z * Z) / np.exp(-0.5 * Z * Z).sum()
PHI_NP = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "swish": (lambda x: x / (1 + np.exp(-x)), lambda x: (1 + np.exp(-x) + x * np.exp(-x)) / (1 + np.exp(-x)) ** 2),
    "gelu": (
        lambda x: x * (1 + erf(x / math.sqrt(2))) / 2,
        lambda x: (1 + erf(x / math.sqrt(2))) / 2 + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    ),
}


def trapezoid(n, half=12.5):
    """The §7 rule written out: n nodes (i - (n - 1)/2) 2 half/n, weights exp(-z^2/2) normalised."""
    z = (np.arange(n) - (n - 1) / 2) * (2 * half / n)
    return z, np.exp(-0.5 * z * z) / np.exp(-0.5 * z * z).sum()


def ref_moments(name, K, rule=(Z, W)):
    """Every moment of LayerMoments at variance K, by the reference trapezoid (or `rule`): dict of floats."""
    z, w = rule
    p1, p2_ = (z * z - 1) / 2, (z**4 - 6 * z * z + 3) / 4
    phi, dphi = PHI_NP[name]
    x = math.sqrt(K) * z
    p2, d2 = phi(x) ** 2, dphi(x) ** 2

    def e(f, poly=1.0):
        return float(np.sum(w * f * poly))

    return dict(
        phi2=e(p2), phi4=e(p2 * p2), dphi2=e(p2, p1) / K, d2phi2=e(p2, p2_) / K**2,
        m2=e(d2), m4=e(d2 * d2), dm2=e(d2, p1) / K, d2m2=e(d2, p2_) / K**2, phi2_dphi2=e(p2 * d2),
    )  # fmt: skip


def c1_parts(m, K, K1, V, R):
    """(sampling, kernel, correlation) of c1, docs/science.md §6: ln chi1 derivatives from m2 and its K-derivatives."""
    dlog = m["dm2"] / m["m2"]
    d2log = m["d2m2"] / m["m2"] - dlog * dlog
    return -(3 * m["m4"] / m["m2"] ** 2 - 1) / 4, dlog * K1 / 2 + d2log * V / 4, K * dlog * R


def ref_layers(name, sw, sb, q0, depth, law="fixed_norm", rule=(Z, W)):
    """The §6 recursions layer by layer with reference moments: dict of per-layer lists (l = 0..depth)."""
    K, V, K1, R = q0, (-2 * q0 * q0 if law == "fixed_norm" else 0.0), 0.0, 0.0
    out = {k: [] for k in ("K", "V", "K1", "R", "chi_par", "chi1", "c1", "c1_spec", "chi1_1overN")}
    for _ in range(depth + 1):
        m = ref_moments(name, K, rule)
        chi_par, chi1 = sw * m["dphi2"], sw * m["m2"]
        s, k, c = c1_parts(m, K, K1, V, R)
        for key, v in zip(
            out, (K, V, K1, R, chi_par, chi1, s + k + c, s + k, sw * (m["dm2"] * K1 + m["d2m2"] * V / 2))
        ):
            out[key].append(v)
        Kn = sw * m["phi2"] + sb
        V, K1, R = (
            sw * sw * (m["phi4"] - m["phi2"] ** 2) + chi_par**2 * V,
            chi_par * K1 + sw * m["d2phi2"] * V / 2,
            (chi_par**2 * K * R + sw * sw * m["phi2_dphi2"]) / (Kn * chi1),
        )
        K = Kn
    return out


def ref_fixed_point(name, sw, sb, hi=50.0):
    """q* by brentq on sw <phi^2>_q + sb - q (bracket up to hi), then V*, K1*, R*, the c1 parts and the gain
    coefficient (§6)."""
    q = optimize.brentq(lambda k: sw * ref_moments(name, k)["phi2"] + sb - k, max(sb, 1e-3), hi, xtol=1e-15, rtol=1e-15)
    m = ref_moments(name, q)
    chi_par, chi1 = sw * m["dphi2"], sw * m["m2"]
    V = sw * sw * (m["phi4"] - m["phi2"] ** 2) / (1 - chi_par**2)
    K1 = sw * m["d2phi2"] * V / (2 * (1 - chi_par))
    R = sw * sw * m["phi2_dphi2"] / (q * (chi1 - chi_par**2))
    s, k, c = c1_parts(m, q, K1, V, R)
    return dict(
        q_star=q, K=q, chi_par=chi_par, chi1=chi1, V_star=V, K1_star=K1, R_star=R, c1_sampling=s, c1_kernel=k,
        c1_correlation=c, c1=s + k + c, c1_spec=s + k, chi1_1overN=sw * (m["dm2"] * K1 + m["d2m2"] * V / 2),
        vk2=V / q**2,
    )  # fmt: skip


def close(got, want, rtol=1e-8, atol=1e-10):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.allclose(got, want, rtol=rtol, atol=atol), (got, want)


@pytest.mark.parametrize("law", ["fixed_norm", "gaussian"])
def test_layer_recursion_and_its_per_layer_predictions_against_the_reference_recursion(law):
    """tanh, s = 1.8, sb = 0.05, q0 = 0.7, three transitions: K, V, K1, R, slopes, c1 (with and without the
    correlation term, which differ by 0.02-0.2 here), the gain coefficient, and what the layer methods make of them."""
    sw, sb, q0, L, N = 1.8, 0.05, 0.7, 3, 64
    rec = ol.layer_recursion("tanh", [sw], sb, depth=L, q0=q0, input_law=law)
    ref = ref_layers("tanh", sw, sb, q0, L, law)
    for key, want in ref.items():
        close(getattr(rec, key)[0], want)
    assert min(abs(a - b) for a, b in zip(ref["c1"][1:], ref["c1_spec"][1:])) > 1e-3
    lam = [0.5 * math.log(x) + c / N for x, c in zip(ref["chi1"], ref["c1"])][:L]
    lam_spec = [0.5 * math.log(x) + c / N for x, c in zip(ref["chi1"], ref["c1_spec"])][:L]
    close(rec.lambda_layers(N)[0], lam)
    close(rec.lambda_layers(N, include_correlation=False)[0], lam_spec)
    close(rec.lambda_average(N, 1)[0], np.mean(lam[1:]))
    close(rec.gain_layers(N)[0], [x + g / N for x, g in zip(ref["chi1"], ref["chi1_1overN"])][:L])
    close(rec.q_hat_mean(N)[0], [k + k1 / N for k, k1 in zip(ref["K"], ref["K1"])])
    close(rec.q_hat_var(N)[0], [(v + 2 * k * k) / N for k, v in zip(ref["K"], ref["V"])])


def test_layer_recursion_defaults_are_bias_free_depth_ten_unit_input():
    """ReLU: K^{l+1} = s K^l / 2 (no bias), K^0 = 1, ten transitions: K^l = 1.5^l at s = 3."""
    rec = ol.layer_recursion("relu", [3.0])
    close(rec.K[0], 1.5 ** np.arange(11), rtol=1e-12)
    with pytest.raises(ValueError, match="input_law='engine'"):
        ol.layer_recursion("relu", [3.0], input_law="engine")


def test_fixed_point_and_its_predictions_against_the_reference_fixed_point():
    sw, sb, N = [1.5, 2.2], 0.05, 64
    fp = ol.fixed_point("tanh", sw, sb)
    refs = [ref_fixed_point("tanh", s, sb) for s in sw]
    for key in refs[0]:
        close(getattr(fp, key), [r[key] for r in refs])
    assert list(fp.status) == ["ok", "ok"]
    close(fp.expansion_parameter(N), [r["vk2"] / N for r in refs])
    lmf = np.array([0.5 * math.log(r["chi1"]) for r in refs])
    c1, c1s = np.array([r["c1"] for r in refs]), np.array([r["c1_spec"] for r in refs])
    close(ol.lambda_one_loop("tanh", sw, sb, N), lmf + c1 / N)
    close(ol.lambda_one_loop("tanh", sw, sb, N, include_correlation=False), lmf + c1s / N)
    close(ol.lambda_coeff_1overN("tanh", sw, sb), c1)
    close(ol.lambda_coeff_1overN("tanh", sw, sb, include_correlation=False), c1s)
    close(ol.annealed_gain_one_loop("tanh", sw, sb, N), [r["chi1"] + r["chi1_1overN"] / N for r in refs])
    df = ol.one_loop_table("tanh", sw, sb)
    want = {"q_star": "q_star", "chi_par": "chi_par", "chi1": "chi1", "V_star": "V_star", "K1_star": "K1_star",
            "R_star": "R_star", "lambda_coeff_1overN": "c1", "lambda_coeff_1overN_spec": "c1_spec",
            "gain_coeff_1overN": "chi1_1overN", "expansion_parameter": "vk2"}  # fmt: skip
    for col, key in want.items():
        close(df[col].to_numpy(dtype=float), [r[key] for r in refs])
    close(df.lambda_mf.to_numpy(dtype=float), lmf)
    wide = ol.one_loop_table("tanh", sw, sb, widths=[32, 128])
    assert list(wide.index) == [0, 1, 2, 3] and list(wide.width) == [32, 32, 128, 128]
    n = wide.width.to_numpy()
    close(wide.expansion_parameter.to_numpy(dtype=float), np.tile([r["vk2"] for r in refs], 2) / n)
    close(wide.lambda_one_loop.to_numpy(dtype=float), np.tile(lmf, 2) + np.tile(c1, 2) / n)


def test_trivial_fixed_point_is_the_linearised_network_and_the_defaults_are_bias_free():
    """tanh at s < 1 without bias: q* = 0, the network is linear with phi'(0) = 1, so chi1 = s, c1 = -1/2 (the
    linear value) and the gain's 1/N term vanishes with K (errors O(K_LIMIT) = 1e-12); a default bias of 1 would
    give q* ~ 1.2."""
    fp = ol.fixed_point("tanh", torch.tensor([0.5, 0.8], dtype=T))
    assert list(fp.status) == ["trivial_fixed_point"] * 2
    assert (fp.c1 + 0.5).abs().max() < 1e-6
    c1 = ol.lambda_coeff_1overN("tanh", [0.5])
    assert abs(float(c1[0]) + 0.5) < 1e-6
    assert abs(float(ol.lambda_one_loop("tanh", [0.5], width=64)[0]) - (0.5 * math.log(0.5) - 0.5 / 64)) < 1e-7
    assert abs(float(ol.annealed_gain_one_loop("tanh", [0.5], width=64)[0]) - 0.5) < 1e-9


def test_statuses_against_the_reference_moments():
    # swish, sb = 0.5: at s = 1.9 chi_par^2 < chi1, at s = 2.0 chi_par^2 - chi1 = +0.028 (reference): R* diverges
    refs = [ref_fixed_point("swish", s, 0.5, hi=7.0) for s in (1.9, 2.0)]  # q* = 2.2, 5.2 (unstable root ~9.5)
    assert refs[0]["chi_par"] ** 2 < refs[0]["chi1"] - 0.01 and refs[1]["chi_par"] ** 2 > refs[1]["chi1"] + 0.01
    fp = ol.fixed_point("swish", [1.9, 2.0], 0.5)
    assert list(fp.status) == ["ok", "longitudinal_mode"]
    assert math.isfinite(float(fp.R_star[0])) and math.isnan(float(fp.R_star[1]))
    # gelu ~ relu for large |x|: q' ~ s q/2 grows without bound at s = 3 (checked below up to q = 1000)
    for q in (10.0, 100.0, 1000.0):
        assert 3.0 * ref_moments("gelu", q)["phi2"] + 0.05 > 1.2 * q
    fp = ol.fixed_point("gelu", [1.0, 3.0], 0.05)
    assert list(fp.status) == ["ok", "no_fixed_point"]
    for key in ("chi_par", "chi1", "V_star", "K1_star", "R_star", "c1", "c1_spec", "chi1_1overN"):
        assert math.isnan(float(getattr(fp, key)[1])), key
    # ReLU q' = s q/2 + sb: q* = sb/(1 - s/2) below s = 2; above it infinite with a bias, scale free (1) without
    fp = ol.fixed_point("relu", [1.0, 3.0, 3.0], [0.5, 1.0, 0.0])
    close(fp.q_star[:1], [1.0])
    assert math.isinf(float(fp.q_star[1])) and float(fp.q_star[2]) == 1.0


def test_first_upward_sign_change_is_strict_below_zero():
    """_first_up: the first i with y[i] < 0 <= y[i+1]; a touch of zero from above is not an upward crossing."""
    y = torch.tensor([[1.0, 0.0, 1.0, 2.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0]], dtype=T)
    found, i = crossing._first_up(y)
    assert found.tolist() == [False, True, False] and int(i[1]) == 1


def test_relu_crossing_table_annealed_root_and_forwarded_scan_range():
    """ReLU: chi1 = s/2 with no 1/N term in the annealed gain (homogeneous), so its root is 2 at any N; lambda
    with or without the (vanishing) correlation term crosses at 2 exp(5/(2N)). Scanning only [0.2, 1.9] finds
    none of them."""
    df = ol.crossing_table("relu", [0.0], [32, 128])
    close(df.crossing_annealed, [2.0, 2.0], rtol=0, atol=1e-8)
    close(df.crossing_one_loop_spec, [2 * math.exp(5 / 64), 2 * math.exp(5 / 256)], rtol=0, atol=1e-8)
    df = ol.crossing_table("relu", [0.0], [32], sigma_w2_range=(0.2, 1.9))
    assert df.crossing_mean_field.isna().all() and df.crossing_one_loop.isna().all()
    assert list(df.status) == ["no_crossing"]


def _ref_finite_depth_roots(sb, N, depth, burn_in, q0, rule=(Z, W)):
    def avg(s, one_loop):
        r = ref_layers("tanh", s, sb, q0, depth, rule=rule)
        c = r["c1"] if one_loop else [0.0] * (depth + 1)
        return np.mean([0.5 * math.log(x) + cc / N for x, cc in zip(r["chi1"], c)][burn_in:depth])

    return [optimize.brentq(avg, 1.2, 3.0, args=(o,), xtol=1e-12) for o in (False, True)]


def test_finite_depth_crossing_against_the_reference_layer_average():
    """tanh, sb = 0.05, N = 64, depth 6, burn-in 2, q0 = 0.6: roots of the layer-averaged exponent. The scan
    interpolates linearly between points 0.025 apart: error O(spacing^2) < 1e-4 (measured 5e-5, 6e-5); the
    mutants (other layers, q0 = 1, no 1/N term) move the roots by > 1e-3."""
    sb, N, L, b, q0 = 0.05, 64, 6, 2, 0.6
    mf, one = _ref_finite_depth_roots(sb, N, L, b, q0)
    assert one - mf > 0.02
    got = ol.finite_depth_crossing("tanh", sb, N, L, b, q0=q0)
    assert abs(got.mean_field - mf) < 1e-4 and abs(got.one_loop - one) < 1e-4, (got, mf, one)
    relu = ol.finite_depth_crossing("relu", 0.0, 32, 4, 1)  # lambda = 0.5 ln(s/2) - 5/(4N) at every layer
    assert abs(relu.mean_field - 2.0) < 1e-4 and abs(relu.one_loop - 2 * math.exp(5 / 64)) < 1e-4


def test_finite_depth_crossing_uses_the_given_quadrature():
    """With a coarse 24-node rule (spacing 1.04) the moments are off by percents and both roots move by 0.07-0.12
    from the converged ones; the hand-written rule reproduces them (its Gaussian moments z^2, z^4 are exact to
    ~1e-8, so the module's centring constant does not matter). Scan interpolation error measured 1.1e-4:
    tolerance 3e-4."""
    sb, N, L, b, q0 = 0.05, 64, 6, 2, 0.6
    mf, one = _ref_finite_depth_roots(sb, N, L, b, q0, rule=trapezoid(24))
    got = ol.finite_depth_crossing("tanh", sb, N, L, b, q0=q0, n_nodes=24)
    assert abs(got.mean_field - mf) < 3e-4 and abs(got.one_loop - one) < 3e-4, (got, mf, one)
    assert abs(mf - _ref_finite_depth_roots(sb, N, L, b, q0)[0]) > 0.05
