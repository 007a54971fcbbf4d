"""Finite-depth one-loop recursions: K, V, K1, R and the 1/N coefficients layer by layer (docs/science.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.progress import progress
from pipeline.theory.one_loop.common import _act, _grid
from pipeline.theory.one_loop.moments import LayerMoments, _moment_stack, _rule_for
from pipeline.theory.quadrature import DTYPE, one_thread


@dataclass
class OneLoopLayers:
    """Per-layer one-loop quantities, shape (M, L+1) for a grid of M sigma_w2 values, layers l = 0..L.

    K: mean-field variance; V: N Var(G); K1: N (E G - K); R: N E[rho^2] (tangent-signal
    correlation, docs/science.md §6); chi_par, chi1: variance-map slope and
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


def _c1_terms(m: LayerMoments, sw: torch.Tensor, K1, V, R) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sampling, kernel, correlation) parts of c1 at moments m (docs/science.md §6)."""
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
    averaged after a burn-in), with the engine's layer convention (docs/science.md §6).

    Args:
        activation: name or Activation.
        sigma_w2: 1-D grid (M,); sigma_b2: scalar or (M,), broadcast.
        depth: L, the number of layer transitions.
        q0: layer-0 variance (exact empirical variance for "fixed_norm").
        input_law: "fixed_norm" (engine: |h^0|^2 = N q0, V^0 = -2 q0^2) or "gaussian"
            (h^0_i i.i.d. N(0, q0): V^0 = 0, the spec's convention).
    Returns:
        OneLoopLayers with (M, L+1) tensors. Recursions (docs/science.md §6):
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
