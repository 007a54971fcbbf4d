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

Verdict on every comparison (`judge`, one rule: AGREE_Z, GRID_FLOOR): each row gets z = difference / combined SE
and agrees / disagrees / no theory / no measurement with its reason; every section opens with what agreed and what
did not. The page's header says how it was made (`report_provenance`: dvc repro or hand-run, commit, inputs' md5
against dvc.lock, each stage's preset, seeds, widths, depths; a banner for the smoke preset).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config.schema import StageConfig
from pipeline.plots.figures import REPORT_FIGURES
from pipeline.stages import report_provenance
from pipeline.stages.collect import ONE_LOOP_VALUES, one_loop_closer
from pipeline.stages.outputs import StageOutput
from pipeline.stages.report_provenance import Provenance
from pipeline.stages.tables import write_csv
from pipeline.status import mask_invalid

log = logging.getLogger("ginn.report")


@dataclass
class ReportResult:
    tables: dict
    summary: pd.DataFrame
    metrics: dict
    figures: dict = field(default_factory=dict)  # figure name -> the stage's PNG under the outputs root
    one_loop: pd.DataFrame | None = None  # measured crossings vs one loop, with a verdict per job
    provenance: Provenance | None = None  # how the report was made (the page's header)
    facts: dict = field(default_factory=dict)  # what was run, for the captions' {placeholders} (`caption_facts`)


def _missing(paths: list[Path]) -> FileNotFoundError:
    return FileNotFoundError(f"report inputs missing (run `dvc repro` first): {', '.join(map(str, paths))}")


def missing_inputs(root: Path) -> list[Path]:
    """Every input the report needs (headline tables, non-optional stage figures) that is absent under root."""
    root = Path(root)
    need = [root / key for key in REQUIRED_TABLES] + [root / f.source for f in REPORT_FIGURES if not f.optional]
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
    """The tables of the headline numbers, keyed 'stage/file.csv'; a missing required one is an error naming it, a
    missing optional one (its study did not run) is left out."""
    tables, missing = {}, []
    for key in HEADLINE_TABLES:
        path = root / key
        if not path.is_file():
            if key in REQUIRED_TABLES:
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


# ---- the headline table: one builder per stage table; each row says which report section it belongs to -----
def _row(quantity, context, activation, measured, se, theory, status="ok") -> dict:
    return {"quantity": quantity, "context": context, "activation": activation, "measured": measured,
            "measured_se": se, "theory": theory, "difference": measured - theory, "status": status}  # fmt: skip


def _lyapunov_rows(t) -> list[dict]:
    return [_row("lyapunov_zero_crossing", f"{r.activation} sigma_b2={r.sigma_b2:g} N={r.width}", r.activation,
                 r.crossing_measured, r.crossing_measured_se, r.crossing_mean_field, row_status(r))
            for r in t.itertuples()]  # fmt: skip


def _critical_rows(crit) -> list[dict]:
    return [_row("critical_sigma_w2_sigma_b2_0", r.activation, r.activation, np.nan, np.nan, r.sigma_w2_crit,
                 row_status(r)) for r in crit[crit.sigma_b2 == 0].itertuples()]  # fmt: skip


def _threshold_rows(th) -> list[dict]:
    rows = []
    for r in th[th.width == th.width.max()].itertuples():
        for kind in ("len", "chaos"):
            t = getattr(r, f"{kind}_threshold_theory")
            if np.isfinite(t):
                rows.append(_row(f"{kind}_threshold", f"{r.activation} sigma_b2={r.sigma_b2:g} xi={r.xi:g} N={r.width}",
                                 r.activation, getattr(r, f"{kind}_threshold_measured"),
                                 getattr(r, f"{kind}_threshold_se"), t, row_status(r)))  # fmt: skip
    return rows


def _relu_rows(rfw) -> list[dict]:
    return [_row("relu_finite_width_lambda", f"N={r.width} sigma_w2={r.sigma_w2:g}", "relu", r.lambda_measured,
                 r.lambda_measured_se, r.lambda_exact, row_status(r)) for r in rfw.itertuples()]  # fmt: skip


