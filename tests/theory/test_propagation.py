"""pipeline.theory.propagation: layer iterates against maps written out by hand (the mutation-testing gaps of
docs/mutation.md), against the mean-field fixed points, and deep iterates against adaptive quadrature.
ReLU: q' = sw (q/2 - (1 - xi) q/(2 pi)) + sb and the arc-cosine covariance
q12' = sw sqrt(q1 q2)/(2 pi) (sin t + (pi - t) cos t - (1 - xi)) + sb, t = arccos c (Cho & Saul 2009);
tanh: chi_1 = sw E sech^4 by scipy quad (tests/theory/reference.py). Float64 arithmetic, tolerance 1e-12
relative (ReLU) and 1e-9 (quad); the mutants change values by >= 1e-3."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import erf

from pipeline.activations import ACTIVATIONS, get_activation
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import mean_field_grid
from pipeline.theory.propagation import layer_iterates
from tests.theory.reference import chi1_quad


def _relu_rows(sw, sb, depth, q11, q22, c0, xi):
    rows, a, b = [], q11, q22
    ab = c0 * math.sqrt(a * b)
    for layer in range(depth + 1):
        rows.append((sw, layer, a, b, ab, ab / math.sqrt(a * b), sw / 2))
        t = math.acos(max(-1.0, min(1.0, ab / math.sqrt(a * b))))
        ab = sw * math.sqrt(a * b) / (2 * math.pi) * (math.sin(t) + (math.pi - t) * math.cos(t) - (1 - xi)) + sb
        a, b = (sw * (x / 2 - (1 - xi) * x / (2 * math.pi)) + sb for x in (a, b))
    return rows


@pytest.mark.parametrize("xi", [1.0, 0.4])
def test_relu_iterates_of_two_unequal_inputs_by_hand_in_any_grid_order(xi):
    g = GaussianIntegrator(get_activation("relu"))
    df = layer_iterates(g, [2.5, 1.2], 0.1, 3, q11=0.8, q22=1.9, c0=0.3, xi=xi)
    assert list(df.columns) == ["sigma_w2", "layer", "q11", "q22", "q12", "c", "chi1"]
    assert df.layer.dtype.kind == "i"
    want = _relu_rows(1.2, 0.1, 3, 0.8, 1.9, 0.3, xi) + _relu_rows(2.5, 0.1, 3, 0.8, 1.9, 0.3, xi)
    got = df.to_numpy(dtype=float)
    assert got.shape == (8, 7)
    assert np.allclose(got, np.array(want), rtol=1e-12, atol=0), (got, want)


def test_defaults_are_unit_variances_correlation_half_and_iid_weights():
    g = GaussianIntegrator(get_activation("relu"))
    df = layer_iterates(g, 1.7, 0.05, 2)
    assert np.allclose(df.to_numpy(dtype=float), np.array(_relu_rows(1.7, 0.05, 2, 1.0, 1.0, 0.5, 1.0)), rtol=1e-12)


def test_tanh_chi1_column_is_taken_at_the_first_inputs_variance():
    g = GaussianIntegrator(get_activation("tanh"))
    df = layer_iterates(g, [1.5], 0.0, 2, q11=0.4, q22=3.0, c0=0.2)
    for _, row in df.iterrows():
        assert abs(row.chi1 / chi1_quad("tanh", 1.5, row.q11) - 1) < 1e-9, row
    assert df.q11.iloc[0] == 0.4 and df.q22.iloc[0] == 3.0


def test_layer_iterates_reach_the_fixed_points():
    g = GaussianIntegrator(ACTIVATIONS["tanh"])
    it = layer_iterates(g, 2.5, 0.1, depth=300, q11=2.0, q22=0.5, c0=0.2)
    r = mean_field_grid(g, torch.tensor(2.5, dtype=torch.float64), 0.1)
    assert abs(it.q11.iloc[-1] - float(r.q_star)) < 1e-9
    assert abs(it.q22.iloc[-1] - float(r.q_star)) < 1e-9
    assert abs(it.c.iloc[-1] - float(r.c_star)) < 1e-6
    assert it.layer.iloc[-1] == 300 and it.c.iloc[0] == 0.2


# ---- deep iterates of unbounded activations against adaptive quadrature (issue 14: accuracy must follow q).
# The integrator was calibrated on variances up to q_max = 20; gelu at sigma_w2 = 2.5, sigma_b2 = 0.3 reaches
# q ~ 1220 by layer 30, where the old fixed rule was off by 7e-5 relative while reporting `converged`. The
# reference here is scipy's adaptive `quad` (a different code path: no fixed nodes, error control per call).
SQ2 = math.sqrt(2.0)
PHI_NP = {
    "gelu": lambda x: 0.5 * x * (1 + erf(x / SQ2)),
    "swish": lambda x: x / (1 + np.exp(-x)),
}


def _gauss(f) -> float:
    val, _ = integrate.quad(lambda z: f(z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi), -14, 14,
                            epsabs=0, epsrel=1e-13, limit=800, points=[0.0])  # fmt: skip
    return val


def reference_q(name: str, sigma_w2: float, sigma_b2: float, q0: float, depth: int) -> list[float]:
    phi, q, out = PHI_NP[name], q0, [q0]
    for _ in range(depth):
        q = sigma_w2 * _gauss(lambda z, s=math.sqrt(q): phi(s * z) ** 2) + sigma_b2
        out.append(q)
    return out


@pytest.mark.parametrize("name", ["gelu", "swish"])
def test_deep_iterates_match_adaptive_quadrature_far_above_the_calibrated_range(name):
    """Effect guarded: 7e-5 relative (the old error at q ~ 1200); tolerance 1e-9 relative."""
    sw, sb, depth = 2.5, 0.3, 30
    g = GaussianIntegrator(get_activation(name), q_max=20.0)
    it = layer_iterates(g, [sw], sb, depth, 1.0, 1.0, 0.5, 1.0)
    ref = reference_q(name, sw, sb, 1.0, depth)
    assert ref[-1] > 10 * 20.0  # the test really goes far beyond the calibration range (q_max = 20)
    rel = np.abs(it.q11.to_numpy() / np.array(ref) - 1)
    assert rel.max() < 1e-9, rel.max()
    assert g.accurate and g.q_max >= ref[-1]  # the rule followed the variance and says so


def test_gelu_layer_30_matches_the_independent_values_quoted_in_the_issue():
    """neural-tangents' closed-form kernel and adaptive quad both give q = 1219.5180, c = 0.96812."""
    g = GaussianIntegrator(get_activation("gelu"), q_max=20.0)
    last = layer_iterates(g, [2.5], 0.3, 30, 1.0, 1.0, 0.5, 1.0).iloc[-1]
    assert abs(last.q11 - 1219.5180) < 1e-4 and abs(last.c - 0.96812) < 1e-5


