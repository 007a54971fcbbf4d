"""Loop-correction figures (docs/science.md §6): crossings against 1/N, and q_hat fluctuations against layer."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.plots.prepare import cases as config_cases
from pipeline.status import mask_invalid


def _title(name: str, d: pd.DataFrame) -> str:
    sb = d.sigma_b2.iloc[0]
    return name if "sigma_b2=" in name else f"{name}, $\\sigma_b^2$={sb:g}"


def crossings_vs_inverse_width(loop: pd.DataFrame, path: Path, keys=()) -> None:
    """Per configuration (activation, sigma_b2, depth, xi, swept config `keys`): measured crossing +- SE against
    1/N, with mean field, one loop and exact ReLU; a line never joins two configurations. A one-loop value whose
    `one_loop_status` is not ok is not drawn (pipeline.status.mask_invalid): its status is written at its width."""
    if "one_loop_status" in loop:
        loop = loop.assign(one_loop_status=loop.one_loop_status.fillna("not_derived"))
        loop = mask_invalid(loop, ["crossing_one_loop", "crossing_one_loop_deep"], "one_loop_status")
    cases = config_cases(loop, keys, exclude=("width", "group"))
    cols = min(3, len(cases))
    rows = -(-len(cases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False, constrained_layout=True)
    for ax, (name, d) in zip(axes.flat, cases):
        d = d.sort_values("width")
        x = 1.0 / d.width
        ax.errorbar(x, d.crossing_measured, yerr=d.crossing_se, fmt="o", ms=4, color="k", label="measured +- SE")
        ax.plot(x, d.crossing_mean_field, "--", color="grey", label="mean field")
        if "crossing_mean_field_finite_depth" in d and d.crossing_mean_field_finite_depth.notna().any():
            ax.plot(x, d.crossing_mean_field_finite_depth, ":", color="grey", label="mean field, same depth")
        if d.crossing_one_loop.notna().any():
            ax.plot(x, d.crossing_one_loop, "-", color="C1", label="one loop, same depth")
        if d.crossing_exact.notna().any():
            ax.plot(x, d.crossing_exact, ":", color="C2", lw=2, label="exact (ReLU)")
        flagged = d[d.one_loop_status != "ok"] if "one_loop_status" in d else d.iloc[:0]
        for xx, status in zip(1.0 / flagged.width, flagged.one_loop_status):
            ax.annotate(str(status), (xx, ax.get_ylim()[0]), fontsize=6, rotation=90, va="bottom", color="C3")
        ax.set(title=_title(name, d), xlabel="1/N", ylabel=r"zero crossing $\sigma_w^{2*}$")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fluctuations_vs_layer(fl: pd.DataFrame, path: Path, keys=()) -> None:
    """N Var(q_hat^l) and N (E q_hat^l - K^l) per layer (points +- SE) with the one-loop curves (lines), one row
    per configuration (activation, sigma_b2, width, depth, xi, swept config `keys`)."""
    cases = config_cases(fl, keys, exclude=("sigma_w2", "layer"))
    fig, axes = plt.subplots(len(cases), 2, figsize=(11, 3.4 * len(cases)), squeeze=False, constrained_layout=True)
    for i, (name, d) in enumerate(cases):
        n = d.width.iloc[0]
        name = _title(name, d) + ("" if "width=" in name else f", N={n}")
        sws = sorted(d.sigma_w2.unique())
        for sw, color in zip(sws, sns.color_palette("viridis", len(sws))):
            e = d[np.isclose(d.sigma_w2, sw)].sort_values("layer")
            for j, (col, label) in enumerate(
                (("N_var_q", r"$N\,\mathrm{Var}(\hat q^l)$"), ("N_mean_shift", r"$N\,(E\hat q^l - K^l)$"))
            ):
                ax = axes[i, j]
                ax.errorbar(e.layer, e[col], yerr=e[f"{col}_se"], fmt="o", ms=2.5, lw=0.8, color=color,
                            label=rf"$\sigma_w^2$={sw:g}")  # fmt: skip
                ax.plot(e.layer, e[f"{col}_one_loop"], "-", color=color, lw=1.2)
                ax.set(title=f"{name}: {label}", xlabel="layer l")
        axes[i, 0].legend(fontsize=7, title="points: measured; lines: one loop", title_fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
