"""The exact kernel chain (docs/science.md §7): its one-step law against closed forms, its seed convention, its
engine path against the exact finite-width ReLU exponent, and its distribution against the weight-matrix engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from pipeline.activations import get_activation
from pipeline.config.errors import ConfigError
from pipeline.dynamics.chain import (
    RAND_BLOCK,
    ChainSpec,
    gram,
    kernel_blocks,
    kernel_path,
    layer0_inputs,
    sqrt_factor,
    tangent_chain,
)
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import network_crossing, network_values, summarize
from pipeline.nets.weights import STREAM_CHAIN, STREAM_TANGENT, NetworkStreams
from tests.config.draws import names_a_key, validate_full
from tests.conftest import engine_spec


def _gauss_hermite(n: int = 200):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


# ---- the step -------------------------------------------------------------------------------------------------


def test_sqrt_factor_is_a_square_root_also_for_singular_matrices():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(200, 6, 6, dtype=torch.float64, generator=g)
    G = A @ A.mT
    F = sqrt_factor(G)
    assert torch.allclose(F, torch.linalg.cholesky(G), atol=1e-10)
    v = torch.randn(200, 4, 2, dtype=torch.float64, generator=g)  # rank 2 in 4 dimensions
    S = v @ v.mT
    F = sqrt_factor(S)
    assert torch.isfinite(F).all() and torch.allclose(F @ F.mT, S, atol=1e-12)


def test_gram_is_the_gauge_row_covariance_seen_by_the_rows():
    """A^T (P_T + xi P_L) A with dense projectors (docs/science.md §4)."""
    N, xi = 9, 0.3
    A = torch.randn(3, N, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    PL = torch.full((N, N), 1.0 / N, dtype=torch.float64)
    M = torch.eye(N, dtype=torch.float64) - PL + xi * PL
    assert torch.allclose(gram(A, xi), A.mT @ M @ A, atol=1e-12)


def test_first_kernel_is_exact_for_the_actual_inputs():
    """Linear activation, no bias: G^1 = sigma_w2 (1/N) h0^T h0 = sigma_w2 q0 [[1, c0], [c0, 1]] exactly."""
    s = ChainSpec(activation="linear", width=12, depth=1, sigma_w2=(0.7, 1.9), sigma_b2=0.0, n_networks=3,
                  n_inputs=2, q0=1.3, c0=-0.4)  # fmt: skip
    G = kernel_path(s)[:, :, 0]
    ref = torch.tensor([[1.0, -0.4], [-0.4, 1.0]], dtype=torch.float64) * 1.3
    for j, sw in enumerate(s.sigma_w2):
        assert torch.allclose(G[:, j], sw * ref.expand(3, 2, 2), atol=1e-12)


def test_one_step_has_the_exact_conditional_mean_and_variance():
    """E[G'|G] = F(G), Var[G'|G] = Sigma(G)/N (§7), network by network (each has its own G^1): the standardized
    residuals have mean 0 and variance 1. Quadrature by numpy's Gauss-Hermite rule, independent of the theory."""
    N, S, sw, sb = 16, 4000, 2.0, 0.05
    G = kernel_path(ChainSpec(activation="tanh", width=N, depth=2, sigma_w2=(sw,), sigma_b2=sb, n_networks=S))
    g1, g2 = G[:, 0, 0, 0, 0].numpy(), G[:, 0, 1, 0, 0].numpy()
    x, w = _gauss_hermite()
    p2 = np.tanh(np.sqrt(g1)[:, None] * x) ** 2
    mean = sb + sw * (p2 @ w)
    var = sw**2 * ((p2**2) @ w - (p2 @ w) ** 2) / N
    z = (g2 - mean) / np.sqrt(var)
    assert abs(z.mean()) < 3 / math.sqrt(S)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / S) * 1.5  # (the fourth cumulant widens the SE of a variance)


