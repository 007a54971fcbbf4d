"""The batched finite-width engine (docs/science.md §2–3): one pass measures everything per layer.

A batch is (seeds S) x (sigma_w2 values K) networks of width N. Every layer is one batched matrix
product per seed, `Z_s @ U_s`, whose columns carry, for all K sigma_w2 values at once: the input
signals, their replicas (two-replica Lyapunov), tangent vectors (Jacobian–vector products), fresh
probe vectors (gain chi), and k orthonormal tangent vectors (QR spectrum), in block-major layout
(S, N, blocks x K x inputs), so the product is copy-free and the pointwise work runs over long
contiguous rows. On the CPU, seed groups run on one worker thread per torch thread. Positively
homogeneous activations (ReLU, linear) carry the signal as scale x unit-RMS vector, so deep chaotic
networks never overflow; a network with a non-finite value or a vanishing norm is flagged with its cause
(overflow or vanish, see `EnsembleMeasurement`), not allowed to poison the rest.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from pipeline.activations import get_activation
from pipeline.config.validate import format_bytes
from pipeline.nets.weights import (
    STREAM_BIAS,
    STREAM_INPUT,
    STREAM_PROBE,
    STREAM_SPECTRUM,
    STREAM_TANGENT,
    NetworkStreams,
)
from pipeline.progress import progress

_TANGENT_SQ_MAX = math.exp(60.0)  # carried tangents are renormalized once their norm leaves e^(+-30)


class _Cancelled(Exception):
    """Raised inside engine workers once the calling thread has given up on the result."""


class MemoryBudgetError(ValueError):
    """The configured memory budget cannot hold even one network of the requested size (see `seed_chunk`)."""


@dataclass(frozen=True, kw_only=True)
class EnsembleSpec:
    """What to simulate: one activation/width/depth/bias/xi, a grid of sigma_w2, seeds x input pairs.

    No defaults: the values come from the validated config (`engine_spec.ensemble_spec`), whose schema
    is their one home (`pipeline.config.schema.NetConfig`, `EngineConfig`). The networks are
    h^l = sqrt(sigma_w2/N) Z^l phi(h^{l-1}) + b^l (docs/science.md §2), the estimators those of §3.

    Attributes:
        activation: activation name (`pipeline.activations`).
        width: network width N.
        depth: number of layers L (transitions 0 -> 1 .. L-1 -> L).
        sigma_w2: the K weight variances, sharing each seed's Z (common random numbers).
        sigma_b2: bias variance, b_i ~ N(0, sigma_b2).
        xi: gauge parameter of the weight ensemble (docs/science.md §4); ignored by orthogonal weights.
        weights: "gaussian" or "orthogonal".
        n_seeds: number S of networks per sigma_w2.
        n_pairs: input pairs P per network (I = 2 P inputs).
        q0: exact empirical variance of every layer-0 pre-activation vector.
        c0: exact empirical correlation of the two layer-0 vectors of a pair.
        eps: two-replica separation: RMS distance eps * max(1, RMS of the signal) in pre-activation units
            (purely relative for ReLU/linear, whose signal is carried at unit RMS). The floor keeps it absolute
            for O(1) signals (tanh, erf) and relative where an unbounded signal grows (gelu/swish in the chaotic
            phase), where an absolute eps would sink below the signal's float resolution.
        n_spectrum: number k of tangent vectors of the QR spectrum (0: off).
        seed: base seed of all random streams (`pipeline.nets.weights`).
        dtype: "float32" or "float64", precision of the engine arithmetic.
        device: torch device string.
        memory_budget_gb: memory the engine may use at once, GiB.
        method: "matrix" (weight matrices, O(N^2) per layer) or "chain" (the exact kernel chain of
            docs/science.md §7a, O(N m^2): same law per sigma_w2, different random numbers; gaussian weights only).
    """

    activation: str
    width: int
    depth: int
    sigma_w2: tuple[float, ...]
    sigma_b2: float
    xi: float  # gauge parameter of the weight ensemble (docs/science.md §4); 1 = i.i.d.
    weights: str  # gaussian | orthogonal
    n_seeds: int
    n_pairs: int  # input pairs per network: 2 * n_pairs inputs, correlation measured per pair
    q0: float  # variance of the layer-0 pre-activations
    c0: float  # their correlation within a pair
    eps: float  # replica separation: RMS distance eps * max(1, RMS(h)) (relative to the signal for ReLU/linear)
    n_spectrum: int  # k tangent vectors for the QR spectrum (0: off)
    seed: int
    dtype: str  # float32 | float64
    device: str
    memory_budget_gb: float
    method: str = "matrix"  # matrix | chain (pipeline.dynamics.chain); the config default lives in EngineConfig

    @property
    def n_inputs(self) -> int:
        """Number of inputs per network, I = 2 * n_pairs."""
        return 2 * self.n_pairs


@dataclass
class EnsembleMeasurement:
    """Raw per-layer measurements, float64 on the CPU; axes (S, K, inputs or pairs or k, layers).

    S seeds (networks), K = len(spec.sigma_w2), I = 2 n_pairs inputs, P = n_pairs pairs (inputs 2p and
    2p + 1 form pair p), k = n_spectrum, L = depth. Per-layer quantities of docs/science.md §2 and the
    per-transition Lyapunov growths of §3 (natural log, of the norm); statistics in `statistics.py` (§7).
    Values of a flagged network are NaN from its failed layer on.

    Attributes:
        spec: the simulated `EnsembleSpec`.
        log_q: (S, K, I, L+1), ln q_hat^l = ln((1/N) sum_i (h_i^l)^2), l = 0..L.
        c: (S, K, P, L+1), c_hat^l = sum_i h_a,i h_b,i / sqrt(sum_i h_a,i^2 sum_i h_b,i^2) of each pair.
        chi: (S, K, I, L), chi_emp = ||J v||^2 / ||v||^2 at transition l -> l+1, J = W^{l+1} diag(phi'(h^l)),
            v a fresh random unit vector per layer and input; mean-field value chi_1 (§1).
        log_growth_replica: (S, K, I, L), ln(d_{l+1} / d_l) of the Benettin-renormalised replica at RMS
            distance d_l = eps max(1, rms h_l) (§3).
        log_growth_tangent: (S, K, I, L), ln(||J t|| / ||t||) of the carried tangent vector (§3).
        spectrum_log_r: (S, K, k, L), ln |R_jj| of the QR step J Q = Q' R along input 0's trajectory,
            or None when n_spectrum = 0.
        failed_layer: (S, K) int64, first layer l (1..L) at which a network had a non-finite value or a
            vanishing norm it is divided by, -1 if none; log_q and c are NaN from l on, the per-transition
            arrays from transition l-1 on.
        overflow_layer: (S, K) int64, failed_layer where that failure was an overflow, else -1: a non-finite
            value or sum of squares, or a replica separation below the signal's float resolution (eps at or
            below the machine epsilon), so that the replica difference cancelled to 0.
            Numerics, not physics: `statistics.summarize` drops such a network whole.
        vanish_layer: (S, K) int64, failed_layer where a norm divided by underflowed to 0 or a denormal
            instead, else -1; such a network keeps its finite layers.
    """

    spec: EnsembleSpec
    log_q: torch.Tensor  # (S, K, I, L+1): ln of mean squared pre-activation h^l
    c: torch.Tensor  # (S, K, P, L+1): correlation of the two inputs of each pair
    chi: torch.Tensor  # (S, K, I, L): ||J v||^2 / ||v||^2 for fresh unit v at transition l -> l+1
    log_growth_replica: torch.Tensor  # (S, K, I, L): ln(d_{l+1} / eps), Benettin-renormalized
    log_growth_tangent: torch.Tensor  # (S, K, I, L): ln(||J t|| / ||t||)
    spectrum_log_r: torch.Tensor | None  # (S, K, k, L): ln |diag R| of the QR step
    failed_layer: torch.Tensor  # (S, K): first flagged layer, -1 if none
    overflow_layer: torch.Tensor  # (S, K): failed_layer if the network overflowed, else -1
    vanish_layer: torch.Tensor  # (S, K): failed_layer if a norm it divides by vanished, else -1


def _bytes_per_seed(spec: EnsembleSpec) -> int:
    cols = 4 * spec.n_inputs + spec.n_spectrum
    item = 8 if spec.dtype == "float64" else 4
    square = 0 if spec.method == "chain" else spec.width * spec.width * 2  # the weight matrix Z and its draw
    return item * (square + 8 * spec.width * len(spec.sigma_w2) * cols)


def seed_chunk(spec: EnsembleSpec) -> int:
    """How many seeds fit in the memory budget at once (raises MemoryBudgetError if none fit).

    Args:
        spec: the ensemble; uses width, sigma_w2, n_pairs, n_spectrum, dtype, n_seeds and memory_budget_gb.

    Returns:
        Python int in [1, n_seeds].

    Raises:
        MemoryBudgetError: if one seed's estimated working set exceeds `memory_budget_gb`.
    """
    per = _bytes_per_seed(spec)
    budget = spec.memory_budget_gb * 2**30
    if per > budget:
        raise MemoryBudgetError(
            f"memory_budget_gb={spec.memory_budget_gb} is too small for net.width={spec.width}: one seed with "
            f"{len(spec.sigma_w2)} sigma_w2 values needs {format_bytes(per)} (raise the budget or lower the width)"
        )
    return max(1, min(spec.n_seeds, int(budget // per)))


def _unit_columns(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def seed_groups(spec: EnsembleSpec, workers: int) -> list[list[int]]:
    """Seed ids in groups, one group per engine pass; at most `workers` groups are held at once.

    Args:
        spec: the ensemble.
        workers: number of worker threads that run groups concurrently.

    Returns:
        Consecutive groups of seed ids covering 0..n_seeds-1, each a list of python ints.

    Raises:
        MemoryBudgetError: if not even one network fits the budget.
    """
    seed_chunk(spec)  # raises MemoryBudgetError if not even one network fits
    fit = int(spec.memory_budget_gb * 2**30 // _bytes_per_seed(spec))
    size = max(1, min(fit // workers, -(-spec.n_seeds // workers)))
    return [list(range(a, min(spec.n_seeds, a + size))) for a in range(0, spec.n_seeds, size)]


def engine_workers(spec: EnsembleSpec) -> int:
    """CPU: one worker thread per torch thread, each running whole networks single-threaded (their
    weight draws, pointwise work and products keep a core busy without fork/join gaps); GPU: one.

    Args:
        spec: the ensemble (device, n_seeds and the memory budget bound the count).

    Returns:
        Python int >= 1.
    """
    if torch.device(spec.device).type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), spec.n_seeds, seed_chunk(spec)))


@contextmanager
def _single_threaded_ops(active: bool):
    """torch intra-op threads set to 1 while worker threads supply the parallelism; restored after."""
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if active:
            torch.set_num_threads(before)


def simulate(spec: EnsembleSpec) -> EnsembleMeasurement:
    """Run the whole ensemble in seed groups bounded by the memory budget, groups in parallel on the
    CPU. Each network's numbers do not depend on grouping or thread count (tests/dynamics).

    Measures everything of docs/science.md §2 (q_hat, c_hat, chi_emp) and §3 (two-replica, tangent and QR
    Lyapunov growths, Benettin et al. 1980) in one pass over the layers.

    Args:
        spec: what to simulate.

    Returns:
        An `EnsembleMeasurement` with S = spec.n_seeds (seeds concatenated in id order).

    Raises:
        MemoryBudgetError: if not even one network fits the budget.
    """
    workers = engine_workers(spec)
    groups = seed_groups(spec, workers)
    bar = progress(total=spec.n_seeds * spec.depth, desc=f"{spec.activation} N={spec.width} (layers x seeds)")
    lock, stop = threading.Lock(), threading.Event()

    def tick(n: int) -> None:
        if stop.is_set():  # the caller was interrupted: workers end at the next layer
            raise _Cancelled
        with lock:
            bar.update(n)

    run = lambda ids: _simulate_chunk(spec, ids, tick)  # noqa: E731
    try:
        with _single_threaded_ops(workers > 1):
            if workers == 1:
                parts = [run(ids) for ids in groups]
            else:
                pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine")
                try:
                    parts = [f.result() for f in [pool.submit(run, ids) for ids in groups]]
                finally:  # on Ctrl-C/SIGTERM in the waiting main thread, stop the workers before returning
                    stop.set()
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    cat = lambda name: torch.cat([getattr(p, name) for p in parts]) if getattr(parts[0], name) is not None else None  # noqa: E731
    return EnsembleMeasurement(
        spec,
        cat("log_q"),
        cat("c"),
        cat("chi"),
        cat("log_growth_replica"),
        cat("log_growth_tangent"),
        cat("spectrum_log_r"),
        cat("failed_layer"),
        cat("overflow_layer"),
        cat("vanish_layer"),
    )


def _simulate_chunk(spec: EnsembleSpec, ids: list[int], tick: Callable[[int], None]) -> EnsembleMeasurement:
    """All layers of the networks `ids` (one seed group), with the raw sums turned into tables at the end."""
    act = get_activation(spec.activation)
    dev, dt = torch.device(spec.device), getattr(torch, spec.dtype)
    S, N, K, I, P, k, L = (
        len(ids),
        spec.width,
        len(spec.sigma_w2),
        spec.n_inputs,
        spec.n_pairs,
        spec.n_spectrum,
        spec.depth,
    )
    gain = torch.sqrt(torch.tensor(spec.sigma_w2, dtype=dt, device=dev) / N).view(1, 1, K, 1)
    sb = math.sqrt(spec.sigma_b2)

    # Column layout of the product's right factor U and result Y (S, N, C): four blocks of K x I
    # columns (signal, replica, tangent, probe), then K x k spectrum columns. Block-major keeps every
    # block's rows contiguous runs of K*I numbers, so the pointwise work vectorizes.
    KI = K * I
    C = 4 * KI + K * k
    U = torch.empty(S, N, C, dtype=dt, device=dev)
    Y = torch.empty(S, N, C, dtype=dt, device=dev)
    U0, U1, U2, U3 = (U[:, :, b * KI : (b + 1) * KI].view(S, N, K, I) for b in range(4))
    Y0, Y1, Y2 = (Y[:, :, b * KI : (b + 1) * KI].view(S, N, K, I) for b in range(3))
    Yb = Y[:, :, : 4 * KI].view(S, N, 4, K, I)
    Uk, Yk = U[:, :, 4 * KI :].view(S, N, K, k), Y[:, :, 4 * KI :].view(S, N, K, k)
    # scratch reused every layer: fresh multi-MB temporaries per layer cost page faults, not arithmetic
    slope, squares = torch.empty(S, N, K, I, dtype=dt, device=dev), torch.empty(S, N, 4, K, I, dtype=dt, device=dev)
    pair = torch.empty(S, N, K, P, dtype=dt, device=dev)
    gain_full = gain.expand(1, 1, K, I).contiguous()  # a broadcast only along K*I keeps the loop vectorized

    # layer 0: pairs of inputs with exact empirical variance q0 and correlation c0, shared by all K
    rand = NetworkStreams(spec.seed, ids, dev)
    product = _layer_product(spec, rand, S, dt, dev)
    g = rand.normal(STREAM_INPUT, (N, 2 * P), torch.float64)
    g = torch.linalg.qr(g.view(S, N, P, 2).permute(0, 2, 1, 3)).Q  # (S, P, N, 2) orthonormal pairs
    e1, e2 = g[..., 0], g[..., 1]
    scale0 = math.sqrt(spec.q0 * N)
    h0 = torch.stack([e1, spec.c0 * e1 + math.sqrt(1 - spec.c0**2) * e2], -1) * scale0  # (S, P, N, 2)
    H = h0.permute(0, 2, 1, 3).reshape(S, N, 1, I).expand(S, N, K, I).to(dt).contiguous()
    logscale = torch.zeros(S, 1, K, I, dtype=torch.float64, device=dev)
    if act.homogeneous:  # carry unit-RMS signals, scale separately
        rms = H.pow(2).mean(1, keepdim=True).sqrt()
        H = H / rms
        logscale = logscale + rms.double().log()
    # Tangent T and replica difference D are carried unnormalized: T renormalized only when its norm
    # drifts far from 1 (the growth is read off the norms), D with the factor eps max(1, rms(h)) / rms(D)
    # that puts the replica at RMS distance eps max(1, rms(h)) from the signal h (its floored scale).
    u = _unit_columns(rand.normal(STREAM_TANGENT, (N, I), dt))
    T = u.unsqueeze(2).expand(S, N, K, I).contiguous()
    D = T
    floored = not act.homogeneous  # a homogeneous signal is carried at unit RMS: its separation is relative
    sep0 = spec.eps * math.sqrt(N) * (max(1.0, math.sqrt(spec.q0)) if floored else 1.0)
    d_scale = torch.full((S, 1, K, I), sep0, dtype=dt, device=dev)
    Q = None
    if k:
        q0_ = torch.linalg.qr(rand.normal(STREAM_SPECTRUM, (N, k), torch.float64)).Q
        Q = q0_.to(dt).unsqueeze(2).expand(S, N, K, k).contiguous()

    # Per-layer sums of squares over the width of the four blocks (signal h, replica difference,
    # tangent, probe) and the pair products; every log and ratio is taken once at the end in float64.
    sq_hist = torch.empty(L + 1, S, 4, K, I, dtype=dt, device=dev)
    ab_hist = torch.empty(L + 1, S, K, P, dtype=dt, device=dev)
    ls_hist = torch.zeros(L + 1, S, K, I, dtype=torch.float64, device=dev)  # log scale of homogeneous signals
    renormed = torch.zeros(L + 1, dtype=torch.bool)  # tangents rescaled to unit norm before transition l
    spec_r = torch.empty(S, K, k, L, dtype=torch.float64) if k else None
    failed = torch.full((S, K), -1, dtype=torch.long)
    overflow, vanish = failed.clone(), failed.clone()  # the cause of each flag, at its layer
    tiny = torch.finfo(dt).tiny  # a divisor's sum of squares at or below the smallest normal number has vanished
    sq_hist[0, :, 0] = (H * H).sum(1)
    ab_hist[0] = (H[..., 0::2] * H[..., 1::2]).sum(1)
    ls_hist[0] = logscale[:, 0]
    log_gain = torch.log(gain.double().view(1, K, 1).cpu())  # the gain enters every log growth as ln(gain)

    first_positive = 0 if act.homogeneous else 1  # the signal's norm is a divisor only when carried at unit RMS
    for layer in range(L):
        V = _unit_columns(rand.normal(STREAM_PROBE, (N, I), dt)).unsqueeze(2)
        dphi = act.phi_and_slope(H, U0, slope)
        act.phi_into(torch.addcmul(H, D, d_scale, out=U1), U1)
        torch.mul(dphi, T, out=U2)
        torch.mul(dphi, V, out=U3)
        if k:
            torch.mul(dphi[..., :1], Q, out=Uk)
        product(U, Y)  # the layer product Z U, without the gain
        H, D, T = Y0, Y1, Y2
        D.sub_(H)  # bias and gain cancel in the replica difference
        if sb:  # h = gain * (Z phi) + bias, in place; the bias in units of the carried scale
            bias = rand.normal(STREAM_BIAS, (N,), dt).view(S, N, 1, 1) * sb
            torch.addcmul(bias * torch.exp(-logscale).to(dt) if act.homogeneous else bias, H, gain_full, out=H)
        else:
            H.mul_(gain_full)
        sq = torch.sum(torch.mul(Yb, Yb, out=squares), 1, out=sq_hist[layer + 1])  # (S, 4, K, I)
        torch.sum(torch.mul(H[..., 0::2], H[..., 1::2], out=pair), 1, out=ab_hist[layer + 1])
        d_scale = (spec.eps * math.sqrt(N)) * sq[:, 1].rsqrt().unsqueeze(1)
        if floored:  # separation eps * max(1, rms(h)): relative once the signal outgrows unit RMS
            d_scale.mul_(torch.clamp(sq[:, 0] / N, min=1.0).sqrt().unsqueeze(1))
        if k:
            qr = torch.linalg.qr(Yk.permute(0, 2, 1, 3).double())  # (S, K, N, k)
            spec_r[..., layer] = qr.R.diagonal(dim1=-2, dim2=-1).abs().log().cpu() + log_gain
            Q = qr.Q.permute(0, 2, 1, 3).to(dt)
        if act.homogeneous:  # back to unit RMS
            ls_hist[layer + 1] = logscale[:, 0]
            rms = (sq[:, 0] / N).sqrt().unsqueeze(1)
            H.div_(rms)
            logscale = logscale + rms.double().log()
        # non-finite state, or a norm we divide by that vanished, shows in the sums of squares:
        # one check per layer, the per-network repair only when needed
        tt = sq[:, 2]
        lo, hi, lo_div, lo_t, hi_t = torch.stack(
            [*torch.aminmax(sq), sq[:, first_positive:3].amin(), *torch.aminmax(tt)]
        ).tolist()  # min/max propagate NaN
        if not (math.isfinite(lo) and math.isfinite(hi) and lo_div > tiny):
            q_in = None if act.homogeneous else sq_hist[layer][:, 0] / N  # signal fed into this transition
            over, vanished = (x.cpu() for x in _failure_causes(sq, q_in, first_positive, spec.eps))
            newly = (over | vanished) & (failed < 0)
            failed[newly] = layer + 1
            overflow[newly & over] = layer + 1
            vanish[newly & ~over] = layer + 1
            mask = (over | vanished).to(dev).view(S, 1, K, 1)
            H = torch.where(mask, torch.ones_like(H), H)  # keep the other networks computable
            T = torch.where(mask, torch.full_like(T, 1 / math.sqrt(N)), T)
            D = torch.where(mask, torch.ones_like(D), D)
            d_scale = torch.where(mask, torch.full_like(d_scale, spec.eps), d_scale)
            logscale = torch.where(mask, torch.zeros_like(logscale), logscale)
            tt = torch.where(mask.view(S, K, 1), torch.ones_like(tt), tt)  # a repaired tangent has unit norm
            lo_t, hi_t = torch.stack([*torch.aminmax(tt)]).tolist()
        if not (1 / _TANGENT_SQ_MAX < lo_t and hi_t < _TANGENT_SQ_MAX):
            # keep the carried tangents far from the float range limits, also while other networks are flagged
            # (skipping it then let every tangent of the batch overflow: gelu N=256 flagged all networks)
            T = T * tt.rsqrt().unsqueeze(1)
            renormed[layer + 1] = True
        tick(S)
    return _tables(spec, sq_hist, ab_hist, ls_hist, renormed, log_gain, spec_r, (failed, overflow, vanish), floored)


def _layer_product(spec: EnsembleSpec, rand: NetworkStreams, S: int, dt, dev) -> Callable:
    """product(U, Y): Y = Z U for this layer's fresh weights (matrix), or rows drawn from the law of Z U (chain)."""
    if spec.method == "chain":
        from pipeline.dynamics.chain import engine_product  # noqa: PLC0415 - the chain path only

        return engine_product(spec, rand)
    N = spec.width
    Zbuf = torch.empty(S, N, N, dtype=dt, device=dev)

    def product(U: torch.Tensor, Y: torch.Tensor) -> None:
        torch.bmm(rand.weights(N, spec.weights, spec.xi, dt, out=Zbuf), U, out=Y)

    return product