def _accuracy_rows(gm) -> list[dict]:
    # the model's activation and data set as ginn_train recorded them
    return [_row("test_accuracy", f"{label} on {gm['dataset']}", gm[act], gm[key], np.nan, np.nan)
            for key, label, act in (("test_accuracy", "ginn", "activation"),
                                    ("mlp_test_accuracy", "mlp", "mlp_activation")) if key in gm]  # fmt: skip


def _one_loop_rows(loop) -> list[dict]:
    return [_row("one_loop_zero_crossing", _case_label(r), r.activation, r.crossing_measured, r.crossing_se,
                 r.crossing_one_loop, "ok" if r.one_loop_status == "ok" else f"one_loop_status={r.one_loop_status}")
            for r in one_loop_table(loop).itertuples()]  # fmt: skip


def _field_rows(spectra) -> list[dict]:
    """Depth-time multipliers of the stochastic field against their dressed (one-loop) prediction, where it is
    meant to hold: N >= 64 for the length and gauge modes (the next order is visible below), every correlation row."""
    keep = (spectra.width >= 64) | (spectra["mode"] == "correlation")
    return [_row("field_multiplier", f"{r.mode} sigma_w2={r.sigma_w2:g} sigma_b2={r.sigma_b2:g} xi={r.xi:g} "
                 f"N={r.width}", r.activation, r.multiplier_measured, r.multiplier_se, r.multiplier_one_loop,
                 row_status(r)) for r in spectra[keep].itertuples()]  # fmt: skip


def _mean_field_rows(loop) -> list[dict]:
    """The sweep's measured crossings against mean field at infinite depth (finite-width shifts expected)."""
    return [_row("mean_field_zero_crossing", _case_label(r), r.activation, r.crossing_measured, r.crossing_se,
                 r.crossing_mean_field, row_status(r)) for r in loop.itertuples()]  # fmt: skip


@dataclass(frozen=True)
class Rows:
    """Headline rows from one stage table: the table ('stage/file' under the outputs root), the report section
    whose caption counts their verdicts, and the builder (table -> rows of `_row`). A new study adds an entry."""

    table: str
    section: str
    build: Callable[[Any], list[dict]]
    optional: bool = False  # its study may not have run (the smoke pipeline has no field stage): rows left out


ROWS: list[Rows] = [
    Rows("lyapunov/zero_crossings.csv", "Lyapunov exponents", _lyapunov_rows),
    Rows("theory/critical_line.csv", "Mean-field theory", _critical_rows),
    Rows("gauge_scan/thresholds.csv", "Gauge parameter", _threshold_rows),
    Rows("lyapunov/relu_finite_width.csv", "Lyapunov exponents", _relu_rows),
    Rows("ginn_train/metrics.json", "Gauge-invariant network", _accuracy_rows),
    Rows("mlp_sweep/one_loop_crossings.csv", "Finite-width networks", _mean_field_rows),
    Rows("mlp_sweep/one_loop_crossings.csv", "Loop corrections", _one_loop_rows),
    Rows("field/spectra.csv", "Stochastic field", _field_rows, optional=True),
]
# the tables the headline numbers (summary.csv, metrics.json) are computed from; the report needs the required ones
HEADLINE_TABLES = tuple(dict.fromkeys(r.table for r in ROWS))
REQUIRED_TABLES = tuple(dict.fromkeys(r.table for r in ROWS if not r.optional))


def headline(tables: dict) -> pd.DataFrame:
    """summary.csv: measured vs predicted critical points, thresholds, finite-width check, accuracies, each row
    with its section, `z` and `verdict` (`judge`).

    Every row has a `status` ("ok", or why its numbers are not shown): a one-loop row whose one loop is not ok
    keeps its measurement and has no theory/difference; any other row that is not ok has no numbers at all.
    """
    frames = [pd.DataFrame(spec.build(tables[spec.table])).assign(section=spec.section)
              for spec in ROWS if spec.table in tables]  # fmt: skip
    out = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    one = out.quantity == "one_loop_zero_crossing"  # the status is the one loop's: the measurement stays
    out = pd.concat(
        [mask_invalid(out[~one], SUMMARY_VALUES), mask_invalid(out[one], ["theory", "difference"])]
    ).sort_index()
    return judge(out)


