"""Gaussian moments of phi, phi' and their K-derivatives by Stein's identities (docs/science.md §6)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from pipeline.activations import Activation, get_activation
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.one_loop.common import _act, _t
from pipeline.theory.quadrature import DTYPE, GaussRule, gauss_rule

_PROBE_K = (1e-3, 0.05, 0.3, 1.0, 3.0, 10.0, 20.0)
_MAX_NODES = 8192


def stein_moments(values: torch.Tensor, K: torch.Tensor, rule: GaussRule) -> tuple[torch.Tensor, ...]:
    """<f>_K and its first two K-derivatives from f at the nodes, by Gaussian integration by parts.

    Why: K-derivatives of Gaussian moments drive every 1/N term, and these integral forms hold for
    non-smooth phi (ReLU) where f'' does not exist as a function (docs/science.md §6).

    Args:
        values: f(sqrt(K) z_i) at the rule's nodes, shape (..., n).
        K: variances, shape (...) broadcastable against values[..., 0]; must be > 0.
        rule: the quadrature rule that made the nodes.
    Returns:
        (<f>, d<f>/dK, d^2<f>/dK^2), each of shape (...):
        <f> = sum_i w_i f_i, d<f>/dK = <f (z^2 - 1)>/(2K), d^2<f>/dK^2 = <f (z^4 - 6 z^2 + 3)>/(4 K^2).
        A constant (the mean of f at the two central nodes, ~ f(0)) is subtracted before the
        derivative sums: exact, as both weight polynomials have zero Gaussian mean, and it removes
        the O(f(0)/K) cancellation at small K.
    """
    z2 = rule.z * rule.z
    w1 = rule.w * (z2 - 1) / 2
    w2 = rule.w * (z2 * z2 - 6 * z2 + 3) / 4
    n = values.shape[-1]
    centred = values - 0.5 * (values[..., n // 2 - 1 : n // 2] + values[..., n // 2 : n // 2 + 1])
    return values @ rule.w, (centred @ w1) / K, (centred @ w2) / (K * K)


@dataclass
class LayerMoments:
    """Gaussian moments at variance K that the one-loop recursions need (all shape K.shape).

    phi2 = <phi^2>, phi4 = <phi^4>, dphi2/d2phi2 = first/second K-derivative of <phi^2>,
    m2 = <phi'^2>, m4 = <phi'^4>, dm2/d2m2 = K-derivatives of m2, phi2_dphi2 = <phi^2 phi'^2>.
    """

    K: torch.Tensor
    phi2: torch.Tensor
    phi4: torch.Tensor
    dphi2: torch.Tensor
    d2phi2: torch.Tensor
    m2: torch.Tensor
    m4: torch.Tensor
    dm2: torch.Tensor
    d2m2: torch.Tensor
    phi2_dphi2: torch.Tensor

    @property
    def var_phi2(self) -> torch.Tensor:
        """Var(phi^2) = <phi^4> - <phi^2>^2."""
        return self.phi4 - self.phi2**2


@functools.cache
def _rule_for(name: str, n_nodes: int | None) -> GaussRule:
    """The integrator's rule, doubled until the one-loop integrands agree with twice the nodes to 1e-11."""
    act = get_activation(name)
    n = int(n_nodes) if n_nodes is not None else GaussianIntegrator(act).n_nodes
    if n_nodes is not None:
        return gauss_rule(n)
    probe = _t(_PROBE_K)
    prev = _moment_stack(act, probe, gauss_rule(n))
    while n < _MAX_NODES:
        cur = _moment_stack(act, probe, gauss_rule(2 * n))
        if float(((cur - prev).abs() / (1 + cur.abs())).max()) <= 1e-11:
            break
        n, prev = 2 * n, cur
    return gauss_rule(n)


def _moment_stack(act: Activation, K: torch.Tensor, rule: GaussRule) -> torch.Tensor:
    m = _moments(act, K, rule)
    return torch.stack([m.phi2, m.phi4, m.dphi2, m.d2phi2, m.m2, m.m4, m.dm2, m.d2m2, m.phi2_dphi2])


def _moments(act: Activation, K: torch.Tensor, rule: GaussRule, chunk: int = 4096) -> LayerMoments:
    flat = K.reshape(-1)
    out = torch.empty(9, flat.numel(), dtype=DTYPE)
    for s in range(0, flat.numel(), chunk):  # one evaluation of phi, phi' at the nodes per chunk
        k = flat[s : s + chunk]
        h = k.sqrt().unsqueeze(-1) * rule.z
        p, d = act.phi(h), act.dphi(h)
        p2, d2 = p * p, d * d
        out[0, s : s + chunk], out[2, s : s + chunk], out[3, s : s + chunk] = stein_moments(p2, k, rule)
        out[1, s : s + chunk] = (p2 * p2) @ rule.w
        m2, dm2, d2m2 = stein_moments(d2, k, rule)
        out[4, s : s + chunk], out[6, s : s + chunk], out[7, s : s + chunk] = m2, dm2, d2m2
        out[5, s : s + chunk] = (d2 * d2) @ rule.w
        out[8, s : s + chunk] = (p2 * d2) @ rule.w
    o = out.reshape((9,) + K.shape)
    return LayerMoments(
        K=K, phi2=o[0], phi4=o[1], dphi2=o[2], d2phi2=o[3], m2=o[4], m4=o[5], dm2=o[6], d2m2=o[7], phi2_dphi2=o[8]
    )


def layer_moments(activation, K, n_nodes: int | None = None) -> LayerMoments:
    """All Gaussian moments of phi, phi' at variance K used by the 1/N recursions, in one pass.

    Why: the recursions need <phi^2>, <phi^4>, <phi'^2>, <phi'^4>, <phi^2 phi'^2> and the first
    two K-derivatives of <phi^2> and <phi'^2> at every layer (docs/science.md §6).

    Args:
        activation: name (e.g. "tanh") or Activation.
        K: variances > 0, any shape.
        n_nodes: quadrature nodes (default: the integrator's convergence-checked count, doubled
            until these higher moments also converge to 1e-11 relative).
    Returns:
        LayerMoments with every field of shape K.shape. Derivatives by `stein_moments`.
    """
    act = _act(activation)
    K = _t(K)
    return _moments(act, K, _rule_for(act.name, n_nodes))
