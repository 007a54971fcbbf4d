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
import torch

from pipeline.activations import get_activation
from pipeline.config.schema import MlpSweepConfig
from pipeline.dynamics.chain import ChainSpec, choose_kernel, tangent_chain
from pipeline.dynamics.engine_spec import ensemble_spec
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import (
    Crossing,
    layer_curves,
    network_crossing,
    network_values,
    summarize,
    zero_crossing,  # noqa: F401  (the point estimate's formula, for tests)
)
from pipeline.plots.figures import draw_stage_figures
from pipeline.stages.collect import DESIGN, crossing_agreement
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.stages.theory_inputs import crossing_columns, one_loop_crossing, theory_threshold
from pipeline.theory.one_loop import EXPANSION_LIMIT, finite_depth_crossing, layer_recursion, one_loop_table
from pipeline.theory.predictions import predictions
from pipeline.tracking.run import Curve

log = logging.getLogger("ginn.mlp_sweep")


@dataclass
class MlpSweepResult:
    sweep: pd.DataFrame  # one row per sigma_w2: measured and theory
    layers: pd.DataFrame  # one row per (sigma_w2, layer): measured and theory
    crossing: dict
    fluctuations: pd.DataFrame | None = None  # per (sigma_w2, layer): N Var(q_hat), N (E q_hat - K) vs one loop
    output: StageOutput | None = None  # headline metrics, curves, summary (computed in compute)


def refined_grid(base: tuple[float, ...], center: float, n: int, halfwidth: float) -> tuple[float, ...]:
    """`base` plus n points evenly over center +- halfwidth (kept > 0), ascending, without near-duplicates."""
    if n <= 0 or not np.isfinite(center):
        return base
    extra = np.linspace(center - halfwidth, center + halfwidth, n)
    pts = np.unique(np.round(np.concatenate([np.asarray(base), extra[extra > 0]]), 10))
    return tuple(float(x) for x in pts)


MIN_NETWORKS = 2  # a sweep point needs this many finite networks: a mean *and* a standard error
ESTIMATE_PREFIXES = ("q_L", "log_q_L", "c_L", "log_q_growth", "chi", "lambda_")


