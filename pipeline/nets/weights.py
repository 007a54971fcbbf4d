"""Random weights, biases and vectors of seeded network ensembles, independent of batching.

Every network (base seed, network id) owns one generator per stream (weights, biases, inputs,
probes, ...), seeded once by hashing (base seed, network id, stream) and then advanced layer by
layer. A network is therefore the same whether it is computed alone, in a chunk, or by another
launcher; seeding costs nothing per layer; and no two layers can share a seed (torch's CPU
generator keeps only 32 bits of a seed, so seeding every layer afresh risks collisions in deep
sweeps). Draws are made in float32 and cast, so float32 and float64 runs see the same networks.
Common random numbers: all sigma_w2 values of one network share the same standard-normal matrix Z.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.nets.seeding import seed_states

STREAM_WEIGHTS, STREAM_BIAS, STREAM_INPUT, STREAM_PROBE, STREAM_TANGENT, STREAM_SPECTRUM = range(6)
STREAM_CHAIN = 6  # the exact kernel chain's per-layer unit draws (pipeline.dynamics.chain, docs/science.md §7)


def generators(base_seed: int, seed_ids: list[int], stream: int, device: torch.device) -> list[torch.Generator]:
    """`generator` for many networks at once (one vectorized SeedSequence hash, `seeding.seed_states`: bitwise
    numpy's; values of 2^32 and above go through numpy's own SeedSequence, which splits them into words)."""
    ids = [int(i) for i in seed_ids]
    if 0 <= base_seed < 2**32 and all(0 <= i < 2**32 for i in ids):
        words = np.empty((len(ids), 3), dtype=np.uint32)
        words[:, 0], words[:, 1], words[:, 2] = base_seed, ids, stream
        states = seed_states(words)
    else:
        states = [np.random.SeedSequence([base_seed, i, stream]).generate_state(2, dtype=np.uint32) for i in ids]
    out = []
    for s in states:
        g = torch.Generator(device=device)
        g.manual_seed(int(s[0]) << 31 ^ int(s[1]))
        out.append(g)
    return out


def generator(base_seed: int, seed_id: int, stream: int, device: torch.device) -> torch.Generator:
    """A torch generator for one (network, stream), seeded from a hash of the three numbers.

    Seeding convention of docs/science.md §7 (Randomness): numpy's SeedSequence hashes the triple.

    Args:
        base_seed: base seed of the run.
        seed_id: network id.
        stream: one of the STREAM_* constants.
        device: device of the generator.

    Returns:
        A seeded `torch.Generator`.
    """
    return generators(base_seed, [seed_id], stream, device)[0]


class NetworkStreams:
    """The random numbers of networks `seed_ids`, drawn in order: call once per layer, in layer order.

    One generator per (network, stream), created on first use (docs/science.md §7).

    Args:
        base_seed: base seed of the run.
        seed_ids: network ids; the leading axis of every draw follows this order.
        device: device of generators and draws.
    """

    def __init__(self, base_seed: int, seed_ids: list[int], device: torch.device):
        self.base_seed, self.seed_ids, self.device = base_seed, list(seed_ids), torch.device(device)
        self._gens: dict[int, list[torch.Generator]] = {}
        self._bufs: dict[tuple[int, ...], torch.Tensor] = {}  # float32 scratch per draw shape

    def normal(
        self, stream: int, shape: tuple[int, ...], dtype: torch.dtype, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The next i.i.d. N(0, 1) draws of `stream`, shape (networks, *shape), into `out` if given
        (engines reuse buffers: a fresh multi-MB tensor per layer costs page faults).

        Draws are always made in float32 and then cast, so float32 and float64 runs see the same numbers.

        Args:
            stream: one of the STREAM_* constants.
            shape: per-network shape of the draw.
            dtype: dtype of the returned tensor when `out` is None.
            out: optional buffer of shape (networks, *shape); its dtype wins over `dtype`.

        Returns:
            Tensor of shape (len(seed_ids), *shape) (`out` itself when given).
        """
        if stream not in self._gens:
            self._gens[stream] = generators(self.base_seed, self.seed_ids, stream, self.device)
        shape = (len(self.seed_ids), *shape)
        direct = out is not None and out.dtype == torch.float32
        draw = out if direct else self._scratch(shape)
        for k, g in enumerate(self._gens[stream]):
            draw[k].normal_(generator=g)
        if direct:
            return out
        return out.copy_(draw) if out is not None else draw.to(dtype, copy=True)

    def _scratch(self, shape: tuple[int, ...]) -> torch.Tensor:
        if shape not in self._bufs:
            self._bufs[shape] = torch.empty(shape, dtype=torch.float32, device=self.device)
        return self._bufs[shape]

    def weights(
        self, width: int, kind: str, xi: float, dtype: torch.dtype, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The next layer's Z, shape (networks, N, N), such that W = sqrt(sigma_w2 / N) Z.

        gaussian: Z i.i.d. N(0, 1), then the gauge structure Z (P_T + sqrt(xi) P_L) of docs/science.md §4
        (row means rescaled by sqrt(xi); xi = 1 leaves Z unchanged, xi = 0 makes rows sum to zero).
        orthogonal: sqrt(N) times a Haar orthogonal matrix (W W^T = sigma_w2 I), by QR of a Gaussian matrix
        in float64 with the sign fix (Pennington et al. 2017, arXiv:1711.04735; docs/science.md §2).

        Args:
            width: N.
            kind: "gaussian" or "orthogonal".
            xi: gauge parameter, python float >= 0 (ignored by "orthogonal").
            dtype: dtype of the result.
            out: optional buffer of shape (networks, N, N) for the gaussian draw (ignored by "orthogonal").

        Returns:
            Z, tensor of shape (len(seed_ids), N, N) in `dtype` (or `out`'s dtype).
        """
        if kind == "orthogonal":
            z = self.normal(STREAM_WEIGHTS, (width, width), torch.float64)
            q, r = torch.linalg.qr(z)
            return (q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)).to(dtype) * math.sqrt(width)
        z = self.normal(STREAM_WEIGHTS, (width, width), dtype, out=out)
        if xi != 1.0:
            z.add_(z.mean(dim=2, keepdim=True), alpha=math.sqrt(xi) - 1.0)
        return z
