"""Spectral estimators of pipeline/dynamics/spectra.py against synthetic AR(1) series with known parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.dynamics.spectra import ar1_fit, lag1_regression, periodogram, zero_frequency


def ar1(n: int, T: int, rho: float, noise: float, seed: int, mean: float = 3.0) -> np.ndarray:
    """n stationary AR(1) series of length T: x' = rho x + eta, Var eta = noise, around `mean`."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, T))
    x[:, 0] = rng.normal(0, math.sqrt(noise / (1 - rho**2)), n)
    eta = rng.normal(0, math.sqrt(noise), (n, T))
    for t in range(1, T):
        x[:, t] = rho * x[:, t - 1] + eta[:, t]
    return x + mean


@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_ar1_fit_recovers_multiplier_noise_and_plateau(rho):
    noise = 0.02
    fit = ar1_fit(ar1(400, 400, rho, noise, seed=1))
    se_theory = math.sqrt((1 - rho**2) / (400 * 399))  # asymptotic SE of the lag-1 coefficient
    assert fit.multiplier_se == pytest.approx(se_theory, rel=0.15)
    assert abs(fit.multiplier - rho) < 3 * fit.multiplier_se
    assert fit.noise == pytest.approx(noise, rel=0.02)
    s0 = noise / (1 - rho) ** 2  # closed-form AR(1) S(0)
    assert abs(fit.s0 - s0) < 3 * fit.s0_se
    assert fit.mass == pytest.approx(-math.log(rho), abs=4 * fit.mass_se)


def test_pooled_multiplier_has_no_short_series_bias():
    """Per-series demeaning biases rho by ~ -(1 + 3 rho)/T (= -0.068 at T = 50); the pooled estimate does not."""
    rho = 0.6
    fit = ar1_fit(ar1(4000, 50, rho, 1.0, seed=2))
    assert abs(fit.multiplier - rho) < 3 * fit.multiplier_se
    assert fit.multiplier_se < 0.004  # so a -0.068 bias would be 17 SE


def test_periodogram_matches_the_lorentzian():
    rho, noise = 0.5, 1.0
    omega, per, se = periodogram(ar1(2000, 256, rho, noise, seed=3))
    exact = noise / (1 - 2 * rho * np.cos(omega) + rho**2)
    z = (per[1:] - exact[1:]) / se[1:]
    assert np.abs(z).max() < 4.5 and abs(z.mean()) < 0.2  # unbiased at every frequency (leakage O(1/T) << SE)


def test_partial_regression_reads_the_diagonal_of_a_vector_ar1():
    """c' = 0.9 c + 0.5 q + noise, q' = 0.3 q + noise: regressing on c alone is biased; on (c, q) it gives 0.9."""
    rng = np.random.default_rng(4)
    n, T = 300, 300
    c, q = np.zeros((n, T)), np.zeros((n, T))
    for t in range(1, T):
        q[:, t] = 0.3 * q[:, t - 1] + rng.normal(0, 1, n)
        c[:, t] = 0.9 * c[:, t - 1] + 0.5 * q[:, t - 1] + rng.normal(0, 1, n)
    beta, cov = lag1_regression(c[:, 50:], (q[:, 50:],))
    assert abs(beta[0] - 0.9) < 3 * math.sqrt(cov[0, 0]) and abs(beta[1] - 0.5) < 3 * math.sqrt(cov[1, 1])
    assert lag1_regression(c[:, 50:])[0][0] - 0.9 > 10 * math.sqrt(cov[0, 0])


def test_zero_frequency_rejects_bad_input():
    with pytest.raises(ValueError, match="series"):
        zero_frequency(np.ones(10))
    with pytest.raises(ValueError, match="NaN"):
        zero_frequency(np.full((3, 10), np.nan))
