"""Lyapunov figures: exponent vs sigma_w2 with theory, top-k spectrum, ReLU finite-width check, eps check."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.plots.prepare import relu_exact_curve, spectrum_orders


def exponent_vs_sigma_w2(lyap: pd.DataFrame, path: Path) -> None:
    """The paper's key figure: measured lambda (two-replica, +-SE), 0.5 ln chi1 and chi1 - 1, per activation."""
    acts = list(dict.fromkeys(lyap.activation))
    fig, axes = plt.subplots(1, len(acts), figsize=(6 * len(acts), 4.2), squeeze=False, constrained_layout=True)
    for ax, act in zip(axes[0], acts):
        d = lyap[lyap.activation == act]
        for (sb, g), color in zip(d.groupby("sigma_b2"), sns.color_palette("deep")):
            g = g.sort_values("sigma_w2")
            ax.errorbar(
                g.sigma_w2,
                g.lambda_replica,
                yerr=g.lambda_replica_se,
                fmt="o",
                ms=3.5,
                color=color,
                label=rf"measured, $\sigma_b^2$={sb:g}",
            )
            ax.plot(g.sigma_w2, g.lambda_mf, "-", color=color, lw=1.3, label=r"$\frac{1}{2}\ln\chi_1$")
            ax.plot(g.sigma_w2, g.chi1 - 1, ":", color=color, lw=1.3, label=r"$\chi_1 - 1$")
        ax.axhline(0, color="k", ls="--", lw=0.9)
        lo = np.nanmin(d.lambda_replica)
        ax.set(
            title=f"{act} (width {int(d.width.iloc[0])}, depth {int(d.depth.iloc[0])})",
            xlabel=r"$\sigma_w^2$",
            ylabel=r"largest Lyapunov exponent $\lambda$ per layer",
            ylim=(max(lo, -1.5) - 0.05, None),
        )
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spectrum(lyap: pd.DataFrame, path: Path) -> None:
    """Top-k exponents from QR re-orthonormalization vs sigma_w2, one panel per curve."""
    ks = spectrum_orders(lyap.columns)
    curves = list(lyap.groupby(["activation", "sigma_b2"]))
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.8), squeeze=False, constrained_layout=True)
    for ax, ((act, sb), d) in zip(axes[0], curves):
        d = d.sort_values("sigma_w2")
        for j, color in zip(ks, sns.color_palette("rocket", len(ks))):
            ax.errorbar(
                d.sigma_w2,
                d[f"lambda_{j}"],
                yerr=d[f"lambda_{j}_se"],
                fmt="-o",
                ms=2.5,
                lw=1,
                color=color,
                label=rf"$\lambda_{j}$",
            )
        ax.plot(d.sigma_w2, d.lambda_mf, "k--", lw=1, label="mean field")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=rf"{act}, $\sigma_b^2$={sb:g}: top-{len(ks)} spectrum", xlabel=r"$\sigma_w^2$")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def relu_finite_width(df: pd.DataFrame, path: Path) -> None:
    """Measured exponent vs width N against the exact finite-N formula and mean field."""
    exact = relu_exact_curve(df)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for (sw, d), color in zip(df.groupby("sigma_w2"), sns.color_palette("deep")):
        ax.errorbar(
            d.width,
            d.lambda_measured,
            yerr=d.lambda_measured_se,
            fmt="o",
            color=color,
            label=rf"measured $\sigma_w^2$={sw:g}",
        )
        e = exact[exact.sigma_w2 == sw]
        ax.plot(e.width, e.lambda_exact, "-", color=color, lw=1.2, label="exact finite N")
        ax.axhline(d.lambda_mean_field.iloc[0], color=color, ls="--", lw=0.9)
    ax.set(
        xscale="log",
        xlabel="width N",
        ylabel=r"$\lambda$ per layer",
        title="bias-free ReLU: exact finite-width exponent (dashed: mean field)",
    )
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def eps_flatness(df: pd.DataFrame, path: Path) -> None:
    """Two-replica estimate vs eps, with the tangent (eps -> 0) estimate as a band."""
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    ax.errorbar(df.eps, df.lambda_replica, yerr=df.lambda_replica_se, fmt="o-", label="two-replica")
    t, se = df.lambda_tangent.iloc[0], df.lambda_tangent_se.iloc[0]
    ax.axhspan(t - se, t + se, color="grey", alpha=0.3, label="tangent (Jacobian-vector) +- SE")
    ax.set(
        xscale="log",
        xlabel=r"replica separation $\epsilon$",
        ylabel=r"$\lambda$ per layer",
        title=f"{df.activation.iloc[0]}, $\\sigma_w^2$={df.sigma_w2.iloc[0]:g}, $\\sigma_b^2$={df.sigma_b2.iloc[0]:g}",
    )
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
