"""Finite-width figures: measured vs theory per width, 1/N collapse, layer profiles."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.plots.prepare import pick_evenly


def _errorbars(ax, d: pd.DataFrame, x: str, y: str, hue: str, palette) -> None:
    for (key, g), color in zip(d.groupby(hue), palette):
        ax.errorbar(g[x], g[y], yerr=g.get(f"{y}_se"), fmt="o", ms=3, lw=1, color=color, label=f"{hue}={key}")


def measured_vs_theory(sweep: pd.DataFrame, path: Path, hue: str = "width") -> None:
    """q^L, c^L, chi and lambda vs sigma_w2: points (measured, +-SE) per `hue`, lines = theory."""
    acts = list(dict.fromkeys(sweep.activation))
    panels = [
        ("q_L", "q_L_theory", r"$q^L$"),
        ("c_L", "c_L_theory", r"$c^L$"),
        ("chi", "chi1", r"gain $\chi$ vs $\chi_1$"),
        ("lambda_replica", "lambda_mf", r"$\lambda$ per layer"),
    ]
    fig, axes = plt.subplots(len(acts), 4, figsize=(16, 3.6 * len(acts)), squeeze=False, constrained_layout=True)
    for i, act in enumerate(acts):
        d = sweep[sweep.activation == act].sort_values("sigma_w2")
        palette = sns.color_palette("viridis", d[hue].nunique())
        for j, (meas, theo, label) in enumerate(panels):
            ax = axes[i, j]
            _errorbars(ax, d, "sigma_w2", meas, hue, palette)
            th = d.drop_duplicates("sigma_w2") if theo in ("chi1", "lambda_mf") else d[d[hue] == d[hue].max()]
            ax.plot(th.sigma_w2, th[theo], "k-", lw=1.2, label="mean field")
            if meas in ("chi", "lambda_replica"):
                ax.axhline(1.0 if meas == "chi" else 0.0, color="grey", ls="--", lw=0.8)
            if meas == "q_L" and np.nanmax(d[meas]) / max(np.nanmin(d[meas]), 1e-300) > 1e3:
                ax.set_yscale("log")
            ax.set(title=f"{act}: {label}", xlabel=r"$\sigma_w^2$")
        axes[i, 0].legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def collapse(fw: pd.DataFrame, path: Path) -> None:
    """(measured - theory) x N vs sigma_w2 per width and (activation, sigma_b2): coinciding curves show the 1/N
    scaling; the black line is the one-loop prediction of N (lambda - lambda_MF) where the table carries it."""
    cases = list(fw.groupby(["activation", "sigma_b2"], sort=False))
    cols = [
        ("dlogq_L_times_N", r"$(\ln q^L - \ln q^L_{MF})\,N$"),
        ("dlambda_times_N", r"$(\lambda - \lambda_{MF})\,N$"),
    ]
    fig, axes = plt.subplots(len(cases), 2, figsize=(10, 3.6 * len(cases)), squeeze=False, constrained_layout=True)
    for i, ((act, sb), d) in enumerate(cases):
        palette = sns.color_palette("viridis", d.width.nunique())
        for j, (col, label) in enumerate(cols):
            _errorbars(axes[i, j], d, "sigma_w2", col, "width", palette)
            axes[i, j].axhline(0, color="grey", lw=0.8)
            axes[i, j].set(title=f"{act}, $\\sigma_b^2$={sb:g}: {label}", xlabel=r"$\sigma_w^2$")
        if "dlambda_times_N_one_loop" in d and d.dlambda_times_N_one_loop.notna().any():
            th = d.drop_duplicates("sigma_w2").sort_values("sigma_w2")
            axes[i, 1].plot(th.sigma_w2, th.dlambda_times_N_one_loop, "k-", lw=1.4, label="one loop")
            lo, hi = np.nanpercentile(d.dlambda_times_N, [2, 98])
            axes[i, 1].set_ylim(min(lo, np.nanmin(th.dlambda_times_N_one_loop)) - 0.5, hi + 0.5)
        axes[i, 0].legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def layer_profiles(layers: pd.DataFrame, path: Path, n_curves: int = 4) -> None:
    """q^l and c^l against layer for a few sigma_w2: markers measured, lines theory."""
    pick = pick_evenly(layers.sigma_w2, n_curves)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    for sw, color in zip(pick, sns.color_palette("viridis", len(pick))):
        d = layers[np.isclose(layers.sigma_w2, sw)]
        a.plot(d.layer, d.q, "o", ms=2.5, color=color, label=rf"$\sigma_w^2$={sw:.2f}")
        a.plot(d.layer, d.q_theory, "-", color=color, lw=1)
        b.plot(d.layer, d.c, "o", ms=2.5, color=color)
        b.plot(d.layer, d.c_theory, "-", color=color, lw=1)
    if layers.q.max() / max(layers.q.min(), 1e-300) > 1e3:
        a.set_yscale("log")
    a.set(xlabel="layer l", ylabel=r"$q^l$", title="variance (markers: measured, lines: mean field)")
    b.set(xlabel="layer l", ylabel=r"$c^l$", title="correlation")
    a.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
