"""One-loop dressing of a vector kernel chain's lag-1 regression, and of the correlation mode (docs/science.md §7b).

A chain y' = F(y) + b(y)/N + eta with Cov(eta | y) = Sigma(y)/N and third cumulant kappa3/N^2 has, stationary, the
pooled lag-1 regression matrix J = Cov(y', y) Cov(y)^-1 = A + C/N + O(N^-2), A = dF/dy at y* = F(y*). Expanding F
to third order around y* (H, T: its second and third derivatives):
    C_ij = (1/2) H_iab S_abk (V^-1)_kj + H_iaj mu_a + (1/2) T_iabj V_ab + d_j b_i,
with V = N Cov y (V = A V A^T + Sigma), mu = N (E y - y*) = (I - A)^-1 (H:V/2 + b) and S = N^2 E[eps eps eps]
(vec S = (I - A x A x A)^-1 vec R, R = kappa3 + the three placements of (A V H_k V A^T)_ij + (A V dSigma_jk)_i).
In one dimension this is the length mode's c1 (`field.length_mode`). Float64, pure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacfwd

from pipeline.theory.field import correlation_mode
from pipeline.theory.one_loop.common import _act
from pipeline.theory.quadrature import DTYPE, gauss_rule

Field = Callable[[torch.Tensor], torch.Tensor]


def regression_dressing(F: Field, b: Field, sigma: Field, kappa3: torch.Tensor, y: torch.Tensor):
    """(A, C): the lag-1 regression matrix J = A + C/N of the chain above at its fixed point y (module docstring).

    Args:
        F: the mean map, float64 (d,) -> (d,), differentiable by torch.func.
        b: N x the finite-width mean shift of y' given y, (d,) -> (d,).
        sigma: N x Cov(y' | y), (d,) -> (d, d).
        kappa3: N^2 x the third cumulant of y' given y at y, float64 (d, d, d).
        y: the fixed point F(y) = y, float64 (d,).

    Returns:
        (A, C), float64 (d, d) each: row i is the regression of y'_i on (y_1, ..., y_d).
    """
    d = y.numel()
    A, H, T = jacfwd(F)(y), jacfwd(jacfwd(F))(y), jacfwd(jacfwd(jacfwd(F)))(y)
    s1, ds = sigma(y), jacfwd(sigma)(y)  # ds[j, k, l] = d Sigma_jk / d y_l
    eye = torch.eye(d, dtype=DTYPE)
    V = torch.linalg.solve(torch.eye(d * d, dtype=DTYPE) - torch.kron(A, A), s1.reshape(-1)).reshape(d, d)
    AV = A @ V
    P = torch.einsum("ia,kab,bc,jc->ijk", AV, H, V, A)  # (A V H_k V A^T)_ij
    Q = torch.einsum("il,jkl->ijk", AV, ds)  # (A V dSigma_jk)_i
    R = kappa3 + sum(X + X.permute(0, 2, 1) + X.permute(2, 1, 0) for X in (P, Q.permute(1, 2, 0)))
    AAA = torch.kron(torch.kron(A, A), A)
    S = torch.linalg.solve(torch.eye(d**3, dtype=DTYPE) - AAA, R.reshape(-1)).reshape(d, d, d)
    mu = torch.linalg.solve(eye - A, 0.5 * torch.einsum("iab,ab->i", H, V) + b(y))
    C = (
        0.5 * torch.einsum("iab,abk,kj->ij", H, S, torch.linalg.inv(V))
        + torch.einsum("iaj,a->ij", H, mu)
        + 0.5 * torch.einsum("iabj,ab->ij", T, V)
        + jacfwd(b)(y)
    )
    return A, C


@dataclass(frozen=True)
class CorrelationDressing:
    """The correlation mode's lag-1 partial multiplier J_cc = chi_c + c1/N (regression of c' on c, q1, q2).

    q, c: the fixed point (q*, c*); chi: chi_c(c*); c1: N (J_cc - chi_c) at one loop; n_nodes: nodes per
    axis of the product trapezoid rule; c1_error: |c1| change from the previous rung of `NODE_LADDER`.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q: float
    c: float
    chi: float
    c1: float
    n_nodes: int
    c1_error: float

    def multiplier(self, width: float) -> float:
        """Dressed (one-loop) partial multiplier chi_c + c1/N."""
        return self.chi + self.c1 / width


