"""Gaussian expectations of one activation: 1-D moments and 2-D kernels, float64, vectorized over q.

Closed forms from the activation are used where they exist (ReLU arc-cosine, erf arcsine, linear);
otherwise the kernel is Mehler's series on Hermite coefficients from the quadrature rule.
`use_closed_forms=False` forces quadrature everywhere (the tests compare both paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pipeline.activations import Activation

from .quadrature import (
    CHUNK_ELEMENTS,
    DTYPE,
    EXTENDED_LADDER,
    MEHLER_ORDERS,
    GaussRule,
    check_node_count,
    gauss_rule,
    gaussian_expectation,
    hermite_block,
    max_hermite_order,
)


@dataclass
class GaussianIntegrator:
    """Moments E[g(sqrt(q) z)] and kernels of `act` with a node count fixed by a convergence check.

    The Gaussian expectations behind the mean-field maps of docs/science.md §1, in float64; the node count
    is the smallest rung of `quadrature.NODE_LADDER` whose moments E phi^2, E phi'^2, E phi phi'' (and E phi
    without closed form) agree with the next rung to `tol` at q in {1e-3, 0.1, 0.5, 1, 3, q_max}
    (docs/science.md §7).

    Attributes:
        act: the elementwise activation phi with its derivatives and optional closed forms.
        q_max: largest variance probed by the convergence check (float).
        n_nodes: number of quadrature nodes (even); None chooses it by the convergence check.
        tol: relative tolerance of the convergence check.
        use_closed_forms: use the activation's closed-form mean and kernels where they exist; False forces
            quadrature and Mehler's series everywhere (the tests compare both paths).
        quad_error: estimated relative error of the node count over the probed range (a given `n_nodes` is
            checked against twice as many nodes, never trusted).
        q_ok: largest variance up to which the rule is verified (agreement to `tol` per moment and the
            resolution rule, docs/science.md §7); `resolved(q)` flags values computed beyond it.
        rule: the `GaussRule` with `n_nodes` nodes.
    """

    act: Activation
    q_max: float = 20.0
    n_nodes: int | None = None
    tol: float = 1e-12
    use_closed_forms: bool = True
    quad_error: float = field(init=False, default=0.0)
    q_ok: float = field(init=False, default=0.0)
    rule: GaussRule = field(init=False)
    q_seen: float = field(init=False, default=0.0)  # largest finite variance integrated so far
    auto_nodes: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        self.auto_nodes = self.n_nodes is None
        self._calibrate(self.q_max)
        self.rule = gauss_rule(self.n_nodes)

    def _calibrate(self, q_max: float) -> None:
        """Node count by the convergence check over probe variances up to q_max (docs/science.md §7); a given
        `n_nodes` is checked the same way (against twice as many nodes) instead of being trusted."""
        probe = [1e-3, 0.1, 0.5, 1.0, 3.0]
        if q_max > 3.0:  # intermediate probes locate q_ok where the finest rung cannot reach q_max
            probe += [3.0 * (q_max / 3.0) ** (k / 7) for k in range(1, 7)] + [q_max]
        probe = torch.tensor(sorted(set(probe)), dtype=DTYPE)
        fns = [
            lambda x: self.act.phi(x) ** 2,
            lambda x: self.act.dphi(x) ** 2,
            lambda x: self.act.phi(x) * self.act.d2phi(x),
        ]
        if not (self.use_closed_forms and self.act.mean is not None):
            fns.append(self.act.phi)
        self.q_max = q_max
        chk = check_node_count(fns, probe, self.tol, EXTENDED_LADDER, self.act.homogeneous,
                               fixed=None if self.auto_nodes else self.n_nodes)  # fmt: skip
        self.n_nodes, self.quad_error, self.q_ok = chk.n, chk.error, chk.q_ok

    def cover(self, q: torch.Tensor) -> None:
        """Follow the variances asked about: past q_max the rule is re-calibrated (auto node count) so every
        value keeps the stated tolerance where the ladder can reach it; with a fixed node count it is re-checked
        to the new range. Beyond `q_ok`, `accurate` turns False and `resolved` flags the values, instead of
        silently losing digits (gelu at q ~ 1200 lost 7e-5 relative on a rule calibrated to q = 20)."""
        finite = q[torch.isfinite(q)]
        if finite.numel() == 0:
            return
        top = float(finite.max())
        self.q_seen = max(self.q_seen, top)
        if top <= self.q_max * (1 + 1e-12) or self.act.homogeneous:  # homogeneous: moments scale exactly with q
            return
        n_before = self.n_nodes
        self._calibrate(2.0 * top)
        if self.n_nodes != n_before:
            self.rule = gauss_rule(self.n_nodes)
            self.hermite_cache_clear()

    def hermite_cache_clear(self) -> None:
        """Hook for cached per-rule quantities (none today): called whenever the rule changes."""

    @property
    def accurate(self) -> bool:
        """Whether every variance integrated so far lay where the convergence check met `tol`."""
        return self.quad_error <= self.tol and self.q_seen <= self.q_ok * (1 + 1e-12)

    def resolved(self, q: torch.Tensor) -> torch.Tensor:
        """Per value: whether moments at variance q are verified to `tol` (q <= q_ok; NaN/inf q: True, the
        caller evaluates gains elsewhere). A bool tensor of q's shape (docs/science.md §7)."""
        q = torch.as_tensor(q, dtype=DTYPE)
        return ~torch.isfinite(q) | (q <= self.q_ok * (1 + 1e-12))

    def kernel_verified(self, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Per value: `kernel(q1, q2, c)` verified to `tol`: both variances `resolved`, and where the kernel is
        Mehler's series (no closed form) its truncation after K orders, at most |c|^K sqrt(m1 m2) with
        m = E phi^2 - sum_{k<K} a_k^2 (Cauchy-Schwarz), below `tol` sqrt(E phi^2(q1) E phi^2(q2)). A bool
        tensor of the broadcast shape (docs/science.md §7)."""
        q1, q2, c = torch.broadcast_tensors(*(torch.as_tensor(x, dtype=DTYPE) for x in (q1, q2, c)))
        ok = self.resolved(q1) & self.resolved(q2)
        if self.use_closed_forms and self.act.kernel is not None:
            return ok
        fin = torch.isfinite(q1) & torch.isfinite(q2) & torch.isfinite(c)
        a1, a2 = _padded(self.series_coefficients(q1[fin])[0], self.series_coefficients(q2[fin])[0])
        e1, e2 = (gaussian_expectation(lambda x: self.act.phi(x) ** 2, q[fin], self.rule) for q in (q1, q2))
        missing = ((e1 - (a1 * a1).sum(-1)).clamp_min(0) * (e2 - (a2 * a2).sum(-1)).clamp_min(0)).sqrt()
        tail = c[fin].abs().clamp_max(1) ** a1.shape[-1] * missing
        ok = ok.clone()
        ok[fin] &= tail <= self.tol * (e1 * e2).sqrt() + 1e-300
        return ok

    # ---- 1-D moments -------------------------------------------------------------------
    def variance_moments(self, q: torch.Tensor, chunk: int = 2048, cover: bool = True) -> torch.Tensor:
        """(E phi^2, E phi'^2, E phi phi'') stacked on a new first axis, in one chunked pass over q.

        The hot loop of the variance fixed point: one activation evaluation per node, and chunks
        small enough to stay in cache. Expectations over h = sqrt(q) z, z ~ N(0, 1) (docs/science.md §1);
        negative q is clamped to 0. Always by quadrature (no closed forms).

        Args:
            q: pre-activation variances, float64 tensor of any shape.
            chunk: number of q values evaluated per pass.
            cover: re-calibrate the rule to q first (see `cover`); a fixed-point search passes False for its
                trial iterates (a diverging search visits q up to 1e8) and covers the solution instead.

        Returns:
            float64 tensor of shape (3,) + q.shape.
        """
        if cover:
            self.cover(torch.as_tensor(q, dtype=DTYPE))
        flat = q.reshape(-1).clamp_min(0).sqrt()
        chunk = max(1, min(chunk, CHUNK_ELEMENTS // self.rule.n))  # fine rules (large q): bounded memory
        out = torch.empty(3, flat.numel(), dtype=DTYPE)
        for s in range(0, flat.numel(), chunk):
            h = flat[s : s + chunk].unsqueeze(-1) * self.rule.z
            p, d, d2 = self.act.derivs(h)
            for row, vals in enumerate((p * p, d * d, p * d2)):
                torch.mv(vals, self.rule.w, out=out[row, s : s + chunk])
        return out.reshape((3,) + q.shape)

    def e_phi2(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h)^2], h ~ N(0, q) (docs/science.md §1, the variance map).

        Args:
            q: variance, float64 tensor of any shape (clamped at 0).

        Returns:
            float64 tensor of shape q.shape.
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        return gaussian_expectation(lambda x: self.act.phi(x) ** 2, q, self.rule)

    def e_dphi2(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi'(h)^2], h ~ N(0, q); sigma_w2 times it is chi_1 (docs/science.md §1).

        Args:
            q: variance, float64 tensor of any shape (clamped at 0).

        Returns:
            float64 tensor of shape q.shape.
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        return gaussian_expectation(lambda x: self.act.dphi(x) ** 2, q, self.rule)

    def e_phi_d2phi(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h) phi''(h)], h ~ N(0, q) (zero a.e. for piecewise-linear activations); a term of A_q (§1).

        Args:
            q: variance, float64 tensor of any shape (clamped at 0).

        Returns:
            float64 tensor of shape q.shape.
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        return gaussian_expectation(lambda x: self.act.phi(x) * self.act.d2phi(x), q, self.rule)

    def e_phi(self, q: torch.Tensor) -> torch.Tensor:
        """E[phi(h)], h ~ N(0, q): the mean ("longitudinal") mode that the gauge parameter xi weights.

        Enters the (1 - xi) terms of the maps (docs/science.md §1, §4); closed form where the activation has
        one (ReLU sqrt(q/(2 pi)); tanh, erf, linear 0), else quadrature.

        Args:
            q: variance, float64 tensor of any shape.

        Returns:
            float64 tensor of shape q.shape.
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        if self.use_closed_forms and self.act.mean is not None:
            return self.act.mean(q)
        return gaussian_expectation(self.act.phi, q, self.rule)

    def de_phi_dq(self, q: torch.Tensor) -> torch.Tensor:
        """d/dq E[phi(h)] = E[phi''(h)] / 2 (Stein), via E[phi'(sqrt q z) z] / (2 sqrt q) when no closed form.

        The dE phi/dq factor of A_q (docs/science.md §1); q is clamped at 1e-300 in the quadrature path.

        Args:
            q: variance, float64 tensor of any shape.

        Returns:
            float64 tensor of shape q.shape.
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        if self.use_closed_forms and self.act.dmean_dq is not None:
            return self.act.dmean_dq(q)
        sq = q.clamp_min(1e-300).sqrt()
        vals = self.act.dphi(sq.unsqueeze(-1) * self.rule.z) * self.rule.z
        return self.rule.expect(vals) / (2 * sq)

    # ---- 2-D kernels ------------------------------------------------------------------
    def hermite(self, q: torch.Tensor, derivative: bool = False) -> torch.Tensor:
        """Normalized Hermite coefficients of phi(sqrt(q) z) (or of phi'), shape q.shape + (K,).

        a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!), k = 0..K-1, K = `rule.n_coeffs` (160), the input to
        Mehler's formula (docs/science.md §1).

        Args:
            q: variance, float64 tensor of any shape (clamped at 0).
            derivative: expand phi' instead of phi.

        Returns:
            float64 tensor of shape q.shape + (K,).
        """
        self.cover(torch.as_tensor(q, dtype=DTYPE))
        fn = self.act.dphi if derivative else self.act.phi
        return self.rule.coefficients(fn(q.clamp_min(0).sqrt().unsqueeze(-1) * self.rule.z))

    def mehler_squares(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_k(q)^2 for k < K, ok): squared Hermite coefficients of phi with enough orders K for Mehler's series.

        The truncated series misses sum_{k >= K} a_k^2 c^k, at most E phi^2 - sum_{k<K} a_k^2 for |c| <= 1, and
        its c-derivative misses at most q E phi'^2 - sum_{k<K} k a_k^2 (Price: sum_k k a_k^2 = q E phi'^2).
        K climbs `MEHLER_ORDERS` (within what the rule resolves) until both missing parts are below `tol`
        relative; `ok` (bool, shape q.shape) is False where even the largest K misses more (docs/science.md §7;
        160 orders missed 4e-6 of the kernel of tanh at q = 11, i.e. 3e-7 in c*).

        Args:
            q: variances, float64 tensor of any shape (clamped at 0).

        Returns:
            (float64 tensor of shape q.shape + (K,), bool tensor of shape q.shape).
        """
        a, ok = self.series_coefficients(q)
        return a * a, ok

    def series_coefficients(self, q: torch.Tensor, derivative: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_k(q), ok): Hermite coefficients of f = phi (or phi') with K from `MEHLER_ORDERS` as in
        `mehler_squares`: the smallest K whose missing parts E f^2 - sum a_k^2 and q E f'^2 - sum k a_k^2 are
        below `tol` relative at every q, else the largest the rule resolves, with `ok` False where it falls short.

        Args:
            q: variances, float64 tensor of any shape (clamped at 0).
            derivative: expand phi' instead of phi.

        Returns:
            (float64 tensor of shape q.shape + (K,), bool tensor of shape q.shape).
        """
        q = torch.as_tensor(q, dtype=DTYPE)
        self.cover(q)
        f, df = (self.act.dphi, self.act.d2phi) if derivative else (self.act.phi, self.act.dphi)
        e2 = gaussian_expectation(lambda x: f(x) ** 2, q, self.rule)
        d2 = q.clamp_min(0) * gaussian_expectation(lambda x: df(x) ** 2, q, self.rule)
        vals = f(q.clamp_min(0).sqrt().unsqueeze(-1) * self.rule.z) * self.rule.w.sqrt()
        orders = [k for k in MEHLER_ORDERS if k <= max_hermite_order(self.n_nodes)] or [MEHLER_ORDERS[0]]
        a = vals[..., :0]
        for n_coeffs in orders:  # each rung adds only its new orders
            a = torch.cat([a, vals @ hermite_block(self.n_nodes, a.shape[-1], n_coeffs).T], -1)
            a2 = a * a
            k = torch.arange(n_coeffs, dtype=DTYPE)
            miss0 = (e2 - a2.sum(-1)).abs()
            miss1 = (d2 - (a2 * k).sum(-1)).abs()
            ok = (miss0 <= self.tol * e2.abs() + 1e-300) & (miss1 <= self.tol * d2.abs() + 1e-300)
            if bool(ok.all()):
                break
        return a, ok

    def kernel(self, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """E[phi(u1) phi(u2)] for variances q1, q2 and correlation c.

        u1 = sqrt(q1) z1, u2 = sqrt(q2) (c z1 + sqrt(1 - c^2) z2) (docs/science.md §1). Closed forms: ReLU
        arc-cosine kernel sqrt(q1 q2)/(2 pi) [sin t + (pi - t) cos t], t = arccos c (Cho & Saul 2009); erf
        arcsine kernel (Williams 1996); linear; otherwise Mehler's series sum_k a_k(q1) a_k(q2) c^k.

        Args:
            q1: variance of the first input, float64 tensor broadcastable with q2 and c.
            q2: variance of the second input, float64 tensor broadcastable with q1 and c.
            c: correlation in [-1, 1], float64 tensor broadcastable with q1 and q2.

        Returns:
            float64 tensor of the broadcast shape.
        """
        if self.use_closed_forms and self.act.kernel is not None:
            return self.act.kernel(q1, q2, c)
        return mehler(*self._pair_coefficients(q1, q2, derivative=False), c)

    def grad_kernel(self, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """E[phi'(u1) phi'(u2)] = d kernel / d q12 (Price's theorem).

        The derivative kernel behind chi_c (docs/science.md §1); closed forms for ReLU (pi - t)/(2 pi)
        (Cho & Saul 2009), erf and linear, otherwise Mehler's series on the coefficients of phi'.

        Args:
            q1: variance of the first input, float64 tensor broadcastable with q2 and c.
            q2: variance of the second input, float64 tensor broadcastable with q1 and c.
            c: correlation in [-1, 1], float64 tensor broadcastable with q1 and q2.

        Returns:
            float64 tensor of the broadcast shape.
        """
        if self.use_closed_forms and self.act.grad_kernel is not None:
            return self.act.grad_kernel(q1, q2, c)
        return mehler(*self._pair_coefficients(q1, q2, derivative=True), c)

    def _pair_coefficients(self, q1, q2, derivative: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Hermite coefficients at q1 and at q2, padded to one order count; expanded once when q1 equals q2
        (two inputs of one variance, the usual case: it halves the cost of Mehler's series)."""
        q1, q2 = torch.as_tensor(q1, dtype=DTYPE), torch.as_tensor(q2, dtype=DTYPE)
        a1 = self.series_coefficients(q1, derivative)[0]
        if q1.shape == q2.shape and torch.equal(q1, q2):
            return a1, a1
        return _padded(a1, self.series_coefficients(q2, derivative)[0])


def _padded(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two coefficient tensors zero-padded to the same number of orders (last axis)."""
    k = max(a.shape[-1], b.shape[-1])
    return torch.nn.functional.pad(a, (0, k - a.shape[-1])), torch.nn.functional.pad(b, (0, k - b.shape[-1]))


def mehler(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """sum_k a_k b_k c^k (Mehler's formula), a and b of shape c.shape + (K,).

    With normalised Hermite coefficients a_k, b_k of f(sqrt(q1) z) and g(sqrt(q2) z), this is
    E[f(u1) g(u2)] at correlation c (docs/science.md §1); c^0 is taken as 1, also at c = 0.

    Args:
        a: coefficients of the first function, tensor of shape c.shape + (K,) (or broadcastable to it).
        b: coefficients of the second function, same shape as `a`.
        c: correlation, tensor.

    Returns:
        Tensor of shape c.shape (the broadcast of a, b and c without the last axis), dtype of `a`.
    """
    k = torch.arange(a.shape[-1], dtype=a.dtype)
    powers = torch.where(k == 0, torch.ones_like(c).unsqueeze(-1), c.unsqueeze(-1) ** k)
    return (a * b * powers).sum(-1)
