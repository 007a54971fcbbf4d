"""Finite width at one loop (docs/science.md §6): 1/N corrections to q, its fluctuations and the Lyapunov exponent.

Everything is float64, vectorized over a 1-D grid of sigma_w2 with sigma_b2 broadcast against it,
with Python loops only over layers; every activation of `pipeline.activations` works (tanh, erf,
gelu, swish, relu, linear). Functions are pure: activation by name, numbers in, tensors/tables out.

Gaussian moments and K-derivatives (in terms of z ~ N(0, 1), h = sqrt(K) z):
    <f>_K = E f(sqrt(K) z),  d<f>/dK = <f (z^2 - 1)>/(2K),  d^2<f>/dK^2 = <f (z^4 - 6 z^2 + 3)>/(4K^2),
Stein identities valid as integrals for non-smooth phi (ReLU) too. A constant close to f(0) is
subtracted from f first (exact, since <z^2 - 1> = <z^4 - 6z^2 + 3> = 0), which removes the
cancellation at small K.

Layer-indexing convention (matches `pipeline.dynamics.ensemble`): layer 0 holds the input
pre-activations h^0, whose empirical variance is exactly q0 (a uniformly random direction on the
sphere |h^0|^2 = N q0); h^{l+1} = W phi(h^l) + b with W_ij ~ N(0, sigma_w2/N), b_i ~ N(0, sigma_b2)
drawn per network and layer. G^l is the variance of h^l_i given layer l-1; given layer l-1 the
h^l_i are exactly i.i.d. N(0, G^l) with G^l = sigma_w2 (1/N) sum_j phi(h^{l-1}_j)^2 + sigma_b2
(the bias enters G additively and deterministically). Arrays are indexed by layer l = 0..L.

Corrections to the spec (docs/science.md §6 and the brief), each checked by Monte Carlo of
explicit random networks (tests/theory/test_one_loop.py, numbers in the docstrings there):

1. Initial condition. The spec's "V = 0 at the first layer" is the law of a Gaussian input h^0
   with fixed variance (`input_law="gaussian"`: V^0 = 0, so V^1 = sigma_w2^2 Var(phi^2) != 0).
   The brief's engine reading "V^1 = 0 because h^0 has fixed empirical variance" is wrong for a
   nonlinear phi: (1/N) sum_j phi(h^0_j)^2 still fluctuates over input directions (and the engine
   draws a new input per network). A fixed-norm input is the Gaussian law conditioned on
   q_hat^0 = q0, which to O(1/N) is exactly the general recursion started from
   V^0 = -2 q0^2, K1^0 = 0 (`input_law="fixed_norm"`, the default): it gives Var(q_hat^0) =
   (V^0 + 2K^2)/N = 0, V^1 = sigma_w2^2 [Var(phi^2) - 2 q0^2 (d<phi^2>/dK)^2] (the variance of
   phi^2 not explained by h^2), and K1^1 = -sigma_w2 q0^2 (d^2<phi^2>/dK^2)_{q0} (the 1/N
   difference between sphere and Gaussian averages). For phi(x) = x, V^1 = 0 as it must.
2. Bias. No bias term is missing: G^{l+1} = sigma_w2 (1/N) sum phi^2 + sigma_b2 exactly, and the
   fluctuation of (1/N) sum_i b_i^2 is part of q_hat^l = G^l chi^2_N / N, already counted in
   2K^2/N. V is N Var(G), with no separate bias vertex (Monte Carlo agrees at sigma_b2 = 0.05).
3. Tangent-signal correlation (the term the spec says is neglected: it is needed at O(1/N)).
   Given layer l-1 the pairs (h^l_i, t^l_i) of signal and tangent are i.i.d. bivariate Gaussian
   with covariance C^l = (sigma_w2/N) phi.(phi' t), since h and t are made by the same W. Its
   normalized square R^l = N E[(C^l)^2 / (G^l T^l)] obeys
       R^{l+1} = (chi_par^l)^2 K^l / (K^{l+1} chi_1^l) R^l
                 + sigma_w2^2 <phi^2 phi'^2>_{K^l} / (K^{l+1} chi_1^l),   R^0 = 0
   (the engine's tangent starts independent of h^0) and shifts the log-gain by
   2 K (d ln chi_1/dK) R/N, so the typical exponent gains the term K (d ln chi_1/dK) R in c1.
   At a fixed point R* = sigma_w2^2 <phi^2 phi'^2> / (K (chi_1 - chi_par^2)) and the extra term
   is (d ln chi_1/dK) sigma_w2^2 <phi^2 phi'^2> / (chi_1 - chi_par^2), valid where
   chi_par^2 < chi_1 (else the longitudinal direction dominates: status "longitudinal_mode").
   It vanishes for homogeneous activations (ReLU, linear), so the ReLU check -5/4 is unchanged;
   for tanh at sigma_b2 = 0.05 near the crossing it is comparable to the kernel terms.
   `include_correlation=False` gives the spec's formula for comparison.
4. The annealed gain E||J v||^2/||v||^2 with a fresh probe v has no correlation term (v is
   independent of h): chi_1(K) + (1/N)[chi_1'(K) K1 + (1/2) chi_1''(K) V], as in the spec.

Checks beyond the unit tests (scratch runs, tanh unless stated, sigma_b2 = 0.05, depth 50, burn-in 10):
the batched engine's zero crossing of lambda_tangent is 2.0697 +- 0.0049 (N = 32, 2000 seeds),
1.8966 +- 0.0040 (N = 64) and 1.8263 +- 0.0027 (N = 128); the one-loop finite-depth average gives
2.0630, 1.8964, 1.8262 (deep fixed point: 2.0622, 1.8962, 1.8254) and the spec's formula without
the correlation term 1.9875, 1.8644, 1.8104 (mean field 1.7610). N (lambda - lambda_MF) agrees with
c1 at every sigma_w2 in 1.4..2.6 to ~1 SE. The engine's N Var(q_hat^l) / (V + 2K^2) at l = 20..50,
N = 128 is 0.88..1.10 (SE 4.5%). At sigma_b2 = 0, N = 256 an exact-law simulation crosses at
1.1235 +- 0.0033 against one loop 1.1247 (spec formula 1.028; sqrt(3/N) rule 1.108): V*/(N K^2)
is only 0.03 at the root, so the expansion holds there; it fails only closer to sigma_w2 = 1.

Statuses (per point): "ok"; "expansion_breakdown" (V*/(N K^2) > 0.3; only where a width is
given and the activation is not homogeneous, since for ReLU/linear the kernel-dependent terms of
lambda vanish identically); "trivial_fixed_point" (q* = 0: values are the K -> 0+ limit, taken at
K = K_LIMIT); "no_fixed_point" (q* diverged or unstable/not converged, non-homogeneous activations);
"chi_par_ge_1" (V*, K1* do not exist); "longitudinal_mode" (chi_par^2 >= chi_1: R* diverges).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipeline.activations import Activation, get_activation
from pipeline.progress import progress
from pipeline.status import mask_invalid
from pipeline.theory.finite_width import relu_lyapunov_exact
from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import q_star as _mean_field_q_star
from pipeline.theory.quadrature import DTYPE, GaussRule, gauss_rule, one_thread

K_LIMIT = 1e-12  # where q* = 0, moments are evaluated here as the K -> 0+ limit (errors O(K_LIMIT))
EXPANSION_LIMIT = 0.3  # flag points with V/(N K^2) above this (docs/science.md §6)
_PROBE_K = (1e-3, 0.05, 0.3, 1.0, 3.0, 10.0, 20.0)
_MAX_NODES = 8192

STATUS_OK = "ok"
STATUS_BREAKDOWN = "expansion_breakdown"
STATUS_TRIVIAL = "trivial_fixed_point"
STATUS_NO_FP = "no_fixed_point"
STATUS_CHI_PAR = "chi_par_ge_1"
STATUS_LONGITUDINAL = "longitudinal_mode"
STATUS_NO_CROSSING = "no_crossing"

# Status before number (pipeline.status.mask_invalid): the columns a row's one-loop `status` speaks for, NaN
# where it is not ok. The mean-field columns (q_star, chi_par, chi1, lambda_mf, crossing_mean_field), the exact
# ReLU root and the diagnostic expansion_parameter that explains a breakdown are kept.
# The statuses whose one-loop values stand: "ok", and the trivial fixed point q* = 0, whose values are the exact
# K -> 0+ limit (the linearized network: c1 = -1/2 for tanh/erf at sigma_b2 = 0 below sigma_w2 = 1).
VALID_STATUSES = (STATUS_OK, STATUS_TRIVIAL)
ONE_LOOP_VALUE_COLUMNS = ["V_star", "K1_star", "R_star", "lambda_coeff_1overN", "lambda_coeff_1overN_spec",
                          "gain_coeff_1overN", "lambda_one_loop"]  # fmt: skip
CROSSING_VALUE_COLUMNS = ["crossing_one_loop", "crossing_one_loop_spec", "crossing_annealed"]


def _t(x) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:  # e.g. a pandas column: torch warns on read-only memory
        x = x.copy()
    return torch.as_tensor(x, dtype=DTYPE)


def _act(activation) -> Activation:
    return activation if isinstance(activation, Activation) else get_activation(activation)


# ---------------------------------------------------------------------------------------------
# 1. Gaussian moments and their K-derivatives
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 2. Per-layer recursions
# ---------------------------------------------------------------------------------------------
@dataclass
class OneLoopLayers:
    """Per-layer one-loop quantities, shape (M, L+1) for a grid of M sigma_w2 values, layers l = 0..L.

    K: mean-field variance; V: N Var(G); K1: N (E G - K); R: N E[rho^2] (tangent-signal
    correlation, correction 3 of the module docstring); chi_par, chi1: variance-map slope and
    gain at K^l; c1, c1_spec: 1/N coefficient of the typical log-gain of transition l -> l+1
    (with / without the correlation term); chi1_1overN: 1/N coefficient of the annealed gain of
    transition l -> l+1.
    """

    sigma_w2: torch.Tensor
    sigma_b2: torch.Tensor
    K: torch.Tensor
    V: torch.Tensor
    K1: torch.Tensor
    R: torch.Tensor
    chi_par: torch.Tensor
    chi1: torch.Tensor
    c1: torch.Tensor
    c1_spec: torch.Tensor
    chi1_1overN: torch.Tensor

    def q_hat_mean(self, width: int) -> torch.Tensor:
        """E q_hat^l = K^l + K1^l / N, shape (M, L+1)."""
        return self.K + self.K1 / width

    def q_hat_var(self, width: int) -> torch.Tensor:
        """Var q_hat^l = (V^l + 2 (K^l)^2) / N, shape (M, L+1)."""
        return (self.V + 2 * self.K**2) / width

    def lambda_layers(self, width: int, include_correlation: bool = True) -> torch.Tensor:
        """Typical exponent of transition l -> l+1, 0.5 ln chi1(K^l) + c1^l/N, shape (M, L) (l = 0..L-1)."""
        c1 = self.c1 if include_correlation else self.c1_spec
        return (0.5 * torch.log(self.chi1) + c1 / width)[:, :-1]

    def lambda_average(self, width: int, burn_in: int, include_correlation: bool = True) -> torch.Tensor:
        """Mean of `lambda_layers` over transitions burn_in..L-1: what `statistics.summarize` measures, (M,)."""
        return self.lambda_layers(width, include_correlation)[:, burn_in:].mean(1)

    def expansion_parameter(self, width: int, burn_in: int) -> torch.Tensor:
        """Largest V^l / (N (K^l)^2) over the averaged transitions burn_in..L-1, shape (M,): above 0.3 the
        1/N expansion of `lambda_average` is not to be trusted (non-homogeneous activations)."""
        return (self.V / self.K**2)[:, burn_in:-1].amax(1) / width

    def gain_layers(self, width: int) -> torch.Tensor:
        """Annealed gain of transition l -> l+1, chi1(K^l) + chi1_1overN^l / N, shape (M, L)."""
        return (self.chi1 + self.chi1_1overN / width)[:, :-1]


def _grid(sigma_w2, sigma_b2) -> tuple[torch.Tensor, torch.Tensor]:
    sw = _t(sigma_w2).reshape(-1)
    sb = _t(sigma_b2).reshape(-1)
    sw, sb = torch.broadcast_tensors(sw, sb)
    return sw.contiguous(), sb.contiguous()


def _c1_terms(m: LayerMoments, sw: torch.Tensor, K1, V, R) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sampling, kernel, correlation) parts of c1 at moments m (docs/science.md §6, correction 3)."""
    dlog = m.dm2 / m.m2
    d2log = m.d2m2 / m.m2 - dlog**2
    sampling = -(3 * m.m4 / m.m2**2 - 1) / 4
    kernel = 0.5 * dlog * K1 + 0.25 * d2log * V
    correlation = m.K * dlog * R
    return sampling, kernel, correlation


