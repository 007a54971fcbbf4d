"""Mutation-testing gaps of pipeline.theory.propagation (docs/mutation.md): layer iterates against maps
written out by hand. ReLU: q' = sw (q/2 - (1 - xi) q/(2 pi)) + sb and the arc-cosine covariance
q12' = sw sqrt(q1 q2)/(2 pi) (sin t + (pi - t) cos t - (1 - xi)) + sb, t = arccos c (Cho & Saul 2009);
tanh: chi_1 = sw E sech^4 by scipy quad (tests/theory/reference.py). Float64 arithmetic, tolerance 1e-12
relative (ReLU) and 1e-9 (quad); the mutants change values by >= 1e-3."""

import math

import numpy as np
import pytest

from pipeline.activations import get_activation
from pipeline.theory.gaussian import GaussianIntegrator
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