def _failure_causes(sq, q_in, first_positive: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(overflowed, vanished), (S, K) bool, from one layer's sums of squares sq (S, 4, K, I).

    Overflow: a non-finite sum, or a divisor that is 0 while the signal q_in (mean square fed into the
    layer, None: unit RMS) is so large that the separation eps * max(1, sqrt(q_in)) is below its float
    resolution (the replica difference cancelled). Vanished: any other divisor at or below the smallest
    normal number (an underflow).
    """
    finfo = torch.finfo(sq.dtype)
    zero = (sq[:, first_positive:3] <= finfo.tiny).any(1)  # (S, K, I)
    q = q_in if q_in is not None else torch.ones_like(zero, dtype=sq.dtype)
    coarse = q * finfo.eps**2 >= eps**2 * torch.clamp(q, min=1.0)
    over = (~torch.isfinite(sq).all(1) | (zero & coarse)).any(-1)
    return over, zero.any(-1) & ~over


def _tables(
    spec: EnsembleSpec, sq_hist, ab_hist, ls_hist, renormed, log_gain, spec_r, flags, floored: bool
) -> EnsembleMeasurement:
    """Per-layer logs and ratios from the raw sums, in float64, laid out (S, K, columns, layers).

    floored: the replica separation fed into transition l was eps * max(1, rms(h_l)), not eps."""
    N = spec.width
    sq = sq_hist.double().cpu()
    ss, dd, tt, pp = sq[:, :, 0], sq[1:, :, 1], sq[1:, :, 2], sq[1:, :, 3]  # (layers, S, K, I)
    last = lambda x: x.permute(1, 2, 3, 0).contiguous()  # noqa: E731  (layers, S, K, i) -> (S, K, i, layers)
    log_q = last(torch.log(ss / N) + 2 * ls_hist.cpu())
    c = last(ab_hist.double().cpu() / torch.sqrt(ss[..., 0::2] * ss[..., 1::2]))
    log_sep = math.log(spec.eps) + (0.5 * torch.log(torch.clamp(ss[:-1] / N, min=1.0)) if floored else 0.0)
    lg_rep = last(0.5 * torch.log(dd / N) + log_gain - log_sep)
    log_t = 0.5 * torch.log(tt)
    fed = torch.zeros_like(log_t)  # log norm of the tangent fed into each transition
    fed[1:] = torch.where(renormed[1:-1].view(-1, 1, 1, 1), torch.zeros_like(log_t[:-1]), log_t[:-1])
    lg_tan = last(log_t - fed + log_gain)
    chi = last(pp * torch.exp(2 * log_gain))
    # every value of a network from its first flagged layer on is invalid
    failed = flags[0]
    for s, kk in (failed >= 0).nonzero().tolist():
        f = int(failed[s, kk])
        log_q[s, kk, :, f:] = float("nan")
        c[s, kk, :, f:] = float("nan")
        for arr in (chi, lg_rep, lg_tan) + ((spec_r,) if spec_r is not None else ()):
            arr[s, kk, :, f - 1 :] = float("nan")
    return EnsembleMeasurement(spec, log_q, c, chi, lg_rep, lg_tan, spec_r, *flags)
