"""Statistics of the recorded gauge sector G(t): variance, autocorrelation, spectrum, Lorentzian width."""

from __future__ import annotations

import numpy as np
import torch


def autocovariance(trace: torch.Tensor, max_lag: int) -> np.ndarray:
    """Site-averaged autocovariance C(k) = <G_t G_{t+k}>, k = 0..max_lag, of a (steps, sites) trace."""
    x = trace.numpy()
    n = x.shape[0]
    return np.array([(x[: n - k] * x[k:]).mean() for k in range(min(max_lag, n - 1) + 1)])


def integrated_time(c: np.ndarray) -> float:
    """Integrated autocorrelation time (in steps): 1/2 + sum_{k>=1} C(k)/C(0), cut at the first C <= 0."""
    r = c / c[0]
    cut = np.argmax(r <= 0) if np.any(r <= 0) else len(r)
    return float(0.5 + r[1:cut].sum())


def periodogram(trace: torch.Tensor, segment: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Welch-averaged power spectrum over sites and segments; frequencies in cycles per step."""
    x = trace.numpy()
    n_seg = max(1, x.shape[0] // segment)
    seg = min(segment, x.shape[0])
    parts = x[: n_seg * seg].reshape(n_seg, seg, -1)
    window = np.hanning(seg)[None, :, None]
    spec = np.abs(np.fft.rfft(parts * window, axis=1)) ** 2 / (window**2).sum()
    return np.fft.rfftfreq(seg), spec.mean((0, 2))


def ar1_spectrum(
    freq: np.ndarray, m_eig: torch.Tensor, weights: torch.Tensor, dt: float, temperature: float, xi: float
) -> np.ndarray:
    """Predicted spectrum of G sampled every step: a weighted sum of AR(1) (discrete Lorentzian) spectra."""
    phi = np.exp(-(m_eig.numpy() * dt / xi))[None, :]
    w = weights.numpy()[None, :] / weights.numpy().sum()
    var = temperature * xi
    s = var * (1 - phi**2) / (1 - 2 * phi * np.cos(2 * np.pi * freq[:, None]) + phi**2)
    return (w * s).sum(1)


def half_width(freq: np.ndarray, spec: np.ndarray) -> float:
    """Frequency where the spectrum first falls to half its zero-frequency value (nan if it never does)."""
    half = spec[0] / 2
    below = np.nonzero(spec <= half)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(np.interp(half, [spec[i], spec[i - 1]], [freq[i], freq[i - 1]]))
