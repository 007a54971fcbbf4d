"""The kernel as a stochastic field in depth: the linear sector and its one-loop dressing (docs/science.md §7b).

Length mode: the chain G' given G has mean F(G) + b(G)/N and variance Sigma(G)/N, an AR(1) process at K* with
multiplier chi = F'(K*) (A_q(xi) of §4), mass -ln chi, plateau N S(0) = Sigma/(1 - chi)^2, and a lag-1
regression coefficient rho_N = chi + c1/N at one loop. Correlation mode: multiplier chi_c(c*), mass -ln chi_c.
Float64, pure: activation by name, numbers in, numbers out.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import c_star, q_star, variance_slope
from pipeline.theory.one_loop.common import _act
from pipeline.theory.one_loop.moments import _MAX_NODES, _rule_for
from pipeline.theory.quadrature import DTYPE, gauss_rule

_HERMITE_EVEN = (  # He_2n(z): d^n <f(sqrt(K) z)>/dK^n = <f He_2n> / (2K)^n (Gaussian integration by parts)
    lambda z: z**2 - 1,
    lambda z: z**4 - 6 * z**2 + 3,
    lambda z: z**6 - 15 * z**4 + 45 * z**2 - 15,
)


def k_derivatives(values: torch.Tensor, K: float, z: torch.Tensor, w: torch.Tensor, order: int) -> list[float]:
    """[<f>_K, d<f>/dK, ..., d^order<f>/dK^order] from f at the nodes sqrt(K) z (Stein, He_2n weights).

    f(0) (the mean of the two central nodes) is subtracted before the derivative sums: exact (He_2n has zero
    Gaussian mean) and it removes the f(0)/K^n cancellation at small K, as in `one_loop.stein_moments`.
    """
    n = values.numel()
    centred = values - 0.5 * (values[n // 2 - 1] + values[n // 2])
    out = [float(values @ w)]
    for k in range(1, order + 1):
        out.append(float((centred * _HERMITE_EVEN[k - 1](z)) @ w) / (2 * K) ** k)
    return out


def ar1_mass(multiplier: float, nonpositive: float = math.inf) -> float:
    """-ln multiplier: the decay rate per layer of an AR(1) mode (1/depth scale); `nonpositive` where the
    multiplier is not positive (no decay rate to speak of)."""
    return -math.log(multiplier) if multiplier > 0 else nonpositive


@dataclass(frozen=True)
class LengthMode:
    """Linear sector of one input at the fixed point K* (docs/science.md §7b); every field a float.

    chi: multiplier F'(K*) (= A_q(xi)); mass -ln chi; sigma: Sigma(K*) = N Var(G'|G = K*); plateau
    Sigma/(1 - chi)^2 (= N S(0) at leading order); f2, f3: F'', F'''; sigma_prime: dSigma/dK; kappa3: N^2 x the
    third cumulant of G' given G; b, b_prime: N x the finite-width mean shift of G' given G (xi != 1) and its slope;
    v1 = N Var G, mu1 = N (E G - K*), s3 = N^2 x the third central moment of G (stationary, leading order);
    c1 = N (rho_N - chi), the one-loop coefficient of the lag-1 regression multiplier.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    xi: float
    K: float
    chi: float
    sigma: float
    f2: float
    f3: float
    sigma_prime: float
    kappa3: float
    b: float
    b_prime: float
    v1: float
    mu1: float
    s3: float
    c1: float

    @property
    def mass(self) -> float:
        """Mean-field mass -ln chi = 1/xi_q (inf where chi <= 0)."""
        return ar1_mass(self.chi)

    @property
    def plateau(self) -> float:
        """N S(0) = Sigma/(1 - chi)^2 of the AR(1) sector."""
        return self.sigma / (1 - self.chi) ** 2

    def multiplier(self, width: float) -> float:
        """Dressed (one-loop) lag-1 multiplier rho_N = chi + c1/N."""
        return self.chi + self.c1 / width

    def dressed_mass(self, width: float) -> float:
        """-ln rho_N."""
        return ar1_mass(self.multiplier(width))


def length_mode(
    activation, sigma_w2: float, sigma_b2: float, xi: float = 1.0, n_nodes: int | None = None
) -> LengthMode:
    """Multiplier, noise, plateau and one-loop dressing of the length mode at (sigma_w2, sigma_b2, xi).

    G' - sigma_b2 = sigma_w2 [mean_j phi_j^2 + (xi - 1) (mean_j phi_j)^2], phi_j i.i.d. given G (§7b). With
    m = <phi>, u = phi^2 + 2 (xi - 1) m phi: F = sigma_b2 + sigma_w2 [<phi^2> + (xi - 1) m^2],
    b = sigma_w2 (xi - 1) Var phi, Sigma = sigma_w2^2 Var u, kappa3 = sigma_w2^3 [kappa3(u) + 6 (xi - 1) Cov(u, phi)^2];
    v1 = Sigma/(1 - chi^2), mu1 = (F'' v1/2 + b)/(1 - chi),
    s3 = [3 chi^2 F'' v1^2 + 3 chi Sigma' v1 + kappa3]/(1 - chi^3),
    c1 = F'' mu1 + F''' v1/2 + F'' s3/(2 v1) + b'. At xi = 1 this is §7b's formula (b = 0).

    Raises:
        ValueError: no finite stable fixed point q* > 0 (the length mode is not stationary), naming the point.
    """
    return _length_mode(_act(activation), float(sigma_w2), float(sigma_b2), float(xi), n_nodes)


@functools.lru_cache(maxsize=1024)
def _length_mode(act, sigma_w2: float, sigma_b2: float, xi: float, n_nodes: int | None) -> LengthMode:
    """`length_mode`, once per process and key (the field stage's config check, its compute and its report all ask
    for the same points; a call costs ~0.5 s). Keyed by the `Activation` object, so a re-registered name is new."""
    if n_nodes is not None:
        return _length_mode_at(act, sigma_w2, sigma_b2, xi, int(n_nodes))
    # The one-loop rule converges for the moments, not always for their K-derivatives (F''' of a kinked phi,
    # where a 1e-11 probe test stops one doubling early or late between numpy builds): double the nodes until
    # c1, the most derivative-heavy field, agrees with twice the nodes to 1e-9.
    n = _rule_for(act.name, None).n
    lm = _length_mode_at(act, sigma_w2, sigma_b2, xi, n)
    while n < _MAX_NODES:
        n *= 2
        finer = _length_mode_at(act, sigma_w2, sigma_b2, xi, n)
        if abs(finer.c1 - lm.c1) <= 1e-9 * (1 + abs(finer.c1)):
            return finer
        lm = finer
    return lm


def _length_mode_at(act, sigma_w2: float, sigma_b2: float, xi: float, n_nodes: int) -> LengthMode:
    """`length_mode` on the rule with n_nodes nodes."""
    rule = gauss_rule(n_nodes)
    g = GaussianIntegrator(act, n_nodes=rule.n)
    fp = q_star(g, torch.tensor(float(sigma_w2), dtype=DTYPE), float(sigma_b2), float(xi))
    K = float(fp.x)
    if not (math.isfinite(K) and K > 0):
        raise ValueError(f"length_mode: no finite q* > 0 at activation={act.name}, sigma_w2={sigma_w2}, "
                         f"sigma_b2={sigma_b2}, xi={xi} (the length mode is not stationary)")  # fmt: skip
    sw, x1 = float(sigma_w2), float(xi) - 1.0
    z, w = rule.z, rule.w
    p = act.phi(math.sqrt(K) * z)
    d = {k: k_derivatives(p**k, K, z, w, order) for k, order in ((1, 3), (2, 3), (3, 1), (4, 1))}
    m, m1, m2, m3 = d[1]
    e2, e2_1, e2_2, e2_3 = d[2]
    e3, e3_1 = d[3]
    e4, e4_1 = d[4]
    chi = float(variance_slope(g, K, sw, float(xi)))  # the one home of A_q(xi)
    f2 = sw * (e2_2 + 2 * x1 * (m1**2 + m * m2))
    f3 = sw * (e2_3 + 2 * x1 * (3 * m1 * m2 + m * m3))
    b = sw * x1 * (e2 - m**2)
    b_prime = sw * x1 * (e2_1 - 2 * m * m1)

    def var_u(e2, e3, e4, m):  # Var(phi^2 + 2 (xi-1) m phi)
        return e4 - e2**2 + 4 * x1 * m * (e3 - e2 * m) + 4 * x1**2 * m**2 * (e2 - m**2)

    sigma = sw**2 * var_u(e2, e3, e4, m)
    # dSigma/dK: the total derivative (m = <phi>_K also moves with K), product rule on var_u
    dvar = (e4_1 - 2 * e2 * e2_1 + 4 * x1 * (m1 * (e3 - e2 * m) + m * (e3_1 - e2_1 * m - e2 * m1))
            + 4 * x1**2 * (2 * m * m1 * (e2 - m**2) + m**2 * (e2_1 - 2 * m * m1)))  # fmt: skip
    sigma_prime = sw**2 * dvar
    u = p**2 + 2 * x1 * m * p
    uc = u - float(u @ w)
    cov_u_phi = float((uc * (p - m)) @ w)
    kappa3 = sw**3 * (float(uc**3 @ w) + 6 * x1 * cov_u_phi**2)
    if not chi < 1:
        raise ValueError(f"length_mode: multiplier {chi:.6g} >= 1 at activation={act.name}, sigma_w2={sigma_w2}, "
                         f"sigma_b2={sigma_b2}, xi={xi} (no stationary length mode)")  # fmt: skip
    v1 = sigma / (1 - chi**2)
    mu1 = (0.5 * f2 * v1 + b) / (1 - chi)
    s3 = (3 * chi**2 * f2 * v1**2 + 3 * chi * sigma_prime * v1 + kappa3) / (1 - chi**3)
    c1 = f2 * mu1 + 0.5 * f3 * v1 + 0.5 * f2 * s3 / v1 + b_prime
    return LengthMode(act.name, float(sigma_w2), float(sigma_b2), float(xi), K, chi, sigma, f2, f3, sigma_prime,
                      kappa3, b, b_prime, v1, mu1, s3, c1)  # fmt: skip


@dataclass(frozen=True)
class CorrelationMode:
    """Correlation mode of two inputs at (q*, c*): multiplier chi_c = dc'/dc at c*, mass -ln chi_c (§7b)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q: float
    c: float
    chi: float

    @property
    def mass(self) -> float:
        """-ln chi_c(c*) = 1/xi_c; 0 on the critical line."""
        return ar1_mass(self.chi)


