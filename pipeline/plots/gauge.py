"""Gauge-scan figures: thresholds vs xi, A_q vs sigma_w2, Lyapunov exponent vs sigma_w2 per xi."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.plots.prepare import widest_per_case


def _case(d: pd.DataFrame) -> str:
    return f"{d.activation.iloc[0]}, $\\sigma_b^2$={d.sigma_b2.iloc[0]:g}"


def _widest_per_case(scan: pd.DataFrame, height: float):
    """A figure with one panel per (activation, sigma_b2) case, and each case's widest-network rows."""
    cases = widest_per_case(scan)
    fig, axes = plt.subplots(1, len(cases), figsize=(5.2 * len(cases), height), squeeze=False, constrained_layout=True)
    return fig, list(zip(axes[0], cases))


def thresholds_vs_xi(th: pd.DataFrame, path: Path) -> None:
    """Theory lines (length, chaos) and measured points with error bars, one panel per case."""
    cases = list(th.groupby(["activation", "sigma_b2"]))
    fig, axes = plt.subplots(1, len(cases), figsize=(5.2 * len(cases), 4), squeeze=False, constrained_layout=True)
    for ax, (_, d) in zip(axes[0], cases):
        t = d.drop_duplicates("xi").sort_values("xi")
        ax.plot(t.xi, t.len_threshold_theory, "-", color="C0", label="length (A_q = 1), theory")
        ax.plot(t.xi, t.chaos_threshold_theory, "--", color="C3", label="chaos, theory")
        for (w, g), mk in zip(d.groupby("width"), "os^D"):
            ax.errorbar(
                g.xi,
                g.len_threshold_measured,
                yerr=g.len_threshold_se,
                fmt=mk,
                color="C0",
                ms=4,
                mfc="none",
                label=f"length, N={w}",
            )
            ax.errorbar(
                g.xi,
                g.chaos_threshold_measured,
                yerr=g.chaos_threshold_se,
                fmt=mk,
                color="C3",
                ms=4,
                label=f"chaos, N={w}",
            )
        ax.set(title=_case(d), xlabel=r"gauge parameter $\xi$", ylabel=r"threshold $\sigma_w^2$")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def a_q_vs_sigma_w2(scan: pd.DataFrame, path: Path) -> None:
    """Longitudinal factor A_q(xi) (lines) and transverse chi_1 (black) vs sigma_w2, per case."""
    fig, panels = _widest_per_case(scan, 3.8)
    for ax, d in panels:
        for (xi, g), color in zip(d.groupby("xi"), sns.color_palette("viridis", d.xi.nunique())):
            ax.plot(g.sigma_w2, g.a_q, color=color, label=rf"$A_q$, $\xi$={xi:g}")
        g = d[d.xi == d.xi.iloc[0]]
        ax.plot(g.sigma_w2, g.chi1, "k--", lw=1.2, label=r"$\chi_1$")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set(title=_case(d), xlabel=r"$\sigma_w^2$", ylabel="amplification factor")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def exponent_vs_sigma_w2(scan: pd.DataFrame, path: Path) -> None:
    """Measured lambda per xi (points) with 0.5 ln chi_1 (black) and 0.5 ln A_q (coloured) per case."""
    fig, panels = _widest_per_case(scan, 4.0)
    for ax, d in panels:
        for (xi, g), color in zip(d.groupby("xi"), sns.color_palette("viridis", d.xi.nunique())):
            ax.errorbar(
                g.sigma_w2,
                g.lambda_replica,
                yerr=g.lambda_replica_se,
                fmt="o",
                ms=3,
                color=color,
                label=rf"$\xi$={xi:g}",
            )
            ax.plot(g.sigma_w2, g.half_ln_a_q, "-", lw=1, color=color)
        g = d[d.xi == d.xi.iloc[0]]
        ax.plot(g.sigma_w2, g.half_ln_chi1, "k--", lw=1.3, label=r"$\frac{1}{2}\ln\chi_1$")
        ax.axhline(0, color="grey", lw=0.8)
        lo = np.nanmin(d.lambda_replica)
        ax.set(
            title=f"{_case(d)}, N={int(d.width.iloc[0])} (lines: $\\frac{{1}}{{2}}\\ln A_q$)",
            xlabel=r"$\sigma_w^2$",
            ylabel=r"$\lambda$ per layer",
            ylim=(max(lo, -1.0) - 0.05, None),
        )
        ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=100)
    plt.close(fig)