def layer_recursion(
    activation,
    sigma_w2,
    sigma_b2=0.0,
    depth: int = 10,
    q0: float = 1.0,
    input_law: str = "fixed_norm",
    n_nodes: int | None = None,
) -> OneLoopLayers:
    """K^l, V^l, K1^l, R^l and the per-layer 1/N coefficients from the input layer to depth L.

    Why: finite-depth predictions for the engine (q_hat mean and variance per layer, exponents
    averaged after a burn-in), with the engine's layer convention (module docstring).

    Args:
        activation: name or Activation.
        sigma_w2: 1-D grid (M,); sigma_b2: scalar or (M,), broadcast.
        depth: L, the number of layer transitions.
        q0: layer-0 variance (exact empirical variance for "fixed_norm").
        input_law: "fixed_norm" (engine: |h^0|^2 = N q0, V^0 = -2 q0^2) or "gaussian"
            (h^0_i i.i.d. N(0, q0): V^0 = 0, the spec's convention).
    Returns:
        OneLoopLayers with (M, L+1) tensors. Recursions (docs/science.md §6 plus correction 3):
        K^{l+1} = sigma_w2 <phi^2>_{K^l} + sigma_b2,  chi_par^l = sigma_w2 d<phi^2>/dK,
        V^{l+1} = sigma_w2^2 [<phi^4> - <phi^2>^2] + (chi_par^l)^2 V^l,
        K1^{l+1} = chi_par^l K1^l + (1/2) sigma_w2 <phi^2>'' V^l,
        R^{l+1} = (chi_par^l)^2 K^l/(K^{l+1} chi1^l) R^l + sigma_w2^2 <phi^2 phi'^2>/(K^{l+1} chi1^l),
        c1^l = -(3 m4/m2^2 - 1)/4 + (1/2)(ln chi1)' K1^l + (1/4)(ln chi1)'' V^l + K^l (ln chi1)' R^l,
        chi1_1overN^l = chi1'(K^l) K1^l + (1/2) chi1''(K^l) V^l.
        Cost linear in depth: a sigma_w2 whose K^l has stopped moving (bit for bit) reuses its moments, so
        deep layers past convergence cost O(M) each; torch runs single-threaded (`quadrature.one_thread`);
        progress is reported per layer (`pipeline.progress`: a log line every 30 s off a terminal).
    """
    if input_law not in ("fixed_norm", "gaussian"):
        raise ValueError(f"input_law={input_law!r}: allowed 'fixed_norm', 'gaussian'")
    act = _act(activation)
    rule = _rule_for(act.name, n_nodes)
    sw, sb = _grid(sigma_w2, sigma_b2)
    M, L = sw.numel(), int(depth)
    names = ("K", "V", "K1", "R", "chi_par", "chi1", "c1", "c1_spec", "chi1_1overN")
    layers: dict[str, list[torch.Tensor]] = {k: [] for k in names}  # one contiguous (M,) tensor per layer
    K = torch.full((M,), float(q0), dtype=DTYPE)
    V = torch.full((M,), -2 * q0**2 if input_law == "fixed_norm" else 0.0, dtype=DTYPE)
    K1, R = torch.zeros(M, dtype=DTYPE), torch.zeros(M, dtype=DTYPE)
    k_eval = torch.full((M,), float("nan"), dtype=DTYPE)  # the variance each cached moment column was taken at
    stack = torch.zeros(9, M, dtype=DTYPE)  # moments at k_eval (order of _moment_stack)
    bar = progress(total=L + 1, desc=f"one-loop recursion {act.name} ({M} sigma_w2 x layers)", delay=5)
    with one_thread(), torch.no_grad(), bar:
        for _ in range(L + 1):  # layer l = 0..L
            kc = K.clamp_min(1e-150)  # K -> 0: see K_LIMIT
            new = (kc != k_eval).nonzero().reshape(-1)  # rows whose K moved (NaN always recomputes)
            if new.numel():  # a converged row's moments are those of the previous layer, bit for bit
                stack[:, new] = _moment_stack(act, kc[new], rule)
                k_eval[new] = kc[new]
            m = LayerMoments(kc, *stack)
            chi_par, chi1 = sw * m.dphi2, sw * m.m2
            samp, kern, corr = _c1_terms(m, sw, K1, V, R)
            g1 = sw * (m.dm2 * K1 + 0.5 * m.d2m2 * V)
            for key, v in zip(names, (K, V, K1, R, chi_par, chi1, samp + kern + corr, samp + kern, g1)):
                layers[key].append(v)
            K_next = sw * m.phi2 + sb
            V, K1, R = (
                sw**2 * m.var_phi2 + chi_par**2 * V,
                chi_par * K1 + 0.5 * sw * m.d2phi2 * V,
                (chi_par**2 * K * R + sw**2 * m.phi2_dphi2) / (K_next * chi1),
            )
            K = K_next
            bar.update(1)
    out = {k: torch.stack(v, 1) for k, v in layers.items()}
    return OneLoopLayers(sigma_w2=sw, sigma_b2=sb, **out)


