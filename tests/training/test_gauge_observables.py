"""Statistics of the gauge sector G(t) (pipeline/training/gauge_observables.py) against closed forms.

The reference process is AR(1), x_t = a x_{t-1} + e_t with Var e = s^2 (docs/science.md §5: G sampled every
step is a sum of such modes, a = exp(-m dt / xi)). Its closed forms:
- autocovariance C(k) = s^2 a^k / (1 - a^2);
- integrated autocorrelation time, in the convention of `integrated_time` (Sokal's: 1/2 + sum_{k>=1} rho(k),
  so that Var(mean) = 2 tau Var(x) / n): tau = (1 + a) / (2 (1 - a));
- spectrum per step S(f) = s^2 / |1 - a e^{-2 pi i f}|^2, which integrates over f in (-1/2, 1/2) to C(0);
- half width at half maximum: cos(2 pi f_half) = (4a - 1 - a^2) / (2a) where a >= 3 - 2 sqrt 2, else no
  half point.
"""

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from pipeline.training import gauge_observables as obs


def ar1(a: float, s: float, steps: int, sites: int, seed: int) -> torch.Tensor:
    """Stationary AR(1) trace of shape (steps, sites): a burn-in of 400 steps is dropped (a^400 < 1e-38)."""
    e = np.random.default_rng(seed).normal(0.0, s, size=(steps + 400, sites))
    return torch.from_numpy(lfilter([1.0], [1.0, -a], e, axis=0)[400:])


def ar1_closed_spectrum(f: np.ndarray, a: float, s: float) -> np.ndarray:
    return s**2 / np.abs(1 - a * np.exp(-2j * np.pi * f)) ** 2


def hwhm_closed(a: float) -> float:
    return math.acos((4 * a - 1 - a * a) / (2 * a)) / (2 * math.pi)


# ---------- autocovariance ----------


def test_autocovariance_of_a_short_trace_by_hand():
    """Mean over the n - k pairs at lag k and over sites, no mean subtracted; lags capped at steps - 1."""
    trace = torch.tensor([[1.0, 1.0], [2.0, -1.0], [3.0, 1.0], [4.0, -1.0]], dtype=torch.float64)
    # site 0: (1+4+9+16)/4, (2+6+12)/3, (3+8)/2, 4/1; site 1: +1, -1, +1, -1
    expected = np.array([(7.5 + 1) / 2, (20 / 3 - 1) / 2, (5.5 + 1) / 2, (4 - 1) / 2])
    np.testing.assert_allclose(obs.autocovariance(trace, 10), expected, rtol=1e-15)
    np.testing.assert_allclose(obs.autocovariance(trace, 2), expected[:3], rtol=1e-15)
    assert obs.autocovariance(trace, 0).shape == (1,)


def test_autocovariance_of_ar1_is_s2_a_k_over_1_minus_a2_within_4_se():
    a, s = 0.7, 1.3
    trace = ar1(a, s, steps=4000, sites=200, seed=1)
    c = obs.autocovariance(trace, 8)
    exact = s**2 * a ** np.arange(9) / (1 - a * a)
    # SE from the measurement: spread of the estimate over 20 independent blocks of sites
    blocks = np.array([obs.autocovariance(b, 8) for b in trace.split(10, dim=1)])
    se = blocks.std(0, ddof=1) / math.sqrt(len(blocks))
    assert np.all(np.abs(c - exact) < 4 * se + 1e-12), (c, exact, se)
    assert np.all(4 * se < 0.02 * exact[0])  # tight: a 2% error of C(0) is caught


# ---------- integrated time ----------


@pytest.mark.parametrize("a", [0.3, 0.9])
def test_integrated_time_of_exact_ar1_autocovariance_is_half_plus_geometric_sum(a):
    """For C(k) = a^k, k = 0..K (no cut): 1/2 + a (1 - a^K) / (1 - a) -> (1 + a) / (2 (1 - a)); scale-free."""
    k_max = 400
    c = 3.7 * a ** np.arange(k_max + 1)
    tau = obs.integrated_time(c)
    assert tau == pytest.approx(0.5 + a * (1 - a**k_max) / (1 - a), rel=1e-12)
    assert tau == pytest.approx((1 + a) / (2 * (1 - a)), rel=1e-12)


