"""Weight ensembles: reproducible per cell, orthogonal rows, the xi (gauge) covariance of science.md §4."""
import math

import torch

from pipeline.nets.weights import standard_weights

CPU = torch.device("cpu")


def test_draws_are_reproducible_and_independent_of_batching():
    a = standard_weights(7, [0, 1, 2], 3, 16, "gaussian", 1.0, CPU, torch.float32)
    b = standard_weights(7, [2], 3, 16, "gaussian", 1.0, CPU, torch.float32)
    assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])


def test_float32_and_float64_runs_see_the_same_network():
    a = standard_weights(1, [0], 1, 32, "gaussian", 1.0, CPU, torch.float32)
    b = standard_weights(1, [0], 1, 32, "gaussian", 1.0, CPU, torch.float64)
    assert torch.equal(a.double(), b)


def test_orthogonal_weights_satisfy_w_wt_equals_n_identity():
    z = standard_weights(0, [0, 1], 1, 64, "orthogonal", 1.0, CPU, torch.float64)
    eye = torch.eye(64, dtype=torch.float64)
    assert torch.allclose(z @ z.transpose(1, 2) / 64, eye.expand(2, 64, 64), atol=1e-10)


def test_row_sums_have_variance_xi_and_vanish_at_xi_zero():
    n = 256
    for xi in (0.25, 2.0, 4.0):
        z = standard_weights(3, list(range(8)), 1, n, "gaussian", xi, CPU, torch.float64)
        row_sums = z.sum(-1) / math.sqrt(n)  # sigma_w2 = 1: Var(sum_j W_ij) = xi
        var = float(row_sums.pow(2).mean())
        assert abs(var - xi) < 4 * xi * math.sqrt(2 / row_sums.numel()), (xi, var)
    z0 = standard_weights(3, [0], 1, n, "gaussian", 0.0, CPU, torch.float64)
    assert float(z0.sum(-1).abs().max()) < 1e-10
    # transverse part untouched: the centered rows are the same Z for every xi
    z1 = standard_weights(3, [0], 1, n, "gaussian", 1.0, CPU, torch.float64)
    assert torch.allclose(z0, z1 - z1.mean(-1, keepdim=True), atol=1e-12)
