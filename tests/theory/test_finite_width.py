"""pipeline.theory.finite_width: the exact bias-free ReLU exponent against explicit binomial sums
(docs/science.md §2)."""

import math

import pytest
import torch

from pipeline.theory.finite_width import relu_lyapunov_exact

T = torch.float64


def test_relu_exact_finite_width_exponent_by_explicit_binomial_sums():
    """lambda_N = 0.5 [ln(2 sigma_w2 / N) + E_k psi(k/2)], k ~ Bin(N, 1/2) given k >= 1, summed by hand."""
    from scipy.special import digamma

    for n, sw in ((1, 2.0), (2, 1.5), (5, 3.0)):
        weights = [math.comb(n, k) for k in range(1, n + 1)]
        e_psi = sum(w * digamma(k / 2) for w, k in zip(weights, range(1, n + 1))) / sum(weights)
        assert relu_lyapunov_exact(n, sw) == pytest.approx(0.5 * (math.log(2 * sw / n) + e_psi), abs=1e-13)
