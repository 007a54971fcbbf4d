"""Mean field of the GINN at initialisation (docs/science.md §5): circular Gaussian z, Rayleigh moduli.

With E|z|^2 = q, r = |z| has r^2 ~ Exp(mean q). Variance map q' = sigma_w2 E g(r)^2; perturbation
gain chi_GINN = sigma_w2 E[(g'(r)^2 + (g(r)/r)^2) / 2] (radial and tangential parts).
Expectations: E f(r) = int_0^inf f(sqrt(q u)) exp(-u) du by Gauss–Laguerre quadrature (float64),
exact for polynomials in r^2: smooth odd g (tanh, identity), whose integrands are even in r and so
smooth in u = r^2, converge geometrically. Where g' jumps (modReLU at r = -b) the integral is split at
u0 = b^2/q: Gauss–Legendre on [0, u0] and Gauss–Laguerre shifted to start at u0, so neither rule sees
the kink (without the split, 200 Laguerre nodes missed modReLU's chi_GINN by 2-3% at q = 0.3-1).
"""

from __future__ import annotations

import math

import torch
from scipy.special import roots_laguerre, roots_legendre

from pipeline.activations import get_modulus_activation

MODRELU_OFFSET = -0.1  # modReLU's offset b unless configured (the one home of this default: the schema, GINN use it)

_U, _W = (torch.as_tensor(a, dtype=torch.float64) for a in roots_laguerre(200))
_S = _U.sqrt()  # r = sqrt(q) * s
_X, _V = (torch.as_tensor(a, dtype=torch.float64) for a in roots_legendre(200))  # on [-1, 1]
_U_CUT = 60.0  # exp(-60) ~ 1e-26: the part of [0, u0] beyond it is negligible


def _kink(kind: str, offset: float) -> float:
    """The modulus where g' of `kind` jumps at this offset (0.0: no kink inside r > 0)."""
    act = get_modulus_activation(kind)
    return max(act.kink(offset), 0.0) if act.kink is not None else 0.0


