"""Activations against independent references, and the one-module recipe for adding an activation.

References never come from the code under test: the fast engine kernels are compared with Python's
`math` on scalars (a different code path from NumPy's SIMD loop and torch's kernels), derivatives
with central finite differences, and a toy activation's theory with its closed-form Gaussian moments.
"""

import math

import numpy as np
import pytest
import torch

from pipeline import activations
from pipeline.activations import ACTIVATIONS, MODULUS_ACTIVATIONS, Activation, get_activation

REFERENCE = {  # scalar definitions, written out by hand
    "tanh": math.tanh,
    "relu": lambda x: max(x, 0.0),
    "erf": math.erf,
    "linear": lambda x: x,
    "gelu": lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))),
    "swish": lambda x: x / (1 + math.exp(-x)),
}


def test_every_registered_activation_has_a_hand_written_reference():
    assert set(ACTIVATIONS) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 3e-7), (torch.float64, 4e-16)])
def test_engine_kernels_match_math_on_strided_views(name, dtype, tol):
    """phi_into / phi_and_slope write phi and phi' into a block of a wider buffer; values match
    Python's math to a few ulp, slopes match a central difference of math (error ~1e-10 in float64)."""
    act = get_activation(name)
    x = torch.randn(3, 16, 4, 2, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 3
    x[0, 0, 0, :] = torch.tensor([0.25, -1e-12], dtype=dtype)
    buf = torch.zeros(3, 16, 3 * 8, dtype=dtype)
    out = buf[:, :, 8:16].view(3, 16, 4, 2)  # a block of a wider product operand, as in the engine
    slope = torch.full_like(x, float("nan"))
    assert act.phi_and_slope(x, out, slope) is slope
    xs = x.double().reshape(-1).tolist()
    want = torch.tensor([REFERENCE[name](v) for v in xs], dtype=torch.float64).view_as(x)
    assert torch.allclose(out.double(), want, rtol=4 * tol, atol=4 * tol)
    h = 1e-5
    fd = [(REFERENCE[name](v + h) - REFERENCE[name](v - h)) / (2 * h) for v in xs]
    fd = torch.tensor(fd, dtype=torch.float64).view_as(x)
    kink = (x.double().abs() < h) if name == "relu" else torch.zeros_like(x, dtype=torch.bool)
    assert torch.allclose(slope.double()[~kink], fd[~kink], rtol=1e-6, atol=max(1e-8, 20 * tol))
    assert buf[:, :, :8].abs().sum() == 0 and buf[:, :, 16:].abs().sum() == 0  # nothing written outside the block
    y = x.clone()
    act.phi_into(y, y)  # in place
    assert torch.allclose(y.double(), want, rtol=4 * tol, atol=4 * tol)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_second_derivative_is_the_finite_difference_of_the_first(name):
    act = get_activation(name)
    x = torch.linspace(-3, 3, 41, dtype=torch.float64) + 0.013  # off relu's kink
    h = 1e-5
    fd = (act.dphi(x + h) - act.dphi(x - h)) / (2 * h)
    assert torch.allclose(act.d2phi(x), fd, atol=1e-8)


@pytest.mark.parametrize("name", sorted(MODULUS_ACTIVATIONS))
def test_modulus_activation_slope_is_the_derivative_and_g_vanishes_at_zero(name):
    m = MODULUS_ACTIVATIONS[name]
    r = torch.linspace(0.0, 4.0, 81, dtype=torch.float64) + 0.0137
    offset = -0.3 if m.uses_offset else 0.0
    g, dg = m.g_and_slope(r, offset)
    h = 1e-6
    fd = (m.g_and_slope(r + h, offset)[0] - m.g_and_slope(r - h, offset)[0]) / (2 * h)
    assert torch.allclose(dg, fd, atol=1e-8)
    assert float(m.g_and_slope(torch.zeros(1, dtype=torch.float64), offset)[0]) == 0.0


def test_a_toy_activation_added_in_one_place_runs_through_theory_and_engine(monkeypatch):
    """The README's recipe: one `Activation(...)` in pipeline/activations.py (here: `register`).

    phi = sin has closed-form moments: E sin^2(sqrt(q) z) = (1 - e^{-2q})/2, E cos^2 = (1 + e^{-2q})/2,
    so q* solves q = sigma_w2 (1 - e^{-2q})/2 + sigma_b2 and chi_1 = sigma_w2 (1 + e^{-2q*})/2.
    """
    monkeypatch.setattr(activations, "ACTIVATIONS", dict(ACTIVATIONS))
    toy = activations.register(Activation("sin", torch.sin, torch.cos, lambda x: -torch.sin(x)))
    from pipeline.dynamics.ensemble import EnsembleSpec, simulate
    from pipeline.dynamics.statistics import summarize
    from pipeline.theory.gaussian import GaussianIntegrator
    from pipeline.theory.mean_field import mean_field_grid

    sw, sb = torch.tensor([1.5, 3.0], dtype=torch.float64), 0.2
    grid = mean_field_grid(GaussianIntegrator(toy), sw, sb)
    for s, q, chi in zip(sw.tolist(), grid.q_star.tolist(), grid.chi1.tolist()):
        assert abs(q - (s * (1 - math.exp(-2 * q)) / 2 + sb)) < 1e-11  # a fixed point of the closed form
        assert abs(chi - s * (1 + math.exp(-2 * q)) / 2) < 1e-11
    # the engine runs the toy activation by asking the object, never the name: q^L against q*
    spec = EnsembleSpec(
        activation="sin", width=256, depth=30, sigma_w2=tuple(sw.tolist()), sigma_b2=sb, xi=1.0,
        weights="gaussian", n_seeds=8, n_pairs=1, q0=1.0, c0=0.5, eps=1e-6, n_spectrum=0, seed=0,
        dtype="float64", device="cpu", memory_budget_gb=1.0,
    )  # fmt: skip
    t = summarize(simulate(spec), burn_in=10)
    # finite-width shift of q^L is O(q/N) ~ 0.005; seeds give SE ~ 0.01: 5 SE + 2 q/N bounds both
    err = np.abs(t.q_L.to_numpy() - grid.q_star.numpy())
    assert np.all(err < 5 * t.q_L_se.to_numpy() + 2 * grid.q_star.numpy() / 256), (t.q_L, grid.q_star)


def test_registering_a_taken_name_is_refused_with_the_name_in_the_message():
    with pytest.raises(ValueError, match="'tanh' is already registered"):
        activations.register(Activation("tanh", torch.tanh, torch.tanh, torch.tanh))


def test_kinks_take_slope_zero_in_theory_engine_and_modulus_relu():
    """One convention at the kink, phi'(0) = 0, shared by ReLU's theory slope, the engine's fast path
    (sign(relu(x))) and modReLU's g'(-b): the same derivative wherever it is read."""
    relu = get_activation("relu")
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    assert relu.dphi(x).tolist() == [0.0, 0.0, 1.0]
    out, slope = torch.empty_like(x), torch.empty_like(x)
    assert relu.phi_and_slope(x, out, slope).tolist() == [0.0, 0.0, 1.0]
    g, dg = MODULUS_ACTIVATIONS["modrelu"].g_and_slope(torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64), -0.3)
    assert dg.tolist() == [0.0, 0.0, 1.0] and g.tolist() == pytest.approx([0.0, 0.0, 0.1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tanh_off_the_numpy_path_matches_math(dtype):
    """Dtypes NumPy's loop does not take go through torch's kernel, into the given buffer (vs math.tanh)."""
    x = torch.linspace(-3, 3, 13).to(dtype)
    out = torch.empty_like(x)
    assert activations.tanh_into(x, out) is out
    want = torch.tensor([math.tanh(v) for v in x.double().tolist()], dtype=torch.float64)
    assert torch.allclose(out.double(), want, atol=1e-2)


def test_tanh_under_autograd_has_the_derivative_one_minus_tanh_squared():
    """phi under autograd (MLP training) must stay differentiable: torch's path, gradient 1 - tanh^2 by hand."""
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    y = get_activation("tanh").phi(x)
    y.sum().backward()
    want = torch.tensor([1 - math.tanh(v) ** 2 for v in x.detach().tolist()], dtype=torch.float64)
    assert torch.allclose(x.grad, want, atol=1e-15)


def test_generic_phi_and_slope_uses_the_joint_derivatives_of_a_custom_activation():
    """An activation with `joint` but no fast path: phi and phi' from the joint evaluation, vs math."""
    joint = lambda x: (x.sin(), x.cos(), -x.sin())  # noqa: E731
    toy = Activation("sin_joint", torch.sin, torch.cos, lambda x: -torch.sin(x), joint=joint)
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)
    out, slope = torch.empty_like(x), torch.empty_like(x)
    toy.phi_and_slope(x, out, slope)
    assert torch.allclose(out, torch.tensor([math.sin(v) for v in x.tolist()], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(slope, torch.tensor([math.cos(v) for v in x.tolist()], dtype=torch.float64), atol=1e-15)


def test_unknown_modulus_activation_error_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"ginn.activation='nope': allowed \['identity', 'modrelu', 'tanh'\]"):
        activations.get_modulus_activation("nope")