def test_gauge_mean_mode_term_at_finite_width():
    """ReLU, xi = 0.4, no bias: E[G'|G] = sigma_w2 G [1/2 - (1 - xi)(1/(2 pi) + (1/2 - 1/(2 pi))/N)] exactly
    (the row-mean term (xi - 1)(sum phi)^2/N^2 of §4 has mean (Var phi + N (E phi)^2)/N)."""
    N, S, sw, xi = 8, 6000, 1.5, 0.4
    G = kernel_path(ChainSpec(activation="relu", width=N, depth=2, sigma_w2=(sw,), sigma_b2=0.0, xi=xi,
                              n_networks=S))[:, 0, :, 0, 0]  # fmt: skip
    G = G[G[:, 0] > 0]  # every unit of layer 0 negative (probability 2^-N): G^1 = 0, no ratio
    ratio = (G[:, 1] / G[:, 0]).numpy()
    pred = sw * (0.5 - (1 - xi) * (1 / (2 * math.pi) + (0.5 - 1 / (2 * math.pi)) / N))
    se = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean() - pred) < 3 * se
    assert abs(pred - sw * (0.5 - (1 - xi) / (2 * math.pi))) > 5 * se  # the 1/N term shows


# ---- the seed convention ------------------------------------------------------------------------------------------


def test_a_network_does_not_depend_on_its_batch_block_or_depth():
    base = dict(activation="erf", width=10, sigma_w2=(1.0, 3.0), sigma_b2=0.1, n_inputs=2, seed=5, xi=1.5)
    full = kernel_path(ChainSpec(depth=150, n_networks=4, **base))
    blocks = torch.cat([g for _, g in kernel_blocks(ChainSpec(depth=150, n_networks=4, **base), block=7)], 2)
    assert torch.equal(full, blocks)
    part = kernel_path(ChainSpec(depth=100, n_networks=2, first_network=2, **base))
    assert torch.equal(full[2:, :, :100], part)
    assert not torch.equal(full[0], full[1])


def test_draw_blocks_of_16_layers_are_one_stream():
    """The seed convention's block of RAND_BLOCK = 16 layers: consecutive draws continue one stream (torch's CPU
    generator fills any multiple of 16 numbers as one longer fill), so depth and block size never change a number."""
    for N, k in ((3, 1), (5, 3), (7, 2)):
        one = NetworkStreams(4, [0, 1], torch.device("cpu")).normal(STREAM_CHAIN, (4 * RAND_BLOCK, N, k), torch.float64)
        rand = NetworkStreams(4, [0, 1], torch.device("cpu"))
        blocks = torch.cat([rand.normal(STREAM_CHAIN, (RAND_BLOCK, N, k), torch.float64) for _ in range(4)], 1)
        assert torch.equal(one, blocks)


def test_bad_chain_fields_are_named():
    with pytest.raises(ValueError, match="ChainSpec.n_inputs"):
        kernel_path(ChainSpec(activation="tanh", width=8, depth=2, sigma_w2=(1.0,), sigma_b2=0.0, n_networks=2,
                              n_inputs=0))  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "extra", "own_rule"),
    [("mlp_sweep", ["fluctuations.n_seeds=0"], True), ("lyapunov", [], True), ("gauge_scan", [], False)],
)
def test_chain_with_orthogonal_weights_is_rejected_naming_the_field(stage, extra, own_rule):
    """One line naming the field; gauge_scan rejects orthogonal weights for every engine already (own_rule False)."""
    with pytest.raises(ConfigError) as err:
        validate_full(stage, ["engine.method=chain", "net.weights=orthogonal", *extra])
    msg = str(err.value)
    assert "\n" not in msg and names_a_key(msg, ["engine.method", "net.weights"])
    assert ("engine.method=chain" in msg) == own_rule and "gaussian" in msg
    validate_full(stage, ["engine.method=chain", *extra])  # with gaussian weights every engine stage accepts it


# ---- the engine path ----------------------------------------------------------------------------------------------


