"""`mlp_sweep` stage: one (activation, width, depth, sigma_b2, xi) job over a sigma_w2 grid (docs/science.md §2).

The engine vectorizes over sigma_w2 x seeds x inputs; Hydra multirun sweeps widths, depths and
activations; `python -m pipeline.collect mlp_sweep` merges the jobs' tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.schema import StageConfig
from pipeline.dynamics.engine_spec import ensemble_spec
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import layer_curves, summarize, zero_crossing
from pipeline.plots.figures import draw_stage_figures
from pipeline.stages.runner import NumericalError, StageOutput
from pipeline.stages.tables import write_tables
from pipeline.stages.theory_inputs import theory_crossing
from pipeline.theory.predictions import predictions

log = logging.getLogger("ginn.mlp_sweep")


@dataclass
class MlpSweepResult:
    sweep: pd.DataFrame  # one row per sigma_w2: measured and theory
    layers: pd.DataFrame  # one row per (sigma_w2, layer): measured and theory
    crossing: dict
    output: StageOutput | None = None  # headline metrics, curves, summary (computed in compute)


def compute(cfg: StageConfig) -> MlpSweepResult:
    """Simulate the ensemble and join the mean-field predictions by key (sigma_w2, layer)."""
    net, eng = cfg.net, cfg.engine
    sws = cfg.grid.sigma_w2.points()
    m = simulate(ensemble_spec(net, eng, sws, cfg.seed))
    table = summarize(m, eng.burn_in)
    if table.n_seeds_used.min() == 0:
        bad = table.sigma_w2[table.n_seeds_used == 0].tolist()
        raise NumericalError(f"all networks non-finite at sigma_w2={bad}")
    theory, iters = predictions(net.activation.value, sws, net.sigma_b2, net.depth, eng.q0, eng.c0, net.xi)
    sweep = table.merge(theory, on="sigma_w2", how="left", validate="one_to_one")
    meta = dict(
        activation=net.activation.value,
        width=net.width,
        depth=net.depth,
        sigma_b2=net.sigma_b2,
        xi=net.xi,
        weights=net.weights.value,
        dtype=eng.dtype.value,
    )
    for i, (k, v) in enumerate(meta.items()):
        sweep.insert(i, k, v)
    iter_cols = iters[["sigma_w2", "layer", "q11", "c", "chi1"]].rename(
        columns={"q11": "q_theory", "c": "c_theory", "chi1": "chi1_theory"}
    )
    layers = layer_curves(m).merge(iter_cols, on=["sigma_w2", "layer"], how="left", validate="one_to_one")
    layers.insert(0, "width", net.width)
    layers.insert(0, "activation", net.activation.value)
    x0, se = zero_crossing(
        sweep.sigma_w2.to_numpy(), sweep.lambda_replica.to_numpy(), sweep.lambda_replica_se.to_numpy()
    )
    theory_x0, source = theory_crossing(cfg.theory_outputs, net.activation.value, net.sigma_b2, net.xi)
    crossing = {
        "crossing_measured": x0,
        "crossing_measured_se": se,
        "crossing_theory": theory_x0,
        "crossing_theory_source": source,
    }
    result = MlpSweepResult(sweep, layers, crossing)
    result.output = headline(result)
    return result


def write(result: MlpSweepResult, folder: Path) -> StageOutput:
    """sweep.csv, layers.csv and the job's figures; returns the headline from `compute`."""
    tables = write_tables("mlp_sweep", folder, {"sweep.csv": result.sweep, "layers.csv": result.layers})
    draw_stage_figures("mlp_sweep", tables, folder / "figures")
    return result.output


def headline(result: MlpSweepResult) -> StageOutput:
    """metrics.json numbers, curves and the one-line summary, from the result tables (no I/O)."""
    s = result.sweep
    rel_chi = (s.chi / s.chi1 - 1).abs()
    metrics = {
        **result.crossing,
        "chi_rel_err_median": float(np.nanmedian(rel_chi)),
        "lambda_replica_minus_tangent_max": float((s.lambda_replica - s.lambda_tangent).abs().max()),
        "n_failed_networks": int(s.n_failed_networks.sum()),
    }
    curves = {}  # per-layer curves: layers.csv and the layer_profiles figure, not one metric key per sigma_w2
    c = result.crossing
    return StageOutput(
        metrics,
        curves,
        f"lambda = 0 at sigma_w2 = {c['crossing_measured']:.4f} "
        f"+- {c['crossing_measured_se']:.4f} (theory {c['crossing_theory']:.4f})",
    )
