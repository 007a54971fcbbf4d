"""GINN figures: training curves vs MLP, gauge-sector spectra (trainability maps: pipeline.plots.trainability)."""

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