def _relu_exact_lambda(N: int, sigma_w2: float) -> float:
    """0.5 [ln(2 sigma_w2/N) + E_k psi(k/2)], k ~ Binomial(N, 1/2) given k >= 1 (docs/science.md §2)."""
    k = np.arange(1, N + 1)
    p = stats.binom.pmf(k, N, 0.5)
    return 0.5 * (math.log(2 * sigma_w2 / N) + float((p * special.digamma(k / 2)).sum() / p.sum()))


def test_chain_engine_gives_the_exact_relu_exponent():
    """Bias-free ReLU at N = 6: typical tangent exponent and top QR exponent against the exact finite-N formula
    (0.06 below the mean field here, ~25 SE)."""
    N, sw = 6, 2.0
    spec = engine_spec(activation="relu", width=N, depth=60, sigma_w2=(sw,), sigma_b2=0.0, n_seeds=600, n_pairs=1,
                       n_spectrum=2, dtype="float64", eps=1e-6, method="chain", seed=2)  # fmt: skip
    row = summarize(simulate(spec), burn_in=10).iloc[0]
    exact = _relu_exact_lambda(N, sw)
    assert abs(row.lambda_tangent - exact) < 3 * row.lambda_tangent_se
    assert abs(row.lambda_1 - exact) < 3 * row.lambda_1_se
    assert abs(0.5 * math.log(sw / 2) - exact) > 10 * row.lambda_tangent_se


def test_chain_engine_networks_do_not_depend_on_grouping():
    kw = dict(activation="tanh", width=12, depth=8, sigma_w2=(1.2, 2.4), sigma_b2=0.05, n_seeds=6, n_spectrum=2,
              dtype="float64", method="chain", xi=0.5)  # fmt: skip
    a = simulate(engine_spec(**kw))
    b = simulate(engine_spec(memory_budget_gb=3e-5, **kw))  # 27 KiB per network: one per group
    for name in ("log_q", "c", "chi", "log_growth_replica", "log_growth_tangent", "spectrum_log_r"):
        assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-12), name


def test_chain_engine_in_float32_follows_float64_with_the_same_draws():
    """The float32 path (Gram of all columns and rows drawn in float32, the pipeline's default precision) against
    float64 with the same draws: tanh, all measurements per network within float32 rounding (a misplaced column
    or block would differ at O(1))."""
    kw = dict(activation="tanh", width=64, depth=20, sigma_w2=(1.3, 2.2), sigma_b2=0.05, n_seeds=4, n_pairs=2,
              n_spectrum=2, eps=1e-3, method="chain", seed=5)  # fmt: skip
    a, b = simulate(engine_spec(dtype="float32", **kw)), simulate(engine_spec(dtype="float64", **kw))
    for name, tol in (("log_q", 2e-5), ("c", 1e-5), ("chi", 2e-4), ("log_growth_tangent", 3e-4),
                      ("spectrum_log_r", 3e-4), ("log_growth_replica", 5e-3)):  # fmt: skip
        x, y = getattr(a, name), getattr(b, name)
        assert torch.isfinite(x).all() and (x - y).abs().max() < tol, (name, (x - y).abs().max())


# ---- the same distribution as the weight-matrix engine --------------------------------------------------------


def _matrix_and_chain(width: int, n_seeds: int, depth: int, grid: tuple[float, ...], seed: int = 11) -> dict:
    """Per method: the lambda crossing, per-network q_hat^L (mean over inputs) and tangent exponents, (K, S)."""
    out = {}
    for method in ("matrix", "chain"):
        spec = engine_spec(activation="tanh", width=width, depth=depth, sigma_w2=grid, sigma_b2=0.05,
                           n_seeds=n_seeds, n_pairs=1, dtype="float64", eps=1e-6, method=method, seed=seed)  # fmt: skip
        m = simulate(spec)
        lam = network_values(m, 10, "lambda_tangent")
        q_L = torch.exp(m.log_q[..., -1]).mean(2).T.numpy()
        out[method] = (network_crossing(np.asarray(grid), lam), q_L, lam)
    return out


