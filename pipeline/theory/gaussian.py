"""Gaussian expectations of one activation: 1-D moments and 2-D kernels, float64, vectorized over q.

Closed forms from the activation are used where they exist (ReLU arc-cosine, erf arcsine, linear);
otherwise the kernel is Mehler's series on Hermite coefficients from the quadrature rule.
`use_closed_forms=False` forces quadrature everywhere (the tests compare both paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pipeline.activations import Activation

from .quadrature import DTYPE, GaussRule, converged_node_count, gauss_rule, gaussian_expectation


@dataclass
class GaussianIntegrator:
    """Moments E[g(sqrt(q) z)] and kernels of `act` with a node count fixed by a convergence check."""

    act: Activation
    q_max: float = 20.0
    n_nodes: int | None = None
    tol: float = 1e-12
    use_closed_forms: bool = True
    quad_error: float = field(init=False, default=0.0)
    rule: GaussRule = field(init=False)

    def __post_init__(self) -> None:
        if self.n_nodes is None:
            probe = torch.tensor([1e-3, 0.1, 0.5, 1.0, 3.0, self.q_max], dtype=DTYPE)
            fns = [
                lambda x: self.act.phi(x) ** 2,
                lambda x: self.act.dphi(x) ** 2,
                lambda x: self.act.phi(x) * self.act.d2phi(x),
            ]
            if not (self.use_closed_forms and self.act.mean is not None):
                fns.append(self.act.phi)
            self.n_nodes, self.quad_error = converged_node_count(fns, probe, self.tol)
        self.rule = gauss_rule(self.n_nodes)

    # ---- 1-D moments -------------------------------------------------------------------
    def variance_moments(self, q: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """(E phi^2, E phi'^2, E phi phi'') stacked on a new first axis, in one chunked pass over q.

        The hot loop of the variance fixed point: one activation evaluation per node, and chunks
        small enough to stay in cache.
        """
        flat = q.reshape(-1).clamp_min(0).sqrt()
        out = torch.empty(3, flat.numel(), dtype=DTYPE)
        for s in range(0, flat.numel(), chunk):
            h = flat[s : s + chunk].unsqueeze(-1) * self.rule.z
            p, d, d2 = self.act.derivs(h)
            for row, vals in enumerate((p * p, d * d, p * d2)):
                torch.mv(vals, self.rule.w, out=out[row, s : s + chunk])
        return out.reshape((3,) + q.shape)

    def e_phi2(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h)^2], h ~ N(0, q)."""
        return gaussian_expectation(lambda x: self.act.phi(x) ** 2, q, self.rule)

    def e_dphi2(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi'(h)^2]."""
        return gaussian_expectation(lambda x: self.act.dphi(x) ** 2, q, self.rule)

    def e_phi_d2phi(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h) phi''(h)] (zero a.e. for piecewise-linear activations)."""
        return gaussian_expectation(lambda x: self.act.phi(x) * self.act.d2phi(x), q, self.rule)

    def e_phi(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h)]: the mean ("longitudinal") mode that the gauge parameter xi weights."""
        if self.use_closed_forms and self.act.mean is not None:
            return self.act.mean(q)
        return gaussian_expectation(self.act.phi, q, self.rule)

    def de_phi_dq(self, q: torch.Tensor) -> torch.Tensor:
        """d/dq E[phi(h)] = E[phi''(h)] / 2 (Stein), via E[phi'(sqrt q z) z] / (2 sqrt q) when no closed form."""
        if self.use_closed_forms and self.act.dmean_dq is not None:
            return self.act.dmean_dq(q)
        sq = q.clamp_min(1e-300).sqrt()
        vals = self.act.dphi(sq.unsqueeze(-1) * self.rule.z) * self.rule.z
        return self.rule.expect(vals) / (2 * sq)

    # ---- 2-D kernels ------------------------------------------------------------------
    def hermite(self, q: torch.Tensor, derivative: bool = False) -> torch.Tensor:
        """Normalized Hermite coefficients of phi(sqrt(q) z) (or of phi'), shape q.shape + (K,)."""
        fn = self.act.dphi if derivative else self.act.phi
        return self.rule.coefficients(fn(q.clamp_min(0).sqrt().unsqueeze(-1) * self.rule.z))

    def kernel(self, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """E[phi(u1) phi(u2)] for variances q1, q2 and correlation c."""
        if self.use_closed_forms and self.act.kernel is not None:
            return self.act.kernel(q1, q2, c)
        return mehler(self.hermite(q1), self.hermite(q2), c)

    def grad_kernel(self, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """E[phi'(u1) phi'(u2)] = d kernel / d q12 (Price's theorem)."""
        if self.use_closed_forms and self.act.grad_kernel is not None:
            return self.act.grad_kernel(q1, q2, c)
        return mehler(self.hermite(q1, True), self.hermite(q2, True), c)


def mehler(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """sum_k a_k b_k c^k (Mehler's formula), a and b of shape c.shape + (K,)."""
    k = torch.arange(a.shape[-1], dtype=a.dtype)
    powers = torch.where(k == 0, torch.ones_like(c).unsqueeze(-1), c.unsqueeze(-1) ** k)
    return (a * b * powers).sum(-1)
