"""`report` stage: every figure and the headline table, from the stages' DVC outputs alone.

Reads outputs/<stage>/ (never MLflow): the figures the stages drew into outputs/<stage>/figures/
(listed, captioned and sectioned by the registry `pipeline.plots.figures`; never re-drawn here) are
copied to the report's figures/ and embedded as base64 PNG in a self-contained report.html, with a
caption under each saying what it shows and what agreement to expect. The headline numbers
(summary.csv / metrics.json) are computed from the stage tables.

Status before number: every summary.csv row carries the `status` of the row it came from (one_loop_status,
crossing_status, quad_status, status, excluded; "ok" when valid). A row whose status is not "ok" has NaN in the
numbers its status speaks for and leaves every headline of metrics.json; `n_excluded_<headline>` counts the rows
each headline left out, and no such row is ever called a disagreement.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.schema import StageConfig
from pipeline.plots.figures import REPORT_FIGURES
from pipeline.stages.collect import ONE_LOOP_VALUES, one_loop_closer
from pipeline.stages.outputs import StageOutput
from pipeline.stages.tables import write_csv
from pipeline.status import mask_invalid

log = logging.getLogger("ginn.report")


# the tables the headline numbers (summary.csv, metrics.json) are computed from
HEADLINE_TABLES = (
    "lyapunov/zero_crossings.csv",
    "theory/critical_line.csv",
    "gauge_scan/thresholds.csv",
    "lyapunov/relu_finite_width.csv",
    "ginn_train/metrics.json",
    "mlp_sweep/one_loop_crossings.csv",
)


@dataclass
class ReportResult:
    tables: dict
    summary: pd.DataFrame
    metrics: dict
    figures: dict = field(default_factory=dict)  # figure name -> the stage's PNG under the outputs root
    one_loop: pd.DataFrame | None = None  # measured crossings vs one loop, with a verdict per job


def _missing(paths: list[Path]) -> FileNotFoundError:
    return FileNotFoundError(f"report inputs missing (run `dvc repro` first): {', '.join(map(str, paths))}")


def missing_inputs(root: Path) -> list[Path]:
    """Every input the report needs (headline tables, non-optional stage figures) that is absent under root."""
    root = Path(root)
    need = [root / key for key in HEADLINE_TABLES] + [root / f.source for f in REPORT_FIGURES if not f.optional]
    return [p for p in dict.fromkeys(need) if not p.is_file()]


def missing_inputs_message(root: Path, missing: list[Path]) -> str:
    """One line: which stages' outputs are missing, the command producing them, and the files."""
    root = Path(root)
    stages = sorted({p.relative_to(root).parts[0] for p in missing})
    return (
        f"report.inputs={root}: report inputs missing from stage(s) {', '.join(stages)}: produce them with "
        f"`dvc repro {' '.join(stages)}` (or set report.inputs to an outputs folder that has them); missing: "
        + ", ".join(map(str, missing))
    )


def read_tables(root: Path) -> dict:
    """The tables of the headline numbers, keyed 'stage/file.csv'; a missing one is an error naming it."""
    tables, missing = {}, []
    for key in HEADLINE_TABLES:
        path = root / key
        if not path.is_file():
            missing.append(path)
            continue
        tables[key] = json.loads(path.read_text()) if key.endswith(".json") else pd.read_csv(path)
    if missing:
        raise _missing(missing)
    return tables


def find_figures(root: Path) -> dict:
    """Each report figure's PNG as its stage drew it (<root>/<stage>/figures/<name>); a missing one is an error,
    unless the figure is optional (its study did not run): then it is left out and the report says so."""
    paths = {f.name: root / f.source for f in REPORT_FIGURES}
    missing = [root / f.source for f in REPORT_FIGURES if not f.optional and not paths[f.name].is_file()]
    if missing:
        raise _missing(missing)
    return {name: p for name, p in paths.items() if p.is_file()}


# status-like columns of the stage tables and the value each takes on a valid row
STATUS_COLUMNS = (("status", "ok"), ("crossing_status", "crossing"), ("q_status", "converged"),
                  ("quad_status", "ok"), ("excluded", False))  # fmt: skip
SUMMARY_VALUES = ["measured", "measured_se", "theory", "difference"]


def row_status(r, columns=STATUS_COLUMNS) -> str:
    """ "ok", or the first status-like column of a table row that says otherwise, as '<column>=<value>' (e.g.
    'crossing_status=jump'); a missing or empty status column says nothing."""
    for col, ok in columns:
        v = getattr(r, col, None)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if (bool(v) != ok) if isinstance(ok, bool) else (str(v) != ok):
            return f"{col}={v}"
    return "ok"


def one_loop_table(loop: pd.DataFrame) -> pd.DataFrame:
    """mlp_sweep/one_loop_crossings.csv with the rule applied whoever wrote it: one-loop values NaN where
    `one_loop_status` is not "ok" (a missing status: one loop not derived for that job, collect.NOT_DERIVED)."""
    loop = loop.copy()
    if "one_loop_status" not in loop:
        loop["one_loop_status"] = np.nan
    loop["one_loop_status"] = loop.one_loop_status.where(loop.one_loop_status.notna(), "not_derived")
    return mask_invalid(loop, list(ONE_LOOP_VALUES), "one_loop_status")