def _g(kind: str, r: torch.Tensor, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(g(r), g'(r)) of a modulus activation, from its one definition in pipeline.activations."""
    return get_modulus_activation(kind).g_and_slope(r, offset)


def rayleigh_expectation(fn, q: torch.Tensor, kink: float = 0.0) -> torch.Tensor:
    """E fn(r) for r = |z|, z circular complex Gaussian with E|z|^2 = q (vectorized over q).

    E fn(r) = int_0^inf fn(sqrt(q u)) exp(-u) du by 200-node Gauss-Laguerre quadrature (docs/science.md §5).

    Args:
        fn: elementwise callable on a float64 tensor of moduli r, shape q.shape + (200,).
        q: E|z|^2, float or tensor of any shape (clamped at 0); float64.
        kink: modulus r0 > 0 where fn is not smooth (0: none); the integral is split at u0 = r0^2 / q.

    Returns:
        float64 tensor of shape q.shape.
    """
    q = torch.as_tensor(q, dtype=torch.float64).clamp_min(0)
    if kink <= 0:
        return fn(q.sqrt().unsqueeze(-1) * _S) @ _W
    u0 = (kink * kink / q.clamp_min(1e-300)).unsqueeze(-1)  # the kink in u = r^2 / q
    tail = fn((q.unsqueeze(-1) * (u0 + _U)).sqrt()) @ _W * torch.exp(-u0.squeeze(-1))  # u = u0 + v, v ~ Laguerre
    half = 0.5 * u0.clamp_max(_U_CUT)  # [0, min(u0, 60)] by Gauss-Legendre with weight exp(-u)
    u = half * (_X + 1)
    head = (fn((q.unsqueeze(-1) * u).sqrt()) * torch.exp(-u) * _V * half).sum(-1)
    return torch.where(q > 0, head + tail, fn(torch.zeros_like(u)) @ _W)


def ginn_variance_map(q, sigma_w2, kind: str = "tanh", offset: float = MODRELU_OFFSET) -> torch.Tensor:
    """q' = sigma_w2 E g(r)^2: the GINN variance map at initialisation (docs/science.md §5).

    Args:
        q: E|z|^2 of the pre-activations, float or tensor; float64.
        sigma_w2: link variance (E|U_ij|^2 = sigma_w2/n_in), float or tensor broadcastable with q.
        kind: modulus activation g: "tanh", "identity" or "modrelu".
        offset: modReLU offset b <= 0 (ignored by the other kinds).

    Returns:
        float64 tensor of the broadcast shape of q and sigma_w2.
    """
    return torch.as_tensor(sigma_w2, dtype=torch.float64) * rayleigh_expectation(
        lambda r: _g(kind, r, offset)[0] ** 2, q, _kink(kind, offset)
    )


def chi_ginn(q, sigma_w2, kind: str = "tanh", offset: float = MODRELU_OFFSET) -> torch.Tensor:
    """sigma_w2 E[(g'(r)^2 + (g(r)/r)^2) / 2]; at r -> 0, g(r)/r -> g'(0).

    Perturbation gain chi_GINN of docs/science.md §5: an isotropic complex perturbation is half radial
    (scaled by g') and half tangential (scaled by g/r). Identity gives chi_GINN = sigma_w2.

    Args:
        q: E|z|^2, float or tensor; float64.
        sigma_w2: link variance, float or tensor broadcastable with q.
        kind: modulus activation g: "tanh", "identity" or "modrelu".
        offset: modReLU offset b <= 0 (ignored by the other kinds).

    Returns:
        float64 tensor of the broadcast shape of q and sigma_w2.
    """

    def f(r):
        g, dg = _g(kind, r, offset)
        ratio = torch.where(r > 0, g / r.clamp_min(1e-300), dg)
        return 0.5 * (dg * dg + ratio * ratio)

    return torch.as_tensor(sigma_w2, dtype=torch.float64) * rayleigh_expectation(f, q, _kink(kind, offset))


def ginn_variance_slope(q, sigma_w2, kind: str = "tanh", offset: float = MODRELU_OFFSET) -> torch.Tensor:
    """dq'/dq = sigma_w2 E[g(r) g'(r) r] / q (= sigma_w2 g'(0)^2 as q -> 0).

    Slope of the GINN variance map (docs/science.md §5); the q -> 0 limit is used for q < 1e-12.

    Args:
        q: E|z|^2, float or tensor; float64.
        sigma_w2: link variance, float or tensor broadcastable with q.
        kind: modulus activation g: "tanh", "identity" or "modrelu".
        offset: modReLU offset b <= 0 (ignored by the other kinds).

    Returns:
        float64 tensor of the broadcast shape of q and sigma_w2.
    """
    q = torch.as_tensor(q, dtype=torch.float64)

    def f(r):
        g, dg = _g(kind, r, offset)
        return g * dg * r

    small = q < 1e-12
    val = rayleigh_expectation(f, q, _kink(kind, offset)) / q.clamp_min(1e-300)
    at_zero = _g(kind, torch.zeros((), dtype=torch.float64), offset)[1] ** 2
    return torch.as_tensor(sigma_w2, dtype=torch.float64) * torch.where(small, at_zero, val)


def ginn_q_star(sigma_w2, kind: str = "tanh", offset: float = MODRELU_OFFSET, q0: float = 1.0, q_max: float = 1e6):
    """Stable fixed point of the GINN variance map (bracketed Newton, status per point; inf if divergent).

    Solves q* = sigma_w2 E g(r)^2 (docs/science.md §5) with `solve_fixed_point` (docs/science.md §7);
    values below 1e-12 are set to exactly 0.

    Args:
        sigma_w2: link variance, float or array-like/tensor of any shape (flattened); float64.
        kind: modulus activation g: "tanh", "identity" or "modrelu".
        offset: modReLU offset b <= 0 (ignored by the other kinds).
        q0: starting variance of the iteration.
        q_max: upper end of the allowed range; leaving it means diverged (q* = inf).

    Returns:
        A `FixedPoint` with float64 `x` (q*), `slope` (dq'/dq) and int64 `status`, all of shape (n,), n the
        number of elements of `sigma_w2` (flattened, not reshaped back).
    """
    from .fixed_point import solve_fixed_point

    sw = torch.as_tensor(sigma_w2, dtype=torch.float64).reshape(-1)

    def fmap(q, idx):
        return ginn_variance_map(q, sw[idx], kind, offset), ginn_variance_slope(q, sw[idx], kind, offset)

    fp = solve_fixed_point(fmap, torch.full_like(sw, q0), upper=q_max)
    fp.x = torch.where(fp.x < 1e-12, torch.zeros_like(fp.x), fp.x)
    return fp


def ginn_critical_sigma_w2(
    kind: str = "tanh", offset: float = MODRELU_OFFSET, lo: float = 0.05, hi: float = 10.0, tol: float = 1e-8
) -> float:
    """sigma_w2 where chi_GINN(q*) = 1, by bisection (nan if no crossing in [lo, hi]).

    The GINN edge of chaos (docs/science.md §5; 1 for tanh). A divergent q* is replaced by q = 1e6, the
    large-q limit. Requires chi_GINN(q*) - 1 < 0 at `lo` and >= 0 at `hi`.

    Args:
        kind: modulus activation g: "tanh", "identity" or "modrelu".
        offset: modReLU offset b <= 0 (ignored by the other kinds).
        lo: lower end of the bracket in sigma_w2.
        hi: upper end of the bracket in sigma_w2.
        tol: bisection stops when hi - lo <= tol.

    Returns:
        The critical sigma_w2 as a python float, or nan.
    """

    def excess(sw: float) -> float:
        q = ginn_q_star(torch.tensor(sw), kind, offset).x
        q = torch.where(torch.isfinite(q), q, torch.full_like(q, 1e6))  # divergent q*: the large-q limit
        return float(chi_ginn(q, sw, kind, offset)) - 1

    if excess(lo) >= 0 or excess(hi) < 0:
        return math.nan
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if excess(mid) >= 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
