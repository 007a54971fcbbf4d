"""Zero crossings in sigma_w2 of the one-loop exponent: deep layer, finite depth, exact ReLU (docs/science.md §6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.theory.finite_width import relu_lyapunov_exact
from pipeline.theory.one_loop.common import EXPANSION_LIMIT, STATUS_BREAKDOWN, STATUS_NO_CROSSING, STATUS_OK, _act, _t
from pipeline.theory.one_loop.deep_layer import OneLoopFixedPoint, fixed_point
from pipeline.theory.one_loop.recursion import layer_recursion
from pipeline.theory.quadrature import DTYPE


@dataclass
class OneLoopCrossing:
    """Roots in sigma_w2, shape (B, W) for B sigma_b2 values x W widths (mean field: (B,)).

    mean_field: root of chi1(q*) = 1; one_loop: root of lambda_N = 0 (with the correlation term);
    one_loop_spec: same without it; annealed: root of the one-loop annealed gain = 1;
    expansion_parameter: V*/(N K^2) at the one-loop root; status per (B, W) (numpy str array).
    """

    sigma_b2: torch.Tensor
    width: torch.Tensor
    mean_field: torch.Tensor
    one_loop: torch.Tensor
    one_loop_spec: torch.Tensor
    annealed: torch.Tensor
    expansion_parameter: torch.Tensor
    status: np.ndarray


def _first_up(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(found, index i) of the first y[..., i] < 0 <= y[..., i+1] along the last axis."""
    up = (y[..., :-1] < 0) & (y[..., 1:] >= 0)
    found = up.any(-1)
    return found, torch.where(found, up.to(torch.uint8).argmax(-1), torch.zeros_like(found, dtype=torch.long))


def _crossing_functions(fp: OneLoopFixedPoint, width: torch.Tensor) -> torch.Tensor:
    """(4, P): one-loop exponent, spec exponent, annealed gain - 1 at width N, and mean-field exponent."""
    lmf = 0.5 * torch.log(fp.chi1)
    return torch.stack([lmf + fp.c1 / width, lmf + fp.c1_spec / width, fp.chi1 + fp.chi1_1overN / width - 1, lmf])


def one_loop_crossing(
    activation,
    sigma_b2,
    widths,
    sigma_w2_range: tuple[float, float] = (0.2, 6.0),
    n_scan: int = 117,
    tol: float = 1e-10,
    n_nodes: int | None = None,
) -> OneLoopCrossing:
    """The one-loop zero crossing sigma_w2*(N) of the typical exponent, with its validity, per (sigma_b2, N).

    Why: predicts how the measured edge of chaos moves at finite width (docs/science.md §6).

    Args:
        activation: name; sigma_b2: (B,) values; widths: (W,) widths N.
        sigma_w2_range, n_scan: scan grid for the first upward sign change, then bisection to `tol`
            (all roots of all (sigma_b2, N) pairs in one vectorized bisection).
    Returns:
        OneLoopCrossing: roots of 0.5 ln chi1(q*) + c1(sigma_w2)/N = 0 (c1 with and without the
        correlation term), of the annealed one-loop gain = 1, and of chi1 = 1; the expansion
        parameter V*/(N K^2) at the one-loop root; status "ok", "expansion_breakdown" (> 0.3) or
        the fixed-point status there ("no_crossing" if no sign change in range).
    """
    sb = _t(sigma_b2).reshape(-1)
    N = _t(widths).reshape(-1)
    B, W = sb.numel(), N.numel()
    scan = torch.linspace(*sigma_w2_range, n_scan, dtype=DTYPE)
    fp = fixed_point(activation, scan.repeat(B), sb.repeat_interleave(n_scan), n_nodes)
    Nrow = N.repeat(B)  # (B*W,) width of each (b, w) row
    sbrow = sb.repeat_interleave(W)
    ys = torch.stack(
        [
            _crossing_functions(_slice(fp, b * n_scan, (b + 1) * n_scan), Nrow[b * W + w])
            for b in range(B)
            for w in range(W)
        ],
        1,
    )  # (4, B*W, n_scan)
    found, i = _first_up(ys)
    lo = scan[i].clone()
    hi = scan[(i + 1).clamp(max=n_scan - 1)].clone()
    sb4, N4 = sbrow.expand(4, -1).reshape(-1), Nrow.expand(4, -1).reshape(-1)
    lo, hi, found = lo.reshape(-1), hi.reshape(-1), found.reshape(-1)
    which = torch.arange(4).repeat_interleave(B * W)
    while float((hi - lo).max()) > tol:
        mid = 0.5 * (lo + hi)
        vals = _crossing_functions(fixed_point(activation, mid, sb4, n_nodes), N4)  # (4, 4*B*W)
        above = vals.gather(0, which.view(1, -1))[0] >= 0
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    roots = torch.where(found, 0.5 * (lo + hi), torch.full_like(lo, float("nan"))).view(4, B, W)
    one = roots[0]
    at = fixed_point(activation, one.reshape(-1).nan_to_num(1.0), sbrow, n_nodes)
    xp = (at.vk2 / Nrow).view(B, W)
    st = at.status_at(Nrow)
    st[~torch.isfinite(one.reshape(-1)).numpy()] = STATUS_NO_CROSSING
    xp = torch.where(torch.isfinite(one), xp, torch.full_like(xp, float("nan")))
    return OneLoopCrossing(
        sigma_b2=sb,
        width=N,
        mean_field=roots[3, :, 0],
        one_loop=one,
        one_loop_spec=roots[1],
        annealed=roots[2],
        expansion_parameter=xp,
        status=st.reshape(B, W),
    )


