"""The exact finite-width kernel chain (docs/science.md §7a): O(N m^2) per layer instead of O(N^2 m).

With Gaussian weights fresh per layer (row covariance (sigma_w2/N)(P_T + xi P_L), §4) and i.i.d. biases, the
layer-l vectors of m coordinates (inputs, tangents, ...) are i.i.d. over units given layer l-1, Gaussian with
covariance G^l = sigma_w2/N [A^T A + (xi - 1)/N (A^T 1)(1^T A)] (+ sigma_b2 between bias-carrying coordinates),
A_j = the post-activation row of unit j. Drawing N i.i.d. rows from N(0, G^l) samples the next layer exactly (up
to a permutation of units, which no statistic sees). This module holds that step (`gram`, `sqrt_factor`,
`draw_rows`), the layer-0 inputs shared with the matrix engine (`layer0_inputs`) and the lean k-input kernel chain
for long depths (`ChainSpec`, `kernel_blocks`, `kernel_path`); the engine path of `ensemble` uses the same step.

Randomness (docs/science.md §7, Randomness): one generator per (base seed, network id, STREAM_CHAIN), drawing
standard normals in fixed blocks of `RAND_BLOCK` layers, shape (RAND_BLOCK, N, m), in float32 then cast (torch's
CPU generator fills a multiple of 16 numbers as the same stream as one longer fill, so blocks of 16 layers give
bitwise the numbers of the former blocks of 64, drawing fewer wasted layers at short depths); the
inputs come from STREAM_INPUT exactly as in the matrix engine. A network's numbers therefore do not depend on
which other networks share its batch, on the yield block, or on the depth computed (a shorter run is a prefix).
All sigma_w2 values of one network share its draws (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from pipeline.activations import get_activation
from pipeline.dynamics import native
from pipeline.nets.weights import STREAM_CHAIN, STREAM_INPUT, STREAM_TANGENT, NetworkStreams

CHUNK_NUMBERS = 1 << 18  # tangent_chain's networks per pass: about this many numbers per (S, K, N) array
RAND_BLOCK = 16  # layers per random draw of one network (part of the seed convention; see the module docstring)


def layer0_inputs(
    base_seed: int, seed_ids: list[int], width: int, n_inputs: int, q0: float, c0: float, device
) -> torch.Tensor:
    """The layer-0 pre-activations of the matrix engine (`ensemble`): pairs of vectors with exact empirical
    variance q0 and correlation c0, orthogonal across pairs, drawn from STREAM_INPUT.

    Args:
        base_seed: base seed of the run.
        seed_ids: network ids.
        width: N.
        n_inputs: number of inputs I; the engine's ceil(I/2) pairs are drawn and the first I vectors kept.
        q0: (1/N) ||h^0||^2 of every input.
        c0: empirical correlation of inputs 2p and 2p+1.
        device: torch device.

    Returns:
        float64 tensor (S, N, I).
    """
    S, N, P = len(seed_ids), width, -(-n_inputs // 2)
    g = NetworkStreams(base_seed, seed_ids, torch.device(device)).normal(STREAM_INPUT, (N, 2 * P), torch.float64)
    g = torch.linalg.qr(g.view(S, N, P, 2).permute(0, 2, 1, 3)).Q  # (S, P, N, 2) orthonormal pairs
    e1, e2 = g[..., 0], g[..., 1]
    h0 = torch.stack([e1, c0 * e1 + math.sqrt(1 - c0**2) * e2], -1) * math.sqrt(q0 * N)  # (S, P, N, 2)
    return h0.permute(0, 2, 1, 3).reshape(S, N, 2 * P)[..., :n_inputs].contiguous()


def gram(A: torch.Tensor, xi: float) -> torch.Tensor:
    """A^T (P_T + xi P_L) A = A^T A + (xi - 1)/N (A^T 1)(1^T A): the weight-row covariance of §4 seen by A.

    Args:
        A: (..., N, m) post-activation rows (any float dtype).
        xi: gauge parameter (1: i.i.d. weights).

    Returns:
        float64 tensor (..., m, m).
    """
    A = A.double()
    G = A.transpose(-1, -2) @ A
    if xi != 1.0:
        s = A.sum(-2)
        G = G + ((xi - 1.0) / A.shape[-2]) * (s.unsqueeze(-1) * s.unsqueeze(-2))
    return G


def sqrt_factor(G: torch.Tensor) -> torch.Tensor:
    """Lower-triangular F with F F^T = G for PSD matrices (..., m, m), vectorized over the batch (LAPACK's batched
    Cholesky costs ~18 us per tiny matrix on the CPU; this costs ~5 m torch calls per batch).

    A pivot at or below 1e-13 of its diagonal entry means the coordinate is (numerically) a combination of the
    previous ones (a tangent aligned with the top Lyapunov vector, two inputs with c -> 1): its column is set to 0
    below the pivot too, the semi-definite Cholesky factor, so rows E F^T, E i.i.d. N(0, 1), have covariance G up
    to rounding and never NaN.
    """
    m = G.shape[-1]
    F = torch.zeros_like(G)
    for j in range(m):
        row = F[..., j, :j]
        d = G[..., j, j] - (row * row).sum(-1)
        ok = d > 1e-13 * G[..., j, j].abs()
        piv = torch.where(ok, d, torch.ones_like(d)).sqrt()
        F[..., j, j] = torch.where(ok, piv, torch.zeros_like(d))
        if j + 1 < m:
            col = G[..., j + 1 :, j] - (F[..., j + 1 :, :j] * row.unsqueeze(-2)).sum(-1)
            F[..., j + 1 :, j] = torch.where(ok.unsqueeze(-1), col / piv.unsqueeze(-1), torch.zeros_like(col))
    return F


def draw_rows(E: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """Rows E F^T: N i.i.d. draws from N(0, F F^T) per batch member.

    Args:
        E: (S, N, m) standard normals, shared by every sigma_w2 (common random numbers).
        F: (S, K, m, m) square roots.

    Returns:
        (S, K, N, m), same dtype as F.
    """
    S, K, m = F.shape[0], F.shape[1], F.shape[-1]
    E = E.to(F.dtype).unsqueeze(1).expand(S, K, *E.shape[1:]).reshape(S * K, -1, m)
    return torch.bmm(E, F.reshape(S * K, m, m).transpose(-1, -2)).view(S, K, -1, m)


@dataclass(frozen=True, kw_only=True)
class ChainSpec:
    """A lean k-input kernel chain: `n_networks` networks x the sigma_w2 grid, `depth` layers.

    Attributes:
        activation: activation name (`pipeline.activations`).
        width: N.
        depth: number of layers L; G^1 .. G^L are produced.
        sigma_w2: the K weight variances (common random numbers across them).
        sigma_b2: bias variance.
        xi: gauge parameter of the weight ensemble (docs/science.md §4); 1 = i.i.d.
        n_networks: number S of networks, ids first_network .. first_network + S - 1.
        n_inputs: k, the number of inputs (1: length mode; 2: a pair with correlation c0).
        q0: variance of the layer-0 pre-activations.
        c0: correlation of the two inputs when k = 2.
        seed: base seed.
        first_network: id of the first network (split a large ensemble into calls with the same numbers).
        device: torch device string.
    """

    activation: str
    width: int
    depth: int
    sigma_w2: tuple[float, ...]
    sigma_b2: float
    xi: float = 1.0
    n_networks: int
    n_inputs: int = 1
    q0: float = 1.0
    c0: float = 0.5
    seed: int = 0
    first_network: int = 0
    device: str = "cpu"

    def check(self) -> None:
        """ValueError naming the first invalid field."""
        get_activation(self.activation)
        for name, ok, allowed in (
            ("width", self.width >= 2, ">= 2"),
            ("depth", self.depth >= 1, ">= 1"),
            ("sigma_w2", len(self.sigma_w2) >= 1 and min(self.sigma_w2) > 0, "a non-empty tuple of values > 0"),
            ("sigma_b2", self.sigma_b2 >= 0, ">= 0"),
            ("xi", self.xi >= 0, ">= 0"),
            ("n_networks", self.n_networks >= 1, ">= 1"),
            ("n_inputs", self.n_inputs >= 1, ">= 1"),
            ("q0", self.q0 > 0, "> 0"),
            ("c0", -1 <= self.c0 < 1, "in [-1, 1)"),
            ("first_network", self.first_network >= 0, ">= 0"),
        ):
            if not ok:
                raise ValueError(f"ChainSpec.{name}={getattr(self, name)!r}: allowed {allowed}")


def kernel_blocks(spec: ChainSpec, block: int = 256) -> Iterator[tuple[int, torch.Tensor]]:
    """Stream the kernel path G^l, l = 1..L, in blocks of at most `block` layers (memory O(S K block k^2)).

    G^l is the covariance of the layer-l pre-activations of the k inputs given layer l-1 (docs/science.md §7a):
    G^1 is the exact kernel of the actual layer-0 inputs (`layer0_inputs`), then G^{l+1} =
    sigma_b2 + sigma_w2/N [phi^T phi + (xi - 1)/N (phi^T 1)(1^T phi)] with phi = phi(h^l), h^l the N i.i.d. rows
    drawn from N(0, G^l). The empirical q_hat^l = (1/N) sum_j (h_j^l)^2 of the matrix engine is the diagonal mean
    of those rows; E[G^{l+1} | G^l] = F(G^l) and Var = Sigma(G^l)/N (§7a).

    Args:
        spec: the chain.
        block: layers per yielded tensor (does not change the numbers).

    Yields:
        (first_layer, G): G float64 of shape (S, K, b, k, k) holding G^first_layer .. G^(first_layer + b - 1).

    Raises:
        ValueError: an invalid spec field (named).
        FloatingPointError: a kernel became non-finite (e.g. ReLU deep in the chaotic phase overflows float64).
    """
    spec.check()
    if block < 1:
        raise ValueError(f"block={block}: allowed >= 1")
    act = get_activation(spec.activation)
    dev = torch.device(spec.device)
    ids = list(range(spec.first_network, spec.first_network + spec.n_networks))
    K, N, k, L = len(spec.sigma_w2), spec.width, spec.n_inputs, spec.depth
    sw = torch.tensor(spec.sigma_w2, dtype=torch.float64, device=dev).view(1, K, 1, 1) / N
    h0 = layer0_inputs(spec.seed, ids, N, k, spec.q0, spec.c0, dev)
    G = sw * gram(act.phi(h0), spec.xi).unsqueeze(1) + spec.sigma_b2  # (S, K, k, k), G^1
    rand = NetworkStreams(spec.seed, ids, dev)
    E_block = None
    out, first = [], 1
    for layer in range(1, L + 1):
        out.append(G)
        if len(out) == block or layer == L:
            path = torch.stack(out, 2)
            if not bool(torch.isfinite(path).all()):
                raise FloatingPointError(
                    f"kernel chain non-finite by layer {layer} ({spec.activation}, sigma_w2 up to "
                    f"{max(spec.sigma_w2):g}): lower the depth or sigma_w2"
                )
            yield first, path
            out, first = [], layer + 1
        if layer == L:
            break
        r = (layer - 1) % RAND_BLOCK
        if r == 0:
            E_block = rand.normal(STREAM_CHAIN, (RAND_BLOCK, N, k), torch.float64)
        h = draw_rows(E_block[:, r], sqrt_factor(G))  # (S, K, N, k) rows of layer `layer`
        G = sw * gram(act.phi(h), spec.xi) + spec.sigma_b2


def kernel_path(spec: ChainSpec) -> torch.Tensor:
    """The whole kernel path G^1..G^L, float64 (S, K, L, k, k) (use `kernel_blocks` when that is too large)."""
    return torch.cat([g for _, g in kernel_blocks(spec, block=max(1, min(spec.depth, 4096)))], 2)


def engine_product(spec, rand: NetworkStreams) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The chain path of the matrix engine (`ensemble.simulate` with spec.method = "chain"): product(U, Y) fills
    Y with N i.i.d. rows drawn from the law of Z U given U, for this layer's fresh gaussian weights Z (row
    covariance P_T + xi P_L, docs/science.md §4, §7a), so every per-layer measurement has exactly the matrix
    engine's distribution at O(N m^2) instead of O(N^2 m) (m = 4 I + k columns per sigma_w2).

    U and Y are the engine's (S, N, C) block-major layout: blocks signal, replica, tangent, probe of K x I columns,
    then K x k spectrum columns. Each sigma_w2 is its own Gram (exact per sigma_w2; all share the draws E, common
    random numbers). The replica enters as its difference from the signal (U1 - U0, formed in place in U, which
    the engine rebuilds every layer), placed last in the factor, so the near-collinearity of replica and tangent
    only costs a component below the factor's pivot threshold; Y1 is drawn as Y0 + that difference (the engine
    subtracts Y0 again, as for Z U1 - Z U0). Two products per layer and no copies of the rows: the Gram of all
    C columns (U^T U, in U's dtype; its off-sigma_w2 blocks are not used) and the rows Y = E F^T written in Y's
    layout, F^T's columns ordered as Y's.

    Args:
        spec: the `EnsembleSpec` (width, sigma_w2, n_pairs, n_spectrum, xi).
        rand: the networks' streams; draws (N, m) standard normals per layer from STREAM_CHAIN.

    Returns:
        The callable product(U, Y) (Y written in place, in U's dtype).
    """
    N, K, I, k, xi = spec.width, len(spec.sigma_w2), spec.n_inputs, spec.n_spectrum, spec.xi
    KI, m = K * I, 4 * I + k
    # per sigma_w2 the factor's coordinates: signal, tangent, probe (I each), spectrum (k), replica difference (I)
    kk, ii = torch.arange(K).view(K, 1), torch.arange(I).view(1, I)
    coords = torch.cat(
        [b * KI + kk * I + ii for b in (0, 2, 3)] + [4 * KI + kk * k + torch.arange(k).view(1, k), KI + kk * I + ii],
        1,
    )  # (K, m): U's column of each coordinate
    # Y's columns in terms of the coordinates: block b of Y is coordinate block `src`; the replica adds the difference
    rows = torch.cat([torch.arange(I), torch.arange(I, 3 * I), torch.arange(3 * I, 3 * I + k)])  # signal..spectrum
    dev = torch.device(spec.device)
    coords, rows = coords.to(dev), rows.to(dev)

    def product(U: torch.Tensor, Y: torch.Tensor) -> None:
        S = U.shape[0]
        Ub = U[:, :, : 4 * KI].view(S, N, 4, K, I)
        Ub[:, :, 1].sub_(Ub[:, :, 0])  # the replica difference, in place
        Gf = torch.bmm(U.mT, U)  # (S, C, C)
        G = Gf[:, coords.unsqueeze(-1), coords.unsqueeze(-2)].double()  # (S, K, m, m)
        if xi != 1.0:
            col = U.sum(1).double()[:, coords]  # (S, K, m)
            G = G + ((xi - 1.0) / N) * (col.unsqueeze(-1) * col.unsqueeze(-2))
        F = sqrt_factor(G).to(U.dtype)  # (S, K, m, m), rows: coordinates, columns: draws
        Fy = F[:, :, rows]  # (S, K, 3I + k, m): signal, tangent, probe, spectrum
        Ft = torch.empty(S, m, Y.shape[-1], dtype=U.dtype, device=U.device)
        Ftb = Ft[:, :, : 4 * KI].view(S, m, 4, K, I)
        for b, j in ((0, 0), (2, I), (3, 2 * I)):
            Ftb[:, :, b].copy_(Fy[:, :, j : j + I].permute(0, 3, 1, 2))
        torch.add(Fy[:, :, :I], F[:, :, m - I :], out=Ftb[:, :, 1].permute(0, 2, 3, 1))  # replica = signal + diff
        if k:
            Ft[:, :, 4 * KI :].view(S, m, K, k).copy_(Fy[:, :, 3 * I :].permute(0, 3, 1, 2))
        E = rand.normal(STREAM_CHAIN, (N, m), U.dtype)  # (S, N, m), shared by every sigma_w2
        torch.bmm(E, Ft, out=Y)

    return product


