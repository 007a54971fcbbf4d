"""Exact finite-width anchor (docs/science.md §2): top Lyapunov exponent of bias-free Gaussian ReLU nets."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln


def relu_lyapunov_exact(width: int, sigma_w2: float) -> float:
    """lambda_N = 0.5 [ln(2 sigma_w2 / N) + E_k psi(k/2)], k ~ Binomial(N, 1/2) conditioned on k >= 1.

    Exact top Lyapunov exponent per layer (of the norm) of a bias-free Gaussian ReLU network at xi = 1, the
    finite-width anchor of docs/science.md §2 (product-of-random-matrices structure of Hanin & Nica,
    arXiv:1812.05994). A tangent vector's squared gain per layer is (sigma_w2/N) chi^2_N times a
    Beta(k/2, (N-k)/2) fraction, k the number of active units, i.e. (sigma_w2/N) chi^2_k in law, and
    E ln chi^2_k = ln 2 + psi(k/2) (psi the digamma function). The expectation over k is an exact sum.
    Tends to 0.5 ln(sigma_w2/2) from below as N -> inf, like -5/(4N) (docs/science.md §6).

    Args:
        width: network width N, int >= 1.
        sigma_w2: weight variance, python float > 0.

    Returns:
        lambda_N as a python float (natural log, per layer).
    """
    n = int(width)
    k = np.arange(1, n + 1)
    log_pmf = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - n * math.log(2)
    pmf = np.exp(log_pmf)
    pmf /= pmf.sum()  # conditioning on k >= 1
    return 0.5 * (math.log(2 * sigma_w2 / n) + float((pmf * digamma(k / 2)).sum()))
