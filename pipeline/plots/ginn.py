"""GINN figures: training curves vs MLP, trainability maps with theory boundaries, gauge-sector spectra."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def training_curves(hist: pd.DataFrame, path: Path) -> None:
    """Loss and validation accuracy per epoch, GINN vs MLP."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for model, d in hist.groupby("model"):
        a.plot(d.epoch, d.train_loss, label=f"{model} train")
        a.plot(d.epoch, d.val_loss, "--", label=f"{model} val")
        b.plot(d.epoch, d.val_accuracy, label=model)
    a.set(yscale="log", xlabel="epoch", ylabel="cross-entropy", title="loss")
    b.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def trainability(tab: pd.DataFrame, boundary: pd.DataFrame, path: Path) -> None:
    """Test accuracy over (sigma_w2, depth) per model, with the mean-field boundary overlaid."""
    models = list(dict.fromkeys(tab.model))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes[0], models):
        d = tab[tab.model == model].pivot_table(index="depth", columns="sigma_w2", values="test_accuracy")
        x = np.arange(len(d.columns))
        mesh = ax.pcolormesh(
            np.arange(len(d.columns) + 1) - 0.5,
            np.arange(len(d.index) + 1) - 0.5,
            d.values,
            cmap="viridis",
            vmin=0,
            vmax=1,
        )
        for (i, j), v in np.ndenumerate(d.values):
            ax.text(j, i, f"{v:.2f}" if np.isfinite(v) else "div", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(x, [f"{v:g}" for v in d.columns])
        ax.set_yticks(np.arange(len(d.index)), [str(v) for v in d.index])
        b = boundary[boundary.model == model].sort_values("sigma_w2")
        if len(b):
            bx = np.interp(b.sigma_w2, d.columns, x)
            by = np.interp(b.depth_boundary, d.index, np.arange(len(d.index)), left=-0.5, right=len(d.index) - 0.5)
            ax.plot(bx, by, "w--", lw=2, label=b.label.iloc[0])
            ax.legend(fontsize=7, loc="upper right")
        ax.set(title=f"{model}: test accuracy", xlabel=r"$\sigma_w^2$", ylabel="depth")
        fig.colorbar(mesh, ax=ax)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gauge_spectra(spectra: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """Measured (points) and predicted (lines) spectra of G per gauge-fixing xi_gf (drawn as xi), and Var(G) vs
    xi_gf against xi_gf T."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for (xi, d), color in zip(spectra.groupby("xi_gf"), sns.color_palette("viridis", spectra.xi_gf.nunique())):
        a.plot(d.freq, d.measured, "o", ms=2.5, color=color, label=rf"$\xi$={xi:g}")
        if d.predicted.notna().any():
            a.plot(d.freq, d.predicted, "-", color=color, lw=1.2)
    a.set(
        xscale="log",
        yscale="log",
        xlabel="frequency (1/step)",
        ylabel="power of G",
        title="gauge sector: measured (points) vs predicted (lines)",
    )
    a.legend(fontsize=7)
    t = table[np.isfinite(table.xi_gf)]
    b.errorbar(t.xi_gf, t.var_G_measured, fmt="o", label="measured Var(G)")
    b.plot(t.xi_gf, t.var_G_predicted, "k-", label=r"$\xi T$")
    b.set(xscale="log", yscale="log", xlabel=r"$\xi$", ylabel="Var(G)", title="stationary variance of G")
    b.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
