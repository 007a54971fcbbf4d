"""Quadrature rules for standard-normal expectations, with the node count chosen by a convergence check.

`E[f(z)]`, `z ~ N(0, 1)`, is `sum_i w_i f(z_i)` on a symmetric trapezoid grid over [-L, L]. For
integrands analytic in a strip (tanh, erf, gelu, swish at any q) the trapezoid rule converges
geometrically in n, unlike Gauss–Hermite, whose error for tanh at q = 10 is still ~1e-6 at 512
nodes. An even n keeps z = 0 off the grid, so odd/even symmetry makes ReLU moments exact.
Hermite coefficients of f give 2-D Gaussian kernels by Mehler's formula
`E[f(z) g(z')] = sum_k a_k b_k c^k` for `corr(z, z') = c`: every 2-D integral becomes 1-D ones.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

DTYPE = torch.float64
HALF_WIDTH = 12.5  # sqrt(phi(z)) < 1e-16 beyond: enough for Hermite coefficients of any order
NODE_LADDER: tuple[int, ...] = (128, 256, 512, 1024, 2048)
EXTENDED_LADDER: tuple[int, ...] = NODE_LADDER + (4096, 8192, 16384, 32768)  # large q: sqrt(q) z resolves finer
# Resolution rule (docs/science.md §7): the node spacing in h = sqrt(q) z may not exceed RESOLUTION, the scale
# (in units of the pre-activation) on which a non-homogeneous activation varies. Without it, an integrand of
# width ~1/sqrt(q) in z falls between the nodes of every coarse rung, all rungs give ~0 and "agree".
RESOLUTION = 0.5
MEHLER_ORDERS: tuple[int, ...] = (160, 320, 640, 1280)  # Hermite orders tried for Mehler's series (c* solver)
CHUNK_ELEMENTS = 1 << 21  # (q values x nodes) evaluated per pass: bounds memory for fine rules on big grids


SERIAL_ELEMENTS = 1 << 20  # (points x nodes) up to which a theory call runs torch single-threaded


@contextlib.contextmanager
def one_thread(active: bool = True) -> Iterator[None]:
    """Run torch single-threaded inside the block (if `active`), then restore the caller's thread count.

    Why: the theory works on small tensors (a sigma_w2 grid x a few hundred nodes) in long Python loops over
    layers or solver iterations. Split over torch's intra-op threads, every operation waits for all threads;
    on a shared, loaded machine that wait dominated (issue 21, 2 cores under load: the one-loop recursion took
    20-65 ms per layer with 2 threads against 1-5 ms with one; the mean-field iterates of a 5-point smoke grid
    57 s at depth 1000 against 1.1 s). Results do not depend on the thread count beyond summation order.
    """
    before = torch.get_num_threads()
    if not active or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def serial_when_small(fn: Callable) -> Callable:
    """Decorator for `fn(g, *args, **kw)` with a Gaussian integrator (or rule) `g` carrying `n_nodes` (or `n`):
    runs `fn` under `one_thread` when its largest tensor argument times the node count is at most
    `SERIAL_ELEMENTS`, where thread fork/join costs more than it saves; large grids keep every thread."""

    @functools.wraps(fn)
    def wrapped(g, *args, **kw):
        points = max((a.numel() for a in (*args, *kw.values()) if isinstance(a, torch.Tensor)), default=1)
        nodes = getattr(g, "n_nodes", None) or getattr(g, "n", 1)
        with one_thread(points * nodes <= SERIAL_ELEMENTS):
            return fn(g, *args, **kw)

    return wrapped


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
    z, w = _nodes(n)
    return GaussRule(z=z, w=w, basis=hermite_block(n, 0, n_coeffs).T)


@functools.cache
def _nodes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and normalised Gaussian weights of the n-node symmetric trapezoid rule (see `gauss_rule`)."""
    if n < 2 or n % 2:
        raise ValueError(f"quadrature n_nodes={n} must be an even integer >= 2")
    h = 2 * HALF_WIDTH / n
    z = (torch.arange(n, dtype=DTYPE) - (n - 1) / 2) * h
    w = torch.exp(-0.5 * z * z)
    return z, w / w.sum()


@functools.cache
def hermite_block(n: int, start: int, stop: int) -> torch.Tensor:
    """Orthonormal Hermite functions sqrt(w_i) He_k(z_i)/sqrt(k!) of orders start <= k < stop on the n-node
    rule, as rows: shape (stop - start, n), contiguous.

    Why blocks: Mehler's series climbs `MEHLER_ORDERS` one rung at a time, and a rung needs only its new
    orders. Caching each rung's block (not every prefix) stores each order once per rule, and writing rows
    rather than columns of an (n, K) matrix keeps the writes contiguous (gelu at large q needs 1280 orders
    on 32768 nodes: building every prefix as columns took 1.4 s of a 5 s mlp_sweep job, and 2x the memory).
    """
    z, w = _nodes(n)
    out = torch.empty(stop - start, n, dtype=DTYPE)
    prev, cur = torch.zeros_like(z), w.sqrt()
    for k in range(stop):  # orthonormal recursion: h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k+1)
        if k >= start:
            out[k - start] = cur
        prev, cur = cur, (z * cur - math.sqrt(k) * prev) / math.sqrt(k + 1)
    return out


