"""Finite-width figures: measured vs theory per width, 1/N collapse, layer profiles."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.plots.prepare import cases, pick_evenly


def _errorbars(ax, d: pd.DataFrame, x: str, y: str, hue: str, palette) -> None:
    for (key, g), color in zip(d.groupby(hue), palette):
        ax.errorbar(g[x], g[y], yerr=g.get(f"{y}_se"), fmt="o", ms=3, lw=1, color=color, label=f"{hue}={key}")


def measured_vs_theory(sweep: pd.DataFrame, path: Path, hue: str = "width", keys=()) -> None:
    """q^L, c^L, chi and lambda vs sigma_w2: points (measured, +-SE) per `hue`, lines = theory; one row of panels
    per configuration (activation, depth, sigma_b2, xi and the swept config `keys`), never two on one line."""
    rows = cases(sweep, keys, exclude=(hue, "sigma_w2"))
    panels = [
        ("q_L", "q_L_theory", r"$q^L$"),
        ("c_L", "c_L_theory", r"$c^L$"),
        ("chi", "chi1", r"gain $\chi$ vs $\chi_1$"),
        ("lambda_replica", "lambda_mf", r"$\lambda$ per layer"),
    ]
    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 3.6 * len(rows)), squeeze=False, constrained_layout=True)
    for i, (act, d) in enumerate(rows):
        d = d.sort_values("sigma_w2", kind="stable")
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


def collapse(fw: pd.DataFrame, path: Path, keys=()) -> None:
    """(measured - theory) x N vs sigma_w2 per width and configuration (activation, sigma_b2, depth, xi, swept config
    `keys`): coinciding curves show the 1/N scaling; the black line is the one-loop prediction of
    N (lambda - lambda_MF) where the table carries it."""
    groups = cases(fw, keys, exclude=("width", "sigma_w2"))
    cols = [
        ("dlogq_L_times_N", r"$(\ln q^L - \ln q^L_{MF})\,N$"),
        ("dlambda_times_N", r"$(\lambda - \lambda_{MF}^{(L)})\,N$"),
    ]
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.6 * len(groups)), squeeze=False, constrained_layout=True)
    for i, (name, d) in enumerate(groups):
        sb = d.sigma_b2.iloc[0]
        name = name if "sigma_b2=" in name else f"{name}, $\\sigma_b^2$={sb:g}"
        palette = sns.color_palette("viridis", d.width.nunique())
        for j, (col, label) in enumerate(cols):
            _errorbars(axes[i, j], d, "sigma_w2", col, "width", palette)
            axes[i, j].axhline(0, color="grey", lw=0.8)
            axes[i, j].set(title=f"{name}: {label}", xlabel=r"$\sigma_w^2$")
        if "dlambda_times_N_one_loop" in d and d.dlambda_times_N_one_loop.notna().any():
            th = d.drop_duplicates("sigma_w2").sort_values("sigma_w2")
            axes[i, 1].plot(th.sigma_w2, th.dlambda_times_N_one_loop, "k-", lw=1.4, label="one loop")
            lo, hi = np.nanpercentile(d.dlambda_times_N, [2, 98])
            axes[i, 1].set_ylim(min(lo, np.nanmin(th.dlambda_times_N_one_loop)) - 0.5, hi + 0.5)
        axes[i, 0].legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def layer_profiles(layers: pd.DataFrame, path: Path, n_curves: int = 4, keys=()) -> None:
    """q^l and c^l against layer for a few sigma_w2: markers measured, lines theory; one row of panels per
    configuration (activation, width, depth, sigma_b2, xi, swept config `keys`): a curve is one network's."""
    groups = cases(layers, keys, exclude=("sigma_w2", "layer"))
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.8 * len(groups)), squeeze=False, constrained_layout=True)
    for (name, g), (a, b) in zip(groups, axes):
        pick = pick_evenly(g.sigma_w2, n_curves)
        for sw, color in zip(pick, sns.color_palette("viridis", len(pick))):
            d = g[np.isclose(g.sigma_w2, sw)].sort_values("layer", kind="stable")
            a.plot(d.layer, d.q, "o", ms=2.5, color=color, label=rf"$\sigma_w^2$={sw:.2f}")
            a.plot(d.layer, d.q_theory, "-", color=color, lw=1)
            b.plot(d.layer, d.c, "o", ms=2.5, color=color)
            b.plot(d.layer, d.c_theory, "-", color=color, lw=1)
        if g.q.max() / max(g.q.min(), 1e-300) > 1e3:
            a.set_yscale("log")
        head = f"{name}: " if name else ""
        a.set(xlabel="layer l", ylabel=r"$q^l$", title=f"{head}variance (markers: measured, lines: mean field)")
        b.set(xlabel="layer l", ylabel=r"$c^l$", title=f"{head}correlation")
        a.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
