"""`gauge_scan` stage: the gauge parameter xi swept, measured vs predicted thresholds (docs/science.md §4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.schema import GaugeScanConfig
from pipeline.dynamics.engine_spec import ensemble_spec
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import Crossing, network_crossing, network_values, summarize
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.stages.theory_inputs import theory_threshold
from pipeline.status import mask_invalid
from pipeline.theory.gauge import gauge_theory, thresholds
from pipeline.theory.predictions import integrator

log = logging.getLogger("ginn.gauge_scan")
SMALL_Q0, PROBE_DEPTH = 1e-6, 5  # tiny-signal probe of the trivial fixed point's stability
THRESHOLD_COLUMNS = [
    "activation",
    "xi",
    "sigma_b2",
    "width",
    "len_threshold_theory",
    "len_threshold_measured",
    "len_threshold_se",
    "chaos_threshold_theory",
    "chaos_threshold_measured",
    "chaos_threshold_se",
    "len_threshold_status",  # of the measured length crossing: "ok", or why there is none (statistics.Crossing)
    "len_threshold_reason",
    "chaos_threshold_status",  # of the measured chaos crossing
    "chaos_threshold_reason",
    "chaos_threshold_theory_status",  # of the theory chaos threshold (critical.threshold_status)
    "chaos_threshold_theory_source",
]


@dataclass
class GaugeScanResult:
    scan: pd.DataFrame  # one row per (case, width, xi, sigma_w2)
    thresholds: pd.DataFrame  # one row per (case, width, xi)
    output: StageOutput | None = None  # headline metrics, curves, summary (computed in compute)


def compute(cfg: GaugeScanConfig) -> GaugeScanResult:
    """Simulate every (case, width, xi) over the sigma_w2 grid; theory from the same xi ensemble."""
    ga, net, eng = cfg.gauge, cfg.net, cfg.engine
    sws = ga.sigma_w2.points()
    jobs = [(c, w, xi) for c in ga.cases for w in ga.widths for xi in ga.xi]
    rows, trows, theory_cache = [], [], {}
    for case, width, xi in progress(jobs, desc="gauge scan"):
        act = case.activation.value
        spec = ensemble_spec(net, eng, sws, cfg.seed, activation=act, sigma_b2=case.sigma_b2, width=width, xi=xi)
        m = simulate(spec)
        t = summarize(m, eng.burn_in)
        g = integrator(act, max(sws), case.sigma_b2)
        theory = pd.DataFrame({k: v.numpy() for k, v in gauge_theory(g, np.asarray(sws), case.sigma_b2, xi).items()})
        theory.insert(0, "sigma_w2", np.asarray(sws))
        t = t.merge(theory, on="sigma_w2", how="left", validate="one_to_one")
        for i, (k, v) in enumerate(dict(activation=act, sigma_b2=case.sigma_b2, width=width, xi=xi).items()):
            t.insert(i, k, v)
        rows.append(t)
        key = (act, case.sigma_b2, xi)  # theory does not depend on the width: once per key
        if key not in theory_cache:
            theory_cache[key] = (
                float(thresholds(g, case.sigma_b2, xi)["len_threshold"][0]),
                theory_threshold(cfg.theory_outputs, act, case.sigma_b2, xi),  # the one rule, every xi
            )
        len_th, chaos_th = theory_cache[key]
        growth_m, growth_b = m, eng.burn_in
        if not g.act.homogeneous and case.sigma_b2 == 0:
            # the threshold is the stability of q* = 0: measure the growth of a tiny signal (A_q(0))
            probe = ensemble_spec(
                net,
                eng,
                sws,
                cfg.seed,
                activation=act,
                sigma_b2=0.0,
                width=width,
                xi=xi,
                q0=SMALL_Q0,
                depth=PROBE_DEPTH,
                n_spectrum=0,
            )
            growth_m, growth_b = simulate(probe), 0
        growth = network_values(growth_m, growth_b, "log_q_growth")
        length = network_crossing(np.asarray(growth_m.spec.sigma_w2), growth, "log_q_growth")
        if not np.isfinite(len_th):  # no length threshold in theory (q* > 0 always): none measured either
            nan = float("nan")
            length = Crossing(nan, nan, "no_theory", "q* > 0 for every sigma_w2: no length threshold")
        chaos = network_crossing(np.asarray(sws), network_values(m, eng.burn_in, "lambda_replica"), "lambda_replica")
        label = f"{act} sigma_b2={case.sigma_b2:g} N={width} xi={xi:g}"
        for what, c in (("length", length), ("chaos", chaos)):
            if c.status not in ("ok", "no_theory"):
                log.warning("%s: no measured %s threshold: %s (%s)", label, what, c.reason, c.status)
        trows.append(dict(zip(THRESHOLD_COLUMNS, [
            act, xi, case.sigma_b2, width, len_th, length.x, length.se, chaos_th.value, chaos.x, chaos.se,
            length.status, length.reason, chaos.status, chaos.reason, chaos_th.status, chaos_th.source,
        ])))  # fmt: skip
    thr = pd.DataFrame(trows, columns=THRESHOLD_COLUMNS)
    thr = mask_invalid(thr, ["len_threshold_measured", "len_threshold_se"], "len_threshold_status")
    thr = mask_invalid(thr, ["chaos_threshold_measured", "chaos_threshold_se"], "chaos_threshold_status")
    thr = mask_invalid(thr, ["chaos_threshold_theory"], "chaos_threshold_theory_status")
    thr["group"] = [f"{a} sb2={b:g} N={w}" for a, b, w in zip(thr.activation, thr.sigma_b2, thr.width)]  # dvc plots
    result = GaugeScanResult(pd.concat(rows, ignore_index=True), thr)
    result.output = headline(result)
    return result


def write(result: GaugeScanResult, folder: Path) -> StageOutput:
    """gauge_scan.csv, thresholds.csv and figures; returns the headline from `compute`."""
    tables = write_tables("gauge_scan", folder, {"gauge_scan.csv": result.scan, "thresholds.csv": result.thresholds})
    draw_stage_figures("gauge_scan", tables, folder / "figures")
    return result.output


def headline(result: GaugeScanResult) -> StageOutput:
    """metrics.json numbers, curves and the one-line summary, from the result tables (no I/O)."""
    th = result.thresholds
    d_len = (th.len_threshold_measured - th.len_threshold_theory).abs()
    d_chaos = (th.chaos_threshold_measured - th.chaos_threshold_theory).abs()
    s = result.scan
    exact = s.lambda_theory.notna()
    z = ((s.lambda_replica - s.lambda_theory).abs() / s.lambda_replica_se)[exact]
    z = z[np.isfinite(z)]  # a NaN measured exponent or a zero SE has no z

    def _max(d: pd.Series) -> float | None:
        return float(d.max()) if d.notna().any() else None

    if not exact.any():
        z_status = "no_exact_exponent"  # lambda_theory is exact for homogeneous activations at sigma_b2 = 0 only
    else:
        z_status = "ok" if len(z) else "no_valid_measurement"
    metrics = {
        "len_threshold_max_abs_err": _max(d_len),  # over rows with both thresholds; the rest counted below
        "n_excluded_len_thresholds": int(d_len.isna().sum()),
        "chaos_threshold_max_abs_err": _max(d_chaos),
        "n_excluded_chaos_thresholds": int(d_chaos.isna().sum()),
        "exact_exponent_median_z": float(z.median()) if len(z) else None,
        "exact_exponent_median_z_status": z_status,
        "n_excluded_exact_exponents": int(exact.sum() - len(z)),  # rows with an exact exponent but no finite z
        "n_failed_networks": int(s.n_failed_networks.sum()),
    }
    summary = (
        f"max |threshold error|: length {d_len.max():.3f} ({int(d_len.notna().sum())}/{len(d_len)} rows), "
        f"chaos {d_chaos.max():.3f} ({int(d_chaos.notna().sum())}/{len(d_chaos)} rows)"
    )
    return StageOutput(metrics, {}, summary)
