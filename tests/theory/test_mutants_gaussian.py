"""Mutation-testing gaps of pipeline.theory.gaussian (docs/mutation.md), against scipy quad/dblquad
(tests/theory/reference.py) or closed forms written out by hand. Quadrature and closed forms are good to
~1e-12; tolerances 1e-9 (dblquad's own accuracy), far below the mutants' effects (>= 1e-2 relative)."""

import math

import pytest
import torch

from pipeline.activations import ACTIVATIONS
from pipeline.theory.gaussian import GaussianIntegrator
from tests.theory.reference import PHI, kernel_quad

T = torch.float64


@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("q1,q2,c", [(0.7, 1.9, 0.4), (2.5, 0.3, -0.8)])
def test_erf_derivative_kernel_of_the_integrator_matches_dblquad(closed, q1, q2, c):
    """Through GaussianIntegrator.grad_kernel (closed form, or Mehler on the coefficients of phi')."""
    g = GaussianIntegrator(ACTIVATIONS["erf"], use_closed_forms=closed)
    got = g.grad_kernel(torch.tensor(q1, dtype=T), torch.tensor(q2, dtype=T), torch.tensor(c, dtype=T))
    dphi = PHI["erf"][1]
    assert float(got) == pytest.approx(kernel_quad(dphi, dphi, q1, q2, c), abs=1e-9)


def test_linear_integrator_kernels_by_hand():
    """phi(x) = x: E u1 u2 = c sqrt(q1 q2), E phi' phi' = 1, on both paths."""
    for closed in (True, False):
        g = GaussianIntegrator(ACTIVATIONS["linear"], use_closed_forms=closed)
        q1, q2, c = torch.tensor(0.6, dtype=T), torch.tensor(2.2, dtype=T), torch.tensor(-0.35, dtype=T)
        assert float(g.kernel(q1, q2, c)) == pytest.approx(-0.35 * math.sqrt(0.6 * 2.2), abs=1e-12)
        assert float(g.grad_kernel(q1, q2, c)) == pytest.approx(1.0, abs=1e-12)