def headline(tables: dict) -> pd.DataFrame:
    """summary.csv: measured vs predicted critical points, thresholds, finite-width check, accuracies.

    Every row has a `status` ("ok", or why its numbers are not shown): a one-loop row whose one loop is not ok
    keeps its measurement and has no theory/difference; any other row that is not ok has no numbers at all.
    """
    rows = []
    for r in tables["lyapunov/zero_crossings.csv"].itertuples():
        rows.append(
            {
                "quantity": "lyapunov_zero_crossing",
                "context": f"{r.activation} sigma_b2={r.sigma_b2:g} N={r.width}",
                "activation": r.activation,
                "measured": r.crossing_measured,
                "measured_se": r.crossing_measured_se,
                "theory": r.crossing_mean_field,
                "difference": r.crossing_measured - r.crossing_mean_field,
                "status": row_status(r),
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
                "status": row_status(r),
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
                        "status": row_status(r),
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
                "status": row_status(r),
            }
        )
    gm = tables["ginn_train/metrics.json"]
    for key, label, act in (("test_accuracy", "ginn", "activation"), ("mlp_test_accuracy", "mlp", "mlp_activation")):
        if key in gm:  # the model's activation and data set as ginn_train recorded them
            rows.append(
                {
                    "quantity": "test_accuracy",
                    "context": f"{label} on {gm['dataset']}",
                    "activation": gm[act],
                    "measured": gm[key],
                    "measured_se": np.nan,
                    "theory": np.nan,
                    "difference": np.nan,
                    "status": "ok",
                }
            )
    for r in one_loop_table(tables["mlp_sweep/one_loop_crossings.csv"]).itertuples():
        rows.append(
            {
                "quantity": "one_loop_zero_crossing",
                "context": _case_label(r),
                "activation": r.activation,
                "measured": r.crossing_measured,
                "measured_se": r.crossing_se,
                "theory": r.crossing_one_loop,
                "difference": r.crossing_measured - r.crossing_one_loop,
                "status": "ok" if r.one_loop_status == "ok" else f"one_loop_status={r.one_loop_status}",
            }
        )
    out = pd.DataFrame(rows)
    one = out.quantity == "one_loop_zero_crossing"  # the status is the one loop's: the measurement stays
    return pd.concat(
        [mask_invalid(out[~one], SUMMARY_VALUES), mask_invalid(out[one], ["theory", "difference"])]
    ).sort_index()


def _headline_max(values: pd.Series, status: pd.Series) -> tuple[float | None, int]:
    """(max over rows whose status is ok and whose value is finite, or None; the number of rows left out)."""
    v = values.where(status == "ok").abs()
    v = v[np.isfinite(v)]
    return (float(v.max()) if len(v) else None), int(len(values) - len(v))


def _case_label(r) -> str:
    """A crossing row's configuration: collect's `group` (every value that differs between jobs) and the width."""
    group = getattr(r, "group", None)
    if isinstance(group, str) and group:
        return f"{group} N={r.width}"
    return f"{r.activation} sigma_b2={r.sigma_b2:g} N={r.width} L={r.depth}"


def one_loop_verdicts(loop: pd.DataFrame) -> pd.DataFrame:
    """Per job: measured crossing vs one loop at the same depth, and whether they agree within max(2 SE, 0.02).

    The verdict states disagreements with their numbers; tolerances are the issue's, never widened to pass.
    """
    d = one_loop_table(loop)
    tol = np.maximum(2 * d.crossing_se, 0.02)
    d["tolerance"] = tol
    d["one_loop_closer_than_mean_field"] = one_loop_closer(d)

    def verdict(r) -> str:
        if str(r.one_loop_status) != "ok" or not np.isfinite(r.crossing_one_loop):  # status before number
            return f"no one-loop prediction ({r.one_loop_status})"
        if not np.isfinite(r.crossing_measured):
            return "no measured crossing (the exponent does not change sign on the grid)"
        dd = r.crossing_measured - r.crossing_one_loop
        if abs(dd) <= r.tolerance:
            return "agrees"
        return f"DISAGREES: measured - one loop = {dd:+.3f} ({dd / r.crossing_se:+.1f} SE)"

    d["verdict"] = [verdict(r) for r in d.itertuples()]
    return d


