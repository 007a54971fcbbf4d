"""Layer-by-layer mean-field iterates q11^l, q22^l, q12^l, c^l of two inputs (docs/science.md §1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .gaussian import GaussianIntegrator
from .mean_field import as_t, chi1, correlation_map, variance_map


def layer_iterates(
    g: GaussianIntegrator,
    sigma_w2,
    sigma_b2: float,
    depth: int,
    q11: float = 1.0,
    q22: float = 1.0,
    c0: float = 0.5,
    xi: float = 1.0,
) -> pd.DataFrame:
    """Iterate the variance and correlation maps from pre-activation statistics of layer 0.

    `sigma_w2` may be a scalar or a 1-D grid (vectorized). Row (sigma_w2, l) holds the statistics
    of h^l (layer 0 = the given start values) and chi1 = sigma_w2 E phi'(h^l)^2 at that layer,
    with h^l ~ N(0, q11^l) (the first input). Maps: `variance_map` and `correlation_map` of
    docs/science.md §1 (Poole et al. 2016, arXiv:1606.05340), with the (1 - xi) terms of §4.

    Args:
        g: Gaussian integrator of the activation phi.
        sigma_w2: weight variance, float or 1-D array-like/tensor (flattened); float64.
        sigma_b2: bias variance, python float.
        depth: number of layers L; layers 0..L are returned.
        q11: layer-0 variance of input 1.
        q22: layer-0 variance of input 2.
        c0: layer-0 correlation of the two inputs.
        xi: gauge parameter.

    Returns:
        DataFrame with (L + 1) rows per sigma_w2, sorted by (sigma_w2, layer), and columns sigma_w2, layer
        (int), q11, q22, q12, c = q12 / sqrt(q11 q22), chi1 (all others float64).
    """
    sw = as_t(sigma_w2).reshape(-1)
    a = torch.full_like(sw, q11)
    b = torch.full_like(sw, q22)
    ab = as_t(c0) * torch.sqrt(a * b)
    frames = []
    for layer in range(depth + 1):
        frames.append(
            np.stack(
                [
                    sw.numpy(),
                    np.full(sw.numel(), layer),
                    a.numpy(),
                    b.numpy(),
                    ab.numpy(),
                    (ab / torch.sqrt(a * b)).numpy(),
                    chi1(g, a, sw).numpy(),
                ],
                1,
            )
        )
        a_next = variance_map(g, a, sw, sigma_b2, xi)
        b_next = a_next if torch.equal(a, b) else variance_map(g, b, sw, sigma_b2, xi)  # equal inputs: map once
        a, b, ab = a_next, b_next, correlation_map(g, a, b, ab, sw, sigma_b2, xi)
    df = pd.DataFrame(np.concatenate(frames), columns=["sigma_w2", "layer", "q11", "q22", "q12", "c", "chi1"])
    df["layer"] = df.layer.astype(int)
    return df.sort_values(["sigma_w2", "layer"], kind="stable").reset_index(drop=True)