def correlation_dressing(activation, sigma_w2: float, sigma_b2: float) -> CorrelationDressing:
    """One-loop dressing of the correlation mode of two inputs at xi = 1, in the coordinates y = (q1, q2, c) the
    field stage regresses on (docs/science.md §7b).

    G'_ab = sigma_b2 + sigma_w2 mean_j u_j with u = (phi1^2, phi2^2, phi1 phi2) i.i.d. given G; y' = psi(G'),
    psi(g) = (g1, g2, g3/sqrt(g1 g2)). To 1/N: F_y = psi(F_G), b_y = psi''[Sigma_G]/2, Sigma_y = psi' Sigma_G psi'^T,
    kappa3_y = psi'^3 kappa3_G + the three placements of (psi' Sigma_G psi''_k Sigma_G psi'^T)_ij. The product
    trapezoid rule grows (`NODE_LADDER`) until c1 moves by at most `TOL` relative.

    Raises:
        ValueError: no chaotic fixed point (c* = 1 or no finite q*), from `field.correlation_mode`.
        ArithmeticError: the quadrature has not converged at the ladder's top.
    """
    return _dressing(_act(activation), float(sigma_w2), float(sigma_b2))


NODE_LADDER = (80, 120, 160, 240)  # trapezoid nodes per axis; tanh at sigma_w2 = 4 converges at 160 (1e-14 at 200)
TOL = 1e-7  # relative change of c1 between rungs: far below the SE of any measured c1 (~1e-2)


@functools.lru_cache(maxsize=256)
def _dressing(act, sigma_w2: float, sigma_b2: float) -> CorrelationDressing:
    """`correlation_dressing`, once per process and key (keyed by the `Activation` object)."""
    cm = correlation_mode(act, sigma_w2, sigma_b2)
    prev = None
    for n in NODE_LADDER:
        chi, c1, y = _c1(act, sigma_w2, sigma_b2, cm, n)
        if prev is not None and abs(c1 - prev) <= TOL * max(1.0, abs(c1)):
            return CorrelationDressing(act.name, sigma_w2, sigma_b2, float(y[0]), float(y[2]), chi, c1, n,
                                       abs(c1 - prev))  # fmt: skip
        prev = c1
    raise ArithmeticError(f"correlation_dressing: c1 not converged to {TOL:g} at {NODE_LADDER[-1]} nodes per axis "
                          f"(activation={act.name}, sigma_w2={sigma_w2}, sigma_b2={sigma_b2})")  # fmt: skip


def _c1(act, sw: float, sb: float, cm, n: int) -> tuple[float, float, torch.Tensor]:
    """(chi_c, c1, y*) on the n x n product of the trapezoid rule `quadrature.gauss_rule(n)`; y* polished from
    (q*, q*, c*) by Newton steps."""
    rule = gauss_rule(n, 0)
    z1, z2 = torch.meshgrid(rule.z, rule.z, indexing="ij")
    wt = torch.outer(rule.w, rule.w)

    def units(y):  # u = (phi1^2, phi2^2, phi1 phi2) at the nodes, centred, and its mean
        q1, q2, c = y
        p1 = act.phi(q1.sqrt() * z1)
        p2 = act.phi(q2.sqrt() * (c * z1 + (1 - c * c).sqrt() * z2))
        u = torch.stack([p1 * p1, p2 * p2, p1 * p2])
        m = (u * wt).sum((-1, -2))
        return u - m[:, None, None], m

    def f_g(y):
        return sb + sw * units(y)[1]

    def sigma_g(y):
        du = units(y)[0]
        return sw**2 * torch.einsum("aij,bij,ij->ab", du, du, wt)

    def psi(g):
        return torch.stack([g[0], g[1], g[2] / (g[0] * g[1]).sqrt()])

    dpsi, d2psi = jacfwd(psi), jacfwd(jacfwd(psi))

    def f_y(y):
        return psi(f_g(y))

    def b_y(y):
        return 0.5 * torch.einsum("kmn,mn->k", d2psi(f_g(y)), sigma_g(y))

    def sigma_y(y):
        j = dpsi(f_g(y))
        return j @ sigma_g(y) @ j.T

    y = torch.tensor([cm.q, cm.q, cm.c], dtype=DTYPE)
    for _ in range(8):  # Newton on F_y(y) = y from the mean-field solver's point
        step = torch.linalg.solve(jacfwd(f_y)(y) - torch.eye(3, dtype=DTYPE), f_y(y) - y)
        y = y - step
        if float(step.abs().max()) < 1e-15:
            break
    du = units(y)[0]
    g = f_g(y)
    j, h, sg = dpsi(g), d2psi(g), sigma_g(y)
    k3 = torch.einsum("ia,jb,kc,abc->ijk", j, j, j, sw**3 * torch.einsum("aij,bij,cij,ij->abc", du, du, du, wt))
    X = torch.einsum("ia,kab,bj->ijk", j @ sg, h, sg @ j.T)  # (psi' Sigma psi''_k Sigma psi'^T)_ij
    k3 = k3 + X + X.permute(0, 2, 1) + X.permute(2, 1, 0)
    A, C = regression_dressing(f_y, b_y, sigma_y, k3, y)
    if not (math.isfinite(float(C[2, 2])) and float(A[2, 2]) < 1):
        raise ArithmeticError(f"correlation_dressing: no stationary correlation mode at {act.name}, {sw}, {sb}")
    return float(A[2, 2]), float(C[2, 2]), y