def correlation_masses(activation, sigma_w2, sigma_b2: float, n_nodes: int | None = None) -> dict[str, torch.Tensor]:
    """q*, c*, chi_c(c*) and the mass -ln chi_c on a sigma_w2 grid, from `mean_field.q_star`/`c_star` (the one
    home of the correlation map); NaN where q* is not finite and positive or c* = 1 (ordered side)."""
    act = _act(activation)
    g = GaussianIntegrator(act, n_nodes=n_nodes)
    sw = torch.as_tensor(sigma_w2, dtype=DTYPE).reshape(-1)
    q = q_star(g, sw, float(sigma_b2)).x
    ok = torch.isfinite(q) & (q > 0)
    fp = c_star(g, torch.where(ok, q, torch.ones_like(q)), sw, float(sigma_b2), c0=0.0)
    ok = ok & (fp.x < 1 - 1e-9)
    nan = torch.full_like(q, float("nan"))
    chi = torch.where(ok, fp.slope, nan)
    return {"q_star": q, "c_star": torch.where(ok, fp.x, nan), "chi_c": chi, "mass": -torch.log(chi)}


def correlation_mode(activation, sigma_w2: float, sigma_b2: float, n_nodes: int | None = None) -> CorrelationMode:
    """chi_c(c*) at the variance fixed point q* of one point (see `correlation_masses`).

    Raises:
        ValueError: no finite q* > 0, or c* = 1 (the ordered phase: no fluctuating correlation mode).
    """
    act = _act(activation)
    r = {k: float(v[0]) for k, v in correlation_masses(act, [float(sigma_w2)], sigma_b2, n_nodes).items()}
    if not math.isfinite(r["chi_c"]):
        raise ValueError(f"correlation_mode: no chaotic fixed point (finite q* > 0, c* < 1) at activation={act.name}, "
                         f"sigma_w2={sigma_w2}, sigma_b2={sigma_b2} (ordered phase; allowed: the chaotic "
                         "side)")  # fmt: skip
    return CorrelationMode(act.name, float(sigma_w2), float(sigma_b2), r["q_star"], r["c_star"], r["chi_c"])


def ar1_spectrum(omega, multiplier: float, noise: float) -> torch.Tensor:
    """S(omega) = noise/|1 - multiplier e^{-i omega}|^2: the AR(1) (discrete Lorentzian) spectrum, docs/science.md §7b.

    With noise = Sigma/N this is the length mode's spectrum; N S(0) = Sigma/(1 - chi)^2 is the plateau.
    """
    om = torch.as_tensor(omega, dtype=DTYPE)
    return noise / (1 - 2 * multiplier * torch.cos(om) + multiplier**2)
