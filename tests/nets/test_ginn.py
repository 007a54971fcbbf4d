"""GINN (docs/science.md §5): exact gauge invariance, gauge-free gradients, mean-field gain, gauge-sector OU."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.data.datasets import load
from pipeline.nets.ginn import (
    GINN,
    GaugeLink,
    ModulusLayer,
    apply_gauge,
    gauge_generator_gram,
    random_gauge,
    site_divergence,
)
from pipeline.theory.ginn import chi_ginn, ginn_critical_sigma_w2, ginn_q_star
from pipeline.training.gauge_sector import GaugeSector
from pipeline.training.langevin import load_checkpoint, train
from tests.conftest import train_spec


def _pair(dtype, activation="tanh"):
    m = GINN(12, 24, 4, 3, 1.5, activation, -0.2, seed=3, dtype=dtype)
    g = copy.deepcopy(m)
    apply_gauge(g, random_gauge(g, torch.Generator().manual_seed(5)))
    return m, g


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("activation", ["tanh", "modrelu"])
def test_random_local_gauge_transformation_leaves_outputs_invariant(dtype, tol, activation):
    m, g = _pair(dtype, activation)
    x = torch.randn(50, 12, dtype=dtype)
    assert not torch.allclose(m.links[1].theta, g.links[1].theta)  # the phases did change
    with torch.no_grad():
        assert float((m(x) - g(x)).abs().max()) < tol


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_loss_gradient_has_no_component_along_gauge_orbits(dtype, tol):
    m = GINN(12, 24, 4, 3, 1.5, "tanh", seed=3, dtype=dtype)
    x, y = torch.randn(40, 12, dtype=dtype), torch.randint(0, 3, (40,))
    torch.nn.functional.cross_entropy(m(x), y).backward()
    grads = [t.grad for t in m.phases()]
    scale = max(float(gr.abs().max()) for gr in grads)
    assert float(site_divergence(grads).abs().max()) < tol * max(scale, 1.0) * 24


def test_identity_modulus_activation_has_gain_sigma_w2():
    for sw in (0.5, 1.0, 2.5):
        assert abs(float(chi_ginn(torch.tensor(1.7), sw, "identity")) - sw) < 1e-12


@pytest.mark.parametrize("kind,sw", [("tanh", 2.0), ("tanh", 1.5), ("identity", 1.3)])
def test_mean_field_gain_matches_a_wide_random_ginn_within_3_percent(kind, sw):
    """||J v||^2 / ||v||^2 of a layer psi -> g(|z|) z/|z| against chi_GINN at that layer's measured q = E|z|^2."""
    n = 512
    m = GINN(n, n, 8, 2, sw, kind, seed=1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, n, dtype=torch.float64, generator=gen)
    ratios = []
    with torch.no_grad():
        hs = m.hidden(x)
        for layer in range(2, 8):
            psi = hs[layer - 1]
            q = float(m.links[layer](psi).abs().pow(2).mean())
            v = torch.complex(
                torch.randn(psi.shape, generator=gen, dtype=torch.float64),
                torch.randn(psi.shape, generator=gen, dtype=torch.float64),
            )
            v = v / v.abs().pow(2).sum(1, keepdim=True).sqrt()
            f = lambda p: m.acts[layer](m.links[layer](p))  # noqa: E731
            eps = 1e-7
            measured = float(((f(psi + eps * v) - f(psi)) / eps).abs().pow(2).sum(1).mean())
            ratios.append(measured / float(chi_ginn(torch.tensor(q), sw, kind)))
    assert abs(sum(ratios) / len(ratios) - 1) < 0.03, ratios
    if kind == "tanh":  # and at the fixed point: the variance has settled by the last layers
        q_star = float(ginn_q_star(torch.tensor(sw), kind).x)
        q_last = float(m.links[7](hs[6]).abs().pow(2).mean())
        assert abs(q_last / q_star - 1) < 0.15, (q_last, q_star)


def test_tanh_ginn_edge_of_chaos_is_at_sigma_w2_one():
    assert abs(ginn_critical_sigma_w2("tanh") - 1.0) < 1e-6


def _tiny_data():
    return load("spirals", 0, dtype=torch.float64)


def test_gauge_fixing_drift_leaves_outputs_unchanged_step_by_step():
    data = _tiny_data()
    base = GINN(2, 8, 3, 2, 1.0, "tanh", seed=0, dtype=torch.float64)
    runs = {}
    for xi in (0.1, math.inf):
        m = copy.deepcopy(base)
        spec = train_spec(
            optimizer="langevin",
            lr=0.05,
            epochs=3,
            batch_size=50,
            temperature=1e-3,
            xi=xi,
            noise_seed=7,
            restore_best=False,
        )
        runs[xi] = (train(m, data, spec, progress=False), m)
    a, b = runs[0.1][0], runs[math.inf][0]
    for ha, hb in zip(a.history, b.history):
        assert abs(ha["train_loss"] - hb["train_loss"]) < 1e-10 and abs(ha["val_loss"] - hb["val_loss"]) < 1e-10
    assert float((a.outputs_test - b.outputs_test).abs().max()) < 1e-10
    assert not torch.allclose(runs[0.1][1].links[1].theta, runs[math.inf][1].links[1].theta)  # gauges differ


def test_stationary_variance_of_g_scales_like_xi_t():
    data = _tiny_data()
    base = GINN(2, 8, 3, 2, 1.0, "tanh", seed=0, dtype=torch.float64)
    GaugeSector(base).fix_divergence_free()
    var = {}
    for xi in (1.0, 10.0):
        m = copy.deepcopy(base)
        r = train(
            m,
            data,
            train_spec(
                optimizer="langevin",
                lr=0.05,
                epochs=40,
                batch_size=50,
                temperature=1e-3,
                xi=xi,
                noise_seed=1,
                record_gauge=True,
                restore_best=False,
            ),
            progress=False,
        )
        var[xi] = float(r.gauge_trace[150:].pow(2).mean())
        assert abs(var[xi] / (xi * 1e-3) - 1) < 0.2, (xi, var[xi])
    assert abs(var[10.0] / var[1.0] / 10 - 1) < 0.2


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    data = _tiny_data()
    m = GINN(2, 8, 2, 2, 1.0, seed=0, dtype=torch.float64)
    train(
        m,
        data,
        train_spec(optimizer="adam", lr=1e-2, epochs=2, batch_size=50, restore_best=False),
        progress=False,
        checkpoint=tmp_path / "g.pt",
    )
    other = GINN(2, 8, 2, 2, 1.0, seed=9, dtype=torch.float64)
    load_checkpoint(other, tmp_path / "g.pt")
    assert torch.equal(m(data.x_test), other(data.x_test))


def _softplus(x):
    return np.log1p(np.exp(x))


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