# the provenance row of a stage with no saved config under the inputs (not run there, or its folder was copied bare)
NOT_FOUND = "not run here (no saved config)"


# ---- verdicts: one rule for every comparison ---------------------------------------------------------------
AGREE_Z = 2.0  # |measured - theory| within AGREE_Z combined standard errors agrees (the one-loop rule of issue 21)
GRID_FLOOR = 0.02  # ... or within this, for values located on a sigma_w2 grid (zero crossings, thresholds)
FLOORS = {q: GRID_FLOOR for q in ("lyapunov_zero_crossing", "len_threshold", "chaos_threshold",
                                  "one_loop_zero_crossing", "mean_field_zero_crossing")}  # fmt: skip
VERDICTS = ("agrees", "disagrees", "no theory", "no measurement")
# why a quantity has no theory value at all (not a status: nothing predicts it)
NO_THEORY = {"test_accuracy": "no prediction: test accuracy compares GINN with the MLP, not with a theory"}
# what a disagreement of a quantity means when theory is a limit the measurement is not taken in
EXPECTED_MISS = {
    q: "mean field is the infinite-width limit: finite width shifts the crossing by O(1/N) (one loop "
    "predicts the shift: Loop corrections)"
    for q in ("mean_field_zero_crossing", "lyapunov_zero_crossing")
}
NO_MEASUREMENT = {"critical_sigma_w2_sigma_b2_0": "theory only: the mean-field critical point (measured at "
                                                  "finite width in the Lyapunov rows)"}  # fmt: skip


def tolerance(se, floor: float = 0.0):
    """The agreement band: max(AGREE_Z x the combined SE, floor)."""
    return np.maximum(AGREE_Z * np.asarray(se, dtype=float), floor)


def judge(summary: pd.DataFrame) -> pd.DataFrame:
    """Add `theory_se` (0: every theory here is a closed form or a converged deterministic computation),
    `combined_se`, `z` = difference / combined SE, `tolerance` and `verdict` (VERDICTS) with its `reason`.

    Rows whose status is not ok have NaN where their status speaks, so they get "no theory"/"no measurement" with
    the status as the reason: never "disagrees".
    """
    s = summary.copy()
    s["theory_se"] = np.where(s.theory.notna(), 0.0, np.nan)
    s["combined_se"] = np.hypot(s.measured_se, s.theory_se)
    s["z"] = s.difference / s.combined_se
    s["tolerance"] = [float(tolerance(se, FLOORS.get(q, 0.0))) for q, se in zip(s.quantity, s.combined_se)]
    verdicts, reasons = [], []
    for r in s.itertuples():
        why = "" if r.status == "ok" else r.status
        if not np.isfinite(r.theory):
            v, why = "no theory", why or NO_THEORY.get(r.quantity, "no prediction")
        elif not np.isfinite(r.measured):
            v, why = "no measurement", why or NO_MEASUREMENT.get(r.quantity, "no measured value")
        elif not (np.isfinite(r.combined_se) and r.combined_se > 0):
            v, why = "no measurement", "no standard error (fewer than 2 finite networks)"
        elif abs(r.difference) <= r.tolerance:
            v = "agrees"
        else:
            v = "disagrees"
            why = f"{r.difference:+.3g} is {abs(r.z):.1f} SE off (band: {r.tolerance:.3g})"
        verdicts.append(v)
        reasons.append(why)
    s["verdict"], s["reason"] = verdicts, reasons
    return s