def _slice(fp: OneLoopFixedPoint, a: int, b: int) -> OneLoopFixedPoint:
    """Rows a:b of a fixed-point result (tensors and status)."""
    kw = {k: (v[a:b] if isinstance(v, (torch.Tensor, np.ndarray)) else v) for k, v in fp.__dict__.items()}
    return OneLoopFixedPoint(**kw)


def relu_exact_crossing(width: int) -> float:
    """Root in sigma_w2 of the exact bias-free ReLU exponent (docs/science.md §2).

    lambda_N(s) = 0.5 ln s + lambda_N(1), so the root is s* = exp(-2 lambda_N(1)) = 2 + 5/N + O(1/N^2).
    """
    return math.exp(-2 * relu_lyapunov_exact(int(width), 1.0))


@dataclass
class FiniteDepthCrossing:
    """Zero crossings of the exponent averaged over layers burn_in..L-1 at depth L: mean field and one loop.

    status speaks for `one_loop` (status before number: NaN unless "ok"): "ok"; "no_crossing" (no upward sign
    change in range, or the recursion overflowed there); "expansion_breakdown" (expansion_parameter > 0.3,
    non-homogeneous activations). expansion_parameter: the largest V^l/(N (K^l)^2) over the averaged layers at the
    two scan points bracketing the root (NaN without a root), the diagnostic kept whatever the status.
    """

    mean_field: float  # root of mean_l 0.5 ln chi1(K^l) (N -> inf at the same depth)
    one_loop: float  # root of mean_l [0.5 ln chi1(K^l) + c1^l / N]; NaN unless status is "ok"
    status: str = STATUS_OK
    expansion_parameter: float = float("nan")


def finite_depth_crossing(
    activation,
    sigma_b2: float,
    width: int,
    depth: int,
    burn_in: int,
    q0: float = 1.0,
    sigma_w2_range: tuple[float, float] = (0.2, 6.0),
    n_scan: int = 233,
    n_nodes: int | None = None,
) -> FiniteDepthCrossing:
    """What a finite network of depth L measures: the exponent averaged after the burn-in, not at the fixed point.

    Why: near the edge of chaos the depth scale diverges, so the deep-layer value is reached only after many
    layers (tanh at sigma_b2 = 0: K^l decays like 1/l); a depth-50 measurement is then compared with the
    same layer average of the one-loop recursion (docs/science.md §6), not with its fixed point.

    Args:
        activation: name; sigma_b2: bias variance; width: N; depth: L; burn_in: first averaged transition;
        q0: layer-0 variance; sigma_w2_range, n_scan: scan for the first upward sign change (then linear
        interpolation between the two bracketing scan points, error O(spacing^2) ~ 1e-4).
    Returns:
        FiniteDepthCrossing (NaN where no sign change in range or where the recursion overflows; the one-loop
        root also NaN where its status is not "ok"). Cost linear in depth (`layer_recursion`).
    """
    act = _act(activation)
    scan = torch.linspace(*sigma_w2_range, n_scan, dtype=DTYPE)
    with torch.no_grad():
        rec = layer_recursion(act, scan, sigma_b2, depth, q0, n_nodes=n_nodes)
        one = rec.lambda_average(width, burn_in)
        mf = (0.5 * torch.log(rec.chi1))[:, burn_in:-1].mean(1)
        vk2 = rec.expansion_parameter(width, burn_in)

    def root(y: torch.Tensor) -> tuple[float, int]:
        y = y.numpy()
        for i in range(len(y) - 1):
            if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
                w = -y[i] / (y[i + 1] - y[i])
                return float(scan[i] + w * (scan[i + 1] - scan[i])), i
        return float("nan"), -1

    x_mf, _ = root(mf)
    x_one, i = root(one)
    if i < 0:
        return FiniteDepthCrossing(mean_field=x_mf, one_loop=float("nan"), status=STATUS_NO_CROSSING)
    xp = float(vk2[i : i + 2].max())
    if not act.homogeneous and not xp <= EXPANSION_LIMIT:  # (NaN counts as a breakdown)
        return FiniteDepthCrossing(x_mf, float("nan"), STATUS_BREAKDOWN, xp)
    return FiniteDepthCrossing(x_mf, x_one, STATUS_OK, xp)