def test_integrated_time_is_cut_at_the_first_non_positive_lag():
    assert obs.integrated_time(np.array([2.0, 1.0, 0.5, -0.2, 1.0])) == pytest.approx(0.5 + 0.5 + 0.25)
    assert obs.integrated_time(np.array([2.0, 1.0, 0.0, 1.0])) == pytest.approx(1.0)  # C = 0 cuts too
    assert obs.integrated_time(np.array([2.0, -1.0, 1.0])) == pytest.approx(0.5)
    assert obs.integrated_time(np.array([2.0])) == pytest.approx(0.5)


def test_integrated_time_measured_on_ar1_matches_closed_form_within_4_se():
    a = 0.8
    trace = ar1(a, 1.0, steps=4000, sites=400, seed=2)
    tau = obs.integrated_time(obs.autocovariance(trace, 80))  # a^80 = 2e-8: the cut comes first
    blocks = np.array([obs.integrated_time(obs.autocovariance(b, 80)) for b in trace.split(20, dim=1)])
    se = blocks.std(ddof=1) / math.sqrt(len(blocks))
    exact = (1 + a) / (2 * (1 - a))  # 4.5
    assert abs(tau - exact) < 4 * se, (tau, exact, se)
    assert 4 * se < 0.2  # well below the shift of a wrong convention (1 instead of 1/2: +0.5; 2 tau: x2)


# ---------- periodogram ----------


