"""Vectorized scalar fixed-point solver: plain iteration made fast by safeguarded Newton steps.

Every grid point carries a status, so non-convergence is reported, never silent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import torch

MapFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Status(IntEnum):
    """Outcome of a fixed-point solve at one grid point (the `q_status`/`c_status` columns, docs/science.md §7).

    Stored as int64 codes in `FixedPoint.status`; `STATUS_NAMES` maps a code to its lower-case name.
    """

    CONVERGED = 0
    DIVERGED = 1  # no finite fixed point in range (e.g. ReLU variance above criticality)
    MAX_ITER = 2  # iteration cap reached without meeting the tolerance
    UNSTABLE = 3  # converged to a point with |f'(x*)| > 1 (not what depth iteration reaches)
    DEGENERATE = 4  # the map is undefined here (e.g. correlation of signals whose variance -> 0)


STATUS_NAMES = {int(s): s.name.lower() for s in Status}


@dataclass
class FixedPoint:
    """Solution x*, the map's slope there, the status per point and the iterations used.

    Attributes:
        x: fixed point per point, same shape and dtype as the solver's `x0` (callers reshape it to their grid);
            +inf where the status is `Status.DIVERGED`.
        slope: f'(x) at the last iterate evaluated, same shape as `x` (at a converged point, the slope at x*).
        status: `Status` code per point, int64, same shape as `x`.
        iterations: number of solver sweeps run for the whole batch (the slowest point), python int.
        series_ok: optional bool per point (set by `mean_field.c_star`): False where Mehler's series of the map
            was truncated beyond the quadrature tolerance (docs/science.md §7).
    """

    x: torch.Tensor
    slope: torch.Tensor
    status: torch.Tensor
    iterations: int
    series_ok: torch.Tensor | None = None


def solve_fixed_point(
    fmap: MapFn,
    x0: torch.Tensor,
    tol: float = 1e-13,
    max_iter: int = 500,
    lower: float = 0.0,
    upper: float = 1e8,
    n_plain: int = 4,
    atol: float = 1e-30,
) -> FixedPoint:
    """Find x = f(x) pointwise for increasing maps; `fmap(x, idx)` returns (f(x), f'(x)) at points `idx`.

    Used for the variance fixed point q*, the correlation fixed point c* (docs/science.md §1) and the GINN
    q* (§5); the algorithm and tolerances are the conventions of docs/science.md §7.
    The target is the fixed point that plain iteration from x0 reaches (the stable one). For an
    increasing map, f(x) lies between x and that target, so each evaluation tightens a bracket
    [lo, hi]: r = f(x) - x > 0 gives lo = f(x), r < 0 gives hi = f(x). After `n_plain` plain
    steps, Newton steps x - r / (f'(x) - 1) are taken where f'(x) < 1 and they land inside the bracket,
    else the bracket midpoint (or the plain step while the bracket is open). Converged when
    |r| <= tol * |x| + atol; left [lower, upper] (or a non-finite step) means diverged. A converged point
    with |f'(x*)| > 1 + 1e-9 is marked unstable. Points still running after `max_iter` sweeps keep
    status `max_iter`.

    Args:
        fmap: callable (x, idx) -> (f(x), f'(x)); x a 1-D float tensor of the still-active points, idx the
            int64 indices (into the flattened x0) of those points; both outputs have the shape of x.
        x0: starting points, 1-D float tensor (n,), typically float64; not modified.
        tol: relative tolerance on |f(x) - x|.
        max_iter: maximum number of sweeps.
        lower: smallest allowed iterate; a step below it means diverged.
        upper: largest allowed iterate; a step above it means diverged. Values >= 1e8 leave the upper end of
            the bracket open (+inf) initially.
        n_plain: number of plain iteration steps before Newton steps are allowed.
        atol: absolute tolerance added to tol * |x|.

    Returns:
        A `FixedPoint` with `x`, `slope`, `status` of shape (n,) (x and slope in the dtype of x0, status int64).
    """
    x = x0.clone()
    slope = torch.full_like(x, float("nan"))
    status = torch.full(x.shape, int(Status.MAX_ITER), dtype=torch.int64)
    lo = torch.full_like(x, lower)
    hi = torch.full_like(x, float("inf") if upper >= 1e8 else upper)
    active = torch.arange(x.numel())
    it = 0
    for it in range(1, max_iter + 1):
        xa = x[active]
        fx, dfx = fmap(xa, active)
        r = fx - xa
        done = r.abs() <= tol * xa.abs() + atol
        lo_a = torch.where(r > 0, torch.maximum(lo[active], fx), lo[active])
        hi_a = torch.where(r < 0, torch.minimum(hi[active], fx), hi[active])
        if it > n_plain:
            newton = xa - r / (dfx - 1)
            inside = (dfx < 1) & torch.isfinite(newton) & (newton > lo_a) & (newton < hi_a)
            closed = torch.isfinite(hi_a) & torch.isfinite(lo_a)
            step = torch.where(inside, newton, torch.where(closed, 0.5 * (lo_a + hi_a), fx))
        else:
            step = fx
        bad = ~torch.isfinite(step) | (step > upper) | (step < lower)
        lo[active], hi[active] = lo_a, hi_a
        x[active] = torch.where(done, xa, step)
        slope[active] = dfx
        status[active[done]] = int(Status.CONVERGED)
        status[active[bad & ~done]] = int(Status.DIVERGED)
        active = active[~done & ~bad]
        if active.numel() == 0:
            break
    unstable = (status == int(Status.CONVERGED)) & (slope.abs() > 1 + 1e-9)
    status[unstable] = int(Status.UNSTABLE)
    x[status == int(Status.DIVERGED)] = float("inf")
    return FixedPoint(x=x, slope=slope, status=status, iterations=it)
