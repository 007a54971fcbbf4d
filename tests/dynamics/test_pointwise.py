"""The engine's pointwise path (NumPy tanh on CPU views) against torch's own kernels."""

import pytest
import torch

from pipeline.dynamics.pointwise import phi_and_slope, phi_into
from pipeline.theory.activations import get_activation


@pytest.mark.parametrize("name", ["tanh", "relu", "erf", "gelu"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 5e-7), (torch.float64, 1e-15)])
def test_phi_and_slope_match_the_activation_definition_on_strided_views(name, dtype, tol):
    act = get_activation(name)
    x = torch.randn(3, 64, 8, 4, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 3
    x[0, 0, 0, :] = torch.tensor([0.0, 1e-30, -1e-12, 40.0], dtype=dtype)  # tiny signals keep relative precision
    buf = torch.zeros(3, 64, 3 * 32, dtype=dtype)
    out = buf[:, :, 32:64].view(3, 64, 8, 4)  # a block of a wider product operand, as in the engine
    slope = torch.full_like(x, float("nan"))
    assert phi_and_slope(act, x, out, slope) is slope
    assert torch.allclose(out, act.phi(x), rtol=tol, atol=0)
    assert torch.allclose(slope, act.dphi(x), rtol=10 * tol, atol=10 * tol)
    assert buf[:, :, :32].abs().sum() == 0 and buf[:, :, 64:].abs().sum() == 0  # nothing written outside the block
    y = x.clone()
    phi_into(act, y, y)  # in place
    assert torch.allclose(y, act.phi(x), rtol=tol, atol=0)