def compute(cfg: StageConfig) -> ReportResult:
    root = Path(cfg.report.inputs)
    figures = find_figures(root)
    tables = read_tables(root)
    summary = headline(tables)
    metrics = {}
    # each headline over valid rows only (status ok, a number on both sides); n_excluded_<headline> beside it
    for name, rows in (
        ("lyapunov_crossing_max_abs_diff", summary.quantity == "lyapunov_zero_crossing"),
        ("gauge_threshold_max_abs_diff", summary.quantity.str.endswith("_threshold")),
    ):
        metrics[name], metrics[f"n_excluded_{name}"] = _headline_max(summary.difference[rows], summary.status[rows])
    rf = summary[summary.quantity == "relu_finite_width_lambda"]
    metrics["relu_finite_width_max_z"], metrics["n_excluded_relu_finite_width_max_z"] = _headline_max(
        rf.difference / rf.measured_se, rf.status
    )
    metrics.update({
        "ginn_test_accuracy": tables["ginn_train/metrics.json"].get("test_accuracy"),
        "mlp_test_accuracy": tables["ginn_train/metrics.json"].get("mlp_test_accuracy"),
        "n_figures": len(figures),
    })  # fmt: skip
    loop = one_loop_verdicts(tables["mlp_sweep/one_loop_crossings.csv"])
    # a comparison on both sides, of a one loop whose status is ok
    predicted = (loop.one_loop_status == "ok") & loop.crossing_one_loop.notna() & loop.crossing_measured.notna()
    metrics["one_loop_agrees"] = f"{int((loop.verdict == 'agrees').sum())}/{int(predicted.sum())}"
    metrics["n_excluded_one_loop"] = int(len(loop) - predicted.sum())
    comparable = loop.one_loop_closer_than_mean_field.notna()
    metrics["one_loop_closer_than_mean_field"] = (
        f"{int((loop.one_loop_closer_than_mean_field[comparable] == True).sum())}/{int(comparable.sum())}"  # noqa: E712
    )
    return ReportResult(tables, summary, metrics, figures, loop)


def _html(result: ReportResult, figs: Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ginn-lab report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#333;font-size:.9em}"
        "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body><h1>ginn-lab: signal propagation, edge of chaos and gauge-invariant networks</h1>",
        "<p>Rebuilt by <code>dvc repro</code> from the stage outputs under <code>outputs/</code>. Every figure below "
        "is the one its stage drew into <code>outputs/&lt;stage&gt;/figures/</code>; measured values carry "
        "standard errors over seeds.</p>",
    ]
    section = None
    for f in REPORT_FIGURES:
        if f.section != section:
            section = f.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        if f.name not in result.figures:  # an optional study that did not run
            parts.append(f"<p><em>{html.escape(f.name)}: not produced (its optional study did not run).</em></p>")
            continue
        data = base64.b64encode((figs / f.name).read_bytes()).decode()
        parts.append(
            f"<figure id='{f.name[:-4]}'><img alt='{f.name}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
        )
    if result.one_loop is not None:
        parts.append("<h2>Loop corrections: measured crossings against one loop</h2>")
        bad = result.one_loop[result.one_loop.verdict.str.startswith("DISAGREES")]
        parts.append(
            f"<p>One loop at the measured depth agrees with {result.metrics['one_loop_agrees']} measured crossings "
            f"within max(2 SE, 0.02), and is closer than mean field for "
            f"{result.metrics['one_loop_closer_than_mean_field']}. "
            + _excluded_sentence(result.one_loop)
            + (f"It disagrees at {len(bad)}: " + "; ".join(
                f"{_case_label(r)}: measured {r.crossing_measured:.3f} +- "
                f"{r.crossing_se:.3f}, one loop {r.crossing_one_loop:.3f}" for r in bad.itertuples()) + "."
               if len(bad) else "It agrees everywhere it makes a prediction.")
            + "</p>"
        )  # fmt: skip
        cols = ["group", "activation", "sigma_b2", "width", "depth", "crossing_measured", "crossing_se",
                "crossing_mean_field", "crossing_mean_field_finite_depth", "crossing_one_loop", "crossing_exact",
                "expansion_parameter", "verdict"]  # fmt: skip
        cols = [c for c in cols if c in result.one_loop]
        parts.append(result.one_loop[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    parts.append("<h2>Headline numbers</h2>")
    parts.append(result.summary.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    parts.append("</body></html>")
    return "\n".join(parts)


def _excluded_sentence(loop: pd.DataFrame) -> str:
    """Which jobs have no one-loop comparison, and why (their status), e.g. '12 jobs have no comparison: ...'."""
    none = loop[loop.verdict != "agrees"]
    none = none[~none.verdict.str.startswith("DISAGREES")]
    if none.empty:
        return ""
    why = none.verdict.value_counts()
    return (f"{len(none)} job(s) have no comparison and leave these counts: "
            + "; ".join(f"{n} x {v}" for v, n in why.items()) + ". ")  # fmt: skip


def write(result: ReportResult, folder: Path) -> StageOutput:
    figs = folder / "figures"
    figs.mkdir()
    for name, path in result.figures.items():
        shutil.copyfile(path, figs / name)
    write_csv(result.summary, folder / "summary.csv")
    (folder / "report.html").write_text(_html(result, figs))
    m = result.metrics
    return StageOutput(
        m,
        {},
        f"{len(result.figures)} figures, max |lyapunov crossing - theory| = "
        + (f"{m['lyapunov_crossing_max_abs_diff']:.3f}" if m["lyapunov_crossing_max_abs_diff"] is not None else "none")
        + f" ({m['n_excluded_lyapunov_crossing_max_abs_diff']} excluded) -> report.html",
    )
