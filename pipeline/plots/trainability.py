"""Trainability figures (Schoenholz et al. 2017): accuracy maps with both branches of a xi, and L_max against xi."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SCHOENHOLZ_A = 6.0  # L_max ~ 6 xi_c, Schoenholz et al. 2017 (MNIST, CIFAR-10)
SCALE_LABEL = {"mlp": r"\xi_c", "ginn": r"1/|\ln\chi_{GINN}|"}


def _fitted_a(law: pd.DataFrame, model: str) -> float:
    both = law[(law.model == model) & (law.branch == "both")]
    return float(both.a.iloc[0]) if len(both) else float("nan")


def accuracy_maps(acc: pd.DataFrame, boundary: pd.DataFrame, law: pd.DataFrame, path: Path) -> None:
    """Seed-mean training accuracy over (sigma_w2, depth), MLP and GINN side by side, with a xi on both sides of
    the critical point for the fitted a and Schoenholz's 6; the suptitle is the verdict line."""
    models = _mlp_first(acc.model)
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.8), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes[0], models):
        d = acc[acc.model == model].pivot_table(index="depth", columns="sigma_w2", values="train_accuracy")
        sw, depth = d.columns.to_numpy(float), d.index.to_numpy(float)
        mesh = ax.pcolormesh(_edges(sw, log=False), _edges(depth, log=True), d.values, cmap="viridis", vmin=0, vmax=1)
        b = boundary[boundary.model == model].sort_values("sigma_w2")
        scale = b.depth_scale.to_numpy()
        for a, style, label in ((_fitted_a(law, model), "w-", "fitted"), (SCHOENHOLZ_A, "r--", "Schoenholz")):
            if np.isfinite(a):
                ax.plot(b.sigma_w2, a * scale, style, lw=1.8, label=rf"{label}: ${a:.2f}\,{SCALE_LABEL[model]}$")
        crit = law[law.model == model].sigma_w2_critical_theory
        if len(crit) and np.isfinite(crit.iloc[0]):
            ax.axvline(crit.iloc[0], color="w", ls=":", lw=1, label="critical point (mean field)")
        ax.set(yscale="log", ylim=(depth.min() / 1.2, depth.max() * 1.2), xlabel=r"$\sigma_w^2$", ylabel="depth L",
               title=f"{model}: training accuracy")  # fmt: skip
        ax.set_yticks(depth, [f"{d:g}" for d in depth], minor=False)
        ax.minorticks_off()
        ax.legend(fontsize=7, loc="upper right")
        fig.colorbar(mesh, ax=ax)
    fig.suptitle(verdict(law, sep="\n"), fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def l_max_vs_scale(lmax: pd.DataFrame, law: pd.DataFrame, path: Path) -> None:
    """L_max (bootstrap SE over seeds) against the model's depth scale on log axes, ordered and chaotic sides
    marked, with the lines a xi (fitted) and 6 xi."""
    models = _mlp_first(lmax.model)
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.4), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes[0], models):
        d = lmax[(lmax.model == model) & (lmax.status == "ok") & np.isfinite(lmax.depth_scale)]
        for side, sel, marker in (("ordered", d.chi < 1, "o"), ("chaotic", d.chi > 1, "s")):
            ax.errorbar(d[sel].depth_scale, d[sel].L_max, yerr=d[sel].L_max_se.fillna(0), fmt=marker, ms=4,
                        label=rf"{side} ($\chi {'<' if side == 'ordered' else '>'} 1$)")  # fmt: skip
        if len(d):
            x = np.geomspace(d.depth_scale.min() / 1.5, d.depth_scale.max() * 1.5, 50)
            a = _fitted_a(law, model)
            if np.isfinite(a):
                ax.plot(x, a * x, "k-", label=rf"fitted ${a:.2f}\,{SCALE_LABEL[model]}$")
            ax.plot(x, SCHOENHOLZ_A * x, "r--", label=rf"${SCHOENHOLZ_A:g}\,{SCALE_LABEL[model]}$ (Schoenholz)")
        ax.set(xlabel=rf"${SCALE_LABEL[model]}$ (mean field)", ylabel=r"$L_{max}$",
               title=f"{model}: depth where training accuracy halves")  # fmt: skip
        if len(d):
            ax.set(xscale="log", yscale="log")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no sigma_w2 with a crossing inside the depth grid", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mlp_first(models: pd.Series) -> list[str]:
    return sorted(models.unique(), key=lambda m: (m != "mlp", m))


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around grid values (geometric midpoints on a log axis)."""
    if len(v) == 1:
        return np.array([v[0] * 0.9, v[0] * 1.1])
    w = np.log(v) if log else v
    mid = (w[1:] + w[:-1]) / 2
    e = np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])
    return np.exp(e) if log else e


def verdict(law: pd.DataFrame, sep: str = "; ") -> str:
    """One line per model: fitted a (both branches) with CI against Schoenholz's 6, and whether the sigma_w2 of the
    deepest trainable networks lies within 1 (or 2) SE of the mean-field critical point chi = 1.

    Args:
        law: `fit_law` rows merged with `peak_sigma_w2` and a sigma_w2_critical_theory column per model.
        sep: between the models' parts (MLP first).
    """
    parts = []
    for model in _mlp_first(law.model):
        d = law[law.model == model]
        both = d[d.branch == "both"].iloc[0]
        scale = "xi_c" if model == "mlp" else "1/|ln chi_GINN|"
        fit = (
            f"L_max = {both.a:.2f} {scale} (95% CI {both.a_lo:.2f}-{both.a_hi:.2f}, {both.n_cells} cells; "
            f"Schoenholz ~{SCHOENHOLZ_A:g})"
            if both.status == "ok"
            else f"no fit ({both.n_cells} cells with a crossing: too few)"
        )
        gain = "chi_1" if model == "mlp" else "chi_GINN"
        if not (math.isfinite(both.sigma_w2_peak) and math.isfinite(both.sigma_w2_peak_se)):
            parts.append(f"{model}: {fit}; no trainability peak (no sigma_w2 trains at the shallowest depth)")
            continue
        z = (both.sigma_w2_peak - both.sigma_w2_critical_theory) / both.sigma_w2_peak_se
        where = "within 1 SE" if abs(z) <= 1 else ("within 2 SE" if abs(z) <= 2 else f"{z:+.1f} SE: NOT within its SE")
        parts.append(
            f"{model}: {fit}; trainability peak at sigma_w2 = {both.sigma_w2_peak:.2f} +- {both.sigma_w2_peak_se:.2f} "
            f"vs {gain} = 1 at {both.sigma_w2_critical_theory:.3f} ({where})"
        )
    return sep.join(parts)