# ---------------------------------------------------------------------------------------------
# 3. Deep-layer fixed points
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 4. One-loop Lyapunov exponent and annealed gain
# ---------------------------------------------------------------------------------------------
def lambda_coeff_1overN(
    activation, sigma_w2, sigma_b2=0.0, include_correlation: bool = True, n_nodes: int | None = None
) -> torch.Tensor:
    """c1 in lambda_N = 0.5 ln chi1(q*) + c1/N + O(1/N^2), the deep-layer typical exponent per layer.

    Why: the 1/N shift of the measured exponent and of its zero crossing (docs/science.md §6).

    Args:
        activation: name; sigma_w2: (M,) grid; sigma_b2: scalar or (M,).
        include_correlation: add the tangent-signal correlation term (correction 3); False gives
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


# ---------------------------------------------------------------------------------------------
# 5. Zero crossings
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 6. Tidy tables
# ---------------------------------------------------------------------------------------------
def one_loop_table(activation: str, sigma_w2, sigma_b2=0.0, widths=None, n_nodes: int | None = None) -> pd.DataFrame:
    """One row per sigma_w2 (x width if given): q*, chi_par, V*, K1*, c1, expansion parameter, status.

    Args:
        activation: name; sigma_w2: (M,) grid; sigma_b2: scalar or (M,); widths: optional list of N.
    Returns:
        DataFrame with columns activation, sigma_w2, sigma_b2, q_star, chi_par, chi1, V_star,
        K1_star, R_star, lambda_mf, lambda_coeff_1overN, lambda_coeff_1overN_spec, gain_coeff_1overN,
        status; with widths also width, lambda_one_loop, expansion_parameter (V*/(N K^2)), and
        status per width. Without widths, expansion_parameter is V*/K^2 (per unit 1/N).
        Status before number: on a row whose status is not "ok" the one-loop columns (ONE_LOOP_VALUE_COLUMNS)
        are NaN; the mean-field columns and expansion_parameter (which explains a breakdown) are kept.
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2, n_nodes)
    base = pd.DataFrame(
        {
            "activation": activation,
            "sigma_w2": fp.sigma_w2.numpy(),
            "sigma_b2": fp.sigma_b2.numpy(),
            "q_star": fp.q_star.numpy(),
            "chi_par": fp.chi_par.numpy(),
            "chi1": fp.chi1.numpy(),
            "V_star": fp.V_star.numpy(),
            "K1_star": fp.K1_star.numpy(),
            "R_star": fp.R_star.numpy(),
            "lambda_mf": (0.5 * torch.log(fp.chi1)).numpy(),
            "lambda_coeff_1overN": fp.c1.numpy(),
            "lambda_coeff_1overN_spec": fp.c1_spec.numpy(),
            "gain_coeff_1overN": fp.chi1_1overN.numpy(),
        }
    )
    if widths is None:
        base["expansion_parameter"] = fp.vk2.numpy()
        base["status"] = fp.status
        return mask_invalid(base, ONE_LOOP_VALUE_COLUMNS, "status", VALID_STATUSES)
    parts = []
    for n in widths:
        df = base.copy()
        df.insert(3, "width", int(n))
        df["lambda_one_loop"] = df["lambda_mf"] + df["lambda_coeff_1overN"] / n
        df["expansion_parameter"] = fp.expansion_parameter(n).numpy()
        df["status"] = fp.status_at(float(n))
        parts.append(df)
    return mask_invalid(pd.concat(parts, ignore_index=True), ONE_LOOP_VALUE_COLUMNS, "status", VALID_STATUSES)


