"""Mutation-testing gaps of pipeline.nets (docs/mutation.md), each against an independent reference.

References: forward passes recomputed from the parameters with NumPy (complex arithmetic written out,
np.tanh / np.maximum), initialisation laws by their first two moments (tolerances from the sampling
error: the relative standard error of a variance estimate from n i.i.d. Gaussian draws is sqrt(2 / n)),
and the gauge Gram matrix from an incidence matrix E built link by link.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.nets.ginn import GINN, GaugeLink, ModulusLayer, gauge_generator_gram, random_gauge
from pipeline.nets.mlp import MLP
from pipeline.nets.weights import STREAM_PROBE, STREAM_WEIGHTS, NetworkStreams


def _softplus(x):
    return np.log1p(np.exp(x))


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


# ---- GaugeLink, ModulusLayer ---------------------------------------------------------------------------


def test_gauge_link_is_a_circular_complex_gaussian_drawn_in_float64():
    """|U|^2 ~ Exp(mean sigma_w2/n_in) (variance = mean^2) and phase ~ U[0, 2 pi) (mean pi, variance pi^2/3):
    n = 160,000 draws give relative SEs of 0.25% (mean), 0.6% (variance); tolerances 5 SE."""
    n_in, n_out, sw = 400, 400, 2.3
    link = GaugeLink(n_in, n_out, sw, torch.Generator().manual_seed(0), torch.float64)
    rho, theta = link.rho.detach(), link.theta.detach()
    assert rho.shape == theta.shape == (n_out, n_in)
    k = rho.numel()
    mag2 = rho.pow(2)
    mean = sw / n_in
    assert abs(float(mag2.mean()) / mean - 1) < 5 / math.sqrt(k)
    assert abs(float(mag2.var()) / mean**2 - 1) < 5 * math.sqrt(8 / k)  # Var of the Exp variance estimate: 8 m^4/k
    assert float(theta.min()) >= 0 and float(theta.max()) < 2 * math.pi
    assert abs(float(theta.mean()) - math.pi) < 5 * math.pi / math.sqrt(3 * k)
    assert abs(float(theta.var()) / (math.pi**2 / 3) - 1) < 5 * math.sqrt(0.8 / k)  # uniform: Var(s^2)/s^4 = 0.8/k
    # drawn in float64: the parameters are not float32 numbers cast up, and the phases / (2 pi) are not on
    # float32's uniform grid k 2^-24 (distance to the nearest grid point: uniform on [0, 1/2] for float64 draws)
    raw = link.rho_raw.detach()
    assert float((raw - raw.float().double()).abs().max()) > 0
    grid = theta / (2 * math.pi) * 2**24
    assert float((grid - grid.round()).abs().max()) > 0.1
    again = GaugeLink(n_in, n_out, sw, torch.Generator().manual_seed(0), torch.float64)
    assert torch.equal(again.rho_raw, link.rho_raw) and torch.equal(again.theta, link.theta)


def test_gauge_link_forward_is_the_complex_matrix_product_by_numpy():
    link = GaugeLink(5, 3, 1.0, torch.Generator().manual_seed(1), torch.float64)
    u = _softplus(link.rho_raw.detach().numpy()) * np.exp(1j * link.theta.detach().numpy())
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, dtype=torch.float64, generator=gen)
    z = torch.complex(torch.randn(4, 5, dtype=torch.float64, generator=gen), x)
    with torch.no_grad():
        assert np.abs(link(x).numpy() - x.numpy() @ u.T).max() < 1e-12
        assert np.abs(link(z).numpy() - z.numpy() @ u.T).max() < 1e-12


@pytest.mark.parametrize("offset", [-0.2, -1.3])
def test_modrelu_layer_is_relu_of_modulus_plus_offset_times_phase_by_numpy(offset):
    layer = ModulusLayer("modrelu", 6, offset=offset, dtype=torch.float64)
    assert layer.kind == "modrelu"
    assert layer.b_raw.dtype == torch.float64 and layer.b_raw.shape == (6,)
    b = -_softplus(layer.b_raw.detach().numpy())
    # the initial offset is the one asked for, to float32 rounding (it is set through a float32 scalar)
    assert np.abs(b - offset).max() < 1e-6 * abs(offset)
    gen = torch.Generator().manual_seed(3)
    z = torch.complex(torch.randn(5, 6, dtype=torch.float64, generator=gen), torch.randn(5, 6, generator=gen).double())
    zn = z.numpy()
    r = np.abs(zn)
    want = np.maximum(r + b, 0.0) * zn / r
    with torch.no_grad():
        assert np.abs(layer(z).numpy() - want).max() < 1e-12
        assert np.abs(layer.g(torch.from_numpy(r)).numpy() - np.maximum(r + b, 0)).max() < 1e-12


def test_modrelu_offset_limits_and_error_message():
    zero = ModulusLayer("modrelu", 3, offset=0.0, dtype=torch.float64)  # 0 is allowed; starts at -1e-6
    assert np.abs(-_softplus(zero.b_raw.detach().numpy()) + 1e-6).max() < 1e-12  # float32 rounding: ~3e-13
    assert zero.b_raw.dtype == torch.float64
    assert ModulusLayer("modrelu", 3).b_raw.dtype == torch.float32  # default dtype
    for bad in (0.5, 2.0):
        with pytest.raises(ValueError, match="modrelu_offset"):
            ModulusLayer("modrelu", 3, offset=bad)


@pytest.mark.parametrize("kind,g", [("tanh", np.tanh), ("identity", lambda r: r)])
def test_tanh_and_identity_modulus_layers_by_numpy(kind, g):
    layer = ModulusLayer(kind, 4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    z = torch.complex(torch.randn(3, 4, dtype=torch.float64, generator=gen), torch.randn(3, 4, generator=gen).double())
    z[0, 0] = 0  # z = 0 maps to 0
    zn = z.numpy()
    r = np.abs(zn)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(r > 0, g(r) * zn / r, 0)
    with torch.no_grad():
        assert np.abs(layer(z).numpy() - want).max() < 1e-12


# ---- GINN ------------------------------------------------------------------------------------------------


def test_ginn_forward_by_numpy_and_parameter_dtypes():
    m = GINN(3, 5, 3, 2, 2.5, "modrelu", -0.3, seed=1, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert len(m.links) == len(m.acts) == 3
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    psi = x.numpy().astype(complex)
    for link, act in zip(m.links, m.acts):
        u = _softplus(link.rho_raw.detach().numpy()) * np.exp(1j * link.theta.detach().numpy())
        z = psi @ u.T
        b = -_softplus(act.b_raw.detach().numpy())
        assert np.abs(b + 0.3).max() < 1e-6  # set through a float32 scalar (error ~3e-8)
        r = np.abs(z)
        psi = np.maximum(r + b, 0) * z / np.maximum(r, 1e-300)  # 0 where g(r) = 0
    y = np.abs(psi) @ m.readout.weight.detach().numpy().T
    assert np.abs(y).min() > 1e-3  # not a dead network
    with torch.no_grad():
        assert np.abs(m(x).numpy() - y).max() < 1e-12
    assert float(m.readout.bias.detach().abs().max()) == 0.0


def test_ginn_initialisation_is_reproducible_per_seed_and_default_seed_is_zero():
    a = GINN(3, 6, 2, 2, 1.0, seed=0)
    b = GINN(3, 6, 2, 2, 1.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = GINN(3, 6, 2, 2, 1.0, seed=7)
    assert not torch.equal(a.links[0].theta, c.links[0].theta)
    assert not torch.equal(a.readout.weight, c.readout.weight)
    assert all(p.dtype == torch.float32 for p in a.parameters())


def test_ginn_readout_weights_have_variance_one_over_width():
    """Var = 1/N from 20 x 500 draws: relative SE sqrt(2/10^4) = 1.4%, tolerance 5 SE; the mean is 0 within 5 SE."""
    n = 500
    m = GINN(2, n, 1, 20, 1.0, seed=3, dtype=torch.float64)
    v = m.readout.weight.detach()
    assert abs(float(v.pow(2).mean()) * n - 1) < 5 * math.sqrt(2 / v.numel())
    assert abs(float(v.mean())) < 5 / math.sqrt(n * v.numel())


# ---- gauge helpers ---------------------------------------------------------------------------------------


def test_random_gauge_is_uniform_on_zero_two_pi_reproducible_and_in_the_phase_dtype():
    """Mean pi and variance pi^2/3 of U[0, 2 pi) from 3 x 2000 draws: 5 SE tolerances (1.7%, 3.5%)."""

    class Sites(nn.Module):  # random_gauge reads only the number of sites and the dtype of each theta
        def __init__(self, dtype):
            super().__init__()
            self.links = nn.ModuleList(GaugeLink(1, 2000, 1.0, None, dtype) for _ in range(3))

    m = Sites(torch.float64)
    a = random_gauge(m, torch.Generator().manual_seed(9))
    assert [t.shape for t in a] == [(2000,)] * 3
    assert all(t.dtype == torch.float64 for t in a)
    allv = torch.cat(a)
    k = allv.numel()
    assert float(allv.min()) >= 0 and float(allv.max()) < 2 * math.pi
    assert abs(float(allv.mean()) - math.pi) < 5 * math.pi / math.sqrt(3 * k)
    assert abs(float(allv.var()) / (math.pi**2 / 3) - 1) < 5 * math.sqrt(0.8 / k)
    grid = allv / (2 * math.pi) * 2**24  # drawn in float64: not on float32's uniform grid k 2^-24
    assert float((grid - grid.round()).abs().max()) > 0.1
    b = random_gauge(m, torch.Generator().manual_seed(9))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert all(t.dtype == torch.float32 for t in random_gauge(Sites(torch.float32), torch.Generator().manual_seed(0)))


def test_gauge_generator_gram_is_e_transpose_e_for_ragged_layers():
    """E built link by link: row (l, i, j) has +1 at hidden site (l, i) and -1 at (l-1, j) when l > 1."""
    gen = torch.Generator().manual_seed(0)
    sizes = [(4, 3), (2, 4), (5, 2)]  # (n_out, n_in): d_in = 3, hidden widths 4, 2, 5

    class Ragged(nn.Module):
        def __init__(self):
            super().__init__()
            self.links = nn.ModuleList(GaugeLink(i, o, 1.0, gen, torch.float64) for o, i in sizes)

    offsets = np.cumsum([0] + [o for o, _ in sizes])
    rows = []
    for l, (n_out, n_in) in enumerate(sizes):
        for i in range(n_out):
            for j in range(n_in):
                row = np.zeros(offsets[-1])
                row[offsets[l] + i] = 1.0
                if l > 0:
                    row[offsets[l - 1] + j] = -1.0
                rows.append(row)
    e = np.array(rows)
    m = gauge_generator_gram(Ragged())
    assert m.dtype == torch.float64
    assert np.array_equal(m.numpy(), e.T @ e)


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