def test_a_fixed_node_count_beyond_its_range_is_flagged_not_trusted():
    g = GaussianIntegrator(get_activation("gelu"), q_max=20.0, n_nodes=256)
    assert g.accurate
    g.e_phi2(torch.tensor([1200.0], dtype=torch.float64))
    assert not g.accurate


def test_small_grid_iterates_run_single_threaded_and_large_grids_keep_their_threads(monkeypatch):
    # issue 21: a 5-point smoke grid at depth 1000 took 57 s with torch's 2 intra-op threads on a loaded 2-core
    # machine (every small operation waits for both threads) against 1.1 s on one; a depth-1000 job then took
    # > 15x a depth-100 one. Small theory calls run on one thread; a grid whose (points x nodes) exceeds
    # SERIAL_ELEMENTS keeps the caller's threads; the caller's setting is restored after each call.
    from pipeline.theory import quadrature
    from pipeline.theory.mean_field import variance_map

    g = GaussianIntegrator(get_activation("tanh"))
    seen = []
    real = GaussianIntegrator.kernel

    def spy(self, q1, q2, c):
        seen.append(torch.get_num_threads())
        return real(self, q1, q2, c)

    monkeypatch.setattr(GaussianIntegrator, "kernel", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer_iterates(g, [1.5, 2.0, 2.5], 0.05, depth=3)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        threads = []
        monkeypatch.setattr(g, "e_phi2", lambda q: threads.append(torch.get_num_threads()) or q * 0)
        big = torch.ones(quadrature.SERIAL_ELEMENTS // g.n_nodes + 1, dtype=torch.float64)
        variance_map(g, big, 1.5, 0.0)
        variance_map(g, big[:10], 1.5, 0.0)
        assert threads == [2, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
