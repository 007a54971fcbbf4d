"""The real baseline: a tanh MLP of matching width and depth, initialised at (sigma_w2, sigma_b2)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """x -> L hidden layers phi(W h + b) of width N -> linear readout; W ~ N(0, sigma_w2 / fan_in)."""

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
        from pipeline.activations import get_activation

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
        h = x
        for lin in self.layers:
            h = self.phi(lin(h))
        return self.readout(h)
