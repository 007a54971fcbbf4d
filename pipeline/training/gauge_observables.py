"""Statistics of the recorded gauge sector G(t): variance, autocorrelation, spectrum, Lorentzian width."""

from __future__ import annotations

import numpy as np
import torch


def autocovariance(trace: torch.Tensor, max_lag: int) -> np.ndarray:
    """Site-averaged autocovariance C(k) = <G_t G_{t+k}>, k = 0..max_lag, of a (steps, sites) trace.

    Averaged over time and sites without subtracting a mean (G has mean 0 in the stationary state,
    docs/science.md §5).

    Args:
        trace: G(t), CPU tensor of shape (steps, sites), typically float64.
        max_lag: largest lag; capped at steps - 1.

    Returns:
        numpy array of shape (min(max_lag, steps - 1) + 1,).
    """
    x = trace.numpy()
    n = x.shape[0]
    return np.array([(x[: n - k] * x[k:]).mean() for k in range(min(max_lag, n - 1) + 1)])


def integrated_time(c: np.ndarray) -> float:
    """Integrated autocorrelation time (in steps): 1/2 + sum_{k>=1} C(k)/C(0), cut at the first C <= 0.

    docs/science.md §5 (experiment b).

    Args:
        c: autocovariance C(0..K), 1-D numpy array with C(0) > 0.

    Returns:
        Python float.
    """
    r = c / c[0]
    cut = np.argmax(r <= 0) if np.any(r <= 0) else len(r)
    return float(0.5 + r[1:cut].sum())


def periodogram(trace: torch.Tensor, segment: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Welch-averaged power spectrum over sites and segments; frequencies in cycles per step.

    Hann window, non-overlapping segments, |FFT|^2 / sum(window^2), averaged over segments and sites; the
    normalisation makes white noise of variance s^2 flat at s^2, matching `ar1_spectrum`
    (docs/science.md §5).

    Args:
        trace: G(t), CPU tensor of shape (steps, sites).
        segment: segment length in steps (the whole trace if shorter).

    Returns:
        (freq, spectrum), numpy arrays of shape (seg // 2 + 1,), seg = min(segment, steps).
    """
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
    """Predicted spectrum of G sampled every step: a weighted sum of AR(1) (discrete Lorentzian) spectra.

    S(f) = sum_m w_m xi T (1 - phi_m^2) / (1 - 2 phi_m cos(2 pi f) + phi_m^2), phi_m = exp(-m dt / xi), with
    the weights normalised to sum to 1 (docs/science.md §5).

    Args:
        freq: frequencies in cycles per step, numpy array of shape (F,).
        m_eig: eigenvalues m of M, tensor of shape (n,).
        weights: mode weights w_m, tensor of shape (n,).
        dt: time step.
        temperature: temperature T.
        xi: gauge parameter (finite).

    Returns:
        numpy array of shape (F,).
    """
    phi = np.exp(-(m_eig.numpy() * dt / xi))[None, :]
    w = weights.numpy()[None, :] / weights.numpy().sum()
    var = temperature * xi
    s = var * (1 - phi**2) / (1 - 2 * phi * np.cos(2 * np.pi * freq[:, None]) + phi**2)
    return (w * s).sum(1)


def half_width(freq: np.ndarray, spec: np.ndarray) -> float:
    """Frequency where the spectrum first falls to half its zero-frequency value (nan if it never does).

    Half width at half maximum of the low-frequency peak (docs/science.md §5), linearly interpolated.

    Args:
        freq: increasing frequencies, 1-D numpy array.
        spec: spectrum at freq, 1-D numpy array of the same length.

    Returns:
        Python float.
    """
    half = spec[0] / 2
    below = np.nonzero(spec <= half)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(np.interp(half, [spec[i], spec[i - 1]], [freq[i], freq[i - 1]]))
