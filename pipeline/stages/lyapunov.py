"""`lyapunov` stage: largest exponent by two replicas and by tangents, QR spectrum, ReLU exact check (§3)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config.schema import LyapunovConfig
from pipeline.dynamics.engine_spec import ensemble_spec
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import Crossing, layer_curves, network_crossing, network_values, summarize
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.collect import crossing_agreement
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.stages.theory_inputs import crossing_columns, theory_threshold
from pipeline.status import mask_invalid
from pipeline.theory.finite_width import relu_lyapunov_exact
from pipeline.theory.predictions import predictions

log = logging.getLogger("ginn.lyapunov")


@dataclass
class LyapunovResult:
    lyapunov: pd.DataFrame  # one row per (activation, sigma_b2, sigma_w2)
    crossings: pd.DataFrame
    relu_finite_width: pd.DataFrame
    eps_check: pd.DataFrame
    local: pd.DataFrame  # per-layer local exponents
    output: StageOutput | None = None  # headline metrics, curves, summary (computed in compute)


def _curve(cfg: LyapunovConfig, activation, sigma_b2: float, sws) -> tuple[pd.DataFrame, pd.DataFrame, Crossing]:
    """(lyapunov.csv rows, local exponents, zero crossing of lambda_replica over the networks) of one curve."""
    net, eng = cfg.net, cfg.engine
    spec = ensemble_spec(net, eng, sws, cfg.seed, activation=activation.value, sigma_b2=sigma_b2)
    m = simulate(spec)
    table = summarize(m, eng.burn_in)
    crossing = network_crossing(table.sigma_w2.to_numpy(), network_values(m, eng.burn_in, "lambda_replica"),
                                "lambda_replica")  # fmt: skip
    theory, _ = predictions(activation.value, sws, sigma_b2, net.depth, eng.q0, eng.c0, net.xi)
    table = table.merge(
        theory[["sigma_w2", "chi1", "lambda_mf", "q_star"]], on="sigma_w2", how="left", validate="one_to_one"
    )
    for i, (k, v) in enumerate(
        dict(activation=activation.value, sigma_b2=sigma_b2, width=net.width, depth=net.depth, xi=net.xi).items()
    ):
        table.insert(i, k, v)
    local = layer_curves(m)[["sigma_w2", "layer", "lambda_replica", "lambda_tangent"]]
    local.insert(0, "sigma_b2", sigma_b2)
    local.insert(0, "activation", activation.value)
    return table, local, crossing


def compute(cfg: LyapunovConfig) -> LyapunovResult:
    """All curves, their zero crossings, the ReLU finite-width table and the eps check."""
    net, eng, ly = cfg.net, cfg.engine, cfg.lyapunov
    tables, locals_, crossings = [], [], []
    for curve in progress(ly.curves, desc="lyapunov curves"):
        t, loc, cr = _curve(cfg, curve.activation, curve.sigma_b2, curve.sigma_w2.points())
        tables.append(t)
        locals_.append(loc)
        th = theory_threshold(cfg.theory_outputs, curve.activation.value, curve.sigma_b2, net.xi)
        label = f"{curve.activation.value} sigma_b2={curve.sigma_b2:g}"
        if cr.status != "ok":
            log.warning("%s: no measured crossing: %s (%s)", label, cr.reason, cr.status)
        if th.status != "ok":
            log.warning("%s: no theory crossing at xi=%g (%s)", label, net.xi, th.status)
        crossings.append(
            {
                "activation": curve.activation.value,
                "width": net.width,
                "sigma_b2": curve.sigma_b2,
                "xi": net.xi,
                **crossing_columns(cr, th),
            }
        )
    rfw = ly.relu_finite_width
    rows = []
    for width in progress(rfw.widths, desc="relu finite width"):
        spec = ensemble_spec(
            net,
            eng,
            rfw.sigma_w2,
            cfg.seed,
            activation="relu",
            sigma_b2=0.0,
            xi=1.0,
            weights="gaussian",
            width=width,
            depth=rfw.depth,
            n_seeds=rfw.n_seeds,
            n_spectrum=0,
        )
        s = summarize(simulate(spec), eng.burn_in)
        for _, r in s.iterrows():
            rows.append(
                {
                    "width": width,
                    "sigma_w2": r.sigma_w2,
                    "lambda_measured": r.lambda_replica,
                    "lambda_measured_se": r.lambda_replica_se,
                    "lambda_tangent": r.lambda_tangent,
                    "lambda_exact": relu_lyapunov_exact(width, r.sigma_w2),
                    "lambda_mean_field": 0.5 * math.log(r.sigma_w2 / 2),
                }
            )
    ec = ly.eps_check
    eps_rows = []
    for eps in ec.eps:
        spec = ensemble_spec(
            net,
            eng,
            [ec.sigma_w2],
            cfg.seed,
            activation=ec.activation.value,
            sigma_b2=ec.sigma_b2,
            eps=eps,
            dtype="float64",
            n_spectrum=0,
        )
        s = summarize(simulate(spec), eng.burn_in).iloc[0]
        eps_rows.append(
            {
                "activation": ec.activation.value,
                "sigma_w2": ec.sigma_w2,
                "sigma_b2": ec.sigma_b2,
                "eps": eps,
                "lambda_replica": s.lambda_replica,
                "lambda_replica_se": s.lambda_replica_se,
                "lambda_tangent": s.lambda_tangent,
                "lambda_tangent_se": s.lambda_tangent_se,
            }
        )
    table = pd.concat(tables, ignore_index=True)
    table["group"] = [f"{a} sb2={b:g}" for a, b in zip(table.activation, table.sigma_b2)]  # one dvc-plots line each
    zc = mask_invalid(
        pd.DataFrame(crossings), ["crossing_measured", "crossing_measured_se"], "crossing_measured_status"
    )
    zc = mask_invalid(zc, ["crossing_mean_field"], "crossing_mean_field_status")
    result = LyapunovResult(
        table,
        zc,
        pd.DataFrame(rows),
        pd.DataFrame(eps_rows),
        pd.concat(locals_, ignore_index=True),
    )
    result.output = headline(result)
    return result


def write(result: LyapunovResult, folder: Path) -> StageOutput:
    """Tables and figures; returns the headline from `compute`."""
    tables = write_tables(
        "lyapunov",
        folder,
        {
            "lyapunov.csv": result.lyapunov,
            "zero_crossings.csv": result.crossings,
            "relu_finite_width.csv": result.relu_finite_width,
            "eps_check.csv": result.eps_check,
            "local_exponents.csv": result.local,
        },
    )
    draw_stage_figures("lyapunov", tables, folder / "figures")
    return result.output


def headline(result: LyapunovResult) -> StageOutput:
    """metrics.json numbers, curves and the one-line summary, from the result tables (no I/O)."""
    cr = result.crossings
    rfw = result.relu_finite_width
    depth = int(result.lyapunov.depth.iloc[0])
    metrics = {
        "crossing": {
            f"{r.activation}_sb{r.sigma_b2:g}": {
                "measured": r.crossing_measured,
                "se": r.crossing_measured_se,
                "measured_status": r.crossing_measured_status,
                "measured_reason": r.crossing_measured_reason,
                "mean_field": r.crossing_mean_field,
                "mean_field_status": r.crossing_mean_field_status,
                # z_mean_field, minus_mean_field (or why not: z_mean_field_status) as one_loop_crossings.csv computes
                **crossing_agreement({**r._asdict(), "depth": depth}, r._asdict(), ("mean_field",)),
            }
            for r in cr.itertuples()
        },
        "crossing_z_one_loop_status": "not computed: this stage predicts mean field only (one loop: mlp_sweep)",
        "relu_finite_width_max_z": float(
            ((rfw.lambda_measured - rfw.lambda_exact).abs() / rfw.lambda_measured_se).max()
        ),
        "replica_minus_tangent_max_z": float(
            (
                (result.lyapunov.lambda_replica - result.lyapunov.lambda_tangent).abs()
                / result.lyapunov.lambda_replica_se
            ).max()
        ),
        "eps_spread": float(result.eps_check.lambda_replica.max() - result.eps_check.lambda_replica.min()),
    }
    curves = {}  # per-layer local exponents: local_exponents.csv, not one metric key per (curve, sigma_w2)
    summary = "; ".join(
        f"{r.activation} sb2={r.sigma_b2:g}: crossing "
        + Crossing(r.crossing_measured, r.crossing_measured_se, r.crossing_measured_status,
                   r.crossing_measured_reason).text(3)
        + " (theory "
        + (f"{r.crossing_mean_field:.3f}" if r.crossing_mean_field_status == "ok"
           else f"nan ({r.crossing_mean_field_status})")
        + ")"
        for r in cr.itertuples()
    )  # fmt: skip
    return StageOutput(metrics, curves, summary)
