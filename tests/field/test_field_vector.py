"""One-loop dressing of a vector chain's lag-1 regression (pipeline/theory/field_vector.py): the scalar length-mode
formula in one dimension, a simulated nonlinear vector chain, and the exact kernel chain's correlation mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.dynamics.chain import ChainSpec, kernel_path
from pipeline.dynamics.spectra import ar1_fit
from pipeline.theory.field import length_mode
from pipeline.theory.field_vector import correlation_dressing, regression_dressing
from pipeline.theory.quadrature import gauss_rule

D = torch.float64


def test_one_dimension_is_the_length_mode_formula():
    """The length mode as a 1-d chain (tanh 1.5/0.05; F, Sigma, kappa3 by quadrature here) gives the scalar c1 of
    `field.length_mode` (0.12620, confirmed by the exact operator, docs/science.md §7b): catches any term of the
    vector formula (mu, S, T, the placements of R) that does not reduce to its scalar counterpart."""
    sw, sb = 1.5, 0.05
    rule = gauss_rule(400, 0)
    e = lambda f: (f * rule.w).sum()  # noqa: E731

    def u(y):
        return torch.tanh(y[0].sqrt() * rule.z) ** 2

    F = lambda y: (sb + sw * e(u(y))).reshape(1)  # noqa: E731
    sigma = lambda y: (sw**2 * (e(u(y) ** 2) - e(u(y)) ** 2)).reshape(1, 1)  # noqa: E731
    lm = length_mode("tanh", sw, sb)
    y = torch.tensor([lm.K], dtype=D)
    uc = u(y) - e(u(y))
    A, C = regression_dressing(F, lambda y: torch.zeros(1, dtype=D), sigma, sw**3 * e(uc**3).reshape(1, 1, 1), y)
    assert float(A[0, 0]) == pytest.approx(lm.chi, abs=1e-10)
    assert float(C[0, 0]) == pytest.approx(lm.c1, abs=1e-8)
    assert lm.c1 == pytest.approx(0.12620, abs=1e-5)


def _synthetic():
    """A 2-d chain with quadratic couplings, a state-dependent noise and a finite-width mean shift (fixed point 0)."""
    a = torch.tensor([[0.6, 0.0], [0.3, 0.7]], dtype=D)

    def F(y):
        x1, x2 = y
        return a @ y + torch.stack([0.3 * x1**2, -0.5 * x1 * x2 + 0.4 * x1**2 + 0.3 * x1**3])

    def b(y):
        return torch.stack([0.2 + 0.5 * y[0], -0.1 + 0.3 * y[1]])

    def sigma(y):
        return torch.stack([torch.stack([1.0 + 0.6 * y[0], 0.3 + 0.0 * y[0]]),
                            torch.stack([0.3 + 0.0 * y[1], 0.8 - 0.4 * y[1]])])  # fmt: skip

    return F, b, sigma


def test_a_simulated_nonlinear_vector_chain_has_the_dressed_regression():
    """y' = F(y) + b(y)/N + Gaussian noise of covariance Sigma(y)/N, N = 400, 400 chains x 12000 steps: the pooled
    lag-1 regression matrix (with intercept) is A + C/N within 4 SE per entry, and every entry with |C|/N above
    10 SE is missed by A alone. Brute force by another path (NumPy simulation vs the closed form)."""
    F, b, sigma = _synthetic()
    N, chains, steps, burn = 400, 400, 12000, 200
    A, C = (m.numpy() for m in regression_dressing(F, b, sigma, torch.zeros(2, 2, 2, dtype=D), torch.zeros(2, dtype=D)))
    rng = np.random.default_rng(3)
    y = np.zeros((chains, 2))
    xs, ys = [], []
    for t in range(steps + burn):
        x1, x2 = y[:, 0], y[:, 1]
        mean = y @ np.array([[0.6, 0.0], [0.3, 0.7]]).T + np.stack(
            [0.3 * x1**2, -0.5 * x1 * x2 + 0.4 * x1**2 + 0.3 * x1**3], 1)  # fmt: skip
        mean += np.stack([0.2 + 0.5 * x1, -0.1 + 0.3 * x2], 1) / N
        s11, s22 = 1.0 + 0.6 * x1, 0.8 - 0.4 * x2
        l11 = np.sqrt(s11)
        l21 = 0.3 / l11
        l22 = np.sqrt(s22 - l21**2)
        z = rng.standard_normal((chains, 2)) / math.sqrt(N)
        new = mean + np.stack([l11 * z[:, 0], l21 * z[:, 0] + l22 * z[:, 1]], 1)
        if t >= burn:
            xs.append(y)
            ys.append(new)
        y = new
    X, Y = np.concatenate(xs), np.concatenate(ys)
    Xc = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(Xc, Y, rcond=None)
    resid = Y - Xc @ coef
    # the chains' steps are a martingale difference sequence: OLS standard errors hold
    cov = np.linalg.inv(Xc.T @ Xc)
    se = np.sqrt(np.outer(np.diag(cov)[1:], (resid**2).mean(0))).T  # (output i, input j)
    J = coef[1:].T
    assert np.all(np.abs(J - (A + C / N)) < 4 * se), (J, A + C / N, se)
    big = np.abs(C / N) > 10 * se
    assert big.sum() >= 2 and np.all(np.abs(J - A)[big] > 6 * se[big])


@pytest.mark.slow  # ~45 s; the field stage checks the same at N = 128 on every run (its metrics.json)
def test_correlation_dressing_matches_the_exact_kernel_chain():
    """tanh 2.4/0.05 (chaotic, c* = 0.49), N = 32: the correlation mode's partial multiplier J_cc of the exact
    kernel chain (200 networks x 3000 layers) is chi_c + c1/N within 3 SE (c1 = 0.668: 0.021 above chi_c, ~30 SE),
    and c1 reproduces this point's measured N (J_cc - chi_c) = 0.61-0.71 at N = 32...256 (docs/science.md §7b)."""
    d = correlation_dressing("tanh", 2.4, 0.05)
    assert d.c1 == pytest.approx(0.6677, abs=2e-4) and d.chi == pytest.approx(0.92497, abs=1e-5)
    N = 32
    spec = ChainSpec(activation="tanh", width=N, depth=3200, sigma_w2=(2.4,), sigma_b2=0.05, xi=1.0, n_networks=200,
                     n_inputs=2, c0=0.0, seed=11)  # fmt: skip
    g = kernel_path(spec)[:, 0, 200:].numpy()
    q1, q2 = g[..., 0, 0], g[..., 1, 1]
    fit = ar1_fit(g[..., 0, 1] / np.sqrt(q1 * q2), (q1, q2))
    assert abs(fit.multiplier - d.multiplier(N)) < 3 * fit.multiplier_se
    assert fit.multiplier - d.chi > 15 * fit.multiplier_se