def _agree(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(|mean a - mean b| in combined SEs, two-sample KS p-value)."""
    se = math.hypot(a.std(ddof=1) / math.sqrt(len(a)), b.std(ddof=1) / math.sqrt(len(b)))
    return abs(a.mean() - b.mean()) / se, stats.ks_2samp(a, b).pvalue


def _check_same_distribution(res: dict, mid: int) -> None:
    (cm, qm, lm), (cc, qc, lc) = res["matrix"], res["chain"]
    assert cm.status == cc.status == "ok"
    assert abs(cm.x - cc.x) < 2 * math.hypot(cm.se, cc.se), (cm.text(), cc.text())
    for name, a, b in (("q_hat^L", qm[mid], qc[mid]), ("lambda", lm[mid], lc[mid])):
        z, p = _agree(a, b)
        assert z < 2 and p > 0.01, (name, z, p)


def test_chain_engine_matches_weight_matrices_at_width_16():
    """tanh, sigma_b2 = 0.05: the crossing (~2.57 at N = 16), q_hat^L and per-network exponents."""
    grid = (2.4, 2.5, 2.6, 2.7)
    _check_same_distribution(_matrix_and_chain(16, 300, 30, grid), mid=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("width", "n_seeds", "grid"),
    [(64, 400, (1.8, 1.85, 1.9, 1.95, 2.0, 2.05)), (256, 200, (1.7, 1.75, 1.8, 1.85, 1.9))],
)
def test_chain_engine_matches_weight_matrices_at_larger_widths(width, n_seeds, grid):
    """Crossings 1.89 (N = 64) and 1.79 (N = 256), SE ~0.01 and 0.006; q_hat^L and exponents near the crossing."""
    _check_same_distribution(_matrix_and_chain(width, n_seeds, 40, grid), mid=2)


# ---- crossings at high precision (mlp_sweep `chain`) ------------------------------------------------------------


def _explicit_rows_tangent_chain(spec: ChainSpec, burn_in: int) -> tuple[np.ndarray, np.ndarray]:
    """tangent_chain by brute force: the rows (h, t) of every layer formed explicitly, the 2 x 2 row covariance of
    (phi(h), phi'(h) t) with the dense gauge projector of §4, its Cholesky by numpy, t renormalized by its norm;
    the same draws (STREAM_CHAIN blocks of RAND_BLOCK layers, (N, 2) per layer). Returns (lam, q_L), (K, S)."""
    act, N, L = get_activation(spec.activation), spec.width, spec.depth
    ids = list(range(spec.first_network, spec.first_network + spec.n_networks))
    h0 = layer0_inputs(spec.seed, ids, N, 1, spec.q0, spec.c0, "cpu")[..., 0].numpy()
    rand = NetworkStreams(spec.seed, ids, torch.device("cpu"))
    t0 = rand.normal(STREAM_TANGENT, (N, 2), torch.float64)[..., 0].numpy()
    draws = [rand.normal(STREAM_CHAIN, (RAND_BLOCK, N, 2), torch.float64).numpy() for _ in range(-(-L // RAND_BLOCK))]
    E = np.concatenate(draws, 1)  # (S, >= L, N, 2)
    proj = np.eye(N) + (spec.xi - 1.0) / N  # P_T + xi P_L
    lam = np.zeros((len(spec.sigma_w2), len(ids)))
    q_L = np.zeros_like(lam)
    for j, sw in enumerate(spec.sigma_w2):
        for s in range(len(ids)):
            h, t, total = h0[s], t0[s] / np.linalg.norm(t0[s]), 0.0
            for layer in range(L):
                x = torch.from_numpy(h)
                A = np.stack([act.phi(x).numpy(), act.dphi(x).numpy() * t], 1)  # (N, 2)
                G = sw / N * A.T @ proj @ A + np.diag([spec.sigma_b2, 0.0])
                rows = E[s, layer] @ np.linalg.cholesky(G).T
                h, t = rows[:, 0], rows[:, 1]
                if layer >= burn_in:
                    total += np.log(np.linalg.norm(t))
                t = t / np.linalg.norm(t)
            lam[j, s], q_L[j, s] = total / (L - burn_in), (h * h).mean()
    return lam, q_L


@pytest.mark.parametrize(
    "kw",
    [
        dict(activation="tanh", width=12, depth=21, sigma_w2=(1.3, 2.2), sigma_b2=0.05),
        dict(activation="erf", width=7, depth=18, sigma_w2=(2.0,), sigma_b2=0.1, xi=0.4),
    ],
)
def test_tangent_chain_is_the_explicit_row_chain(kw):
    """The implicit rows (kernel sums against the draws' moments, ||t|| from their Gram) equal explicit rows with
    the same draws to rounding; float32 rows agree to ~1e-6 (a depth past one draw block, the gauge's sums)."""
    spec = ChainSpec(n_networks=3, seed=9, **kw)
    lam_ref, q_ref = _explicit_rows_tangent_chain(spec, burn_in=4)
    lam, q_L = tangent_chain(spec, burn_in=4)
    assert np.allclose(lam.numpy(), lam_ref, rtol=0, atol=1e-12) and np.allclose(q_L.numpy(), q_ref, rtol=1e-11)
    lam32, q32 = tangent_chain(spec, burn_in=4, dtype="float32")
    assert np.allclose(lam32.numpy(), lam_ref, rtol=0, atol=2e-6) and np.allclose(q32.numpy(), q_ref, rtol=2e-6)
    assert not np.allclose(lam32.numpy(), lam_ref, rtol=0, atol=1e-12)  # float32 rows are really float32


def _relu_exact_crossing(N: int) -> float:
    """sigma_w2 where the exact bias-free ReLU exponent vanishes: (N/2) exp(-E_k psi(k/2)) = 2 exp(-2 lambda_N(2))."""
    return 2.0 * math.exp(-2.0 * _relu_exact_lambda(N, 2.0))


def test_tangent_chain_crossing_is_the_exact_relu_crossing():
    """Bias-free ReLU at N = 16: the crossing of the chain's typical exponent against the exact formula (2.386 here,
    0.39 above mean field)."""
    N = 16
    exact = _relu_exact_crossing(N)
    grid = np.linspace(exact - 0.1, exact + 0.1, 5)
    spec = ChainSpec(activation="relu", width=N, depth=30, sigma_w2=tuple(grid), sigma_b2=0.0, n_networks=1500, seed=4)
    lam, q_L = tangent_chain(spec, burn_in=5)
    cr = network_crossing(grid, lam.numpy(), window=0.1)
    assert cr.status == "ok" and abs(cr.x - exact) < 2 * cr.se, (cr.text(), exact)
    assert abs(exact - 2.0) > 10 * cr.se
    assert q_L.shape == (5, 1500) and torch.isfinite(q_L).all()


def test_chain_engine_matches_weight_matrices_in_the_gauge_ensemble():
    """xi = 2 (a correlated mean mode, docs/science.md §4), bias-free ReLU at N = 16, sigma_w2 = 1.8: the longitudinal
    mode lifts the exponent above 0.5 ln chi_1 (towards 0.5 ln A_q = 0.085); exponents, q_hat^L: same law."""
    vals = {}
    for method in ("matrix", "chain"):
        spec = engine_spec(activation="relu", width=16, depth=30, sigma_w2=(1.8,), sigma_b2=0.0, xi=2.0, n_seeds=300,
                           n_pairs=1, dtype="float64", eps=1e-6, method=method, seed=3)  # fmt: skip
        m = simulate(spec)
        vals[method] = (network_values(m, 10, "lambda_tangent")[0], m.log_q[:, 0, :, -1].mean(1).numpy())
    for i, name in enumerate(("lambda", "ln q_hat^L")):
        z, p = _agree(vals["matrix"][i], vals["chain"][i])
        assert z < 2 and p > 0.01, (name, z, p)
    assert vals["chain"][0].mean() > 0.5 * math.log(1.8 / 2) + 0.03  # well above 0.5 ln chi_1 = -0.053: the mean mode
