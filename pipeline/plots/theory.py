"""Mean-field figures: phase diagram with the critical line, chi_1 and depth_scale_c vs sigma_w2, iterates."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm

from pipeline.plots.prepare import gain_depth_curves, ln_chi1_grid, pick_evenly


def phase_diagram(theory: pd.DataFrame, critical: pd.DataFrame, path: Path) -> None:
    """ln chi_1 over (sigma_w2, sigma_b2) per activation (blue ordered, red chaotic) + chi_1 = 1 line."""
    acts = list(dict.fromkeys(theory["activation"]))
    fig, axes = plt.subplots(1, len(acts), figsize=(4.6 * len(acts), 4), squeeze=False, constrained_layout=True)
    for ax, act in zip(axes[0], acts):
        pivot = ln_chi1_grid(theory, act)
        z = pivot.values
        finite = np.abs(z[np.isfinite(z)])
        if not finite.size:  # every point's status is not ok: NaN by the status rule, nothing to draw
            ax.text(0.5, 0.5, f"{act}: no verified value\n(see q_status / quad_status)", ha="center", va="center")
            ax.set_axis_off()
            continue
        lim = max(1e-3, float(finite.max()))
        mesh = ax.pcolormesh(
            pivot.columns, pivot.index, z, cmap="RdBu_r", shading="auto", norm=TwoSlopeNorm(0.0, -lim, lim)
        )
        crit = critical[(critical.activation == act) & critical.found]
        ax.plot(crit.sigma_w2_crit, crit.sigma_b2, "k-o", ms=3, lw=1.5, label=r"$\chi_1 = 1$")
        ax.set(
            title=f"{act}: ordered (blue) / chaotic (red)",
            xlabel=r"$\sigma_w^2$",
            ylabel=r"$\sigma_b^2$",
            xlim=(pivot.columns.min(), pivot.columns.max()),
            ylim=(pivot.index.min(), pivot.index.max()),
        )
        ax.legend(loc="upper left", fontsize=8)
        fig.colorbar(mesh, ax=ax, label=r"$\ln \chi_1$")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gain_and_depth(theory: pd.DataFrame, path: Path, n_curves: int = 4) -> None:
    """chi_1 (top) and depth_scale_c (bottom) vs sigma_w2 for a few sigma_b2 per activation."""
    acts = list(dict.fromkeys(theory["activation"]))
    fig, axes = plt.subplots(
        2, len(acts), figsize=(4.6 * len(acts), 6.5), squeeze=False, sharex="col", constrained_layout=True
    )
    pick = pick_evenly(theory.sigma_b2, n_curves)
    for j, act in enumerate(acts):
        d = gain_depth_curves(theory, act, pick)
        sns.lineplot(d, x="sigma_w2", y="chi1", hue="sigma_b2", ax=axes[0, j], palette="viridis")
        axes[0, j].axhline(1, color="k", ls="--", lw=1)
        axes[0, j].set(title=act, ylabel=r"$\chi_1$")
        sns.lineplot(d, x="sigma_w2", y="depth_scale_c", hue="sigma_b2", ax=axes[1, j], palette="viridis", legend=False)
        axes[1, j].set(yscale="log", xlabel=r"$\sigma_w^2$", ylabel=r"$\xi_c$ (layers)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def iterates(df: pd.DataFrame, title: str, path: Path) -> None:
    """q^l of both inputs and c^l against layer."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    a.plot(df.layer, df.q11, label=r"$q_{11}^l$")
    a.plot(df.layer, df.q22, "--", label=r"$q_{22}^l$")
    a.set(xlabel="layer l", ylabel="variance", title=title)
    a.legend()
    b.plot(df.layer, df.c, color="C2")
    b.set(xlabel="layer l", ylabel=r"$c^l$", ylim=(min(-0.05, df.c.min()), 1.05))
    fig.savefig(path, dpi=110)
    plt.close(fig)
