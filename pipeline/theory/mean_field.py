"""Mean-field signal propagation (docs/science.md §1, with the gauge parameter xi of §4).

All functions are float64 and vectorized over broadcastable tensors of sigma_w2, sigma_b2 and xi;
xi = 1 is the i.i.d. Gaussian network of the classic theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fixed_point import FixedPoint, Status, solve_fixed_point
from .gaussian import GaussianIntegrator
from .quadrature import DTYPE

Q_ZERO = 1e-12  # a variance fixed point below this is the trivial q* = 0 (signal dies out)


def as_t(x) -> torch.Tensor:
    """A float64 tensor view of a number, array or tensor."""
    return torch.as_tensor(x, dtype=DTYPE)


def variance_map(g: GaussianIntegrator, q, sigma_w2, sigma_b2, xi=1.0) -> torch.Tensor:
    """q' = sigma_w2 [E phi^2 - (1 - xi) (E phi)^2] + sigma_b2."""
    q, sigma_w2, sigma_b2, xi = map(as_t, (q, sigma_w2, sigma_b2, xi))
    return sigma_w2 * (g.e_phi2(q) - (1 - xi) * g.e_phi(q) ** 2) + sigma_b2


def variance_slope(g: GaussianIntegrator, q, sigma_w2, xi=1.0) -> torch.Tensor:
    """A_q = dq'/dq = sigma_w2 [E phi'^2 + E phi phi'' - 2 (1 - xi) E phi dE phi/dq] (longitudinal factor)."""
    q, sigma_w2, xi = map(as_t, (q, sigma_w2, xi))
    e_phi = g.e_phi(q)
    return sigma_w2 * (g.e_dphi2(q) + g.e_phi_d2phi(q) - 2 * (1 - xi) * e_phi * g.de_phi_dq(q))


