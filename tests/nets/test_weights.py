"""Weight ensembles: reproducible per network, orthogonal rows, the xi (gauge) covariance of docs/science.md §4."""

import math

import torch

from pipeline.nets.weights import STREAM_PROBE, STREAM_WEIGHTS, NetworkStreams

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


# ---- NetworkStreams ------------------------------------------------------------------------------------


def test_normal_into_a_float64_buffer_returns_that_buffer_holding_the_float32_draws():
    """`out` wins over `dtype` and is returned itself (engines reuse it); its values are the float32 draws cast."""
    ref = NetworkStreams(11, [0, 3], torch.device("cpu")).normal(STREAM_PROBE, (4, 5), torch.float32)
    buf = torch.full((2, 4, 5), float("nan"), dtype=torch.float64)
    got = NetworkStreams(11, [0, 3], torch.device("cpu")).normal(STREAM_PROBE, (4, 5), torch.float32, out=buf)
    assert got is buf and got.dtype == torch.float64
    assert torch.equal(buf, ref.double())
    buf32 = torch.empty(2, 4, 5)
    got32 = NetworkStreams(11, [0, 3], torch.device("cpu")).normal(STREAM_PROBE, (4, 5), torch.float64, out=buf32)
    assert got32 is buf32 and torch.equal(buf32, ref)


def test_a_returned_draw_is_not_overwritten_by_the_next_draw_of_the_same_shape():
    s = NetworkStreams(2, [0, 1], torch.device("cpu"))
    first = s.normal(STREAM_PROBE, (3, 3), torch.float32)
    kept = first.clone()
    s.normal(STREAM_PROBE, (3, 3), torch.float32)
    assert torch.equal(first, kept)


def test_draws_are_float32_even_when_the_default_dtype_is_float64():
    ref = NetworkStreams(4, [0], torch.device("cpu")).normal(STREAM_PROBE, (6,), torch.float64)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = NetworkStreams(4, [0], torch.device("cpu")).normal(STREAM_PROBE, (6,), torch.float64)
    finally:
        torch.set_default_dtype(old)
    assert torch.equal(got, ref)
    assert torch.equal(got, got.float().double())  # float32 numbers


def test_gaussian_weights_fill_the_given_buffer_in_its_dtype():
    buf = torch.empty(2, 8, 8, dtype=torch.float64)
    z = NetworkStreams(6, [0, 1], torch.device("cpu")).weights(8, "gaussian", 0.5, torch.float32, out=buf)
    assert z is buf and z.dtype == torch.float64


def test_orthogonal_weights_are_the_q_of_the_positive_diagonal_qr_of_the_gaussian_draw():
    """Z = Q R with diag(R) > 0 is unique (the sign fix that makes Q Haar, Mezzadri 2007): W^T Z / sqrt(N)
    must be upper triangular with a positive diagonal (float64 rounding ~1e-13; a sign flip is O(1))."""
    n, ids = 12, [0, 5]
    w = NetworkStreams(3, ids, torch.device("cpu")).weights(n, "orthogonal", 1.0, torch.float64)
    z = NetworkStreams(3, ids, torch.device("cpu")).normal(STREAM_WEIGHTS, (n, n), torch.float64)
    r = w.transpose(1, 2) @ z / math.sqrt(n)
    assert float(torch.tril(r, -1).abs().max()) < 1e-12
    assert float(torch.diagonal(r, dim1=1, dim2=2).min()) > 0
    w32 = NetworkStreams(3, ids, torch.device("cpu")).weights(n, "orthogonal", 1.0, torch.float32)
    assert w32.dtype == torch.float32 and torch.allclose(w32.double(), w, atol=1e-6)