def exclude_points(table: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    """Columns `excluded` and `exclusion_reason`; the estimates of an excluded point set to NaN.

    A point is excluded when fewer than MIN_NETWORKS networks survive (overflowed networks never enter an
    estimate, vanished ones keep their finite layers: `statistics.summarize`): with none there is no estimate,
    with one no standard error. Its
    estimate columns are NaN so that no consumer (crossing, collect, figures) can take them for a measurement.
    """
    out = table.copy()
    n = out.n_seeds_used.astype(int)
    out["excluded"] = n < MIN_NETWORKS
    out["exclusion_reason"] = [
        f"{k} of {n_seeds} networks finite ({o} overflowed, {v} vanished): "
        f"needs >= {MIN_NETWORKS} for a mean and a standard error"
        if k < MIN_NETWORKS
        else ""
        for k, o, v in zip(n, out.n_overflowed_networks, out.n_vanished_networks)
    ]
    cols = [c for c in out.columns if c.startswith(ESTIMATE_PREFIXES)]
    out.loc[out.excluded, cols] = float("nan")
    return out


def refine_center(loop: dict, mean_field: float) -> tuple[float, str]:
    """Where `grid.refine` adds points: the one-loop crossing at this depth, else (no one-loop crossing, e.g. a
    saddle-node transition, or xi != 1 / orthogonal weights, for which one loop is not derived) the
    mean-field crossing of this job's activation, sigma_b2 and xi; (nan, "none") when neither exists."""
    for key, x in (("one_loop", loop.get("crossing_one_loop")), ("mean_field", loop.get("crossing_mean_field")),
                   ("mean_field", mean_field)):  # fmt: skip
        if x is not None and np.isfinite(x):
            return float(x), key
    return float("nan"), "none"


def fluctuation_table(cfg: MlpSweepConfig) -> pd.DataFrame | None:
    """N Var(q_hat^l) and N (E q_hat^l - K^l) over many networks against one loop, per (sigma_w2, layer).

    q_hat^l = |h^l|^2 / N of one input through one network (docs/science.md §6). Inputs of one network are
    correlated, so each seed contributes one number per statistic (its inputs averaged) and the standard
    errors are over seeds. Theory: (V^l + 2 (K^l)^2) and K1^l from `one_loop.layer_recursion`.
    """
    fl, net, eng = cfg.fluctuations, cfg.net, cfg.engine
    if fl.n_seeds == 0 or net.width not in fl.widths or not net.one_loop_applies:
        return None
    sws = tuple(fl.sigma_w2)
    m = simulate(ensemble_spec(net, eng, sws, cfg.seed, n_seeds=fl.n_seeds, n_spectrum=0))
    q = torch.exp(m.log_q)  # (S, K, I, L+1)
    S, N = q.shape[0], net.width
    dev2 = (q - q.nanmean(0, keepdim=True)) ** 2 * (S / (S - 1))  # unbiased per-input variance contributions
    per_seed_var = N * dev2.nanmean(2)  # (S, K, L+1)
    theory = layer_recursion(
        net.activation.value, torch.tensor(sws, dtype=torch.float64), net.sigma_b2, net.depth, eng.q0
    )
    shift = N * (q.nanmean(2) - theory.K.unsqueeze(0))  # (S, K, L+1)
    rows = []
    for k, sw in enumerate(sws):
        for layer in range(net.depth + 1):
            v, sh = per_seed_var[:, k, layer], shift[:, k, layer]
            rows.append({
                "sigma_w2": sw, "layer": layer,
                "N_var_q": float(v.nanmean()), "N_var_q_se": float(v.std() / np.sqrt(S)),
                "N_var_q_one_loop": float(theory.V[k, layer] + 2 * theory.K[k, layer] ** 2),
                "N_mean_shift": float(sh.nanmean()), "N_mean_shift_se": float(sh.std() / np.sqrt(S)),
                "N_mean_shift_one_loop": float(theory.K1[k, layer]),
                "K": float(theory.K[k, layer]), "n_networks": S,
            })  # fmt: skip
    out = pd.DataFrame(rows)
    for i, (key, v) in enumerate(dict(activation=net.activation.value, width=N, sigma_b2=net.sigma_b2).items()):
        out.insert(i, key, v)
    return out


def finite_depth_theory(cfg: MlpSweepConfig, sws, iters: pd.DataFrame, iid: bool) -> pd.DataFrame:
    """Per sigma_w2, the theory of what this depth measures: the exponent averaged over transitions
    burn_in..L-1 (as `statistics.summarize` averages), not at the deep fixed point.

    lambda_mf_finite_depth = mean of 0.5 ln chi1(q^l) along the mean-field iterates from q0 (with xi);
    lambda_coeff_1overN_finite_depth (i.i.d. Gaussian weights only, else NaN) = mean of the one-loop c1^l over the
    same transitions (docs/science.md §6). Near the edge of chaos, or from q0 far from q*, the deep values are
    not reached within L layers and N (lambda - lambda_MF(q*)) would mostly measure that offset times N.
    """
    b, depth = cfg.engine.burn_in, cfg.net.depth
    measured = iters[(iters.layer >= b) & (iters.layer < depth)]  # layer l's chi1 governs transition l -> l+1
    out = (0.5 * np.log(measured.chi1)).groupby(measured.sigma_w2).mean().rename("lambda_mf_finite_depth").reset_index()
    c1 = np.full(len(sws), np.nan)
    if iid:
        net = cfg.net
        rec = layer_recursion(net.activation.value, torch.tensor(sws, dtype=torch.float64), net.sigma_b2, depth,
                              cfg.engine.q0)  # fmt: skip
        c1 = rec.c1[:, :-1][:, b:].mean(1).numpy()
        if not get_activation(net.activation.value).homogeneous:  # status before number: no value past breakdown
            c1[(rec.expansion_parameter(net.width, b) > EXPANSION_LIMIT).numpy()] = np.nan
    loop = pd.DataFrame({"sigma_w2": np.asarray(sws, dtype=float), "lambda_coeff_1overN_finite_depth": c1})
    return out.merge(loop, on="sigma_w2", how="outer", validate="one_to_one")


def compute(cfg: MlpSweepConfig) -> MlpSweepResult:
    """Simulate the ensemble and join the mean-field predictions by key (sigma_w2, layer)."""
    net, eng = cfg.net, cfg.engine
    iid = net.one_loop_applies
    loop, loop_source = (
        one_loop_crossing(cfg.theory_outputs, net.activation.value, net.sigma_b2, net.width) if iid else ({}, "")
    )
    if iid:  # what this depth measures: the exponent averaged over layers burn_in..L-1, at one loop and N -> inf
        fd = finite_depth_crossing(
            net.activation.value, net.sigma_b2, net.width, net.depth, min(eng.burn_in, net.depth - 1), eng.q0
        )
        # the one-loop status speaks for this depth's value; the deep table's status is kept as status_deep
        loop = {**loop, "crossing_one_loop_deep": loop.get("crossing_one_loop"), "status_deep": loop.get("status"),
                "crossing_one_loop": fd.one_loop, "status": fd.status, "expansion_parameter": fd.expansion_parameter,
                "crossing_mean_field_finite_depth": fd.mean_field}  # fmt: skip
    th = theory_threshold(cfg.theory_outputs, net.activation.value, net.sigma_b2, net.xi)
    center, center_source = refine_center(loop, th.value)
    if cfg.grid.refine and not np.isfinite(center):
        log.warning("grid.refine=%d: no predicted crossing to refine around; the grid is not refined", cfg.grid.refine)
    sws = refined_grid(cfg.grid.sigma_w2.points(), center, cfg.grid.refine, cfg.grid.refine_halfwidth)
    m = simulate(ensemble_spec(net, eng, sws, cfg.seed))
    table = exclude_points(summarize(m, eng.burn_in), eng.n_seeds)
    excluded = table.excluded
    if excluded.all():  # flagged, not fatal: one job of a sweep must not sink the others' merge
        log.warning("fewer than %d finite networks at every sigma_w2 of the grid: no crossing", MIN_NETWORKS)
    if excluded.any():  # guarantee 5: the point is excluded and flagged, the rest of the job is kept
        for r in table[excluded].itertuples():
            log.warning("sigma_w2=%g excluded: %s (flagged in sweep.csv `excluded`)", r.sigma_w2, r.exclusion_reason)
    theory, iters = predictions(net.activation.value, sws, net.sigma_b2, net.depth, eng.q0, eng.c0, net.xi)
    theory = theory.merge(finite_depth_theory(cfg, sws, iters, iid), on="sigma_w2", how="left", validate="one_to_one")
    if iid:  # the 1/N coefficient of the typical exponent at the deep fixed point, per sigma_w2 (by key)
        c1 = one_loop_table(net.activation.value, torch.tensor(sws, dtype=torch.float64), net.sigma_b2)[
            ["sigma_w2", "lambda_coeff_1overN"]
        ]
        theory = theory.merge(c1, on="sigma_w2", how="left", validate="one_to_one")
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
    kept = ~table.excluded.to_numpy()  # the crossing never uses an excluded point (its estimates are NaN anyway)
    per_net = network_values(m, eng.burn_in, "lambda_replica")  # (K, S), rows in the order of `table`
    window = cfg.grid.refine_halfwidth if cfg.grid.refine else 0.0  # a refined grid: a line over its points
    cr = network_crossing(table.sigma_w2.to_numpy()[kept], per_net[kept], "lambda_replica", window)
    if cr.status != "ok" and not kept.all():  # name the exclusions that took the points away
        first = table.exclusion_reason[~kept].iloc[0]
        cr = cr._replace(reason=f"{cr.reason}; {int((~kept).sum())} of {len(kept)} points excluded (e.g. {first})")
    if cr.status != "ok":
        log.warning("no measured crossing: %s (%s)", cr.reason, cr.status)
    if th.status != "ok":
        log.warning("no theory crossing for %s sigma_b2=%g xi=%g: %s", net.activation.value, net.sigma_b2, net.xi,
                    th.status)  # fmt: skip
    crossing = {
        **crossing_columns(cr, th),
        **{
            k if k.startswith("crossing") else f"one_loop_{k}": v for k, v in loop.items() if k != "crossing_mean_field"
        },
        "one_loop_source": loop_source,
        "refine_center": center if cfg.grid.refine else None,
        "refine_center_source": center_source if cfg.grid.refine else None,
    }
    crossing.update(chain_crossing(cfg, center) if cfg.chain.network_width and iid else {})
    result = MlpSweepResult(sweep, layers, crossing, fluctuation_table(cfg))
    result.output = headline(result)
    return result


def chain_crossing(cfg: MlpSweepConfig, center: float) -> dict:
    """crossing_chain(_se, _status, _networks): the typical exponent's zero crossing by the exact kernel chain
    (`pipeline.dynamics.chain.tangent_chain`, docs/science.md §7a) around `center`, same depth, burn-in and q0."""
    net, eng, ch = cfg.net, cfg.engine, cfg.chain
    n = max(32, ch.network_width // max(net.width, 64))  # the same SE at every width >= 64; capped below
    kernel = choose_kernel(ch.kernel.value, net.activation.value, eng.device)
    if not np.isfinite(center):
        return {"crossing_chain": None, "crossing_chain_se": None, "crossing_chain_status": "no_center",
                "crossing_chain_networks": n, "crossing_chain_kernel": kernel}  # fmt: skip
    grid = np.linspace(center - ch.halfwidth, center + ch.halfwidth, ch.points)
    spec = ChainSpec(
        activation=net.activation.value, width=net.width, depth=net.depth, sigma_w2=tuple(grid.tolist()),
        sigma_b2=net.sigma_b2, xi=net.xi, n_networks=n, q0=eng.q0, seed=cfg.seed, device=eng.device,
    )  # fmt: skip
    lam, _ = tangent_chain(spec, min(eng.burn_in, net.depth - 1), "float32" if kernel == "fused" else "float64", kernel)
    cr = network_crossing(grid, lam.numpy(), "lambda_tangent (chain)", ch.halfwidth / 2)
    if cr.status != "ok":
        log.warning("no chain crossing: %s (%s)", cr.reason, cr.status)
    ok = cr.status == "ok"
    return {"crossing_chain": cr.x if ok else None, "crossing_chain_se": cr.se if ok else None,
            "crossing_chain_status": cr.status, "crossing_chain_networks": n,
            "crossing_chain_kernel": kernel}  # fmt: skip


def write(result: MlpSweepResult, folder: Path) -> StageOutput:
    """sweep.csv, layers.csv and the job's figures; returns the headline from `compute`."""
    tables = {"sweep.csv": result.sweep, "layers.csv": result.layers}
    if result.fluctuations is not None:
        tables["fluctuations.csv"] = result.fluctuations
    tables = write_tables("mlp_sweep", folder, tables)
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
        "n_excluded_points": int(s.excluded.sum()) if "excluded" in s else 0,
    }
    metrics.update(agreement(result))
    curves, at = run_curves(result)
    metrics["curves_sigma_w2"] = at
    c = result.crossing
    measured = Crossing(c["crossing_measured"], c["crossing_measured_se"], c["crossing_measured_status"],
                        c["crossing_measured_reason"])  # fmt: skip
    return StageOutput(metrics, curves, f"lambda = 0 at sigma_w2 = {measured.text()} (theory {theory_text(c)})")


def agreement(result: MlpSweepResult) -> dict:
    """This job's agreement with mean field and one loop as merged/one_loop_crossings.csv computes it
    (`collect.crossing_agreement`), as metrics `crossing_z_<theory>`, `crossing_minus_<theory>` and the tag-bound
    `crossing_z_<theory>_status`."""
    design = {k: result.sweep[k].iloc[0] for k in DESIGN}
    return {f"crossing_{k}": v for k, v in crossing_agreement(design, result.crossing).items()}


SIGMA_W2_STEP = 1000  # curves against sigma_w2: step = round(1000 sigma_w2), the same step for every job's grid


def curve_grid(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep's rows one per curve step, in sigma_w2 order: where refined grid points are closer than
    1/SIGMA_W2_STEP they share a step, and the point nearest the step's own sigma_w2 stands for it (every point
    stays in sweep.csv)."""
    step = np.rint(sweep.sigma_w2 * SIGMA_W2_STEP)
    off = (sweep.sigma_w2 * SIGMA_W2_STEP - step).abs()
    keep = off.groupby(step).idxmin()
    return sweep.loc[sorted(keep, key=lambda i: sweep.sigma_w2[i])]


def run_curves(result: MlpSweepResult) -> tuple[dict[str, Curve], float]:
    """The curves a run shows in MLflow's chart view (a handful of keys, overlaid across runs): q_hat, c_hat and
    the per-layer exponent lambda_layer (step = layer; layer l holds transition l-1 -> l) at the grid point nearest
    the measured crossing (else the mean-field one, else the grid's middle), and the exponent lambda_vs_sigma_w2
    beside its mean-field value at this depth, lambda_mean_field_vs_sigma_w2 (step = round(1000 sigma_w2)).
    Returns the curves and the sigma_w2 of the layer curves."""
    s, layers, c = result.sweep, result.layers, result.crossing
    grid = np.sort(layers.sigma_w2.unique())
    target = next((c[k] for k in ("crossing_measured", "crossing_mean_field") if np.isfinite(c.get(k) or np.nan)),
                  float(grid[len(grid) // 2]))  # fmt: skip
    at = float(grid[np.argmin(np.abs(grid - target))])
    one = layers[layers.sigma_w2 == at].sort_values("layer")
    by_layer = f"layer, at sigma_w2 = {at:g}"
    s = curve_grid(s)
    steps = np.rint(s.sigma_w2.to_numpy() * SIGMA_W2_STEP).astype(int)
    by_sw = f"round({SIGMA_W2_STEP} sigma_w2)"
    curves = {
        "q_hat": Curve(one.layer.tolist(), one.q.tolist(), by_layer),
        "c_hat": Curve(one.layer.tolist(), one.c.tolist(), by_layer),
        "lambda_layer": Curve(one.layer.tolist(), one.lambda_replica.tolist(), by_layer),
        "lambda_vs_sigma_w2": Curve(steps.tolist(), s.lambda_replica.tolist(), by_sw),
        "lambda_mean_field_vs_sigma_w2": Curve(steps.tolist(), s.lambda_mf_finite_depth.tolist(), by_sw),
    }
    return curves, at


def theory_text(c: dict) -> str:
    """The theory crossing of a summary line: its value, or 'nan (status)' where there is no theory value."""
    if c["crossing_mean_field_status"] == "ok":
        return f"{c['crossing_mean_field']:.4f}"
    return f"nan ({c['crossing_mean_field_status']})"
