"""The real baseline: a tanh MLP of matching width and depth, initialised at (sigma_w2, sigma_b2)."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.activations import get_activation


class MLP(nn.Module):
    """x -> L hidden layers phi(W h + b) of width N -> linear readout; W ~ N(0, sigma_w2 / fan_in).

    The real baseline of the GINN experiments (docs/science.md §5, Note): b ~ N(0, sigma_b2) (zero if
    sigma_b2 = 0), readout V ~ N(0, 1/N) with zero bias, all drawn from one generator seeded by `seed`.

    Args:
        d_in: input dimension.
        width: hidden width N.
        depth: number of hidden layers L.
        n_out: number of outputs (classes).
        sigma_w2: weight variance.
        sigma_b2: bias variance.
        activation: activation name (`pipeline.activations.get_activation`).
        seed: seed of the initialisation.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        depth: int,
        n_out: int,
        sigma_w2: float,
        sigma_b2: float = 0.0,
        activation: str = "tanh",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.phi = get_activation(activation).phi
        gen = torch.Generator().manual_seed(seed)
        sizes = [d_in] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(width, n_out, dtype=dtype)
        with torch.no_grad():
            for lin in self.layers:
                lin.weight.normal_(0, math.sqrt(sigma_w2 / lin.in_features), generator=gen)
                lin.bias.normal_(0, math.sqrt(sigma_b2), generator=gen) if sigma_b2 > 0 else lin.bias.zero_()
            self.readout.weight.normal_(0, 1 / math.sqrt(width), generator=gen)
            self.readout.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            x: inputs, tensor of shape (B, d_in) in the parameter dtype.

        Returns:
            Tensor of shape (B, n_out).
        """
        h = x
        for lin in self.layers:
            h = self.phi(lin(h))
        return self.readout(h)
