"""Mean-field signal propagation (docs/science.md §1, with the gauge parameter xi of §4).

All functions are float64 and vectorized over broadcastable tensors of sigma_w2, sigma_b2 and xi;
xi = 1 is the i.i.d. Gaussian network of the classic theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fixed_point import FixedPoint, Status, solve_fixed_point
from .gaussian import GaussianIntegrator
from .quadrature import DTYPE, serial_when_small

Q_ZERO = 1e-12  # a variance fixed point below this is the trivial q* = 0 (signal dies out)


def as_t(x) -> torch.Tensor:
    """A float64 tensor view of a number, array or tensor.

    Args:
        x: python number, sequence, numpy array or tensor.

    Returns:
        float64 tensor with the shape of `x` (no copy when `x` already is a float64 tensor).
    """
    return torch.as_tensor(x, dtype=DTYPE)


@serial_when_small
def variance_map(g: GaussianIntegrator, q, sigma_w2, sigma_b2, xi=1.0) -> torch.Tensor:
    """q' = sigma_w2 [E phi^2 - (1 - xi) (E phi)^2] + sigma_b2.

    Variance map of mean-field signal propagation, docs/science.md §1 (Poole et al. 2016, arXiv:1606.05340)
    with the gauge-parameter term of §4; expectations over h ~ N(0, q). At xi = 1 it is the classic
    q' = sigma_w2 E phi^2 + sigma_b2.

    Args:
        g: Gaussian integrator of the activation phi.
        q: pre-activation variance of the current layer, float or tensor broadcastable with sigma_w2,
            sigma_b2 and xi; float64.
        sigma_w2: weight variance, float or tensor broadcastable with q, sigma_b2 and xi; float64.
        sigma_b2: bias variance, float or tensor broadcastable with q, sigma_w2 and xi; float64.
        xi: gauge parameter (1: i.i.d. weights), float or tensor broadcastable with the others; float64.

    Returns:
        q' of the next layer, float64 tensor of the broadcast shape.
    """
    q, sigma_w2, sigma_b2, xi = map(as_t, (q, sigma_w2, sigma_b2, xi))
    return sigma_w2 * (g.e_phi2(q) - (1 - xi) * g.e_phi(q) ** 2) + sigma_b2


@serial_when_small
def variance_slope(g: GaussianIntegrator, q, sigma_w2, xi=1.0) -> torch.Tensor:
    """A_q = dq'/dq = sigma_w2 [E phi'^2 + E phi phi'' - 2 (1 - xi) E phi dE phi/dq] (longitudinal factor).

    Slope of `variance_map` in q (docs/science.md §1, §4), with dE phi/dq = E phi''/2 (Stein's lemma); at
    xi = 1 it is chi_1 + sigma_w2 E phi phi'' (Schoenholz et al. 2017, arXiv:1611.01232). A_q = 1 is the
    length (variance) stability threshold of §4.

    Args:
        g: Gaussian integrator of the activation phi.
        q: pre-activation variance, float or tensor broadcastable with sigma_w2 and xi; float64.
        sigma_w2: weight variance, float or tensor broadcastable with q and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with q and sigma_w2; float64.

    Returns:
        A_q, float64 tensor of the broadcast shape.
    """
    q, sigma_w2, xi = map(as_t, (q, sigma_w2, xi))
    e_phi = g.e_phi(q)
    return sigma_w2 * (g.e_dphi2(q) + g.e_phi_d2phi(q) - 2 * (1 - xi) * e_phi * g.de_phi_dq(q))


@serial_when_small
def gains(g: GaussianIntegrator, q, sigma_w2, xi=1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(chi_1, A_q) at q from one pass of the variance moments (as chi1 and variance_slope).

    chi_1 = sigma_w2 E phi'^2 and A_q = sigma_w2 [E phi'^2 + E phi phi'' - 2 (1 - xi) E phi dE phi/dq]
    (docs/science.md §1, §4); the xi term is skipped when every xi is 1.

    Args:
        g: Gaussian integrator of the activation phi.
        q: pre-activation variance, float or tensor broadcastable with sigma_w2 and xi; float64.
        sigma_w2: weight variance, float or tensor broadcastable with q and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with q and sigma_w2; float64.

    Returns:
        (chi_1, A_q), two float64 tensors of the broadcast shape of (q, sigma_w2, xi).
    """
    q, sigma_w2, xi = torch.broadcast_tensors(*map(as_t, (q, sigma_w2, xi)))
    _, e_dphi2, e_phi_d2phi = g.variance_moments(q)
    a_q = e_dphi2 + e_phi_d2phi
    if not bool((xi == 1).all()):
        a_q = a_q - 2 * (1 - xi) * g.e_phi(q) * g.de_phi_dq(q)
    return sigma_w2 * e_dphi2, sigma_w2 * a_q


@serial_when_small
def chi1(g: GaussianIntegrator, q, sigma_w2) -> torch.Tensor:
    """Transverse gain chi_1 = sigma_w2 E[phi'(h)^2], h ~ N(0, q).

    Mean growth of the squared norm of a generic infinitesimal perturbation per layer; chi_1 = 1 is the edge
    of chaos and lambda_MF = 0.5 ln chi_1 (docs/science.md §1, §3; Poole et al. 2016, arXiv:1606.05340).
    Independent of xi at leading order in 1/N (§4).

    Args:
        g: Gaussian integrator of the activation phi.
        q: pre-activation variance, float or tensor broadcastable with sigma_w2; float64.
        sigma_w2: weight variance, float or tensor broadcastable with q; float64.

    Returns:
        chi_1, float64 tensor of the broadcast shape.
    """
    return as_t(sigma_w2) * g.e_dphi2(as_t(q))


@serial_when_small
def correlation_map(g: GaussianIntegrator, q1, q2, q12, sigma_w2, sigma_b2, xi=1.0) -> torch.Tensor:
    """q12' = sigma_w2 [E phi(u1) phi(u2) - (1 - xi) E phi(u1) E phi(u2)] + sigma_b2.

    Covariance map of two inputs, docs/science.md §1 (Poole et al. 2016, arXiv:1606.05340) with the gauge
    term of §4: u1 = sqrt(q1) z1, u2 = sqrt(q2) (c z1 + sqrt(1 - c^2) z2), c = q12 / sqrt(q1 q2).

    Args:
        g: Gaussian integrator of the activation phi.
        q1: variance of input 1, float or tensor broadcastable with the other arguments; float64.
        q2: variance of input 2, float or tensor broadcastable with the other arguments; float64.
        q12: covariance of the two inputs, float or tensor broadcastable with the others; float64.
        sigma_w2: weight variance, float or tensor broadcastable with the others; float64.
        sigma_b2: bias variance, float or tensor broadcastable with the others; float64.
        xi: gauge parameter, float or tensor broadcastable with the others; float64.

    Returns:
        q12' of the next layer, float64 tensor of the broadcast shape.
    """
    q1, q2, q12, sigma_w2, sigma_b2, xi = map(as_t, (q1, q2, q12, sigma_w2, sigma_b2, xi))
    c = q12 / torch.sqrt(q1 * q2)
    mean_mode = (1 - xi) * g.e_phi(q1) * g.e_phi(q2)
    return sigma_w2 * (g.kernel(q1, q2, c) - mean_mode) + sigma_b2


@serial_when_small
def q_star(g: GaussianIntegrator, sigma_w2, sigma_b2, xi=1.0, q0: float = 1.0, **solver) -> FixedPoint:
    """Stable fixed point of the variance map, with the slope A_q there and a status per point.

    Solves q* = sigma_w2 [E phi^2 - (1 - xi) (E phi)^2] + sigma_b2 (docs/science.md §1, §4) by
    `solve_fixed_point` from q0 (docs/science.md §7), or in closed form for a homogeneous phi (`_affine_q_star`:
    the map is affine; `**solver` is then unused); q* below 1e-12 (`Q_ZERO`) is set to exactly 0.

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_w2: weight variance, float or tensor broadcastable with sigma_b2 and xi; float64.
        sigma_b2: bias variance, float or tensor broadcastable with sigma_w2 and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with sigma_w2 and sigma_b2; float64.
        q0: starting variance of the iteration.
        **solver: keyword arguments passed on to `solve_fixed_point` (tol, max_iter, ...).

    Returns:
        A `FixedPoint` whose `x` (q*; +inf where diverged), `slope` (A_q at the last iterate) and `status`
        have the broadcast shape of (sigma_w2, sigma_b2, xi); float64 values, int64 status.
    """
    sigma_w2, sigma_b2, xi = torch.broadcast_tensors(*map(as_t, (sigma_w2, sigma_b2, xi)))
    sw, sb, x = sigma_w2.reshape(-1), sigma_b2.reshape(-1), xi.reshape(-1)

    def fmap(q, idx):
        e_phi2, e_dphi2, e_phi_d2phi = g.variance_moments(q, cover=False)  # trial iterates: the answer is covered
        s, xx = sw[idx], x[idx]
        if bool((xx == 1).all()):
            return s * e_phi2 + sb[idx], s * (e_dphi2 + e_phi_d2phi)
        m = g.e_phi(q)
        return (
            s * (e_phi2 - (1 - xx) * m * m) + sb[idx],
            s * (e_dphi2 + e_phi_d2phi - 2 * (1 - xx) * m * g.de_phi_dq(q)),
        )

    if g.act.homogeneous:
        return _reshaped(_affine_q_star(g, sw, sb, x, q0), sigma_w2.shape)
    solver = dict(solver)
    if g.act.sup_phi2 is not None and "upper" not in solver:
        # bounded phi: q* <= sigma_w2 sup phi^2 + sigma_b2 (xi <= 1; else xi sigma_w2), so the search range
        # must reach it (a fixed 1e8 turned q* = 1e8 + 1 into "diverged")
        bound = float((torch.maximum(x, torch.ones_like(x)) * sw * g.act.sup_phi2 + sb).max()) if sw.numel() else 0
        solver["upper"] = max(1e8, 4.0 * bound)
    fp = solve_fixed_point(fmap, torch.full_like(sw, q0), lower=0.0, **solver)
    n_before = g.n_nodes
    g.cover(fp.x[torch.isfinite(fp.x)])  # the rule must resolve the answer, not only the probes it was built on
    if g.n_nodes != n_before:  # re-solve on the finer rule, from the answer (a few Newton steps)
        fp = solve_fixed_point(fmap, torch.where(torch.isfinite(fp.x), fp.x, torch.full_like(fp.x, q0)),
                               lower=0.0, **solver)  # fmt: skip
    fp.x = torch.where(fp.x < Q_ZERO, torch.zeros_like(fp.x), fp.x)  # the trivial fixed point, exactly
    return _reshaped(fp, sigma_w2.shape)


@serial_when_small
def c_star(g: GaussianIntegrator, q, sigma_w2, sigma_b2, xi=1.0, c0: float = 0.5, **solver) -> FixedPoint:
    """Stable fixed point of the correlation map c' = q12'(c) / q' at q11 = q22 = q, slope there, status.

    c* of docs/science.md §1 (Poole et al. 2016, arXiv:1606.05340), with the (1 - xi) term of §4.
    At a finite variance fixed point q' = q. Where q* is 0 or infinite, positively homogeneous
    activations (ReLU, linear) without bias (sigma_b2 = 0) still have a q-independent correlation map,
    evaluated at q = 1; every other point (other activations, or homogeneous ones with sigma_b2 > 0)
    gets status `degenerate` and NaN. Without a closed-form kernel, Mehler coefficients at q are
    computed once (orders below 1e-18 of the total dropped), so each iteration is a cheap power series
    evaluated by Horner's rule.

    Args:
        g: Gaussian integrator of the activation phi.
        q: variance fixed point q* (0 and inf allowed), float or tensor broadcastable with sigma_w2,
            sigma_b2 and xi; float64.
        sigma_w2: weight variance, float or tensor broadcastable with q, sigma_b2 and xi; float64.
        sigma_b2: bias variance, float or tensor broadcastable with q, sigma_w2 and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with q, sigma_w2 and sigma_b2; float64.
        c0: starting correlation of the iteration.
        **solver: keyword arguments passed on to `solve_fixed_point`.

    Returns:
        A `FixedPoint` whose `x` (c*, clamped at 1), `slope` (dc'/dc of the normalised map, chi_c at a finite
        q*) and `status` have the broadcast shape of (q, sigma_w2, sigma_b2, xi); NaN where degenerate.
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
    series_ok = torch.ones_like(qf, dtype=torch.bool)
    if g.use_closed_forms and g.act.kernel is not None and g.act.grad_kernel is not None:

        def fmap(c, idx):
            qi = qs[idx]
            return (scale[idx] * g.act.kernel(qi, qi, c) + offset[idx], scale[idx] * qi * g.act.grad_kernel(qi, qi, c))
    else:
        a2, series_ok = g.mehler_squares(qs)
        significant = a2 > 1e-18 * a2.sum(-1, keepdim=True)  # drop negligible orders, per point
        last = torch.where(significant.any(-1), significant.shape[-1] - 1 - significant.flip(-1).int().argmax(-1), 0)
        bucket = 2 ** torch.ceil(torch.log2((last + 1).clamp_min(16).to(DTYPE))).to(torch.int64)  # orders used
        a2_t = a2[:, : int(bucket.max())].T.contiguous()  # (K, n): rows are orders, for Horner's rule

        def horner(coeff, c):
            val, der = coeff[-1].clone(), torch.zeros_like(c)
            for k in range(coeff.shape[0] - 2, -1, -1):  # Horner for sum_k a_k^2 c^k and its c-derivative
                der = der * c + val
                val = val * c + coeff[k]
            return val, der

        def fmap(c, idx):
            val, der = torch.empty_like(c), torch.empty_like(c)
            b = bucket[idx]
            for k in torch.unique(b).tolist():  # points needing few orders (most) do not pay for the rest
                sel = (b == k).nonzero().reshape(-1)
                val[sel], der[sel] = horner(a2_t[:k, idx[sel]], c[sel])
            return scale[idx] * val + offset[idx], scale[idx] * der

    fp = solve_fixed_point(fmap, torch.full_like(qs, c0), lower=-1.0, upper=1.0 + 1e-12, **solver)
    fp.series_ok = (series_ok | ~usable).reshape(q.shape)  # False: Mehler's series truncated beyond tol
    fp.x = fp.x.clamp(max=1.0)
    fp.status[~usable] = int(Status.DEGENERATE)
    fp.x[~usable] = float("nan")
    fp.slope[~usable] = float("nan")
    out = _reshaped(fp, q.shape)
    out.series_ok = fp.series_ok
    return out


def _affine_q_star(g: GaussianIntegrator, sw, sb, xi, q0: float) -> FixedPoint:
    """q* of a positively homogeneous phi, whose variance map is affine, q' = A q + sigma_b2 with A = A_q at any q:
    sigma_b2/(1 - A) where A < 1; no finite attracting point from q0 > 0 where A >= 1 (diverged, +inf), except
    where sigma_b2 = 0 and A = 1 (every q is fixed: q0) or q0 = 0 (the trivial point). In closed form: the
    iteration needs ~1/|ln A| steps, which near A = 1 ran the solver to max_iter at every probe of a root search."""
    slope = variance_slope(g, torch.ones_like(sw), sw, xi)
    q0 = torch.full_like(sw, float(q0))
    still = (sb == 0) & ((slope == 1) | (q0 == 0))  # q0 is a fixed point of q' = A q
    converged = (slope < 1) | still
    x = torch.where(still, q0, torch.where(converged, sb / (1 - slope), torch.full_like(sw, float("inf"))))
    g.cover(x[torch.isfinite(x)])  # the rule must resolve the answer, as for the iterated maps
    x = torch.where(x < Q_ZERO, torch.zeros_like(x), x)
    status = torch.where(converged, int(Status.CONVERGED), int(Status.DIVERGED)).to(torch.int64)
    return FixedPoint(x=x, slope=slope, status=status, iterations=1)


def _reshaped(fp: FixedPoint, shape) -> FixedPoint:
    return FixedPoint(fp.x.reshape(shape), fp.slope.reshape(shape), fp.status.reshape(shape), fp.iterations)


def gain_variance(g: GaussianIntegrator, q: torch.Tensor) -> torch.Tensor:
    """Where to evaluate gains when q* is 0 or infinite: any q (say 1) for positively homogeneous
    activations, whose gains are q-independent; else the limit q -> 0 (phi'(0)) or q = q_max.

    Convention of docs/science.md §7.

    Args:
        g: Gaussian integrator of the activation (supplies `act.homogeneous` and `q_max`).
        q: variance fixed points q*, float64 tensor of any shape (0 and +inf allowed).

    Returns:
        float64 tensor of shape q.shape: q where it is usable, else 1 (homogeneous) or q_max (others, q = inf).
    """
    if g.act.homogeneous:
        return torch.where((q == 0) | ~torch.isfinite(q), torch.ones_like(q), q)
    return torch.where(torch.isfinite(q), q, torch.full_like(q, g.q_max))


def depth_scale(slope: torch.Tensor) -> torch.Tensor:
    """xi = -1 / ln(slope): layers over which a deviation from the fixed point decays (inf at slope 1).

    Depth scales depth_scale_q = -1/ln A_q, depth_scale_c = -1/ln chi_c of docs/science.md §1 (Schoenholz et al. 2017,
    arXiv:1611.01232); +inf wherever slope >= 1.

    Args:
        slope: slope of a map at its fixed point, float64 tensor of any shape.

    Returns:
        float64 tensor of shape slope.shape (0 at slope 0, NaN for a negative or NaN slope).
    """
    with torch.no_grad():
        out = -1.0 / torch.log(slope)
    return torch.where(slope >= 1.0, torch.full_like(out, float("inf")), out)


@dataclass
class MeanFieldGrid:
    """Everything §1 defines at each grid point, plus solver status columns.

    All fields have the broadcast shape of the (sigma_w2, sigma_b2, xi) grid passed to `mean_field_grid`;
    values are float64, statuses int64 `Status` codes (docs/science.md §1, §7).

    Attributes:
        sigma_w2: weight variance.
        sigma_b2: bias variance.
        xi: gauge parameter.
        q_star: variance fixed point q* (0 for the trivial fixed point, +inf where diverged).
        q_status: status of the q* solve.
        c_star: correlation fixed point c* (NaN where degenerate).
        c_status: status of the c* solve.
        chi1: transverse gain chi_1 = sigma_w2 E phi'^2 at q* (or at `gain_variance`).
        a_q: longitudinal factor A_q at the same q.
        chi_c: slope of the normalised correlation map at c* (see the Note in docs/science.md §1).
        depth_scale_q: depth scale -1/ln A_q (inf where A_q >= 1).
        depth_scale_c: depth scale -1/ln chi_c (inf where chi_c >= 1).
        lambda_mf: mean-field Lyapunov exponent 0.5 ln chi_1 (per layer, of the norm; §1, §3).
        quad_ok: bool; False where a variance the row's values were computed at (q*, or the gain variance)
            lies beyond the range where the quadrature is verified to `theory.quad.tol` (docs/science.md §7):
            those values are not to be trusted.
    """

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
    depth_scale_q: torch.Tensor
    depth_scale_c: torch.Tensor
    lambda_mf: torch.Tensor
    quad_ok: torch.Tensor | None = None


def mean_field_grid(g: GaussianIntegrator, sigma_w2, sigma_b2, xi=1.0, **solver) -> MeanFieldGrid:
    """Fixed points, gains, depth scales and the mean-field Lyapunov exponent over broadcast grids.

    The `theory` stage's computation (docs/science.md §1, with the xi terms of §4): q*, c*, chi_1 and A_q at
    q* (at `gain_variance` where q* is 0 or infinite), chi_c, depth_scale_q, depth_scale_c and lambda_MF = 0.5 ln chi_1
    (Poole et al. 2016, arXiv:1606.05340; Schoenholz et al. 2017, arXiv:1611.01232).

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_w2: weight variance, float or tensor broadcastable with sigma_b2 and xi; float64.
        sigma_b2: bias variance, float or tensor broadcastable with sigma_w2 and xi; float64.
        xi: gauge parameter, float or tensor broadcastable with sigma_w2 and sigma_b2; float64.
        **solver: keyword arguments passed on to `solve_fixed_point` for both fixed points.

    Returns:
        A `MeanFieldGrid` whose fields all have the broadcast shape of (sigma_w2, sigma_b2, xi).
    """
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
        depth_scale_q=depth_scale(a_q),
        depth_scale_c=depth_scale(chic),
        lambda_mf=0.5 * torch.log(gain),
        quad_ok=g.resolved(qfp.x) & g.resolved(q_eval) & cfp.series_ok,
    )
