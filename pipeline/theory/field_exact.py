"""The one-input kernel chain at finite width by its transition operator: exact moments, no sampling.

An independent check of the one-loop dressing of docs/science.md §7b: G' = sigma_b2 + sigma_w2 mean_j phi(h_j)^2
with h_j ~ N(0, G) i.i.d. (xi = 1). The law of phi(h)^2 on a fine lattice (linear binning of a fine z-grid, which
keeps its mean exact) is raised to the N-th convolution power by FFT; a Nystrom discretisation of the operator on
Gauss-Legendre nodes in G gives the stationary law, the exact lag-1 regression coefficient rho_N (with the exact
conditional mean F(G)), the stationary moments and N S(0). Float64, numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.theory.field import length_mode
from pipeline.theory.one_loop.common import _act
from pipeline.theory.quadrature import gauss_rule


@dataclass(frozen=True)
class ExactChain:
    """Exact stationary statistics of the one-input chain at width N (all floats).

    rho: lag-1 regression coefficient Cov(G', G)/Var G; mean_shift N (E G - K*); var N Var G;
    skew N^2 E (G - E G)^3; plateau N S(0) = N sum_k Cov(G_k, G_0); mass_loss: probability lost by truncation.
    """

    width: int
    rho: float
    mean_shift: float
    var: float
    skew: float
    plateau: float
    mass_loss: float


def _phi2_lattice(act, G: float, y_max: float, n_bins: int, n_z: int) -> np.ndarray:
    """P(phi(sqrt(G) z)^2 = k h), k = 0..n_bins, h = y_max/n_bins, by linear binning of a trapezoid z-grid."""
    z = np.linspace(-12.0, 12.0, n_z)
    w = np.exp(-0.5 * z * z)
    w /= w.sum()
    y = act.phi(torch.as_tensor(math.sqrt(G) * z, dtype=torch.float64)).numpy() ** 2
    t = np.clip(y / (y_max / n_bins), 0, n_bins)
    lo = np.minimum(np.floor(t).astype(np.int64), n_bins - 1)
    frac = t - lo
    pmf = np.bincount(lo, w * (1 - frac), n_bins + 1) + np.bincount(lo + 1, w * frac, n_bins + 1)
    return pmf


def exact_chain(activation, sigma_w2: float, sigma_b2: float, width: int, n_nodes: int = 96, n_bins: int = 1024,
                n_z: int = 20001, span: float = 14.0) -> ExactChain:  # fmt: skip
    """Stationary moments and lag-1 regression of the exact one-input chain at width `width` (xi = 1).

    The G-interval is K* +- `span` standard deviations (leading order), clipped to the support
    [sigma_b2, sigma_b2 + sigma_w2 sup phi^2]; bounded activations only.

    Raises:
        ValueError: unbounded activation (the lattice needs sup phi^2).
    """
    act = _act(activation)
    if not act.sup_phi2:
        raise ValueError(f"exact_chain: activation={act.name} is unbounded; allowed: bounded activations (tanh, erf)")
    lm = length_mode(act, sigma_w2, sigma_b2)
    n = int(width)
    sd = math.sqrt(lm.v1 / n)
    lo = max(sigma_b2, lm.K - span * sd)
    hi = min(sigma_b2 + sigma_w2 * act.sup_phi2, lm.K + span * sd)
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    g = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
    wg = 0.5 * (hi - lo) * w
    y_max = act.sup_phi2
    h = y_max / n_bins
    size = n * n_bins + 1
    nfft = 1 << (size - 1).bit_length()
    step = sigma_w2 * h / n  # lattice spacing of G'
    P = np.empty((n_nodes, n_nodes))
    mean_next = np.empty(n_nodes)
    for i, gi in enumerate(g):
        pmf = _phi2_lattice(act, gi, y_max, n_bins, n_z)
        mean_next[i] = sigma_b2 + sigma_w2 * float(pmf @ (h * np.arange(n_bins + 1)))
        s = np.fft.irfft(np.fft.rfft(pmf, nfft) ** n, nfft)[:size]
        pos = (g - sigma_b2) / step
        dens = np.interp(pos, np.arange(size), s) / step
        P[i] = dens * wg
    loss = 1 - P.sum(1)
    # stationary law: left eigenvector of the row-normalised Nystrom matrix (the lost mass is < 1e-12 when span is
    # wide enough; normalising rows keeps it a Markov matrix)
    Pn = P / P.sum(1, keepdims=True)
    vals, vecs = np.linalg.eig(Pn.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    pi = pi / pi.sum()
    mean = float(pi @ g)
    dg = g - mean
    var = float(pi @ dg**2)
    rho = float(pi @ (dg * mean_next)) / var
    # N S(0) = Var + 2 sum_k Cov_k; sum_k P^k dg via the fundamental matrix (I - Pn + 1 pi^T)^{-1}
    Z = np.linalg.solve(np.eye(n_nodes) - Pn + np.outer(np.ones(n_nodes), pi), dg)
    s0 = 2 * float(pi @ (dg * Z)) - var
    return ExactChain(n, rho, n * (mean - lm.K), n * var, n * n * float(pi @ dg**3), n * s0, float(loss.max()))


def homogeneous_exact(activation, sigma_w2: float, sigma_b2: float, xi: float, width: int) -> ExactChain:
    """Exact stationary statistics of the chain for a positively homogeneous activation (ReLU, linear), any xi.

    Then G' = sigma_b2 + X G with X = sigma_w2 [mean_j r_j^2 + (xi - 1) (mean_j r_j)^2], r_j = phi(z_j), z_j i.i.d.
    N(0, 1), independent of G: a Kesten recursion. E[G'|G] is affine, so the autocovariance is exactly rho^k Var G
    with rho = E X, E G = sigma_b2/(1 - rho), E G^2 = (sigma_b2^2 + 2 sigma_b2 rho E G)/(1 - E X^2) and
    N S(0) = N Var G (1 + rho)/(1 - rho). E X^2 from the moments m_k = E r^k by counting index coincidences.

    Raises:
        ValueError: a non-homogeneous activation, or E X^2 >= 1 (no finite stationary variance: heavy tails).
    """
    act = _act(activation)
    if not act.homogeneous:
        raise ValueError(f"homogeneous_exact: activation={act.name}; allowed: positively homogeneous (relu, linear)")
    rule = gauss_rule(2000)
    r = act.phi(rule.z)
    m1, m2, m3, m4 = (float((r**k) @ rule.w) for k in range(1, 5))
    n, c = float(width), float(xi) - 1.0
    e_a = m2
    e_a2 = (n * m4 + n * (n - 1) * m2**2) / n**2
    e_b2 = (n * m2 + n * (n - 1) * m1**2) / n**2
    e_ab2 = (n * m4 + 2 * n * (n - 1) * m3 * m1 + n * (n - 1) * m2**2 + n * (n - 1) * (n - 2) * m2 * m1**2) / n**3
    e_b4 = (n * m4 + 4 * n * (n - 1) * m3 * m1 + 3 * n * (n - 1) * m2**2 + 6 * n * (n - 1) * (n - 2) * m2 * m1**2
            + n * (n - 1) * (n - 2) * (n - 3) * m1**4) / n**4  # fmt: skip
    ex = sigma_w2 * (e_a + c * e_b2)
    ex2 = sigma_w2**2 * (e_a2 + 2 * c * e_ab2 + c**2 * e_b4)
    if not ex2 < 1:
        raise ValueError(f"homogeneous_exact: E X^2 = {ex2:.4g} >= 1 at activation={act.name}, sigma_w2={sigma_w2}, "
                         f"xi={xi}, width={width} (no finite stationary variance)")  # fmt: skip
    mean = sigma_b2 / (1 - ex)
    var = (sigma_b2**2 + 2 * sigma_b2 * ex * mean) / (1 - ex2) - mean**2
    K = sigma_b2 / (1 - sigma_w2 * (m2 + c * m1**2))  # mean-field q*(xi)
    return ExactChain(int(width), ex, n * (mean - K), n * var, math.nan, n * var * (1 + ex) / (1 - ex), 0.0)


TAIL_MOMENTS = 4  # the lag-1 regression and its cluster SE need E G^4 < inf: a tail exponent above 4


def kesten_tail_exponent(activation, sigma_w2: float, xi: float, width: int, n_samples: int = 1 << 17,
                         seed: int = 0) -> float:  # fmt: skip
    """Tail exponent kappa of the stationary chain G' = sigma_b2 + X G of a positively homogeneous activation
    (`homogeneous_exact`): P(G > g) ~ g^-kappa with E X^kappa = 1 (Kesten 1973, Goldie 1991), so E G^p < inf iff
    p < kappa. inf for a bounded activation (G bounded) or where X <= 1 in every sample.

    Why: near the length threshold (E X -> 1) kappa falls below 4, the pooled lag-1 regression has no Gaussian
    limit and its cluster SE misleads (ReLU, xi = 1.8, N = 64: kappa ~ 3, SEs of 0.0013-0.0057 across seeds for
    one multiplier). E X^kappa by Monte Carlo over `n_samples` draws of X (a fixed `seed`: deterministic), the root
    by bisection on the convex function kappa -> ln E X^kappa (0 at kappa = 0, slope E ln X < 0 there).
    """
    act = _act(activation)
    if not act.homogeneous:
        return math.inf
    gen = torch.Generator().manual_seed(seed)
    n, c, rows = int(width), float(xi) - 1.0, max(1, (1 << 22) // int(width))
    xs = []
    for start in range(0, n_samples, rows):  # chunks of ~4M numbers: bounded memory at any width
        r = act.phi(torch.randn(min(rows, n_samples - start), n, generator=gen, dtype=torch.float64))
        xs.append(sigma_w2 * ((r * r).mean(1) + c * r.mean(1) ** 2))
    log_x = torch.cat(xs).clamp_min(1e-300).log()
    if float(log_x.max()) <= 0:
        return math.inf

    def log_moment(k: float) -> float:  # ln E X^k, stable
        return float(torch.logsumexp(k * log_x, 0)) - math.log(len(log_x))

    lo, hi = 0.0, 1.0
    while log_moment(hi) < 0:
        lo, hi = hi, 2 * hi
        if hi > 1024:
            return math.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if log_moment(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)
