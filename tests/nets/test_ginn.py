"""GINN (docs/science.md §5): exact gauge invariance, gauge-free gradients, mean-field gain, gauge-sector OU."""

import copy
import math

import pytest
import torch

from pipeline.data.datasets import load
from pipeline.nets.ginn import GINN, apply_gauge, random_gauge, site_divergence
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
