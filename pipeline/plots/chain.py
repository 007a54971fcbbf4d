"""The exact kernel chain's finite-width crossings (docs/science.md §6, §7a): N (crossing - mean field) against 1/N."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.plots.prepare import cases as config_cases


def has_chain_crossings(loop: pd.DataFrame) -> bool:
    """Whether any job of the sweep measured a chain crossing (mlp_sweep `chain.network_width` > 0)."""
    return "crossing_chain" in loop and bool(np.isfinite(pd.to_numeric(loop.crossing_chain, errors="coerce")).any())


def shift_vs_inverse_width(loop: pd.DataFrame, path: Path, keys=()) -> None:
    """Per configuration: N (crossing_chain - mean field at the same depth) +- N SE against 1/N (points), with
    N (one loop - mean field) (line) and, for bias-free ReLU, N (exact - mean field) (dotted). At one loop the
    points lie on a horizontal line near 1/N = 0; the slope is the next order (N^2 column of the table)."""
    cases = config_cases(loop, keys, exclude=("width", "group"))
    cols = min(3, len(cases))
    rows = -(-len(cases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False, constrained_layout=True)
    for ax, (name, d) in zip(axes.flat, cases):
        d = d.sort_values("width")
        n = d.width.astype(float)
        mf = d.crossing_mean_field_finite_depth.where(d.crossing_mean_field_finite_depth.notna(), d.crossing_mean_field)
        x = 1.0 / n
        ax.errorbar(x, n * (d.crossing_chain - mf), yerr=n * d.crossing_chain_se, fmt="o", ms=4, color="k",
                    label="chain +- SE")  # fmt: skip
        if d.crossing_one_loop.notna().any():
            ax.plot(x, n * (d.crossing_one_loop - mf), "-", color="C1", label="one loop")
        if d.crossing_exact.notna().any():
            ax.plot(x, n * (d.crossing_exact - mf), ":", color="C2", lw=2, label="exact (ReLU)")
        ax.set_xscale("log")
        ax.set(title=name, xlabel="1/N", ylabel=r"$N(\sigma_w^{2*} - $ mean field$)$")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)
