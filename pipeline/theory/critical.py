"""Stability thresholds in sigma_w2 by a vectorized scan-then-bisection root finder.

`gain="chi1"`: the edge of chaos, chi_1(q*) = 1 (docs/science.md §1). `gain="a_q"`: the length
(variance) threshold A_q(q*; xi) = 1 of the gauge-parameter ensemble (docs/science.md §4);
`gain="a_q0"`: A_q at q = 0, where the trivial fixed point q* = 0 loses stability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fixed_point import Status
from .gaussian import GaussianIntegrator
from .mean_field import as_t, chi1, gain_variance, q_star, variance_slope


@dataclass
class CriticalLine:
    """sigma_w2_crit(sigma_b2), q* there, and whether a crossing was found in the scanned range.

    One entry per (sigma_b2, xi) pair of `critical_line` (docs/science.md §1 critical line, §7 root finder).

    Attributes:
        sigma_b2: bias variance of each pair, float64 tensor of shape (n,), n the broadcast length of the
            flattened `sigma_b2` and `xi` passed to `critical_line`.
        sigma_w2_crit: first upward crossing of gain = 1 in sigma_w2, float64 (n,); NaN where none was found.
        q_star: q* at sigma_w2_crit, float64 (n,); where `found` is False it is q* at the placeholder
            sigma_w2 = 1 (not NaN), flagged by `q_status`.
        q_status: `Status` code of the q* solve, int64 (n,); `Status.DIVERGED` where `found` is False.
        found: whether a continuous crossing gain = 1 was found, bool (n,).
        xi: gauge parameter of each pair, float64 (n,).
        status: int64 (n,), a `CROSSING_STATUS` code: "crossing" (found), "none" (no sign change in the range),
            "jump" (the sign changes across a discontinuity of the gain, e.g. q* jumping from a finite value or
            0 to infinity: no point has gain = 1, so sigma_w2_crit is NaN and the jump location is
            `sigma_w2_jump`).
        sigma_w2_jump: location of the jump where status is "jump", else NaN; float64 (n,).
        gain_below: gain - 1 at the lower end of the final bracket (NaN where none); float64 (n,).
        gain_above: gain - 1 at the upper end of the final bracket (NaN where none); float64 (n,).
        quad_ok: bool (n,): the quadrature is verified at the variances used (docs/science.md §7).
    """

    sigma_b2: torch.Tensor
    sigma_w2_crit: torch.Tensor
    q_star: torch.Tensor
    q_status: torch.Tensor
    found: torch.Tensor
    xi: torch.Tensor | None = None
    status: torch.Tensor | None = None
    sigma_w2_jump: torch.Tensor | None = None
    gain_below: torch.Tensor | None = None
    gain_above: torch.Tensor | None = None
    quad_ok: torch.Tensor | None = None
    gain: tuple[str, ...] | None = None  # per entry, the gain whose root sigma_w2_crit is ("chi1" or "a_q")


CROSSING_STATUS = {0: "crossing", 1: "none", 2: "jump"}
# |gain - 1| allowed at both ends of the final bracket for a continuous crossing; a larger value there means
# the gain jumps across 1 (docs/science.md §7). A continuous gain moves by slope * tol ~ 1e-10 across it.
JUMP_TOL = 1e-6
# gain - 1 >= -SIGN_NOISE counts as "at or above" in the bisection: where the gain only grazes 1 (tanh, erf at
# sigma_b2 = 0: gain - 1 ~ C (sigma_w2 - crit)^2 above a transcritical bifurcation) rounding (~1e-13) decided
# the sign and cost 4e-7 in sigma_w2; this makes the bisection land on the bifurcation to ~SIGN_NOISE / slope.
SIGN_NOISE = 1e-12
# (lo, hi) sigma_w2 bracket scanned for a critical point: the one home of this default (the theory stage's
# `theory.sigma_w2_search`, the gauge thresholds and the crossings computed where the theory tables lack a row).
SIGMA_W2_SEARCH: tuple[float, float] = (0.05, 10.0)


def _excess_gain(g: GaussianIntegrator, sigma_w2: torch.Tensor, sigma_b2: torch.Tensor, xi, gain: str) -> torch.Tensor:
    """gain(q*) - 1 (at the limits of `gain_variance` where q* is 0 or infinite)."""
    if gain == "a_q0":  # stability of the trivial fixed point q = 0
        return variance_slope(g, torch.zeros_like(sigma_w2), sigma_w2, xi) - 1
    q = gain_variance(g, q_star(g, sigma_w2, sigma_b2, xi).x)
    if gain == "chi1":
        return chi1(g, q, sigma_w2) - 1
    return variance_slope(g, q, sigma_w2, xi) - 1


def critical_line(
    g: GaussianIntegrator,
    sigma_b2,
    xi=1.0,
    sigma_w2_range: tuple[float, float] = SIGMA_W2_SEARCH,
    n_scan: int = 64,
    tol: float = 1e-10,
    gain: str = "chi1",
) -> CriticalLine:
    """First upward crossing of gain = 1 in sigma_w2 for every (sigma_b2, xi) pair, to `tol` in sigma_w2.

    Locates the stability thresholds of docs/science.md §1 (edge of chaos, `chi_1(q*) = 1`, Poole et al. 2016,
    arXiv:1606.05340; Schoenholz et al. 2017, arXiv:1611.01232) and §4 (length threshold `A_q = 1`).
    A uniform `n_scan`-point scan of `gain(q*) - 1` over `sigma_w2_range` finds the first interval with
    `gain - 1 < 0 <= gain - 1` at its right end, then vectorised bisection narrows it below `tol`
    (docs/science.md §7). Where q* is 0 or infinite, gains are taken at `mean_field.gain_variance`.

    Args:
        g: Gaussian integrator of the activation phi (fixes the quadrature rule and q_max).
        sigma_b2: bias variance, float or array-like; flattened to 1-D and broadcast with `xi`; float64.
        xi: gauge parameter of the weight ensemble (docs/science.md §4), float or array-like, flattened to 1-D
            and broadcast with `sigma_b2`; 1 is the i.i.d. network.
        sigma_w2_range: (lo, hi) interval of weight variances that is scanned.
        n_scan: number of scan points (linspace including both ends).
        tol: bisection stops when every bracket is narrower than this, in sigma_w2.
        gain: which gain crosses 1: "chi1" (transverse gain chi_1(q*), the edge of chaos), "a_q" (longitudinal
            factor A_q(q*; xi) = dq'/dq) or "a_q0" (A_q at q = 0, stability of the trivial fixed point q* = 0).

    Returns:
        A `CriticalLine` whose tensors have shape (n,), n the broadcast length of flattened `sigma_b2` and
        `xi`; `sigma_w2_crit` is NaN and `found` False where no crossing lies in `sigma_w2_range`.

    Raises:
        ValueError: if `gain` is not one of "chi1", "a_q", "a_q0".
    """
    if gain not in ("chi1", "a_q", "a_q0"):
        raise ValueError(f"gain={gain!r}: allowed chi1, a_q, a_q0")
    sb, xi = torch.broadcast_tensors(as_t(sigma_b2).reshape(-1), as_t(xi).reshape(-1))
    scan = torch.linspace(*sigma_w2_range, n_scan, dtype=sb.dtype)
    ex = _excess_gain(
        g, scan[None, :].expand(sb.numel(), -1), sb[:, None].expand(-1, n_scan), xi[:, None].expand(-1, n_scan), gain
    )
    up = (ex[:, :-1] < 0) & (ex[:, 1:] >= 0)
    found = up.any(1)
    first = torch.where(found, up.float().argmax(1), torch.zeros_like(sb, dtype=torch.long))
    lo, hi = scan[first].clone(), scan[first + 1].clone()
    while float((hi - lo).max()) > tol:
        mid = 0.5 * (lo + hi)
        above = _excess_gain(g, mid, sb, xi, gain) >= -SIGN_NOISE
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    nan = torch.full_like(lo, float("nan"))
    ex_lo, ex_hi = _excess_gain(g, lo, sb, xi, gain), _excess_gain(g, hi, sb, xi, gain)
    jump = found & ((ex_lo.abs() > JUMP_TOL) | (ex_hi.abs() > JUMP_TOL) | ~torch.isfinite(ex_lo + ex_hi))
    crossing = found & ~jump
    where = 0.5 * (lo + hi)
    crit = torch.where(crossing, where, nan)
    fp = q_star(g, where.where(found, torch.ones_like(where)), sb, xi)
    q_status = torch.where(crossing, fp.status, torch.full_like(fp.status, int(Status.DIVERGED)))
    code = torch.where(jump, 2, torch.where(found, 0, 1)).to(torch.int64)
    q_used = torch.cat([gain_variance(g, fp.x), gain_variance(g, q_star(g, lo, sb, xi).x),
                        gain_variance(g, q_star(g, hi, sb, xi).x)])  # fmt: skip
    quad_ok = g.resolved(q_used).reshape(3, -1).all(0)
    return CriticalLine(
        sigma_b2=sb, sigma_w2_crit=crit, q_star=fp.x, q_status=q_status, found=crossing, xi=xi, status=code,
        sigma_w2_jump=torch.where(jump, where, nan), gain_below=torch.where(found, ex_lo, nan),
        gain_above=torch.where(found, ex_hi, nan), quad_ok=quad_ok,
    )  # fmt: skip


def chaos_line(
    g: GaussianIntegrator, sigma_b2, xi=1.0, sigma_w2_range: tuple[float, float] = SIGMA_W2_SEARCH
) -> CriticalLine:
    """The order-to-chaos threshold in sigma_w2 per (sigma_b2, xi) pair: the one home of its rule (docs/science.md §4).

    Non-homogeneous activations: the edge of chaos chi_1(q*(xi)) = 1 (a finite stable q* has A_q(q*) < 1, so the
    longitudinal mode decays). Homogeneous activations (ReLU, linear), with or without bias: the smaller of the
    roots of chi_1 = 1 and A_q = 1; the variance map q' = A_q q + sigma_b2 is affine, so past A_q = 1 the variance
    diverges and the longitudinal mode grows at 0.5 ln A_q (ReLU, sigma_b2 = 0: 2 for xi <= 1,
    2 pi / (pi - 1 + xi) for xi > 1, e.g. 1.517 at xi = 2). Where neither root exists in the range, the entry is
    the chi_1 line's (NaN, status "none" or "jump"): never a neighbouring formula.

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_b2: bias variance, float or array-like; flattened and broadcast with `xi`.
        xi: gauge parameter, float or array-like; flattened and broadcast with `sigma_b2`.
        sigma_w2_range: (lo, hi) interval of sigma_w2 searched.

    Returns:
        A `CriticalLine` (fields as `critical_line`'s, taken entry by entry from the root used) with `gain` naming,
        per entry, the gain whose root it is ("chi1" or "a_q").
    """
    transverse = critical_line(g, sigma_b2, xi, sigma_w2_range, gain="chi1")
    n = transverse.sigma_b2.numel()
    if not g.act.homogeneous:
        transverse.gain = ("chi1",) * n
        return transverse
    length = critical_line(g, sigma_b2, xi, sigma_w2_range, gain="a_q")
    pick = length.found & (~transverse.found | (length.sigma_w2_crit < transverse.sigma_w2_crit))
    out = {}
    for name in ("sigma_b2", "sigma_w2_crit", "q_star", "q_status", "found", "xi", "status", "sigma_w2_jump",
                 "gain_below", "gain_above", "quad_ok"):  # fmt: skip
        out[name] = torch.where(pick, getattr(length, name), getattr(transverse, name))
    return CriticalLine(**out, gain=tuple("a_q" if p else "chi1" for p in pick.tolist()))


THRESHOLD_OK = "ok"


def threshold_status(cl: CriticalLine) -> list[str]:
    """Per entry of a `CriticalLine`: "ok" (a root, quadrature verified), else why its value is not a theory value:
    "no_crossing" (none in the searched range), "jump" (the gain jumps across 1, docs/science.md §7) or
    "inaccurate" (the quadrature is not verified at the variances used)."""
    names = {0: THRESHOLD_OK, 1: "no_crossing", 2: "jump"}
    codes = cl.status.tolist() if cl.status is not None else [0 if f else 1 for f in cl.found.tolist()]
    quad = cl.quad_ok.tolist() if cl.quad_ok is not None else [True] * len(codes)
    return [names[int(c)] if (c != 0 or q) else "inaccurate" for c, q in zip(codes, quad)]
