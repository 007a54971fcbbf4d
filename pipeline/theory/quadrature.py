"""Quadrature rules for standard-normal expectations, with the node count chosen by a convergence check.

`E[f(z)]`, `z ~ N(0, 1)`, is `sum_i w_i f(z_i)` on a symmetric trapezoid grid over [-L, L]. For
integrands analytic in a strip (tanh, erf, gelu, swish at any q) the trapezoid rule converges
geometrically in n, unlike Gauss–Hermite, whose error for tanh at q = 10 is still ~1e-6 at 512
nodes. An even n keeps z = 0 off the grid, so odd/even symmetry makes ReLU moments exact.
Hermite coefficients of f give 2-D Gaussian kernels by Mehler's formula
`E[f(z) g(z')] = sum_k a_k b_k c^k` for `corr(z, z') = c`: every 2-D integral becomes 1-D ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

DTYPE = torch.float64
HALF_WIDTH = 12.5  # sqrt(phi(z)) < 1e-16 beyond: enough for Hermite coefficients of any order
NODE_LADDER: tuple[int, ...] = (128, 256, 512, 1024, 2048)
EXTENDED_LADDER: tuple[int, ...] = NODE_LADDER + (4096, 8192)  # large variances: sqrt(q) z resolves finer


@dataclass(frozen=True)
class GaussRule:
    """Nodes, weights (summing to 1) and orthonormal Hermite functions sqrt(w_i) He_k(z_i)/sqrt(k!).

    A symmetric trapezoid rule for E f(z), z ~ N(0, 1) (docs/science.md §7), float64.

    Attributes:
        z: nodes, shape (n,).
        w: Gaussian weights normalised to sum to 1, shape (n,).
        basis: sqrt(w_i) He_k(z_i) / sqrt(k!), shape (n, K), K = n_coeffs.
    """

    z: torch.Tensor  # (n,)
    w: torch.Tensor  # (n,)
    basis: torch.Tensor  # (n, K)

    @property
    def n(self) -> int:
        """Number of nodes n."""
        return int(self.z.shape[0])

    @property
    def n_coeffs(self) -> int:
        """Number K of Hermite coefficients the basis provides."""
        return int(self.basis.shape[1])

    def expect(self, values: torch.Tensor) -> torch.Tensor:
        """E[f(z)] from values f(z_i) along the last axis.

        Args:
            values: f at the nodes, float64 tensor of shape (..., n).

        Returns:
            float64 tensor of shape (...).
        """
        return values @ self.w

    def coefficients(self, values: torch.Tensor) -> torch.Tensor:
        """Normalized Hermite coefficients a_k = E[f(z) He_k(z)] / sqrt(k!) along the last axis.

        The coefficients of Mehler's formula (docs/science.md §1).

        Args:
            values: f at the nodes, float64 tensor of shape (..., n).

        Returns:
            float64 tensor of shape (..., K).
        """
        return (values * self.w.sqrt()) @ self.basis


@functools.cache
def gauss_rule(n: int, n_coeffs: int = 160) -> GaussRule:
    """Symmetric trapezoid rule with n (even) nodes on [-HALF_WIDTH, HALF_WIDTH] and n_coeffs Hermite functions.

    Nodes z_i = (i - (n - 1)/2) h, h = 2 HALF_WIDTH / n, so z = 0 is never a node; weights exp(-z^2/2)
    normalised to 1 (docs/science.md §7). Cached per (n, n_coeffs).

    Args:
        n: number of nodes, even int >= 2.
        n_coeffs: number K of orthonormal Hermite functions, built by their three-term recursion.

    Returns:
        A float64 `GaussRule`.

    Raises:
        ValueError: if n is odd or below 2.
    """
    if n < 2 or n % 2:
        raise ValueError(f"quadrature n_nodes={n} must be an even integer >= 2")
    h = 2 * HALF_WIDTH / n
    z = (torch.arange(n, dtype=DTYPE) - (n - 1) / 2) * h
    w = torch.exp(-0.5 * z * z)
    w = w / w.sum()
    sw = w.sqrt()
    basis = torch.empty(n, n_coeffs, dtype=DTYPE)
    prev, cur = torch.zeros_like(z), sw.clone()
    for k in range(n_coeffs):  # orthonormal recursion: h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k+1)
        basis[:, k] = cur
        prev, cur = cur, (z * cur - math.sqrt(k) * prev) / math.sqrt(k + 1)
    return GaussRule(z=z, w=w, basis=basis)


def gaussian_expectation(fn: Callable[[torch.Tensor], torch.Tensor], q: torch.Tensor, rule: GaussRule) -> torch.Tensor:
    """E[fn(sqrt(q) z)] for every entry of q (vectorized: one (..., n) evaluation).

    Args:
        fn: elementwise callable on a float64 tensor of shape q.shape + (n,).
        q: variances, float64 tensor of any shape (clamped at 0).
        rule: the quadrature rule.

    Returns:
        float64 tensor of shape q.shape.
    """
    h = q.clamp_min(0).sqrt().unsqueeze(-1) * rule.z
    return rule.expect(fn(h))


def converged_node_count(
    fns: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    q_probe: torch.Tensor,
    tol: float = 1e-12,
    ladder: Sequence[int] = NODE_LADDER,
) -> tuple[int, float]:
    """Smallest node count on the ladder whose moments agree with the next rung to `tol` (relative).

    The error of a rung is max |E_n - E_next| / (1 + |E_next|) over all `fns` and probe variances
    (docs/science.md §7).

    Args:
        fns: elementwise callables f whose E f(sqrt(q) z) must converge.
        q_probe: probe variances, 1-D float64 tensor.
        tol: tolerance on the error above.
        ladder: increasing even node counts to try.

    Returns:
        (n, estimated_error); if no rung converges, the largest rung and its error, so the
        caller reports it instead of trusting a guess.
    """
    err = float("inf")
    prev = None
    for i, n in enumerate(ladder):
        cur = torch.stack([gaussian_expectation(f, q_probe, gauss_rule(n)) for f in fns])
        if prev is not None:
            err = float(((prev - cur).abs() / (1 + cur.abs())).max())
            if err <= tol:
                return ladder[i - 1], err
        prev = cur
    return ladder[-1], err
