"""Random weight and bias draws, reproducible per (seed, network, layer), independent of batching.

Every draw comes from its own generator seeded by hashing (base seed, network seed id, layer,
stream), so a network is the same whether it is computed alone, in a chunk, or by another
launcher. Draws are made in float32 and cast, so float32 and float64 runs see the same networks.
Common random numbers: all sigma_w2 values of one seed share the same standard-normal matrix Z.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch

STREAM_WEIGHTS, STREAM_BIAS, STREAM_INPUT, STREAM_PROBE = 0, 1, 2, 3


def generator(base_seed: int, seed_id: int, layer: int, stream: int, device: torch.device) -> torch.Generator:
    """A torch generator for one (seed, network, layer, stream) cell."""
    state = np.random.SeedSequence([base_seed, seed_id, layer, stream]).generate_state(2, dtype=np.uint32)
    g = torch.Generator(device=device)
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    """Threads for CPU draws: torch's normal sampler is single-threaded and releases the GIL."""
    return ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()))


def _fill_normal(buf: torch.Tensor, gens: list[torch.Generator], parallel: bool = True) -> None:
    """buf[k] ~ N(0, 1) from gens[k], in parallel over k on the CPU unless parallel=False."""
    if buf.device.type != "cpu" or len(gens) == 1 or not parallel:
        for k, g in enumerate(gens):
            buf[k].normal_(generator=g)
        return
    list(_pool().map(lambda k: buf[k].normal_(generator=gens[k]), range(len(gens))))


def standard_weights(
    base_seed: int, seed_ids: list[int], layer: int, width: int, kind: str, xi: float,
    device: torch.device, dtype: torch.dtype, parallel: bool = True,
) -> torch.Tensor:
    """Z of shape (S, N, N) such that W = sqrt(sigma_w2 / N) Z has the configured ensemble.

    gaussian: Z i.i.d. N(0, 1), then the gauge structure Z (P_T + sqrt(xi) P_L) of science.md §4
    (row means rescaled by sqrt(xi); xi = 1 leaves Z unchanged, xi = 0 makes rows sum to zero).
    orthogonal: sqrt(N) times a Haar orthogonal matrix (W W^T = sigma_w2 I).
    """
    gens = [generator(base_seed, sid, layer, STREAM_WEIGHTS, device) for sid in seed_ids]
    z = torch.empty(len(seed_ids), width, width, dtype=torch.float32, device=device)
    _fill_normal(z, gens, parallel)
    z = z.to(dtype)
    if kind == "orthogonal":
        q, r = torch.linalg.qr(z.double())
        z = (q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)).to(dtype) * math.sqrt(width)
    elif xi != 1.0:
        z = z + (math.sqrt(xi) - 1.0) * z.mean(dim=2, keepdim=True)
    return z


def standard_vectors(
    base_seed: int, seed_ids: list[int], layer: int, stream: int, shape: tuple[int, ...],
    device: torch.device, dtype: torch.dtype,
) -> torch.Tensor:
    """i.i.d. N(0, 1) draws of shape (S, *shape) for biases, inputs and probe vectors."""
    out = torch.empty(len(seed_ids), *shape, dtype=torch.float32, device=device)
    for k, sid in enumerate(seed_ids):
        out[k].normal_(generator=generator(base_seed, sid, layer, stream, device))
    return out.to(dtype)