def crossing_table(activation: str, sigma_b2, widths, **kw) -> pd.DataFrame:
    """One row per (sigma_b2, width): mean-field, one-loop (and spec, annealed) and exact crossings.

    Returns:
        DataFrame with columns activation, sigma_b2, width, crossing_mean_field, crossing_one_loop,
        crossing_one_loop_spec (no correlation term), crossing_annealed, crossing_exact (ReLU at
        sigma_b2 = 0 only: root of relu_lyapunov_exact, else NaN), expansion_parameter, status.
        Status before number: on a row whose status is not "ok" the one-loop roots (CROSSING_VALUE_COLUMNS) are
        NaN; crossing_mean_field, crossing_exact and expansion_parameter are kept.
    """
    cr = one_loop_crossing(activation, sigma_b2, widths, **kw)
    B, W = cr.one_loop.shape
    sb = cr.sigma_b2.repeat_interleave(W).numpy()
    n = cr.width.repeat(B).numpy().astype(int)
    exact = np.array(
        [relu_exact_crossing(int(w)) if activation == "relu" and b == 0 else np.nan for b, w in zip(sb, n)]
    )
    table = pd.DataFrame(
        {
            "activation": activation,
            "sigma_b2": sb,
            "width": n,
            "crossing_mean_field": cr.mean_field.repeat_interleave(W).numpy(),
            "crossing_one_loop": cr.one_loop.reshape(-1).numpy(),
            "crossing_one_loop_spec": cr.one_loop_spec.reshape(-1).numpy(),
            "crossing_annealed": cr.annealed.reshape(-1).numpy(),
            "crossing_exact": exact,
            "expansion_parameter": cr.expansion_parameter.reshape(-1).numpy(),
            "status": cr.status.reshape(-1),
        }
    )
    return mask_invalid(table, CROSSING_VALUE_COLUMNS, "status", STATUS_OK)


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
