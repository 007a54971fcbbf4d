"""Depth-time spectra of stationary chains: periodogram, lag-1 multiplier, AR(1)/Lorentzian fit (docs/science.md §7b).

Input: an (n_series, T) array of one coordinate (e.g. G^l or the correlation c^l) per network after burn-in.
Every estimate pools the series around one global mean (per-series demeaning would bias the multiplier by
~ -(1 + 3 rho)/T, Kendall), and its standard error is over series (networks), cluster-robust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.theory.field import ar1_mass


def centred(series: np.ndarray) -> np.ndarray:
    """float64 copy minus the global mean over every series and time (the stationary mean)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 3:
        raise ValueError(f"series: shape {x.shape}; allowed: (n_series, T) with T >= 3")
    if not np.isfinite(x).all():
        raise ValueError("series: contains NaN/inf")
    return x - x.mean()


def lag1_regression(y: np.ndarray, extra: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Pooled least squares of y_{t+1} on (y_t, extra_t...), all centred; (coefficients, covariance).

    The covariance is cluster-robust over series (each series one network): A^-1 (sum_n u_n u_n^T) A^-1 n/(n-1),
    A = sum_n R_n^T R_n, u_n = R_n^T (y_n - R_n beta). With `extra` (e.g. the two lengths for the correlation mode)
    the first coefficient is the partial multiplier of y (the Jacobian entry J_yy of a vector AR(1)).
    """
    ys = [centred(y)] + [centred(e) for e in extra]
    n = ys[0].shape[0]
    if n < 2:
        raise ValueError("series: need at least 2 series (networks) for a standard error")
    R = np.stack([v[:, :-1] for v in ys], -1)  # (n, T-1, p)
    target = ys[0][:, 1:]
    A_n = np.einsum("ntp,ntq->npq", R, R)
    s_n = np.einsum("ntp,nt->np", R, target)
    A_inv = np.linalg.inv(A_n.sum(0))
    beta = A_inv @ s_n.sum(0)
    u = s_n - A_n @ beta
    cov = A_inv @ (u.T @ u) @ A_inv * n / (n - 1)
    return beta, cov


def zero_frequency(y: np.ndarray) -> tuple[float, float]:
    """S(0) and its SE: the mean over series of |sum_t (y_t - mean)|^2 / T, times n/(n-1) for the fitted mean."""
    x = centred(y)
    n, T = x.shape
    i0 = x.sum(1) ** 2 / T * n / (n - 1)
    return float(i0.mean()), float(i0.std(ddof=1) / math.sqrt(n))


def periodogram(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(omega_j, mean over series of |sum_t y_t e^{-i omega_j t}|^2 / T, its SE), omega_j = 2 pi j/T in [0, pi]."""
    x = centred(y)
    n, T = x.shape
    per = np.abs(np.fft.rfft(x, axis=1)) ** 2 / T
    return 2 * np.pi * np.arange(per.shape[1]) / T, per.mean(0), per.std(0, ddof=1) / math.sqrt(n)


@dataclass(frozen=True)
class Ar1Fit:
    """AR(1)/Lorentzian fit S(omega) = noise/|1 - multiplier e^{-i omega}|^2 of one coordinate; floats.

    multiplier: pooled lag-1 (partial) regression coefficient, which is also the Whittle AR(1) estimate;
    mass = -ln multiplier; noise: the innovation variance (Whittle, at the fitted multiplier); s0: the model-free
    S(0) (zero-frequency periodogram); *_se: standard errors over series.
    """

    multiplier: float
    multiplier_se: float
    noise: float
    s0: float
    s0_se: float
    n_series: int
    length: int

    @property
    def mass(self) -> float:
        """-ln multiplier (NaN where it is not positive)."""
        return ar1_mass(self.multiplier, math.nan)

    @property
    def mass_se(self) -> float:
        """SE of the mass by the delta method: SE(multiplier)/multiplier."""
        return self.multiplier_se / self.multiplier if self.multiplier > 0 else math.nan

    def lorentzian(self, omega) -> np.ndarray:
        """The fitted spectrum at omega."""
        return self.noise / (1 - 2 * self.multiplier * np.cos(omega) + self.multiplier**2)


def ar1_fit(y: np.ndarray, extra: tuple[np.ndarray, ...] = ()) -> Ar1Fit:
    """Fit the AR(1) sector (docs/science.md §7b) to (n_series, T) series; `extra` as in `lag1_regression`."""
    beta, cov = lag1_regression(y, extra)
    rho = float(beta[0])
    omega, per, _ = periodogram(y)
    noise = float((per[1:] * (1 - 2 * rho * np.cos(omega[1:]) + rho**2)).mean())  # Whittle at fixed rho
    s0, s0_se = zero_frequency(y)
    x = np.asarray(y)
    T = x.shape[1]
    if 0 < rho < 1:  # finite-length bias of I(0) for an AR(1): E I_T(0) = S(0) - (2 rho (1 - rho^T)/T) gamma0/(1-rho)^2
        full = (1 + rho) / (1 - rho)
        s0, s0_se = (v * full / (full - 2 * rho * (1 - rho**T) / (T * (1 - rho) ** 2)) for v in (s0, s0_se))
    return Ar1Fit(rho, float(math.sqrt(cov[0, 0])), noise, s0, s0_se, x.shape[0], T)
