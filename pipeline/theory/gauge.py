"""The gauge parameter xi as a kernel design choice (docs/science.md §4, our construction).

Weight rows with covariance (sigma_w2/N)(P_T + xi P_L): the transverse gain chi_1 is gauge
independent, the longitudinal factor A_q(xi) = dq'/dq is not. For positively homogeneous
activations without bias the signal is itself a tangent vector, so the top exponent is
0.5 ln max(chi_1, A_q) exactly.
"""

from __future__ import annotations

import math

import torch

from .critical import SIGMA_W2_SEARCH, chaos_line, critical_line
from .gaussian import GaussianIntegrator
from .mean_field import as_t, chi1, gain_variance, q_star, variance_slope


def relu_length_threshold(xi) -> torch.Tensor:
    """Closed form for ReLU, sigma_b2 = 0: A_q = 1 at sigma_w2 = 2 pi / (pi - 1 + xi).

    From A_q = sigma_w2 (1/2 - (1 - xi)/(2 pi)) = sigma_w2 (pi - 1 + xi)/(2 pi) for ReLU (docs/science.md §4);
    2.934 at xi = 0 and 2 at xi = 1.

    Args:
        xi: gauge parameter, float or array-like/tensor of any shape (values > 1 - pi).

    Returns:
        Length threshold in sigma_w2, float64 tensor with the shape of `xi`.
    """
    return 2 * math.pi / (math.pi - 1 + as_t(xi))


def gauge_theory(g: GaussianIntegrator, sigma_w2, sigma_b2, xi) -> dict[str, torch.Tensor]:
    """q*(xi), chi_1, A_q(xi), 0.5 ln chi_1, 0.5 ln A_q and (where exact) the top exponent, broadcast.

    Theory side of the gauge scan (docs/science.md §4): chi_1 = sigma_w2 E phi'^2 and
    A_q = sigma_w2 [E phi'^2 + E phi phi'' - 2 (1 - xi) E phi dE phi/dq], both at q*(xi) (or at
    `mean_field.gain_variance` where q* is 0 or infinite), and
    lambda_theory = 0.5 ln max(chi_1, A_q) for homogeneous activations with sigma_b2 = 0, NaN elsewhere.

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_w2: weight variance, float or tensor broadcastable with sigma_b2 and xi; float64.
        sigma_b2: bias variance, float or tensor broadcastable with sigma_w2 and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with sigma_w2 and sigma_b2; float64.

    Returns:
        Dict of float64 tensors, all of the broadcast shape of (sigma_w2, sigma_b2, xi): "q_star", "chi1",
        "a_q", "half_ln_chi1", "half_ln_a_q" (A_q clamped at 1e-300 before the log) and "lambda_theory".
    """
    sw, sb, x = torch.broadcast_tensors(as_t(sigma_w2), as_t(sigma_b2), as_t(xi))
    fp = q_star(g, sw, sb, x)
    q = gain_variance(g, fp.x)
    c1 = chi1(g, q, sw)
    a_q = variance_slope(g, q, sw, x)
    out = {
        "q_star": fp.x,
        "chi1": c1,
        "a_q": a_q,
        "half_ln_chi1": 0.5 * torch.log(c1),
        "half_ln_a_q": 0.5 * torch.log(a_q.clamp_min(1e-300)),
    }
    exact = g.act.homogeneous & (sb == 0)
    out["lambda_theory"] = torch.where(
        exact, 0.5 * torch.log(torch.maximum(c1, a_q)), torch.full_like(c1, float("nan"))
    )
    return out


def thresholds(g: GaussianIntegrator, sigma_b2, xi, sigma_w2_range=SIGMA_W2_SEARCH) -> dict[str, torch.Tensor]:
    """Length threshold (A_q = 1) and chaos threshold per (sigma_b2, xi) pair.

    Thresholds as computed in docs/science.md §4, each by `critical_line` (docs/science.md §7).
    Length: where the variance stops dying out / starts to diverge. Homogeneous activations have a
    q-independent A_q (any sigma_b2: the map is affine); others without bias lose the trivial
    fixed point q* = 0 where A_q(0) = 1; others with bias have q* > 0 always (NaN: no threshold).
    Chaos: chi_1(q*(xi)) = 1 in general (a finite stable q* has A_q(q*) < 1: the longitudinal mode decays). For
    homogeneous activations the variance map is affine, q' = A_q q + sigma_b2: past A_q = 1 the variance
    diverges, the bias no longer matters and the longitudinal mode grows at 0.5 ln A_q, so with or without bias
    the chaos threshold is the smaller of the two roots (a missing root falls back to the other): `critical.chaos_line`.

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_b2: bias variance, float or array-like; flattened to 1-D and broadcast with `xi`.
        xi: gauge parameter, float or array-like; flattened to 1-D and broadcast with `sigma_b2`.
        sigma_w2_range: (lo, hi) interval of sigma_w2 searched for every root.

    Returns:
        Dict of float64 tensors of shape (n,), n the broadcast length: "sigma_b2", "xi", "len_threshold",
        "transverse_threshold" (root of chi_1 = 1) and "chaos_threshold"; NaN where no root was found.
    """
    sb, x = torch.broadcast_tensors(as_t(sigma_b2).reshape(-1), as_t(xi).reshape(-1))
    if g.act.homogeneous:
        length = critical_line(g, sb, x, sigma_w2_range, gain="a_q").sigma_w2_crit
    else:
        length = critical_line(g, sb, x, sigma_w2_range, gain="a_q0").sigma_w2_crit
        length = torch.where(sb == 0, length, torch.full_like(length, float("nan")))
    transverse = critical_line(g, sb, x, sigma_w2_range, gain="chi1").sigma_w2_crit
    chaos = chaos_line(g, sb, x, sigma_w2_range).sigma_w2_crit  # the one home of the rule
    return {
        "sigma_b2": sb,
        "xi": x,
        "len_threshold": length,
        "transverse_threshold": transverse,
        "chaos_threshold": chaos,
    }
