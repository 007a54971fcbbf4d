"""MLP (pipeline/nets/mlp.py): the forward pass by NumPy, shapes and defaults, initialisation variances
(tolerances from the sampling error: a variance from n Gaussian draws has relative SE sqrt(2 / n))."""

import math

import numpy as np
import torch

from pipeline.nets.mlp import MLP

# ---- MLP ---------------------------------------------------------------------------------------------


def test_mlp_forward_is_phi_of_affine_layers_then_a_linear_readout_by_numpy():
    """A wrong layer order, a missing activation or readout changes outputs by O(1); tolerance 1e-12 (float64)."""
    for act, phi in (("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0.0))):
        m = MLP(5, 7, 3, 4, sigma_w2=1.7, sigma_b2=0.3, activation=act, seed=2, dtype=torch.float64)
        x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        h = x.numpy()
        for lin in m.layers:
            h = phi(h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy())
        y = h @ m.readout.weight.detach().numpy().T + m.readout.bias.detach().numpy()
        with torch.no_grad():
            out = m(x).numpy()
        assert out.shape == (6, 4)
        assert np.abs(out - y).max() < 1e-12, act


def test_mlp_shapes_and_defaults():
    m = MLP(3, 8, 4, 2, sigma_w2=1.0)
    assert [tuple(lin.weight.shape) for lin in m.layers] == [(8, 3), (8, 8), (8, 8), (8, 8)]
    assert tuple(m.readout.weight.shape) == (2, 8)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert all(float(lin.bias.detach().abs().max()) == 0.0 for lin in m.layers)  # default sigma_b2 = 0: zero biases
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # default activation tanh: hidden units lie in (-1, 1)
        h = x
        for lin in m.layers:
            h = lin(h)
        assert torch.allclose(m.phi(h), torch.from_numpy(np.tanh(h.numpy())), atol=1e-6)
    same = MLP(3, 8, 4, 2, sigma_w2=1.0, seed=0)  # default seed 0
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), same.parameters()))
    biased = [MLP(3, 8, 2, 2, sigma_w2=1.0, sigma_b2=0.3, seed=5) for _ in range(2)]  # biases from the seed too
    assert torch.equal(biased[0].layers[1].bias, biased[1].layers[1].bias)
    other = MLP(3, 8, 4, 2, sigma_w2=1.0, seed=1)
    assert not torch.equal(m.layers[0].weight, other.layers[0].weight)
    assert all(p.dtype == torch.float64 for p in MLP(3, 8, 2, 2, 1.0, dtype=torch.float64).parameters())


def test_mlp_initialisation_variances_match_sigma_w2_over_fan_in_sigma_b2_and_one_over_width():
    """Each variance from n draws has relative standard error sqrt(2/n) <= 1.6%; tolerance 5 SE. The
    mutants scale variances by factors >= 2 (or set a mean of O(1/sqrt(N)) against an SE of 1e-3)."""
    d_in, n, sw, sb = 300, 400, 1.7, 0.45
    m = MLP(d_in, n, 2, 50, sigma_w2=sw, sigma_b2=sb, seed=4, dtype=torch.float64)
    for lin, fan_in in zip(m.layers, (d_in, n)):
        w = lin.weight.detach()
        var = float(w.pow(2).mean())
        assert abs(var / (sw / fan_in) - 1) < 5 * math.sqrt(2 / w.numel()), (fan_in, var)
        assert abs(float(w.mean())) < 5 * math.sqrt(sw / fan_in / w.numel())
        b = lin.bias.detach()
        assert abs(float(b.pow(2).mean()) / sb - 1) < 5 * math.sqrt(2 / b.numel())
    v = m.readout.weight.detach()
    assert abs(float(v.pow(2).mean()) * n - 1) < 5 * math.sqrt(2 / v.numel())
    assert abs(float(v.mean())) < 5 / math.sqrt(n * v.numel())
    assert float(m.readout.bias.detach().abs().max()) == 0.0
    assert not torch.equal(m.layers[0].bias, m.layers[1].bias[:1].expand_as(m.layers[0].bias))


def test_zero_bias_variance_draws_nothing_for_the_biases():
    """sigma_b2 = 0: the generator gives W_1, ..., W_L, V in that order (no draws for the zero biases), so the
    weights are a replay of those draws and do not depend on whether biases exist."""
    net = MLP(3, 4, 3, 2, sigma_w2=1.7, sigma_b2=0.0, seed=5, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    for lin, fan_in in zip(net.layers, (3, 4, 4)):
        want = torch.empty(4, fan_in, dtype=torch.float64).normal_(0, math.sqrt(1.7 / fan_in), generator=g)
        assert torch.equal(lin.weight, want) and torch.equal(lin.bias, torch.zeros(4, dtype=torch.float64))
    want = torch.empty(2, 4, dtype=torch.float64).normal_(0, 1 / math.sqrt(4), generator=g)
    assert torch.equal(net.readout.weight, want)
