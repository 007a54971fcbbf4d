"""Deep-layer one-loop fixed points and the exponent and annealed gain there (docs/science.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import q_star as _mean_field_q_star
from pipeline.theory.one_loop.common import (
    EXPANSION_LIMIT,
    K_LIMIT,
    STATUS_BREAKDOWN,
    STATUS_CHI_PAR,
    STATUS_LONGITUDINAL,
    STATUS_NO_FP,
    STATUS_OK,
    STATUS_TRIVIAL,
    _act,
    _grid,
    _t,
)
from pipeline.theory.one_loop.moments import _moments, _rule_for
from pipeline.theory.one_loop.recursion import _c1_terms
from pipeline.theory.quadrature import DTYPE


@dataclass
class OneLoopFixedPoint:
    """Fixed-point one-loop quantities on a grid, every tensor shape (M,); status a numpy str array.

    K (= q*, or the evaluation variance where q* is 0 or infinite), chi_par, chi1, V_star,
    K1_star, R_star, the c1 parts (sampling, kernel, correlation), c1 (all three), c1_spec
    (without correlation), chi1_1overN (annealed gain coefficient), vk2 = V*/K^2.
    """

    sigma_w2: torch.Tensor
    sigma_b2: torch.Tensor
    q_star: torch.Tensor
    K: torch.Tensor
    chi_par: torch.Tensor
    chi1: torch.Tensor
    V_star: torch.Tensor
    K1_star: torch.Tensor
    R_star: torch.Tensor
    c1_sampling: torch.Tensor
    c1_kernel: torch.Tensor
    c1_correlation: torch.Tensor
    c1: torch.Tensor
    c1_spec: torch.Tensor
    chi1_1overN: torch.Tensor
    vk2: torch.Tensor
    status: np.ndarray
    homogeneous: bool

    def expansion_parameter(self, width) -> torch.Tensor:
        """V*/(N K^2), shape (M,) (or broadcast with `width`)."""
        return self.vk2 / _t(width)

    def status_at(self, width) -> np.ndarray:
        """`status`, with "expansion_breakdown" where V*/(N K^2) > 0.3 (non-homogeneous activations)."""
        st = self.status.copy()
        if not self.homogeneous:
            big = (self.expansion_parameter(width) > EXPANSION_LIMIT).numpy()
            st[(st == STATUS_OK) & big] = STATUS_BREAKDOWN
        return st


def fixed_point(activation, sigma_w2, sigma_b2=0.0, n_nodes: int | None = None) -> OneLoopFixedPoint:
    """q*, V*, K1*, R* and the 1/N coefficients of the deep-layer exponent and gain on a sigma_w2 grid.

    Why: deep networks sit at the fixed point of the one-loop recursions; this is where the
    crossing of the exponent is predicted (docs/science.md §6).

    Args:
        activation: name or Activation; sigma_w2: (M,) grid; sigma_b2: scalar or (M,).
    Returns:
        OneLoopFixedPoint. At q* (from `mean_field.q_star`):
        V* = sigma_w2^2 Var(phi^2) / (1 - chi_par^2),  K1* = (1/2) sigma_w2 <phi^2>'' V* / (1 - chi_par),
        R* = sigma_w2^2 <phi^2 phi'^2> / (K (chi1 - chi_par^2)),
        c1 = -(3 m4/m2^2 - 1)/4 + (1/2)(ln chi1)' K1* + (1/4)(ln chi1)'' V* + K (ln chi1)' R*,
        chi1_1overN = chi1' K1* + (1/2) chi1'' V*.
        NaN plus a status where a fixed point is missing. For homogeneous activations (ReLU,
        linear) ln chi1 does not depend on K: the kernel and correlation parts are exactly 0 and
        c1 = -(3 m4/m2^2 - 1)/4 whatever V*; where q* is 0 or infinite they are evaluated at K = 1
        (V*/K^2 and K1*/K are scale free).
    """
    act = _act(activation)
    sw, sb = _grid(sigma_w2, sigma_b2)
    rule = _rule_for(act.name, n_nodes)
    if act.homogeneous:  # q' = sigma_w2 c q + sigma_b2 with c = <phi^2>_K / K: q* in closed form
        c = float(_moments(act, torch.ones(1, dtype=DTYPE), rule).phi2[0])
        slope = sw * c
        q = torch.where(slope < 1, sb / (1 - slope), torch.full_like(sw, float("inf")))
        q = torch.where((sb == 0) & (slope >= 1), torch.ones_like(q), q)  # marginal or growing: scale free
        converged = torch.ones_like(sw, dtype=torch.bool)
    else:
        fp = _mean_field_q_star(GaussianIntegrator(act, n_nodes=rule.n), sw, sb)
        q = fp.x.clone()
        converged = fp.status == int(Status.CONVERGED)
    trivial = converged & (q == 0)
    finite = converged & (q > 0) & torch.isfinite(q)
    status = np.full(sw.numel(), STATUS_OK, dtype=object)
    if act.homogeneous:  # scale free: any K represents q* = 0 or infinity
        K = torch.where(finite, q, torch.ones_like(q))
    else:
        K = torch.where(finite, q, torch.where(trivial, torch.full_like(q, K_LIMIT), torch.ones_like(q)))
        status[trivial.numpy()] = STATUS_TRIVIAL
        status[(~finite & ~trivial).numpy()] = STATUS_NO_FP
    m = _moments(act, K, rule)
    chi_par, chi1 = sw * m.dphi2, sw * m.m2
    nan = torch.full_like(K, float("nan"))
    v_ok = chi_par < 1
    V = torch.where(v_ok, sw**2 * m.var_phi2 / (1 - chi_par**2), nan)
    K1 = torch.where(v_ok, 0.5 * sw * m.d2phi2 * V / (1 - chi_par), nan)
    r_ok = chi_par**2 < chi1
    Rs = torch.where(r_ok, sw**2 * m.phi2_dphi2 / (K * (chi1 - chi_par**2)), nan)
    samp, kern, corr = _c1_terms(m, sw, K1, V, Rs)
    gain1 = sw * (m.dm2 * K1 + 0.5 * m.d2m2 * V)
    if act.homogeneous:  # d ln chi1/dK = 0 identically: drop quadrature noise and undefined vertices
        kern, corr, gain1 = torch.zeros_like(K), torch.zeros_like(K), torch.zeros_like(K)
    else:
        status[((status == STATUS_OK) & ~r_ok.numpy())] = STATUS_LONGITUDINAL
        status[((status == STATUS_OK) & ~v_ok.numpy())] = STATUS_CHI_PAR
        bad = torch.as_tensor(status == STATUS_NO_FP)
        for t in (chi_par, chi1, V, K1, Rs, samp, kern, corr, gain1):
            t[bad] = float("nan")
    c1_spec, c1 = samp + kern, samp + kern + corr
    return OneLoopFixedPoint(
        sigma_w2=sw,
        sigma_b2=sb,
        q_star=q,
        K=K,
        chi_par=chi_par,
        chi1=chi1,
        V_star=V,
        K1_star=K1,
        R_star=Rs,
        c1_sampling=samp,
        c1_kernel=kern,
        c1_correlation=corr,
        c1=c1,
        c1_spec=c1_spec,
        chi1_1overN=gain1,
        vk2=V / K**2,
        status=status,
        homogeneous=act.homogeneous,
    )


def lambda_coeff_1overN(
    activation, sigma_w2, sigma_b2=0.0, include_correlation: bool = True, n_nodes: int | None = None
) -> torch.Tensor:
    """c1 in lambda_N = 0.5 ln chi1(q*) + c1/N + O(1/N^2), the deep-layer typical exponent per layer.

    Why: the 1/N shift of the measured exponent and of its zero crossing (docs/science.md §6).

    Args:
        activation: name; sigma_w2: (M,) grid; sigma_b2: scalar or (M,).
        include_correlation: add the tangent-signal correlation term (docs/science.md §6); False gives
            the spec's formula.
    Returns:
        (M,) tensor: c1 = -(3 m4/m2^2 - 1)/4 + (1/2)(d ln chi1/dK) K1* + (1/4)(d^2 ln chi1/dK^2) V*
        [+ (d ln chi1/dK) sigma_w2^2 <phi^2 phi'^2>/(chi1 - chi_par^2)], m_k = <phi'^k>_{q*}.
        ReLU: m4/m2^2 = 2, other terms 0, so c1 = -5/4. NaN where `fixed_point` has no vertex.
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2, n_nodes)
    return fp.c1 if include_correlation else fp.c1_spec


def lambda_one_loop(
    activation, sigma_w2, sigma_b2=0.0, width=None, include_correlation: bool = True, n_nodes: int | None = None
) -> torch.Tensor:
    """Typical top Lyapunov exponent per layer at one loop, 0.5 ln chi1(q*) + c1/N.

    Args:
        width: N, scalar or a tensor broadcastable against (M,) (e.g. shape (W, 1)).
    Returns:
        lambda_N, shape broadcast((M,), width). See `lambda_coeff_1overN`.
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2, n_nodes)
    c1 = fp.c1 if include_correlation else fp.c1_spec
    return 0.5 * torch.log(fp.chi1) + c1 / _t(width)


def annealed_gain_one_loop(activation, sigma_w2, sigma_b2=0.0, width=None, n_nodes: int | None = None) -> torch.Tensor:
    """E ||J v||^2 / ||v||^2 for a fresh probe v at one loop: chi1 at the fluctuating kernel, no Jensen term.

    Returns:
        chi1(K) + (1/N) [chi1'(K) K1* + (1/2) chi1''(K) V*], shape broadcast((M,), width).
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2, n_nodes)
    return fp.chi1 + fp.chi1_1overN / _t(width)