def gaussian_expectation(fn: Callable[[torch.Tensor], torch.Tensor], q: torch.Tensor, rule: GaussRule) -> torch.Tensor:
    """E[fn(sqrt(q) z)] for every entry of q (vectorized: one (..., n) evaluation).

    Args:
        fn: elementwise callable on a float64 tensor of shape q.shape + (n,).
        q: variances, float64 tensor of any shape (clamped at 0).
        rule: the quadrature rule.

    Returns:
        float64 tensor of shape q.shape.
    """
    flat = q.reshape(-1).clamp_min(0).sqrt()
    step = max(1, CHUNK_ELEMENTS // rule.n)
    if flat.numel() <= step:
        return rule.expect(fn(flat.unsqueeze(-1) * rule.z)).reshape(q.shape)
    out = torch.cat([rule.expect(fn(flat[s : s + step].unsqueeze(-1) * rule.z)) for s in range(0, flat.numel(), step)])
    return out.reshape(q.shape)


def max_hermite_order(n: int) -> int:
    """Largest Hermite order the n-node rule resolves: node spacing <= half the local wavelength
    pi / sqrt(2k + 1) of the order-k Hermite function near z = 0."""
    return int(((math.pi / node_spacing(n)) ** 2 - 1) / 2)


def node_spacing(n: int) -> float:
    """Spacing in z of the n-node rule (2 HALF_WIDTH / n)."""
    return 2 * HALF_WIDTH / n


def resolved_variance(n: int) -> float:
    """Largest q whose node spacing in h = sqrt(q) z is at most RESOLUTION on the n-node rule."""
    return (RESOLUTION / node_spacing(n)) ** 2


@dataclass(frozen=True)
class NodeCheck:
    """Outcome of the quadrature convergence check (docs/science.md §7).

    Attributes:
        n: node count to use.
        error: largest relative error estimate over the moments and probes (the whole probed range).
        q_ok: largest variance up to which every probe passed (agreement to tol and resolution); inf when the
            activation is homogeneous and every probe passed.
    """

    n: int
    error: float
    q_ok: float


def _rung_errors(fns, q_probe: torch.Tensor, n: int, n_next: int) -> torch.Tensor:
    """Per-probe relative error of the n-node rule against the n_next-node rule, max over the moments."""
    cur = torch.stack([gaussian_expectation(f, q_probe, gauss_rule(n, 0)) for f in fns])
    nxt = torch.stack([gaussian_expectation(f, q_probe, gauss_rule(n_next, 0)) for f in fns])
    diff = (cur - nxt).abs()
    rel = torch.where(diff == 0, torch.zeros_like(diff), diff / nxt.abs().clamp_min(1e-300))  # relative per moment
    rel = torch.where(torch.isfinite(rel), rel, torch.full_like(rel, float("inf")))
    return rel.max(0).values


def _q_ok(q_probe: torch.Tensor, ok: torch.Tensor) -> float:
    """Largest probe variance such that every probe at or below it passed (0 if the smallest failed)."""
    order = torch.argsort(q_probe)
    qs, oks = q_probe[order], ok[order]
    if bool(oks.all()):
        return float(qs[-1])
    first_bad = int((~oks).nonzero()[0])
    return float(qs[first_bad - 1]) if first_bad > 0 else 0.0


def check_node_count(
    fns: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    q_probe: torch.Tensor,
    tol: float = 1e-12,
    ladder: Sequence[int] = NODE_LADDER,
    homogeneous: bool = False,
    fixed: int | None = None,
) -> NodeCheck:
    """Node count by the convergence check, with the variance range over which it is verified.

    A rung n passes at a probe q when every moment agrees with the rung 2n (the next rung) to `tol`
    *relative to that moment* and, for a non-homogeneous activation, the node spacing in h = sqrt(q) z is at
    most `RESOLUTION` (docs/science.md §7). The smallest rung passing at every probe is chosen. If none does,
    the finest rung is used, and `q_ok` says up to which variance its coarser neighbour was verified (the
    finer rule is at least as accurate there). With `fixed`, that node count is checked against 2 * fixed.

    Args:
        fns: elementwise callables f whose E f(sqrt(q) z) must converge.
        q_probe: probe variances, 1-D float64 tensor.
        tol: relative tolerance per moment.
        ladder: increasing even node counts to try.
        homogeneous: the activation is positively homogeneous (moments scale exactly with q: no resolution
            rule, and a pass at the probes holds at every q).
        fixed: a user-given node count to check instead of choosing one.

    Returns:
        A `NodeCheck`.
    """

    def passes(n: int, n_next: int) -> tuple[torch.Tensor, torch.Tensor]:
        err = _rung_errors(fns, q_probe, n, n_next)
        resolved = torch.full_like(q_probe, True, dtype=torch.bool) if homogeneous else (
            q_probe <= resolved_variance(n) * (1 + 1e-12))  # fmt: skip
        return err, (err <= tol) & resolved

    def result(n: int, err: torch.Tensor, ok: torch.Tensor) -> NodeCheck:
        q_ok = _q_ok(q_probe, ok)
        if homogeneous and bool(ok.all()):
            q_ok = float("inf")
        return NodeCheck(n, float(err.max()), q_ok)

    if fixed is not None:
        err, ok = passes(fixed, 2 * fixed)
        return result(fixed, err, ok)
    for n, n_next in zip(ladder[:-1], ladder[1:]):
        err, ok = passes(n, n_next)
        if bool(ok.all()):
            return result(n, err, ok)
    return result(ladder[-1], err, ok)
