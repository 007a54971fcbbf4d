"""`report` stage: every figure and the headline table, rebuilt from the stages' DVC outputs alone.

Reads outputs/<stage>/ tables (never MLflow), regenerates each figure with the same plotting code
the stages use, writes summary.csv / metrics.json, and a self-contained report.html (figures
embedded as base64 PNG, a caption under each saying what it shows and what agreement to expect).
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.schema import StageConfig
from pipeline.plots import finite_width, gauge, ginn, lyapunov, theory
from pipeline.stages.runner import StageOutput

log = logging.getLogger("ginn.report")


@dataclass
class Figure:
    """One report figure: file name, section, caption, and how to draw it from the stage tables."""

    name: str
    section: str
    caption: str
    draw: Callable[[dict, Path], None]
    needs: tuple[str, ...]


def _t(tables: dict, key: str) -> pd.DataFrame:
    return tables[key]


FIGURES = [
    Figure(
        "phase_diagram.png",
        "Mean-field theory",
        "Phase diagram: ln chi_1 over (sigma_w2, sigma_b2) per activation (blue ordered, red chaotic) with "
        "the critical line chi_1 = 1. Closed forms: ReLU at sigma_w2 = 2 for every sigma_b2, tanh and "
        "erf at 1 and pi/4 for sigma_b2 = 0 (to 1e-6).",
        lambda t, p: theory.phase_diagram(t["theory/theory.csv"], t["theory/critical_line.csv"], p),
        ("theory/theory.csv", "theory/critical_line.csv"),
    ),
    Figure(
        "chi1_xi_c.png",
        "Mean-field theory",
        "chi_1 and the correlation depth scale xi_c against sigma_w2 for several sigma_b2: xi_c diverges "
        "where chi_1 crosses 1 (the edge of chaos).",
        lambda t, p: theory.gain_and_depth(t["theory/theory.csv"], p),
        ("theory/theory.csv",),
    ),
    Figure(
        "measured_vs_theory.png",
        "Finite-width networks",
        "Measured q^L, c^L, gain chi and two-replica exponent (points +- SE, colour = width) against mean "
        "field (lines). Expect agreement up to O(1/N) corrections, largest near the edge of chaos.",
        lambda t, p: finite_width.measured_vs_theory(t["mlp_sweep/sweep.csv"], p),
        ("mlp_sweep/sweep.csv",),
    ),
    Figure(
        "layer_profiles.png",
        "Finite-width networks",
        "q^l and c^l layer by layer at the widest network (markers) against the mean-field iterates "
        "(lines), for a few sigma_w2.",
        lambda t, p: finite_width.layer_profiles(_widest(t["mlp_sweep/layers.csv"]), p),
        ("mlp_sweep/layers.csv",),
    ),
    Figure(
        "finite_width_collapse.png",
        "Finite-width networks",
        "Deviation from mean field times N: curves for different widths collapse if the corrections "
        "scale like 1/N (the paper's loop corrections). Error bars grow like N: look at the trend.",
        lambda t, p: finite_width.collapse(t["mlp_sweep/finite_width.csv"], p),
        ("mlp_sweep/finite_width.csv",),
    ),
    Figure(
        "lyapunov_vs_sigma_w2.png",
        "Lyapunov exponents",
        "The key figure: largest Lyapunov exponent per layer (two replicas, +- SE) for tanh and ReLU, "
        "with 0.5 ln chi_1 and chi_1 - 1; both vanish at the edge of chaos. Finite width shifts the "
        "crossing up: ~sqrt(3/N) for tanh at sigma_b2 = 0, ~+5/N for ReLU.",
        lambda t, p: lyapunov.exponent_vs_sigma_w2(t["lyapunov/lyapunov.csv"], p),
        ("lyapunov/lyapunov.csv",),
    ),
    Figure(
        "spectrum.png",
        "Lyapunov exponents",
        "Top-k Lyapunov spectrum by QR re-orthonormalization: lambda_1 equals the two-replica exponent; the "
        "gaps are O(1/N).",
        lambda t, p: lyapunov.spectrum(t["lyapunov/lyapunov.csv"], p),
        ("lyapunov/lyapunov.csv",),
    ),
    Figure(
        "relu_finite_width.png",
        "Lyapunov exponents",
        "Exact finite-width check: bias-free Gaussian ReLU networks against lambda_N = 0.5 [ln(2 sigma_w2/N) "
        "+ E psi(k/2)] (lines); expect agreement within 3 SE at every width, below mean field (dashed).",
        lambda t, p: lyapunov.relu_finite_width(t["lyapunov/relu_finite_width.csv"], p),
        ("lyapunov/relu_finite_width.csv",),
    ),
    Figure(
        "eps_flatness.png",
        "Lyapunov exponents",
        "The two-replica estimate is flat in the replica separation eps and equals the tangent estimate.",
        lambda t, p: lyapunov.eps_flatness(t["lyapunov/eps_check.csv"], p),
        ("lyapunov/eps_check.csv",),
    ),
    Figure(
        "thresholds_vs_xi.png",
        "Gauge parameter",
        "Length (A_q = 1) and chaos thresholds against the gauge parameter xi: theory lines, measured "
        "points. ReLU: the chaos threshold stays at 2 for xi <= 1 and follows 2 pi/(pi - 1 + xi) above; "
        "tanh has no xi dependence.",
        lambda t, p: gauge.thresholds_vs_xi(t["gauge_scan/thresholds.csv"], p),
        ("gauge_scan/thresholds.csv",),
    ),
    Figure(
        "a_q_vs_sigma_w2.png",
        "Gauge parameter",
        "Longitudinal amplification factor A_q(xi) and transverse gain chi_1 against sigma_w2.",
        lambda t, p: gauge.a_q_vs_sigma_w2(t["gauge_scan/gauge_scan.csv"], p),
        ("gauge_scan/gauge_scan.csv",),
    ),
    Figure(
        "lyapunov_vs_sigma_w2_per_xi.png",
        "Gauge parameter",
        "Measured exponent per xi with 0.5 ln chi_1 (black) and 0.5 ln A_q (lines): for ReLU without bias "
        "lambda = 0.5 ln max(chi_1, A_q).",
        lambda t, p: gauge.exponent_vs_sigma_w2(t["gauge_scan/gauge_scan.csv"], p),
        ("gauge_scan/gauge_scan.csv",),
    ),
    Figure(
        "training_curves.png",
        "Gauge-invariant network",
        "GINN (magnitude-phase links, complex units) against a tanh MLP of the same size on digits: loss "
        "and validation accuracy per epoch.",
        lambda t, p: ginn.training_curves(t["ginn_train/history.csv"], p),
        ("ginn_train/history.csv",),
    ),
    Figure(
        "trainability.png",
        "Gauge-invariant network",
        "Test accuracy over sigma_w2 x depth (short training) for GINN and MLP, with the mean-field "
        "boundaries: depth 6 xi_c (MLP) and 6/|ln chi_GINN| (GINN, diverging at chi_GINN = 1).",
        lambda t, p: ginn.trainability(t["ginn_train/trainability.csv"], t["ginn_train/trainability_boundary.csv"], p),
        ("ginn_train/trainability.csv", "ginn_train/trainability_boundary.csv"),
    ),
    Figure(
        "gauge_spectra.png",
        "Gauge-invariant network",
        "Gauge sector under Langevin training with covariant gauge fixing: power spectrum of the site "
        "divergence G (measured points, predicted discrete Lorentzians) narrows like 1/xi, and Var(G) = xi T; "
        "gauge-invariant outputs are identical for every xi.",
        lambda t, p: ginn.gauge_spectra(t["ginn_train/gauge_spectra.csv"], t["ginn_train/gauge_fixing.csv"], p),
        ("ginn_train/gauge_spectra.csv", "ginn_train/gauge_fixing.csv"),
    ),
]


def _widest(layers: pd.DataFrame) -> pd.DataFrame:
    d = layers[layers.width == layers.width.max()]
    return d[d.activation == d.activation.iloc[0]]


@dataclass
class ReportResult:
    tables: dict
    summary: pd.DataFrame
    metrics: dict
    missing: list = field(default_factory=list)


def read_tables(root: Path) -> dict:
    """Every CSV the figures need, keyed 'stage/file.csv'; a missing one is an error naming it."""
    need = sorted({k for f in FIGURES for k in f.needs} | {"lyapunov/zero_crossings.csv", "ginn_train/metrics.json"})
    tables, missing = {}, []
    for key in need:
        path = root / key
        if not path.is_file():
            missing.append(str(path))
            continue
        tables[key] = json.loads(path.read_text()) if key.endswith(".json") else pd.read_csv(path)
    if missing:
        raise FileNotFoundError(f"report inputs missing (run `dvc repro` first): {', '.join(missing)}")
    return tables


def headline(tables: dict) -> pd.DataFrame:
    """summary.csv: measured vs predicted critical points, thresholds, finite-width check, accuracies."""
    rows = []
    for r in tables["lyapunov/zero_crossings.csv"].itertuples():
        rows.append(
            {
                "quantity": "lyapunov_zero_crossing",
                "context": f"{r.activation} sigma_b2={r.sigma_b2:g} N={r.width}",
                "activation": r.activation,
                "measured": r.crossing_measured,
                "measured_se": r.crossing_measured_se,
                "theory": r.crossing_theory,
                "difference": r.crossing_measured - r.crossing_theory,
            }
        )
    crit = tables["theory/critical_line.csv"]
    for r in crit[crit.sigma_b2 == 0].itertuples():
        rows.append(
            {
                "quantity": "critical_sigma_w2_sigma_b2_0",
                "context": r.activation,
                "activation": r.activation,
                "measured": np.nan,
                "measured_se": np.nan,
                "theory": r.sigma_w2_crit,
                "difference": np.nan,
            }
        )
    th = tables["gauge_scan/thresholds.csv"]
    big = th[th.width == th.width.max()]
    for r in big.itertuples():
        for kind in ("len", "chaos"):
            m, t = getattr(r, f"{kind}_threshold_measured"), getattr(r, f"{kind}_threshold_theory")
            if np.isfinite(t):
                rows.append(
                    {
                        "quantity": f"{kind}_threshold",
                        "context": f"{r.activation} sigma_b2={r.sigma_b2:g} xi={r.xi:g} N={r.width}",
                        "activation": r.activation,
                        "measured": m,
                        "measured_se": getattr(r, f"{kind}_threshold_se"),
                        "theory": t,
                        "difference": m - t,
                    }
                )
    rfw = tables["lyapunov/relu_finite_width.csv"]
    for r in rfw.itertuples():
        rows.append(
            {
                "quantity": "relu_finite_width_lambda",
                "context": f"N={r.width} sigma_w2={r.sigma_w2:g}",
                "activation": "relu",
                "measured": r.lambda_measured,
                "measured_se": r.lambda_measured_se,
                "theory": r.lambda_exact,
                "difference": r.lambda_measured - r.lambda_exact,
            }
        )
    gm = tables["ginn_train/metrics.json"]
    for key, label in (("test_accuracy", "ginn"), ("mlp_test_accuracy", "mlp")):
        if key in gm:
            rows.append(
                {
                    "quantity": "test_accuracy",
                    "context": f"{label} on digits",
                    "activation": "tanh",
                    "measured": gm[key],
                    "measured_se": np.nan,
                    "theory": np.nan,
                    "difference": np.nan,
                }
            )
    return pd.DataFrame(rows)


def compute(cfg: StageConfig) -> ReportResult:
    root = Path(cfg.report.inputs)
    tables = read_tables(root)
    summary = headline(tables)
    zc = summary[summary.quantity == "lyapunov_zero_crossing"]
    metrics = {
        "lyapunov_crossing_max_abs_diff": float(zc.difference.abs().max()),
        "gauge_threshold_max_abs_diff": float(
            summary[summary.quantity.str.endswith("_threshold")].difference.abs().max()
        ),
        "relu_finite_width_max_z": float(
            (
                summary.query("quantity == 'relu_finite_width_lambda'").difference.abs()
                / summary.query("quantity == 'relu_finite_width_lambda'").measured_se
            ).max()
        ),
        "ginn_test_accuracy": tables["ginn_train/metrics.json"].get("test_accuracy"),
        "mlp_test_accuracy": tables["ginn_train/metrics.json"].get("mlp_test_accuracy"),
        "n_figures": len(FIGURES),
    }
    return ReportResult(tables, summary, metrics)


def _html(result: ReportResult, figs: Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ginn-lab report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#333;font-size:.9em}"
        "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body><h1>ginn-lab: signal propagation, edge of chaos and gauge-invariant networks</h1>",
        "<p>Rebuilt by <code>dvc repro</code> from the stage outputs under <code>outputs/</code>. Every figure below "
        "is regenerated from the stages' tables; measured values carry standard errors over seeds.</p>",
    ]
    section = None
    for f in FIGURES:
        if f.section != section:
            section = f.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        data = base64.b64encode((figs / f.name).read_bytes()).decode()
        parts.append(
            f"<figure id='{f.name[:-4]}'><img alt='{f.name}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
        )
    parts.append("<h2>Headline numbers</h2>")
    parts.append(result.summary.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(result: ReportResult, folder: Path) -> StageOutput:
    figs = folder / "figures"
    figs.mkdir()
    for f in FIGURES:
        f.draw(result.tables, figs / f.name)
    result.summary.to_csv(folder / "summary.csv", index=False)
    (folder / "report.html").write_text(_html(result, figs))
    m = result.metrics
    return StageOutput(
        m,
        {},
        f"{len(FIGURES)} figures, max |lyapunov crossing - theory| = "
        f"{m['lyapunov_crossing_max_abs_diff']:.3f} -> report.html",
    )