def section_verdicts(rows: pd.DataFrame, limit: int = 6) -> str:
    """One or two sentences: how many comparisons of `rows` agree, and each disagreement with its numbers."""
    if rows.empty:
        return ""
    n = rows.verdict.value_counts()
    compared = int(n.get("agrees", 0) + n.get("disagrees", 0))
    text = []
    if compared:
        text.append(f"{int(n.get('agrees', 0))} of {compared} comparisons agree (|measured - theory| <= "
                    f"{AGREE_Z:g} SE, or the grid's {GRID_FLOOR:g} for crossings).")  # fmt: skip
    bad = rows[rows.verdict == "disagrees"]
    if len(bad):
        items = [f"{r.quantity} {r.context}: {r.measured:.4g} +- {r.measured_se:.2g} against {r.theory:.4g} "
                 f"(z = {r.z:+.1f})" for r in bad.head(limit).itertuples()]  # fmt: skip
        more = f"; and {len(bad) - limit} more (table below)" if len(bad) > limit else ""
        text.append(f"Disagree ({len(bad)}): " + "; ".join(items) + more + ".")
        text += [f"Expected for {q}: {EXPECTED_MISS[q]}." for q in bad.quantity.unique() if q in EXPECTED_MISS]
    for v in ("no theory", "no measurement"):
        sub = rows[rows.verdict == v]
        if len(sub):
            why = "; ".join(f"{k} ({c})" for k, c in sub.reason.value_counts().items())
            text.append(f"{v.capitalize()} ({len(sub)}): {why}.")
    return " ".join(text)


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
    """Per job: measured crossing vs one loop at the same depth, and whether they agree (`tolerance`:
    max(2 SE, 0.02)).

    The verdict states disagreements with their numbers; tolerances are the issue's, never widened to pass.
    """
    d = one_loop_table(loop)
    d["tolerance"] = tolerance(d.crossing_se, GRID_FLOOR)
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
    counts = summary.verdict.value_counts()
    for v in VERDICTS:
        metrics[f"n_{v.replace(' ', '_')}"] = int(counts.get(v, 0))
    stages = list(dict.fromkeys(f.stage for f in REPORT_FIGURES))
    prov = report_provenance.collect(root, stages, report_provenance.code_state())
    return ReportResult(tables, summary, metrics, figures, loop, prov, caption_facts(tables))


def caption_facts(tables: dict) -> dict:
    """What was run, for the captions' {placeholders}: the data set and activations ginn_train recorded."""
    gm = tables.get("ginn_train/metrics.json", {})
    return {k: gm[k] for k in ("dataset", "activation", "mlp_activation") if k in gm}