def gains(g: GaussianIntegrator, q, sigma_w2, xi=1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(chi_1, A_q) at q from one pass of the variance moments (as chi1 and variance_slope)."""
    q, sigma_w2, xi = torch.broadcast_tensors(*map(as_t, (q, sigma_w2, xi)))
    _, e_dphi2, e_phi_d2phi = g.variance_moments(q)
    a_q = e_dphi2 + e_phi_d2phi
    if not bool((xi == 1).all()):
        a_q = a_q - 2 * (1 - xi) * g.e_phi(q) * g.de_phi_dq(q)
    return sigma_w2 * e_dphi2, sigma_w2 * a_q


def chi1(g: GaussianIntegrator, q, sigma_w2) -> torch.Tensor:
    """Transverse gain chi_1 = sigma_w2 E[phi'(h)^2], h ~ N(0, q)."""
    return as_t(sigma_w2) * g.e_dphi2(as_t(q))


def correlation_map(g: GaussianIntegrator, q1, q2, q12, sigma_w2, sigma_b2, xi=1.0) -> torch.Tensor:
    """q12' = sigma_w2 [E phi(u1) phi(u2) - (1 - xi) E phi(u1) E phi(u2)] + sigma_b2."""
    q1, q2, q12, sigma_w2, sigma_b2, xi = map(as_t, (q1, q2, q12, sigma_w2, sigma_b2, xi))
    c = q12 / torch.sqrt(q1 * q2)
    mean_mode = (1 - xi) * g.e_phi(q1) * g.e_phi(q2)
    return sigma_w2 * (g.kernel(q1, q2, c) - mean_mode) + sigma_b2


def chi_c(g: GaussianIntegrator, q, c, sigma_w2) -> torch.Tensor:
    """Slope of the correlation map dc'/dc = sigma_w2 E[phi'(u1) phi'(u2)] at equal variances q."""
    q, c = as_t(q), as_t(c)
    return as_t(sigma_w2) * g.grad_kernel(q, q, c)


def q_star(g: GaussianIntegrator, sigma_w2, sigma_b2, xi=1.0, q0: float = 1.0, **solver) -> FixedPoint:
    """Stable fixed point of the variance map, with the slope A_q there and a status per point."""
    sigma_w2, sigma_b2, xi = torch.broadcast_tensors(*map(as_t, (sigma_w2, sigma_b2, xi)))
    sw, sb, x = sigma_w2.reshape(-1), sigma_b2.reshape(-1), xi.reshape(-1)

    def fmap(q, idx):
        e_phi2, e_dphi2, e_phi_d2phi = g.variance_moments(q)
        s, xx = sw[idx], x[idx]
        if bool((xx == 1).all()):
            return s * e_phi2 + sb[idx], s * (e_dphi2 + e_phi_d2phi)
        m = g.e_phi(q)
        return (
            s * (e_phi2 - (1 - xx) * m * m) + sb[idx],
            s * (e_dphi2 + e_phi_d2phi - 2 * (1 - xx) * m * g.de_phi_dq(q)),
        )

    fp = solve_fixed_point(fmap, torch.full_like(sw, q0), lower=0.0, **solver)
    fp.x = torch.where(fp.x < Q_ZERO, torch.zeros_like(fp.x), fp.x)  # the trivial fixed point, exactly
    return _reshaped(fp, sigma_w2.shape)


def c_star(g: GaussianIntegrator, q, sigma_w2, sigma_b2, xi=1.0, c0: float = 0.5, **solver) -> FixedPoint:
    """Stable fixed point of the correlation map c' = q12'(c) / q' at q11 = q22 = q, slope there, status.

    At a finite variance fixed point q' = q. Where q* is 0 or infinite, positively homogeneous
    activations (ReLU, linear) still have a q-independent correlation map, evaluated at q = 1;
    other activations get status `degenerate` and NaN. Without a closed-form kernel, Mehler
    coefficients at q are computed once, so each iteration is a cheap power series.
    """
    q, sigma_w2, sigma_b2, xi = torch.broadcast_tensors(*map(as_t, (q, sigma_w2, sigma_b2, xi)))
    qf, sw, sb, x = (t.reshape(-1) for t in (q, sigma_w2, sigma_b2, xi))
    finite = torch.isfinite(qf) & (qf > Q_ZERO)
    usable = finite | torch.full_like(finite, g.act.homogeneous) & (sb == 0)
    qs = torch.where(finite, qf, torch.ones_like(qf))
    m2 = (1 - x) * g.e_phi(qs) ** 2
    qprime = sw * (g.e_phi2(qs) - m2) + sb  # = q at a fixed point
    offset = (sb - sw * m2) / qprime  # the c-independent part of c'
    scale = sw / qprime
    if g.use_closed_forms and g.act.kernel is not None and g.act.grad_kernel is not None:

        def fmap(c, idx):
            qi = qs[idx]
            return (scale[idx] * g.act.kernel(qi, qi, c) + offset[idx], scale[idx] * qi * g.act.grad_kernel(qi, qi, c))
    else:
        a2 = g.hermite(qs) ** 2
        significant = (a2 > 1e-18 * a2.sum(-1, keepdim=True)).any(0).nonzero()
        a2 = a2[:, : int(significant.max()) + 1 if significant.numel() else 1]  # drop negligible orders
        a2_t = a2.T.contiguous()  # (K, n): rows are orders, for Horner's rule

        def fmap(c, idx):
            coeff = a2_t[:, idx]
            val, der = coeff[-1].clone(), torch.zeros_like(c)
            for k in range(coeff.shape[0] - 2, -1, -1):  # Horner for sum_k a_k^2 c^k and its c-derivative
                der = der * c + val
                val = val * c + coeff[k]
            return scale[idx] * val + offset[idx], scale[idx] * der

    fp = solve_fixed_point(fmap, torch.full_like(qs, c0), lower=-1.0, upper=1.0 + 1e-12, **solver)
    fp.x = fp.x.clamp(max=1.0)
    fp.status[~usable] = int(Status.DEGENERATE)
    fp.x[~usable] = float("nan")
    fp.slope[~usable] = float("nan")
    return _reshaped(fp, q.shape)


def _reshaped(fp: FixedPoint, shape) -> FixedPoint:
    return FixedPoint(fp.x.reshape(shape), fp.slope.reshape(shape), fp.status.reshape(shape), fp.iterations)


def gain_variance(g: GaussianIntegrator, q: torch.Tensor) -> torch.Tensor:
    """Where to evaluate gains when q* is 0 or infinite: any q (say 1) for positively homogeneous
    activations, whose gains are q-independent; else the limit q -> 0 (phi'(0)) or q = q_max."""
    if g.act.homogeneous:
        return torch.where((q == 0) | ~torch.isfinite(q), torch.ones_like(q), q)
    return torch.where(torch.isfinite(q), q, torch.full_like(q, g.q_max))


def depth_scale(slope: torch.Tensor) -> torch.Tensor:
    """xi = -1 / ln(slope): layers over which a deviation from the fixed point decays (inf at slope 1)."""
    with torch.no_grad():
        out = -1.0 / torch.log(slope)
    return torch.where(slope >= 1.0, torch.full_like(out, float("inf")), out)


@dataclass
class MeanFieldGrid:
    """Everything §1 defines at each grid point, plus solver status columns."""

    sigma_w2: torch.Tensor
    sigma_b2: torch.Tensor
    xi: torch.Tensor
    q_star: torch.Tensor
    q_status: torch.Tensor
    c_star: torch.Tensor
    c_status: torch.Tensor
    chi1: torch.Tensor
    a_q: torch.Tensor
    chi_c: torch.Tensor
    xi_q: torch.Tensor
    xi_c: torch.Tensor
    lambda_mf: torch.Tensor


def mean_field_grid(g: GaussianIntegrator, sigma_w2, sigma_b2, xi=1.0, **solver) -> MeanFieldGrid:
    """Fixed points, gains, depth scales and the mean-field Lyapunov exponent over broadcast grids."""
    sigma_w2, sigma_b2, xi = torch.broadcast_tensors(*map(as_t, (sigma_w2, sigma_b2, xi)))
    qfp = q_star(g, sigma_w2, sigma_b2, xi, **solver)
    q_eval = gain_variance(g, qfp.x)
    gain, a_q = gains(g, q_eval, sigma_w2, xi)
    cfp = c_star(g, qfp.x, sigma_w2, sigma_b2, xi, **solver)
    chic = cfp.slope  # normalized slope of the correlation map at c*
    return MeanFieldGrid(
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        xi=xi,
        q_star=qfp.x,
        q_status=qfp.status,
        c_star=cfp.x,
        c_status=cfp.status,
        chi1=gain,
        a_q=a_q,
        chi_c=chic,
        xi_q=depth_scale(a_q),
        xi_c=depth_scale(chic),
        lambda_mf=0.5 * torch.log(gain),
    )
