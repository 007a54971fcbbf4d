"""Exact finite-width anchor (docs/science.md §2): top Lyapunov exponent of bias-free Gaussian ReLU nets."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln


def relu_lyapunov_exact(width: int, sigma_w2: float) -> float:
    """lambda_N = 0.5 [ln(2 sigma_w2 / N) + E_k psi(k/2)], k ~ Binomial(N, 1/2) conditioned on k >= 1.

    A tangent vector's squared gain per layer is (sigma_w2/N) chi^2_N times a Beta(k/2, (N-k)/2)
    fraction, k the number of active units. Tends to 0.5 ln(sigma_w2/2) from below as N -> inf.
    """
    n = int(width)
    k = np.arange(1, n + 1)
    log_pmf = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - n * math.log(2)
    pmf = np.exp(log_pmf)
    pmf /= pmf.sum()  # conditioning on k >= 1
    return 0.5 * (math.log(2 * sigma_w2 / n) + float((pmf * digamma(k / 2)).sum()))
