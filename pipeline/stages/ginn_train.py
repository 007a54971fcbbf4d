"""`ginn_train` stage: the gauge-invariant network trained on real data against an MLP (docs/science.md §5).

Main run: GINN (and the MLP of matching width/depth) on the configured data; the trained GINN is
checked for exact gauge invariance. Experiment (a): test accuracy over sigma_w2 x depth with the
mean-field boundaries (MLP: depth 6 depth_scale_c; GINN: chi_GINN = 1 and depth 6 / |ln chi_GINN|).
Experiment (b): Langevin training at several gauge-fixing xi_gf with one noise seed: gauge-invariant observables
must coincide, while Var(G) = xi_gf T and the spectrum of G narrows like 1/xi_gf.
"""

from __future__ import annotations

import copy
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config.schema import GinnTrainConfig
from pipeline.data.datasets import Split, load
from pipeline.nets.ginn import GINN, apply_gauge, random_gauge
from pipeline.nets.mlp import MLP
from pipeline.plots import trainability as trainability_plots
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.theory.ginn import ginn_critical_sigma_w2
from pipeline.training import depth_law as law
from pipeline.training import gauge_observables as obs
from pipeline.training.batched import BatchedSpec
from pipeline.training.gauge_sector import GaugeSector
from pipeline.training.langevin import TrainResult, train, train_spec
from pipeline.training.trainability_map import trainability_map

log = logging.getLogger("ginn.ginn_train")
MLP_ACTIVATION = "tanh"  # the baseline MLP's activation (docs/science.md §5): its network and its mean field
MODELS = ("mlp", "ginn")  # the trainability map's models, side by side


@contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to n for the block, then restored (it is process-global)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class GinnTrainResult:
    history: pd.DataFrame
    summary: dict
    trainability: Trainability | None
    gauge_fixing: pd.DataFrame | None
    spectra: pd.DataFrame | None
    models: dict
    critical_sigma_w2: float  # chi_GINN(q*) = 1 for the configured modulus activation and offset
    output: StageOutput | None = None  # headline metrics, curves, summary (computed in compute)


def _ginn(cfg: GinnTrainConfig, data: Split, width: int, depth: int, sigma_w2: float, seed: int) -> GINN:
    g = cfg.ginn
    return GINN(
        data.d_in,
        width,
        depth,
        data.n_classes,
        sigma_w2,
        g.activation.value,
        g.modrelu_offset,
        seed,
        getattr(torch, g.precision.value),
    )


def _mlp(cfg: GinnTrainConfig, data: Split, width: int, depth: int, sigma_w2: float, seed: int) -> MLP:
    g = cfg.ginn
    return MLP(
        data.d_in,
        width,
        depth,
        data.n_classes,
        sigma_w2,
        g.mlp_sigma_b2,
        MLP_ACTIVATION,
        seed,
        getattr(torch, g.precision.value),
    )


def _rows(model: str, r: TrainResult) -> list[dict]:
    return [{"model": model, **h} for h in r.history]


@torch.no_grad()
def gauge_invariance_error(model: GINN, x: torch.Tensor, seed: int) -> float:
    """max |f(x) - f_gauged(x)| after a random local U(1) transformation at every hidden site."""
    other = copy.deepcopy(model)
    apply_gauge(other, random_gauge(other, torch.Generator().manual_seed(seed)))
    return float((model(x) - other(x)).abs().max())


def compute(cfg: GinnTrainConfig) -> GinnTrainResult:
    """Train, scan trainability and gauge fixing with torch limited to `ginn.train.threads` (restored after)."""
    with torch_threads(cfg.ginn.train.threads):
        return _compute(cfg)


