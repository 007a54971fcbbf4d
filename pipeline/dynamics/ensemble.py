"""The batched finite-width engine (science.md §2–3): one pass measures everything per layer.

A batch is (seeds S) x (sigma_w2 values K) networks of width N. Every layer is one batched matrix
product per seed, `Z_s @ U_s`, whose columns carry, for all K sigma_w2 values at once: the input
signals, their replicas (two-replica Lyapunov), tangent vectors (Jacobian–vector products), fresh
probe vectors (gain chi), and k orthonormal tangent vectors (QR spectrum). Layout (S, N, K, cols)
keeps that product copy-free. Positively homogeneous activations (ReLU, linear) carry the signal
as scale x unit-RMS vector, so deep chaotic networks never overflow; other activations are checked
for non-finite values and a network that produces one is flagged, not allowed to poison the rest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from pipeline.nets.weights import STREAM_BIAS, STREAM_INPUT, STREAM_PROBE, standard_vectors, standard_weights
from pipeline.theory.activations import get_activation

STREAM_TANGENT = 4
STREAM_SPECTRUM = 5
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class MemoryBudgetError(ValueError):
    """The configured memory budget cannot hold even one network of the requested size."""


@dataclass(frozen=True)
class EnsembleSpec:
    """What to simulate: one activation/width/depth/bias/xi, a grid of sigma_w2, seeds x input pairs."""

    activation: str
    width: int
    depth: int
    sigma_w2: tuple[float, ...]
    sigma_b2: float = 0.0
    xi: float = 1.0
    weights: str = "gaussian"
    n_seeds: int = 8
    n_pairs: int = 2  # input pairs per network: 2 * n_pairs inputs, correlation measured per pair
    q0: float = 1.0  # variance of the layer-0 pre-activations
    c0: float = 0.5  # their correlation within a pair
    eps: float = 1e-6  # replica separation (RMS, relative to the signal's RMS)
    n_spectrum: int = 0  # k tangent vectors for the QR spectrum (0: off)
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    memory_budget_gb: float = 2.0

    @property
    def n_inputs(self) -> int:
        return 2 * self.n_pairs


@dataclass
class EnsembleMeasurement:
    """Raw per-layer measurements, float64 on the CPU; axes (S, K, inputs or pairs or k, layers)."""

    spec: EnsembleSpec
    log_q: torch.Tensor  # (S, K, I, L+1): ln of mean squared pre-activation h^l
    c: torch.Tensor  # (S, K, P, L+1): correlation of the two inputs of each pair
    chi: torch.Tensor  # (S, K, I, L): ||J v||^2 / ||v||^2 for fresh unit v at transition l -> l+1
    log_growth_replica: torch.Tensor  # (S, K, I, L): ln(d_{l+1} / eps), Benettin-renormalized
    log_growth_tangent: torch.Tensor  # (S, K, I, L): ln(||J t|| / ||t||)
    spectrum_log_r: Optional[torch.Tensor]  # (S, K, k, L): ln |diag R| of the QR step
    failed_layer: torch.Tensor = field(default=None)  # (S, K): first layer with a non-finite value, -1 if none


def _bytes_per_seed(spec: EnsembleSpec) -> int:
    cols = 4 * spec.n_inputs + spec.n_spectrum
    item = 8 if spec.dtype == "float64" else 4
    return item * (spec.width * spec.width * 2 + 8 * spec.width * len(spec.sigma_w2) * cols)


def seed_chunk(spec: EnsembleSpec) -> int:
    """How many seeds fit in the memory budget at once (raises MemoryBudgetError if none fit)."""
    per = _bytes_per_seed(spec)
    budget = spec.memory_budget_gb * 2**30
    if per > budget:
        raise MemoryBudgetError(
            f"memory_budget_gb={spec.memory_budget_gb} is too small for net.width={spec.width}: one seed with "
            f"{len(spec.sigma_w2)} sigma_w2 values needs {per / 2**30:.2f} GiB (raise the budget or lower the width)")
    return max(1, min(spec.n_seeds, int(budget // per)))


def _unit_columns(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def simulate(spec: EnsembleSpec, progress: Optional[Callable[[int], None]] = None) -> EnsembleMeasurement:
    """Run the whole ensemble in seed chunks bounded by the memory budget; results independent of chunking."""
    chunk = seed_chunk(spec)
    parts = []
    bar = tqdm(total=spec.n_seeds * spec.depth, desc=f"{spec.activation} N={spec.width}", unit="layer",
               disable=None, leave=False)
    try:
        for start in range(0, spec.n_seeds, chunk):
            ids = list(range(start, min(spec.n_seeds, start + chunk)))
            parts.append(_simulate_chunk(spec, ids, lambda n: bar.update(n)))
    finally:
        bar.close()
    cat = lambda name: torch.cat([getattr(p, name) for p in parts]) if getattr(parts[0], name) is not None else None  # noqa: E731
    return EnsembleMeasurement(spec, cat("log_q"), cat("c"), cat("chi"), cat("log_growth_replica"),
                               cat("log_growth_tangent"), cat("spectrum_log_r"), cat("failed_layer"))


def _simulate_chunk(spec: EnsembleSpec, ids: list[int], tick: Callable[[int], None]) -> EnsembleMeasurement:
    act = get_activation(spec.activation)
    dev, dt = torch.device(spec.device), DTYPES[spec.dtype]
    S, N, K, I, P, k, L = len(ids), spec.width, len(spec.sigma_w2), spec.n_inputs, spec.n_pairs, spec.n_spectrum, spec.depth
    gain = torch.sqrt(torch.tensor(spec.sigma_w2, dtype=dt, device=dev) / N).view(1, 1, K, 1)
    sb = math.sqrt(spec.sigma_b2)

    # layer 0: pairs of inputs with exact empirical variance q0 and correlation c0, shared by all K
    g = standard_vectors(spec.seed, ids, 0, STREAM_INPUT, (N, 2 * P), dev, torch.float64)
    g = torch.linalg.qr(g.view(S, N, P, 2).permute(0, 2, 1, 3)).Q  # (S, P, N, 2) orthonormal pairs
    e1, e2 = g[..., 0], g[..., 1]
    scale0 = math.sqrt(spec.q0 * N)
    h0 = torch.stack([e1, spec.c0 * e1 + math.sqrt(1 - spec.c0 ** 2) * e2], -1) * scale0  # (S, P, N, 2)
    H = h0.permute(0, 2, 1, 3).reshape(S, N, 1, I).expand(S, N, K, I).to(dt).contiguous()
    logscale = torch.zeros(S, 1, K, I, dtype=torch.float64, device=dev)
    if act.homogeneous:  # carry unit-RMS signals, scale separately
        rms = H.pow(2).mean(1, keepdim=True).sqrt()
        H = H / rms
        logscale = logscale + rms.double().log()
    u = _unit_columns(standard_vectors(spec.seed, ids, 0, STREAM_TANGENT, (N, I), dev, dt))
    T = u.unsqueeze(2).expand(S, N, K, I).contiguous()  # tangent vectors, unit norm
    R = T * math.sqrt(N)  # replica direction, unit RMS
    Q = None
    if k:
        q0_ = torch.linalg.qr(standard_vectors(spec.seed, ids, 0, STREAM_SPECTRUM, (N, k), dev, torch.float64)).Q
        Q = q0_.to(dt).unsqueeze(2).expand(S, N, K, k).contiguous()

    f64 = dict(dtype=torch.float64)
    log_q = torch.empty(S, K, I, L + 1, **f64)
    c = torch.empty(S, K, P, L + 1, **f64)
    chi = torch.empty(S, K, I, L, **f64)
    lg_rep = torch.empty(S, K, I, L, **f64)
    lg_tan = torch.empty(S, K, I, L, **f64)
    spec_r = torch.empty(S, K, k, L, **f64) if k else None
    failed = torch.full((S, K), -1, dtype=torch.long)

    def measure(layer: int) -> None:
        msq = H.pow(2).mean(1)  # (S, K, I)
        log_q[..., layer] = (2 * logscale[:, 0] + msq.double().log()).cpu()
        a, b = H[..., 0::2], H[..., 1::2]
        c[..., layer] = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).double().cpu()

    # The gain sqrt(sigma_w2 / N) multiplies only the signal block; in every normalized quantity
    # (replica and tangent directions, Q) it cancels and enters the logs as ln(gain).
    log_gain = torch.log(gain.double().view(1, K, 1).cpu())
    U = torch.empty(S, N, K, 4 * I + k, dtype=dt, device=dev)
    measure(0)
    for layer in range(L):
        phi, dphi, _ = act.derivs(H)
        U[..., :I] = phi
        U[..., I:2 * I] = act.phi(torch.add(H, R, alpha=spec.eps))
        torch.mul(dphi, T, out=U[..., 2 * I:3 * I])
        V = _unit_columns(standard_vectors(spec.seed, ids, layer + 1, STREAM_PROBE, (N, I), dev, dt)).unsqueeze(2)
        torch.mul(dphi, V, out=U[..., 3 * I:4 * I])
        if k:
            torch.mul(dphi[..., :1], Q, out=U[..., 4 * I:])
        Z = standard_weights(spec.seed, ids, layer + 1, N, spec.weights, spec.xi, dev, dt)
        Y = torch.bmm(Z, U.view(S, N, -1)).view(S, N, K, -1)  # without the gain
        if sb:
            bias = standard_vectors(spec.seed, ids, layer + 1, STREAM_BIAS, (N,), dev, dt).view(S, N, 1, 1) * sb
            H = torch.addcmul(bias * torch.exp(-logscale).to(dt), Y[..., :I], gain)  # bias in units of the scale
        else:
            H = Y[..., :I] * gain
        D = Y[..., I:2 * I] - Y[..., :I]  # bias and gain cancel in the direction
        d = D.pow(2).mean(1).sqrt()  # (S, K, I)
        lg_rep[..., layer] = (d.double().cpu().log() + log_gain - math.log(spec.eps))
        Tn = Y[..., 2 * I:3 * I]
        nt = Tn.norm(dim=1)
        lg_tan[..., layer] = nt.double().cpu().log() + log_gain
        chi[..., layer] = Y[..., 3 * I:4 * I].pow(2).sum(1).double().cpu() * torch.exp(2 * log_gain)
        if k:
            qr = torch.linalg.qr(Y[..., 4 * I:].permute(0, 2, 1, 3).double())  # (S, K, N, k)
            spec_r[..., layer] = qr.R.diagonal(dim1=-2, dim2=-1).abs().log().cpu() + log_gain
            Q = qr.Q.permute(0, 2, 1, 3).to(dt)
        T = Tn / nt.unsqueeze(1)
        R = D / d.unsqueeze(1)
        if act.homogeneous:
            rms = H.pow(2).mean(1, keepdim=True).sqrt()
            H = H / rms
            logscale = logscale + rms.double().log()
        # one cheap reduction per state; the exact per-network check only when something is off
        probe = H.sum((1, 3)) + T.sum((1, 3)) + R.sum((1, 3))  # (S, K), non-finite if any entry is
        bad = ~torch.isfinite(probe)
        if bool(bad.any()):
            bad = ~(torch.isfinite(H).all(1).all(-1) & torch.isfinite(T).all(1).all(-1) & torch.isfinite(R).all(1).all(-1))
            newly = bad.cpu() & (failed < 0)
            failed[newly] = layer + 1
            mask = bad.view(S, 1, K, 1)
            H = torch.where(mask, torch.ones_like(H), H)  # keep the other networks computable
            T = torch.where(mask, torch.full_like(T, 1 / math.sqrt(N)), T)
            R = torch.where(mask, torch.ones_like(R), R)
        measure(layer + 1)
        tick(S)

    # every value of a network from its first non-finite layer on is invalid
    for s, kk in (failed >= 0).nonzero().tolist():
        f = int(failed[s, kk])
        log_q[s, kk, :, f:] = float("nan")
        c[s, kk, :, f:] = float("nan")
        for arr in (chi, lg_rep, lg_tan) + ((spec_r,) if k else ()):
            arr[s, kk, :, f - 1:] = float("nan")
    return EnsembleMeasurement(spec, log_q, c, chi, lg_rep, lg_tan, spec_r, failed)
