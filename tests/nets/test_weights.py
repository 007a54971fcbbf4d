"""Weight ensembles: reproducible per network, orthogonal rows, the xi (gauge) covariance of docs/science.md §4."""

import math

import torch

from pipeline.nets.weights import STREAM_PROBE, NetworkStreams

CPU = torch.device("cpu")


def _weights(seed, ids, layer, n, kind="gaussian", xi=1.0, dtype=torch.float64):
    """Z of layer `layer` (1-based), drawing the earlier layers first, as the engine does."""
    streams = NetworkStreams(seed, ids, CPU)
    for _ in range(layer):
        z = streams.weights(n, kind, xi, dtype)
    return z


def test_draws_are_reproducible_and_independent_of_batching():
    a = _weights(7, [0, 1, 2], 3, 16, dtype=torch.float32)
    b = _weights(7, [2], 3, 16, dtype=torch.float32)
    assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])
    assert torch.equal(_weights(7, [0, 1, 2], 3, 16, dtype=torch.float32), a)


def test_layers_and_streams_are_distinct_and_draw_order_of_other_streams_does_not_matter():
    s = NetworkStreams(5, [0], CPU)
    z1, z2 = s.weights(32, "gaussian", 1.0, torch.float64), s.weights(32, "gaussian", 1.0, torch.float64)
    assert not torch.equal(z1, z2)
    t = NetworkStreams(5, [0], CPU)
    t.normal(STREAM_PROBE, (32, 4), torch.float32)  # a probe draw in between changes no weights
    assert torch.equal(t.weights(32, "gaussian", 1.0, torch.float64), z1)


def test_float32_and_float64_runs_see_the_same_network():
    a = _weights(1, [0], 1, 32, dtype=torch.float32)
    b = _weights(1, [0], 1, 32, dtype=torch.float64)
    assert torch.equal(a.double(), b)


def test_orthogonal_weights_satisfy_w_wt_equals_n_identity():
    z = _weights(0, [0, 1], 1, 64, "orthogonal")
    eye = torch.eye(64, dtype=torch.float64)
    assert torch.allclose(z @ z.transpose(1, 2) / 64, eye.expand(2, 64, 64), atol=1e-10)


def test_row_sums_have_variance_xi_and_vanish_at_xi_zero():
    n = 256
    for xi in (0.25, 2.0, 4.0):
        z = _weights(3, list(range(8)), 1, n, xi=xi)
        row_sums = z.sum(-1) / math.sqrt(n)  # sigma_w2 = 1: Var(sum_j W_ij) = xi
        var = float(row_sums.pow(2).mean())
        assert abs(var - xi) < 4 * xi * math.sqrt(2 / row_sums.numel()), (xi, var)
    z0 = _weights(3, [0], 1, n, xi=0.0)
    assert float(z0.sum(-1).abs().max()) < 1e-10
    # transverse part untouched: the centered rows are the same Z for every xi
    z1 = _weights(3, [0], 1, n, xi=1.0)
    assert torch.allclose(z0, z1 - z1.mean(-1, keepdim=True), atol=1e-12)
