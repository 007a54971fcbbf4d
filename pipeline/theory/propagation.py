"""Layer-by-layer mean-field iterates q11^l, q22^l, q12^l, c^l of two inputs (science.md §1)."""
from __future__ import annotations

import pandas as pd
import torch

from .gaussian import GaussianIntegrator
from .mean_field import as_t, correlation_map, variance_map


def layer_iterates(
    g: GaussianIntegrator, sigma_w2: float, sigma_b2: float, depth: int,
    q11: float = 1.0, q22: float = 1.0, c0: float = 0.5, xi: float = 1.0,
) -> pd.DataFrame:
    """Iterate the variance and correlation maps from pre-activation statistics of layer 0.

    Row l holds the statistics of h^l (layer 0 = the given start values), so row `depth` is the
    network output that finite-width stages measure.
    """
    a, b = as_t(q11), as_t(q22)
    ab = as_t(c0) * torch.sqrt(a * b)
    rows = []
    for layer in range(depth + 1):
        rows.append((layer, float(a), float(b), float(ab), float(ab / torch.sqrt(a * b))))
        a, b, ab = (variance_map(g, a, sigma_w2, sigma_b2, xi), variance_map(g, b, sigma_w2, sigma_b2, xi),
                    correlation_map(g, a, b, ab, sigma_w2, sigma_b2, xi))
    return pd.DataFrame(rows, columns=["layer", "q11", "q22", "q12", "c"])