def test_periodogram_of_a_sinusoid_peaks_at_its_frequency():
    seg, j = 128, 17
    t = np.arange(8 * seg)
    trace = torch.from_numpy(np.stack([np.cos(2 * np.pi * j * t / seg + p) for p in (0.0, 1.0, 2.5)], 1))
    freq, spec = obs.periodogram(trace, segment=seg)
    np.testing.assert_allclose(freq, np.arange(seg // 2 + 1) / seg, rtol=0, atol=1e-15)
    assert int(np.argmax(spec)) == j
    # Hann window: the tone's power A^2/4 sum(w)^2 / sum(w^2) sits in bins j and j +- 1 (w-hat = 1/2, 1/4)
    w = np.hanning(seg)
    assert spec[j] == pytest.approx(0.25 * w.sum() ** 2 / (w**2).sum(), rel=1e-2)
    assert spec[j + 1] == pytest.approx(spec[j] / 4, rel=5e-2)
    assert spec[j - 1] == pytest.approx(spec[j] / 4, rel=5e-2)
    # np.hanning is the symmetric window: its side lobes leak ~1e-5 into j +- 2, less further out
    assert np.all(spec[np.abs(np.arange(len(spec)) - j) > 1] < 1e-4 * spec[j])


def test_periodogram_satisfies_parseval_per_segment_exactly():
    """One-sided Parseval: S_0 + 2 sum S_mid + S_Nyq = seg * <sum_t (x w)^2> / sum w^2, averaged."""
    seg = 64
    x = np.random.default_rng(3).normal(size=(5 * seg + 7, 3)) * np.array([1.0, 2.0, 0.5])
    freq, spec = obs.periodogram(torch.from_numpy(x), segment=seg)
    assert spec.shape == freq.shape == (seg // 2 + 1,)
    w = np.hanning(seg)[None, :, None]
    parts = x[: 5 * seg].reshape(5, seg, 3)  # the 7 trailing steps are dropped
    energy = seg * ((parts * w) ** 2).sum(1).mean() / (w**2).sum()
    one_sided = spec[0] + 2 * spec[1:-1].sum() + spec[-1]
    assert one_sided == pytest.approx(energy, rel=1e-12)


def test_periodogram_of_a_trace_shorter_than_a_segment_uses_the_whole_trace():
    x = np.random.default_rng(4).normal(size=(20, 2))
    freq, spec = obs.periodogram(torch.from_numpy(x), segment=128)
    assert freq.shape == spec.shape == (11,)
    w = np.hanning(20)[:, None]
    expected = (np.abs(np.fft.rfft(x * w, axis=0)) ** 2).mean(1) / (w**2).sum()
    np.testing.assert_allclose(spec, expected, rtol=1e-12)


def test_periodogram_of_ar1_matches_the_closed_spectrum_within_4_se():
    """Also: white noise of variance s^2 (a = 0) is flat at s^2 (the normalisation `ar1_spectrum` assumes)."""
    for a, s, seed in [(0.0, 1.5, 5), (0.6, 1.0, 6)]:
        trace = ar1(a, s, steps=4096, sites=128, seed=seed)
        freq, spec = obs.periodogram(trace)
        blocks = np.array([obs.periodogram(b)[1] for b in trace.split(8, dim=1)])
        se = blocks.std(0, ddof=1) / math.sqrt(len(blocks))
        exact = ar1_closed_spectrum(freq, a, s)
        z = (spec - exact) / se
        assert np.all(np.abs(z) < 4.5), (a, z.round(1))
        assert np.all(4 * se < 0.1 * exact)  # a 10% error of the normalisation or the shape is caught


# ---------- AR(1) spectrum ----------


def test_ar1_spectrum_of_one_mode_is_the_closed_lorentzian():
    m, dt, temperature, xi = 0.4, 0.5, 0.3, 2.0
    a = math.exp(-m * dt / xi)
    s2 = temperature * xi * (1 - a * a)  # stationary variance T xi (docs/science.md §5)
    f = np.linspace(0, 0.5, 101)
    m_eig, weights = torch.tensor([m], dtype=torch.float64), torch.tensor([5.0], dtype=torch.float64)
    pred = obs.ar1_spectrum(f, m_eig, weights, dt, temperature, xi)
    np.testing.assert_allclose(pred, ar1_closed_spectrum(f, a, math.sqrt(s2)), rtol=1e-12)


def test_ar1_spectrum_is_the_normalised_weighted_sum_and_integrates_to_t_xi():
    m = torch.tensor([0.1, 1.0, 4.0], dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    dt, temperature, xi = 0.2, 0.7, 1.5
    f = np.linspace(-0.5, 0.5, 20001)
    pred = obs.ar1_spectrum(f, m, w, dt, temperature, xi)
    parts = [obs.ar1_spectrum(f, m[i : i + 1], w[i : i + 1], dt, temperature, xi) for i in range(3)]
    np.testing.assert_allclose(pred, sum(wi / 8 * p for wi, p in zip([1, 2, 5], parts, strict=True)), rtol=1e-12)
    # sum rule: the integral over one period is the variance T xi (trapezoid on a periodic integrand)
    integral = (pred[:-1].sum()) * (f[1] - f[0])
    assert integral == pytest.approx(temperature * xi, rel=1e-9)


# ---------- half width ----------


@pytest.mark.parametrize("a", [0.2, 0.5, 0.9, 0.99])
def test_half_width_of_the_ar1_spectrum_matches_the_closed_form(a):
    f = np.linspace(0, 0.5, 20001)
    spec = ar1_closed_spectrum(f, a, 1.0)
    assert obs.half_width(f, spec) == pytest.approx(hwhm_closed(a), abs=1e-7)


def test_half_width_is_nan_where_the_ar1_spectrum_never_halves():
    f = np.linspace(0, 0.5, 1001)
    assert math.isnan(obs.half_width(f, ar1_closed_spectrum(f, 0.15, 1.0)))  # a < 3 - 2 sqrt 2
    assert math.isnan(obs.half_width(f, np.zeros_like(f)))  # S(0) = 0: no peak


def test_half_width_interpolates_linearly_and_takes_the_first_crossing():
    f = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert obs.half_width(f, np.array([4.0, 3.0, 1.0, 3.0, 0.5])) == pytest.approx(1.5)
    assert obs.half_width(f, np.array([4.0, 2.0, 1.0, 0.0, 0.0])) == pytest.approx(1.0)  # exactly half at f = 1
    assert isinstance(obs.half_width(f, np.array([4.0, 2.0, 1.0, 0.0, 0.0])), float)