def tangent_chain(
    spec: ChainSpec, burn_in: int, dtype: str = "float64", kernel: str = "torch"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The typical exponent and q_hat^L of one input per network by the exact chain of (signal, tangent) rows
    (docs/science.md §7a, state (k+1) x (k+1) with k = 1): per layer the 2 x 2 kernel of (phi(h), phi'(h) t),
    N fresh rows (h', t') from it, growth (1/2) ln(||t'||^2 / ||t||^2), t renormalized. The engine's
    `lambda_tangent` (docs/science.md §3) at O(N) per layer, for crossings at high precision.

    Layer 0 is the engine's: input 0 of `layer0_inputs` (exact q0) and the unit tangent of STREAM_TANGENT column 0.

    Args:
        spec: the chain; n_inputs must be 1 (c0 is unused).
        burn_in: first transition of the layer average (transitions burn_in .. depth-1, as `network_values`).
        dtype: "float64" or "float32", precision of the per-unit rows and their sums over the width (the 2 x 2
            kernels, factors and logs are float64 either way); float32 is ~3x faster (float64 tanh is ~8x
            slower than float32 on the CPU) at a relative rounding of ~1e-6 per kernel entry.
        kernel: "torch" (tensor passes, any activation and device) or "fused" (one C loop per layer and
            sigma_w2, `pipeline.dynamics.native`: CPU, float32 rows, tanh/erf/relu/linear; the same draws and
            the same law, equal to the torch path up to float32 rounding; 2-3x faster).

    Returns:
        (lam, q_L): float64 tensors (K, S): the per-network exponent per layer (natural log, of the norm) and
        q_hat^L = (1/N) ||h^L||^2.
    """
    spec.check()
    if spec.n_inputs != 1:
        raise ValueError(f"ChainSpec.n_inputs={spec.n_inputs}: tangent_chain follows one input (allowed: 1)")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}: allowed float32, float64")
    if not 0 <= burn_in < spec.depth:
        raise ValueError(f"burn_in={burn_in}: allowed 0 .. depth-1 = {spec.depth - 1}")
    if kernel not in ("torch", "fused"):
        raise ValueError(f"kernel={kernel!r}: allowed torch, fused")
    if kernel == "fused":
        check_fused(spec.activation, spec.device, dtype)
    # networks in chunks of ~64k numbers per array: the per-layer arrays stay in cache (one network's numbers do
    # not depend on its chunk: one generator per network)
    size = max(1, CHUNK_NUMBERS // (len(spec.sigma_w2) * spec.width))
    end = spec.first_network + spec.n_networks
    dt = getattr(torch, dtype)
    chunk = _tangent_chunk_fused if kernel == "fused" else _tangent_chunk
    parts = [chunk(spec, burn_in, dt, list(range(a, min(a + size, end)))) for a in range(spec.first_network, end, size)]
    return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)


def _tangent_chunk(spec: ChainSpec, burn_in: int, dt: torch.dtype, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """`tangent_chain` for the networks `ids`.

    After layer 0 the rows are never formed: layer l's rows are h = f11 e1, t = (f21 e1 + f22 e2)/||t|| with
    (e1, e2) the layer's standard normals (shared by every sigma_w2), so the next 2 x 2 kernel needs only six
    sums over the width: phi^2, phi phi' against (e1, e2), phi'^2 against (e1^2, e1 e2, e2^2) [, phi and phi'
    against (e1, e2) for the gauge]: two small batched products per layer (one product against all six
    monomials computed 18 sums, 12 unused: 1.4-1.6x slower), and ||t||^2 from the float64 sums of (e1^2, e1 e2,
    e2^2).
    """
    act = get_activation(spec.activation)
    dev, f64 = torch.device(spec.device), torch.float64
    S, K, N, L = len(ids), len(spec.sigma_w2), spec.width, spec.depth
    gain = torch.tensor(spec.sigma_w2, dtype=f64, device=dev).view(1, K) / N
    rand = NetworkStreams(spec.seed, ids, dev)
    c = (spec.xi - 1.0) / N
    g11, g12, g22 = (g.unsqueeze(1) for g in _layer0_kernel(spec, ids, rand))
    # per-layer scratch: rows (S, K, N); a block's draws as drawn, (S, RAND_BLOCK, N, 2) float32, and as rows
    # e1, e2 in dt, (S, RAND_BLOCK, 2, N); the current draw's monomials (e1^2, e1 e2, e2^2), (S, 3, N), kept for
    # the next layer's kernel (every elementwise operand contiguous: strided ones were 2x slower)
    h, a, d, ad = (torch.empty(S, K, N, dtype=dt, device=dev) for _ in range(4))
    draws = torch.empty(S, RAND_BLOCK, N, 2, dtype=torch.float32, device=dev)
    rows = torch.empty(S, RAND_BLOCK, 2, N, dtype=dt, device=dev)
    E2 = torch.empty(S, 3, N, dtype=dt, device=dev)
    total = torch.zeros(S, K, dtype=f64, device=dev)
    e = f11 = f21 = f22 = ct = None  # the draw and the factor of the previous transition
    for layer in range(L):
        if layer:  # the kernel of layer `layer` from its implicit rows, e = the previous transition's draw
            torch.mul(f11.to(dt).unsqueeze(-1), e[:, None, 0], out=h)
            act.phi_and_slope(h, a, d)
            # the six sums the next kernel needs: sum a^2, sum a d (e1, e2), sum d^2 (e1^2, e1 e2, e2^2)
            torch.mul(a, d, out=ad)
            s_ad = torch.bmm(ad, e.mT).double()  # (S, K, 2)
            if c:  # the gauge's sums of a and of the tangent's slope row, before d is squared in place
                sa, sd = a.sum(-1).double(), torch.bmm(d, e.mT).double()
            s_dd = torch.bmm(d.mul_(d), E2.mT).double()  # (S, K, 3)
            g11 = torch.linalg.vecdot(a, a).double()
            g12 = ct * (f21 * s_ad[..., 0] + f22 * s_ad[..., 1])
            g22 = (ct * ct) * (f21 * f21 * s_dd[..., 0] + 2 * f21 * f22 * s_dd[..., 1] + f22 * f22 * s_dd[..., 2])
            if c:
                sb_ = ct * (f21 * sd[..., 0] + f22 * sd[..., 1])
                g11, g12, g22 = g11 + c * sa * sa, g12 + c * sa * sb_, g22 + c * sb_ * sb_
        g11 = gain * g11 + spec.sigma_b2
        g12, g22 = gain * g12, gain * g22
        f11 = g11.sqrt()
        f21 = torch.where(f11 > 0, g12 / f11, torch.zeros_like(g12))
        f22 = (g22 - f21 * f21).clamp_min(0.0).sqrt()
        if layer % RAND_BLOCK == 0:  # the previous block's last draw was used above: its buffer is free
            rows.copy_(rand.normal(STREAM_CHAIN, (RAND_BLOCK, N, 2), torch.float32, out=draws).mT)
        e = rows[:, layer % RAND_BLOCK]  # (S, 2, N)
        torch.mul(e, e, out=E2[:, 0:3:2])
        torch.mul(e[:, 0], e[:, 1], out=E2[:, 1])
        ee = E2.sum(-1, dtype=f64).unsqueeze(1)  # (S, 1, 3): sums of e1^2, e1 e2, e2^2 in float64
        # ||t||^2 of the drawn tangent t = f21 e1 + f22 e2: 0 where every slope vanished (ReLU, all units
        # off): the network turns NaN, dropped
        tt = f21 * f21 * ee[..., 0] + 2 * f21 * f22 * ee[..., 1] + f22 * f22 * ee[..., 2]
        if layer >= burn_in:
            total += 0.5 * tt.log()
        ct = tt.rsqrt()  # t enters the next kernel at unit norm
    lam = total / (L - burn_in)
    q_L = f11 * f11 * ee[..., 0] / N
    return lam.T.contiguous(), q_L.T.contiguous()


def _layer0_kernel(spec: ChainSpec, ids: list[int], rand: NetworkStreams) -> tuple[torch.Tensor, ...]:
    """(g11, g12, g22), each (S,), float64: layer 0's kernel of (phi(h), phi'(h) t) before the gain, from the
    engine's actual input (input 0 of `layer0_inputs`) and unit tangent (STREAM_TANGENT column 0), the same for
    every sigma_w2."""
    dev, N, c = torch.device(spec.device), spec.width, (spec.xi - 1.0) / spec.width
    h = layer0_inputs(spec.seed, ids, N, 1, spec.q0, spec.c0, dev)[..., 0]
    t = rand.normal(STREAM_TANGENT, (N, 2), torch.float64)[..., 0]
    t = t / t.norm(dim=-1, keepdim=True)
    a, d = torch.empty_like(h), torch.empty_like(h)
    get_activation(spec.activation).phi_and_slope(h, a, d)
    b = d.mul_(t)
    g11, g12, g22 = ((a * a).sum(-1), (a * b).sum(-1), (b * b).sum(-1))
    if c:
        sa, sb_ = a.sum(-1), b.sum(-1)
        g11, g12, g22 = g11 + c * sa * sa, g12 + c * sa * sb_, g22 + c * sb_ * sb_
    return g11, g12, g22


def choose_kernel(requested: str, activation: str, device: str) -> str:
    """The tangent_chain kernel for a `chain.kernel` value: auto is fused where it runs (activation, CPU, a C
    compiler), else torch; torch and fused are taken as asked (fused checked by `check_fused`)."""
    if requested != "auto":
        return requested
    ok = activation in native.ACTIVATIONS and torch.device(device).type == "cpu" and native.available() is None
    return "fused" if ok else "torch"


def check_fused(activation: str, device: str, dtype: str = "float32") -> None:
    """One-line ValueError when the fused kernel cannot run this chain (names the field and the allowed values);
    NativeUnavailable when it cannot be built here."""
    if activation not in native.ACTIVATIONS:
        raise ValueError(f"activation={activation!r} with chain kernel=fused: allowed {', '.join(native.ACTIVATIONS)} "
                         "(other activations: kernel=torch)")  # fmt: skip
    if torch.device(device).type != "cpu":
        raise ValueError(f"device={device!r} with chain kernel=fused: allowed cpu (on a GPU: kernel=torch)")
    if dtype != "float32":
        raise ValueError(f"dtype={dtype!r} with chain kernel=fused: allowed float32 (its rows are float32)")
    native.library()


def _tangent_chunk_fused(spec: ChainSpec, burn_in: int, dt: torch.dtype, ids: list[int]) -> tuple[torch.Tensor, ...]:
    """`_tangent_chunk` by the fused C loop (`native`): the same draws, layer 0 and arithmetic per network, in
    one pass over the units per layer and sigma_w2 (rows float32, sums float32 in 16 fixed lanes, scalars float64)."""
    f64, S, K, N, L = torch.float64, len(ids), len(spec.sigma_w2), spec.width, spec.depth
    rand = NetworkStreams(spec.seed, ids, torch.device("cpu"))
    g0 = torch.stack(_layer0_kernel(spec, ids, rand), -1).unsqueeze(1).expand(S, K, 3).contiguous()
    gain = torch.tensor(spec.sigma_w2, dtype=f64) / N
    state, ee = torch.zeros(S, K, 5, dtype=f64), torch.zeros(S, 3, dtype=f64)
    prev, scratch = torch.empty(S, 2, N, dtype=torch.float32), torch.empty(5 * N, dtype=torch.float32)
    draws = torch.empty(S, RAND_BLOCK, N, 2, dtype=torch.float32)
    lib, code = native.library(), native.ACTIVATIONS[spec.activation]
    for l0 in range(0, L, RAND_BLOCK):
        rand.normal(STREAM_CHAIN, (RAND_BLOCK, N, 2), torch.float32, out=draws)
        lib.tangent_block(code, S, K, N, l0, min(RAND_BLOCK, L - l0), RAND_BLOCK, burn_in, gain.data_ptr(),
                          float(spec.sigma_b2), (spec.xi - 1.0) / N, draws.data_ptr(), prev.data_ptr(),
                          g0.data_ptr(), state.data_ptr(), ee.data_ptr(), scratch.data_ptr())  # fmt: skip
    lam = state[..., 4] / (L - burn_in)
    q_L = state[..., 0] ** 2 * ee[:, None, 0] / N
    return lam.T.contiguous(), q_L.T.contiguous()