def _compute(cfg: GinnTrainConfig) -> GinnTrainResult:
    g = cfg.ginn
    data = load(
        g.data.name.value,
        g.data.seed,
        g.data.val_fraction,
        g.data.test_fraction,
        dtype=getattr(torch, g.precision.value),
    )
    rows, summary, models = [], {"dataset": g.data.name.value}, {}
    if g.model.value in ("ginn", "both"):
        m = _ginn(cfg, data, g.width, g.depth, g.sigma_w2, cfg.seed)
        r = train(m, data, train_spec(g.train, seed=cfg.seed))
        rows += _rows("ginn", r)
        summary.update(
            activation=g.activation.value,
            test_accuracy=r.test_accuracy,
            test_loss=r.test_loss,
            diverged=r.diverged,
            diverged_reason=r.diverged_reason,
            gauge_invariance_max_abs_diff=gauge_invariance_error(m, data.x_test, cfg.seed + 17),
        )
        models["ginn"] = m
    if g.model.value in ("mlp", "both"):
        m = _mlp(cfg, data, g.width, g.depth, g.sigma_w2, cfg.seed)
        r = train(m, data, train_spec(g.train, seed=cfg.seed))
        rows += _rows("mlp", r)
        summary.update(
            mlp_activation=MLP_ACTIVATION,
            mlp_test_accuracy=r.test_accuracy,
            mlp_test_loss=r.test_loss,
            mlp_diverged=r.diverged,
            mlp_diverged_reason=r.diverged_reason,
        )
        models["mlp"] = m
    tab = None
    if g.trainability.enabled:
        tab = trainability(cfg, data)
        summary.update(trainability_summary(tab))
    gf = spectra = None
    if g.gauge_fixing.enabled:
        gf, spectra = gauge_fixing_scan(cfg, data)
        v = gf.set_index("xi_gf").var_G_measured
        if 1.0 in v.index and 10.0 in v.index:
            summary["var_G_ratio_xi10_over_xi1"] = float(v[10.0] / v[1.0])
        summary["gauge_fixing_max_output_diff"] = float(gf.max_output_diff_vs_first.max())
    history = pd.DataFrame(
        rows,
        columns=["model", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
        + (["var_G"] if rows and "var_G" in rows[0] else []),
    )
    history["group"] = history.model  # one dvc-plots line per model (.dvc/plots/by_group.json)
    crit = ginn_critical_sigma_w2(g.activation.value, g.modrelu_offset)
    result = GinnTrainResult(history, summary, tab, gf, spectra, models, crit)
    result.output = headline(result)
    return result


@dataclass
class Trainability:
    """Experiment (a)'s tables: the map, the theory depth scales, L_max per sigma_w2 and the fitted law."""

    map: pd.DataFrame  # keyed (model, sigma_w2, depth, seed): train/test accuracy, final loss, diverged
    boundary: pd.DataFrame  # (model, sigma_w2) on a fine grid: chi, depth_scale (both sides of chi = 1)
    l_max: pd.DataFrame  # (model, sigma_w2): L_max, L_max_se, status, chi, depth_scale
    law: pd.DataFrame  # (model, branch): a with CI; trainability critical point against chi = 1


def trainability(cfg: GinnTrainConfig, data: Split) -> Trainability:
    """Experiment (a): training accuracy over sigma_w2 x depth x seeds (batched trainer), then L_max = a xi."""
    g, ta = cfg.ginn, cfg.ginn.trainability
    builders = {"ginn": _ginn, "mlp": _mlp}
    spec = BatchedSpec(optimizer=ta.optimizer.value, epochs=ta.epochs, batch_size=ta.batch_size,
                       max_loss=g.train.max_loss)  # fmt: skip
    seeds = [cfg.seed + i for i in range(ta.n_seeds)]
    with torch_threads(1):  # parallel over ta.workers threads, each single-threaded
        acc = trainability_map(
            lambda model, depth, sw, seed: builders[model](cfg, data, ta.width, depth, sw, seed),
            data, list(MODELS), ta.sigma_w2, ta.depths, seeds, ta.width, spec, ta.lr, ta.memory_gb, ta.workers,
        )  # fmt: skip
    kind, off = g.activation.value, g.modrelu_offset
    act = {"mlp": MLP_ACTIVATION, "ginn": kind}
    fine = np.linspace(min(ta.sigma_w2), max(ta.sigma_w2), 200)
    scales = lambda sw: pd.concat([law.depth_scales(m, sw, act[m], g.mlp_sigma_b2, off) for m in MODELS])  # noqa: E731
    boundary = scales(fine).reset_index(drop=True)
    chance = 1.0 / data.n_classes
    lmax = law.l_max_table(acc, chance, ta.n_boot, cfg.seed).merge(
        scales(np.array(ta.sigma_w2)), on=["model", "sigma_w2"], validate="one_to_one"
    )
    fit = law.fit_law(lmax)
    peak = law.peak_sigma_w2(acc, chance, ta.n_boot, cfg.seed)
    peak["sigma_w2_critical_theory"] = [law.critical_sigma_w2(m, act[m], g.mlp_sigma_b2, off) for m in peak.model]
    return Trainability(acc, boundary, lmax, fit.merge(peak, on="model", validate="many_to_one"))


def trainability_summary(t: Trainability) -> dict:
    """Headline numbers of experiment (a): a per model (both branches) with CI, critical point vs chi = 1."""
    out = {}
    for r in t.law.itertuples():
        if r.branch == "both":
            out.update({f"trainability_a_{r.model}": r.a, f"trainability_a_{r.model}_ci_low": r.a_lo,
                        f"trainability_a_{r.model}_ci_high": r.a_hi})  # fmt: skip
        else:
            out[f"trainability_a_{r.model}_{r.branch}"] = r.a
        out[f"trainability_critical_sigma_w2_{r.model}"] = r.sigma_w2_peak
        out[f"trainability_critical_sigma_w2_{r.model}_se"] = r.sigma_w2_peak_se
        out[f"trainability_critical_sigma_w2_{r.model}_theory"] = r.sigma_w2_critical_theory
    out["trainability_verdict"] = trainability_plots.verdict(t.law)
    return out


def gauge_fixing_scan(cfg: GinnTrainConfig, data: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experiment (b): one GINN init and one noise seed, Langevin at every xi_gf; gauge sector measured."""
    g, gf = cfg.ginn, cfg.ginn.gauge_fixing
    base = GINN(
        data.d_in,
        gf.width,
        gf.depth,
        data.n_classes,
        g.sigma_w2,
        g.activation.value,
        g.modrelu_offset,
        cfg.seed,
        torch.float64,
    )
    GaugeSector(base).fix_divergence_free()  # start every run at G = 0 (same network function)
    rows, spec_rows, ref = [], [], None
    for xi_gf in progress(gf.xi_gf, desc="gauge fixing"):
        m = copy.deepcopy(base)
        spec = train_spec(
            g.train,
            optimizer="langevin",
            lr=gf.lr,
            epochs=gf.epochs,
            temperature=gf.temperature,
            xi=xi_gf,
            seed=cfg.seed,
            restore_best=False,  # the gauge sector is measured along the whole trajectory
            record_gauge=True,
        )
        r = train(m, data, spec, progress=False)
        sector = GaugeSector(m)
        trace = r.gauge_trace[gf.burn_in_steps :]
        out = r.outputs_test.double()
        ref = out if ref is None else ref
        row = {
            "xi_gf": xi_gf,
            "test_accuracy": r.test_accuracy,
            "final_train_loss": r.history[-1]["train_loss"],
            "max_output_diff_vs_first": float((out - ref).abs().max()),
            "var_G_measured": float(trace.pow(2).mean()),
            "var_G_predicted": gf.temperature * xi_gf if math.isfinite(xi_gf) else float("nan"),
        }
        c = obs.autocovariance(trace, 200)
        row["tau_measured_steps"] = obs.integrated_time(c)
        freq, spec_m = obs.periodogram(trace)
        w = (sector.m_vec**2).mean(0)
        if math.isfinite(xi_gf):
            pred = obs.ar1_spectrum(freq, sector.m_eig, w, gf.lr, gf.temperature, xi_gf)
            lags = torch.arange(0, 2000, dtype=torch.float64)
            cp = sector.predicted_autocorrelation(lags, gf.lr, gf.temperature, xi_gf).numpy()
            row["tau_predicted_steps"] = obs.integrated_time(cp)
            row["hwhm_predicted"] = obs.half_width(freq, pred)
        else:
            pred = np.full_like(freq, np.nan)
            row["tau_predicted_steps"] = row["hwhm_predicted"] = float("nan")
        row["hwhm_measured"] = obs.half_width(freq, spec_m)
        rows.append(row)
        spec_rows.append(pd.DataFrame({"xi_gf": xi_gf, "freq": freq, "measured": spec_m, "predicted": pred}))
    return pd.DataFrame(rows), pd.concat(spec_rows, ignore_index=True)


def write(result: GinnTrainResult, folder: Path) -> StageOutput:
    """Tables, model weights and figures (optional studies only where they ran); returns the headline."""
    t = result.trainability
    optional = {
        "trainability.csv": t and t.map,
        "trainability_boundary.csv": t and t.boundary,
        "trainability_lmax.csv": t and t.l_max,
        "trainability_law.csv": t and t.law,
        "gauge_fixing.csv": result.gauge_fixing,
        "gauge_spectra.csv": result.spectra,
    }
    tables = write_tables(
        "ginn_train", folder, {"history.csv": result.history, **{k: v for k, v in optional.items() if v is not None}}
    )
    for name, m in result.models.items():
        torch.save(m.state_dict(), folder / f"{name}.pt")
    draw_stage_figures("ginn_train", tables, folder / "figures")
    return result.output


def headline(result: GinnTrainResult) -> StageOutput:
    """metrics.json numbers, curves and the one-line summary, from the result tables (no I/O)."""
    s = result.summary
    curves = {}
    for model, d in result.history.groupby("model"):
        for col in ("train_loss", "val_loss", "val_accuracy"):
            curves[f"{model}.{col}"] = d[col].tolist()
    metrics = {k: (float(v) if isinstance(v, (int, float, bool)) else v) for k, v in s.items()}
    metrics["ginn_critical_sigma_w2"] = result.critical_sigma_w2
    text = ", ".join(
        f"{k} {s[k]:.4f}"
        for k in ("test_accuracy", "mlp_test_accuracy", "gauge_invariance_max_abs_diff", "var_G_ratio_xi10_over_xi1")
        if k in s
    )
    failure = ""
    if s.get("diverged") or s.get("mlp_diverged"):
        failure = f"training diverged: {s.get('diverged_reason') or s.get('mlp_diverged_reason')}"
    return StageOutput(metrics, curves, text, failure)