def caption(f, facts: dict) -> str:
    """The figure's caption with its {placeholders} filled from `facts` (one left unknown says so)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(facts.get(m.group(1), f"(unknown {m.group(1)})")), f.caption)


STYLE = (
    "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
    "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#333;font-size:.9em}"
    "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px}"
    "#provenance{background:#f4f6f8;border:1px solid #ccd;padding:.5em 1em;margin:1em 0}"
    ".smoke{background:#b00020;color:#fff;font-size:1.4em;font-weight:bold;padding:.6em 1em;margin:1em 0}"
    ".verdicts{background:#fffbe6;border-left:4px solid #e0b000;padding:.4em .8em}"
    "tr.disagrees td{background:#fde0e0}td.verdict{font-weight:bold}</style>"
)


BUILD_STAMP = "build_stamp.js"  # beside report.html, not a DVC output (see build_stamp_js)


def _provenance_html(p: Provenance) -> list[str]:
    """The header: who built the report from what (and a banner when any stage ran the smoke preset)."""
    e = html.escape
    out = []
    if p.smoke:
        smoke = [s.stage for s in p.stages if s.preset == report_provenance.SMOKE_PRESET]
        out.append(f"<div class='smoke' id='smoke-banner'>SMOKE PRESET: {', '.join(smoke)} ran "
                   "<code>experiment=smoke</code> (seconds-long, a few seeds): a first look, not the study's "
                   "numbers.</div>")  # fmt: skip
    rows = "".join(
        f"<tr><td>{e(s.stage)}</td><td>{e(s.preset or 'defaults (no preset)') if s.found else NOT_FOUND}</td>"
        f"<td>{e(s.seeds)}</td><td>{e(s.widths)}</td><td>{e(s.depths)}</td></tr>"
        for s in p.stages
    )
    out.append(
        f"<div id='provenance'><p><span id='build-stamp'><b>Build stamp not loaded</b>: <code>{BUILD_STAMP}</code> "
        "beside this page says how, when and from which commit it was built.</span> "
        f"Inputs: <code>{e(p.inputs)}</code>, "
        f"md5 <code>{e(p.inputs_md5)}</code> ({e(p.lock_status)}).</p>"
        "<table><tr><th>stage</th><th>preset</th><th>seeds (engine.n_seeds)</th><th>widths</th><th>depths</th></tr>"
        f"{rows}</table></div><script src='{BUILD_STAMP}'></script>"
    )
    return out


def build_stamp_js(p: Provenance) -> str:
    """How, when and from which commit the page was built, as a script report.html loads. It lives apart from
    report.html so that the page, a DVC output, hashes the same on every machine and the committed dvc.lock
    reproduces byte for byte (the stamp changes with every build by nature)."""
    e = html.escape
    built = ("Rebuilt by <code>dvc repro</code> (stage report)" if p.built_by == "dvc repro"
             else "Hand-run (<code>python -m pipeline.report</code>, not by <code>dvc repro</code>)")  # fmt: skip
    stamp = (
        f"<b>{built}</b> on {e(p.date)} from commit <code>{e(p.commit[:12])}</code>"
        f"{' <b>(uncommitted changes to code or configs)</b>' if p.dirty else ' (clean)'}."
    )
    return f"document.getElementById('build-stamp').innerHTML = {json.dumps(stamp)};\n"


def _summary_html(summary: pd.DataFrame) -> str:
    """The headline table, the verdict column bold and disagreeing rows shaded."""
    cols = ["section", "quantity", "context", "measured", "measured_se", "theory", "difference", "z", "verdict",
            "reason", "status"]  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in summary[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, r):
            text = "" if (isinstance(v, float) and np.isnan(v)) else (f"{v:.4g}" if isinstance(v, float) else str(v))
            cells.append(f"<td class='{c}'>{html.escape(text)}</td>")
        body.append(f"<tr class='{r.verdict.replace(' ', '-')}'>{''.join(cells)}</tr>")
    return f"<table id='headline'><tr>{head}</tr>{''.join(body)}</table>"


def _html(result: ReportResult, figs: Path) -> str:
    s = result.summary
    n = s.verdict.value_counts()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ginn-lab report</title>",
        STYLE,
        "</head><body><h1>ginn-lab: signal propagation, edge of chaos and gauge-invariant networks</h1>",
    ]
    if result.provenance is not None:
        parts += _provenance_html(result.provenance)
    parts.append(
        f"<p class='verdicts' id='overview'>Every comparison has a verdict: {int(n.get('agrees', 0))} agree, "
        f"{int(n.get('disagrees', 0))} disagree, {int(n.get('no theory', 0))} have no theory and "
        f"{int(n.get('no measurement', 0))} no measurement (agree: |measured - theory| <= {AGREE_Z:g} combined SE, "
        f"or the grid's {GRID_FLOOR:g} for crossings; z = difference / combined SE; table at the end). Every "
        "figure is the one its stage drew into <code>outputs/&lt;stage&gt;/figures/</code>; measured values carry "
        "standard errors over seeds.</p>"
    )
    sections = list(dict.fromkeys([f.section for f in REPORT_FIGURES] + list(s.section.unique())))
    for section in sections:
        parts.append(f"<h2>{html.escape(section)}</h2>")
        said = section_verdicts(s[s.section == section]) or "No headline comparison in this section."
        parts.append(f"<p class='verdicts' data-section='{html.escape(section)}'>{html.escape(said)}</p>")
        for f in (f for f in REPORT_FIGURES if f.section == section):
            if f.name not in result.figures:  # an optional study that did not run
                parts.append(f"<p><em>{html.escape(f.name)}: not produced (its optional study did not run).</em></p>")
                continue
            data = base64.b64encode((figs / f.name).read_bytes()).decode()
            parts.append(
                f"<figure id='{f.name[:-4]}'><img alt='{f.name}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption(f, result.facts))}</figcaption></figure>"
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
    parts.append(_summary_html(result.summary))
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
    if result.provenance is not None:
        (folder / BUILD_STAMP).write_text(build_stamp_js(result.provenance))
    m = result.metrics
    return StageOutput(
        m,
        {},
        f"{len(result.figures)} figures, max |lyapunov crossing - theory| = "
        + (f"{m['lyapunov_crossing_max_abs_diff']:.3f}" if m["lyapunov_crossing_max_abs_diff"] is not None else "none")
        + f" ({m['n_excluded_lyapunov_crossing_max_abs_diff']} excluded); verdicts: {m.get('n_agrees', 0)} agree, "
        f"{m.get('n_disagrees', 0)} disagree -> report.html",
    )
