"""`GaussianIntegrator.kernel_verified`: the flag behind `quad_status` of iterates.csv, against an adaptive 2-D
integral (scipy dblquad, a different code path from Mehler's series). The effect it guards: Mehler's series cut
after 1280 orders misses 1e-11..1e-6 of tanh's kernel at c near 1 and q >= 25, against a tolerance of 1e-12;
a bound that ignored c flagged accurate rows (tanh, sigma_w2 = 30: every iterate, error 1e-15)."""

from math import sqrt

import numpy as np
import pytest
import torch
from scipy import integrate

from pipeline.activations import get_activation
from pipeline.theory.gaussian import GaussianIntegrator

TOL = 1e-12


def _reference(q: float, c: float) -> float:
    s = sqrt(1 - c * c)

    def f(z2, z1):
        return np.tanh(sqrt(q) * z1) * np.tanh(sqrt(q) * (c * z1 + s * z2)) * np.exp(-(z1 * z1 + z2 * z2) / 2)

    return integrate.dblquad(f, -12, 12, -12, 12, epsabs=1e-15, epsrel=1e-13)[0] / (2 * np.pi)


@pytest.fixture(scope="module")
def g():
    return GaussianIntegrator(get_activation("tanh"), q_max=30.0, tol=TOL)


CASES = [(25.0, 0.99999, False), (25.0, 0.999, False), (100.0, 0.9999, False), (25.0, 0.99, True),
         (11.88, 0.4748, True), (1.0, 0.999, True)]  # fmt: skip


@pytest.mark.parametrize(("q", "c", "verified"), CASES)
def test_verified_kernels_meet_the_tolerance_and_flagged_ones_miss_it(g, q, c, verified):
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    err = abs(float(g.kernel(t(q), t(q), t(c))) - _reference(q, c))
    assert bool(g.kernel_verified(t(q), t(q), t(c))) == verified
    if verified:
        assert err <= TOL
    else:  # the flag is not a false alarm here: the series really is off by more than the tolerance
        assert err > TOL


def test_closed_form_kernels_are_verified_wherever_the_variances_are_resolved():
    g = GaussianIntegrator(get_activation("erf"), q_max=30.0, tol=TOL)
    q = torch.tensor([1.0, 25.0, 1e9], dtype=torch.float64)
    assert g.kernel_verified(q, q, torch.full_like(q, 0.99999)).tolist() == g.resolved(q).tolist()
