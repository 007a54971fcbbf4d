"""Stochastic-field figures (docs/science.md §7b): chain spectra vs the AR(1) Lorentzians, their collapse across
widths, and the masses of the correlation mode (vs sigma_w2) and of the length mode (vs xi)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _cases(curves: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return list(curves[curves["mode"] == "length"].groupby(["activation", "sigma_w2", "sigma_b2"]))


def spectra(curves: pd.DataFrame, path: Path) -> None:
    """Length mode at the widest width per case: N I(omega) (points, SE bars) and N S(omega) predicted (line)."""
    cases = _cases(curves)
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.8), squeeze=False, constrained_layout=True)
    for ax, ((act, sw, sb), d) in zip(axes[0], cases):
        d = d[d.width == d.width.max()]
        ax.errorbar(d.omega, d.n_s_measured, yerr=d.n_s_se, fmt="o", ms=3, label=f"chain, N={d.width.iloc[0]}")
        ax.plot(d.omega, d.n_s_predicted, "k-", label=r"$\Sigma/|1-\chi e^{-i\omega}|^2$")
        ax.set(xscale="log", yscale="log", xlabel=r"depth frequency $\omega$", ylabel=r"$N\,S(\omega)$",
               title=rf"{act}, $\sigma_w^2$={sw:g}, $\sigma_b^2$={sb:g}")  # fmt: skip
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def collapse(curves: pd.DataFrame, path: Path) -> None:
    """N I(omega) of every width on one axis per case: the amplitude is a pure 1/N effect, so the curves collapse."""
    cases = _cases(curves)
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.8), squeeze=False, constrained_layout=True)
    for ax, ((act, sw, sb), d) in zip(axes[0], cases):
        widths = sorted(d.width.unique())
        for w, color in zip(widths, sns.color_palette("viridis", len(widths))):
            g = d[d.width == w]
            ax.plot(g.omega, g.n_s_measured, "o-", ms=2, lw=0.6, color=color, label=f"N={w}")
        g = d[d.width == widths[-1]]
        ax.plot(g.omega, g.n_s_predicted, "k--", lw=1.2, label="AR(1), mean field")
        ax.set(xscale="log", yscale="log", xlabel=r"$\omega$", ylabel=r"$N\,S(\omega)$",
               title=rf"collapse: {act}, $\sigma_w^2$={sw:g}, $\sigma_b^2$={sb:g}")  # fmt: skip
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def masses(spectra: pd.DataFrame, theory: pd.DataFrame, path: Path) -> None:
    """Correlation mass -ln chi_c(c*) vs sigma_w2 (-> 0 at the edge of chaos) and length mass vs xi (-> 0 at the
    length threshold A_q(xi) = 1): measured points with SE, mean-field lines, dressed (one-loop) masses (crosses)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    co = spectra[spectra["mode"] == "correlation"]
    for (act, d), color in zip(co.groupby("activation"), sns.color_palette()):
        t = theory[(theory["mode"] == "correlation") & (theory.activation == act)]
        a.plot(t.x, t.mass_mean_field, "-", color=color, label=rf"{act}: $-\ln\chi_c(c^*)$")
        a.errorbar(d.sigma_w2, d.mass_measured, yerr=d.mass_se, fmt="o", ms=4, color=color,
                   label=f"{act}: chain, N={d.width.iloc[0]}")  # fmt: skip
        a.plot(d.sigma_w2, -np.log(d.multiplier_one_loop), "x", color=color, label=f"{act}: dressed (one loop)")
        if t.critical.notna().any():
            a.axvline(t.critical.iloc[0], color=color, ls=":", lw=1)
    a.set(xlabel=r"$\sigma_w^2$", ylabel="correlation mass", title=r"chaotic side: mass $\to 0$ at the edge of chaos")
    a.legend(fontsize=7)
    ga = spectra[spectra["mode"] == "gauge"]
    t = theory[theory["mode"] == "gauge"]
    if len(ga):
        b.plot(t.x, t.mass_mean_field, "k-", label=r"$-\ln A_q(\xi)$")
        b.errorbar(ga.xi, ga.mass_measured, yerr=ga.mass_se, fmt="o", ms=4, label=f"chain, N={ga.width.iloc[0]}")
        b.plot(ga.xi, -np.log(ga.multiplier_one_loop), "x", color="C3", label="dressed (one loop)")
        if t.critical.notna().any():
            b.axvline(t.critical.iloc[0], color="k", ls=":", lw=1, label="length threshold")
        b.set(title=f"{ga.activation.iloc[0]}, $\\sigma_w^2$={ga.sigma_w2.iloc[0]:g}, "
                    f"$\\sigma_b^2$={ga.sigma_b2.iloc[0]:g}")  # fmt: skip
    b.set(xlabel=r"gauge parameter $\xi$", ylabel="length mass")
    b.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
