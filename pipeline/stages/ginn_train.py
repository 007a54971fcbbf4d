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

from pipeline.activations import get_activation
from pipeline.config.schema import GinnTrainConfig
from pipeline.data.datasets import Split, load
from pipeline.nets.ginn import GINN, apply_gauge, random_gauge
from pipeline.nets.mlp import MLP
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.ginn import chi_ginn, ginn_critical_sigma_w2, ginn_q_star
from pipeline.theory.mean_field import mean_field_grid
from pipeline.training import gauge_observables as obs
from pipeline.training.gauge_sector import GaugeSector
from pipeline.training.langevin import TrainResult, train, train_spec

log = logging.getLogger("ginn.ginn_train")
MLP_ACTIVATION = "tanh"  # the baseline MLP's activation (docs/science.md §5): its network and its mean field


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
    trainability: pd.DataFrame | None
    boundary: pd.DataFrame | None
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
    tab = bnd = None
    if g.trainability.enabled:
        tab, bnd = trainability(cfg, data)
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
    result = GinnTrainResult(history, summary, tab, bnd, gf, spectra, models, crit)
    result.output = headline(result)
    return result


def trainability(cfg: GinnTrainConfig, data: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experiment (a): test accuracy over sigma_w2 x depth, GINN and MLP, plus theory boundaries."""
    g, ta = cfg.ginn, cfg.ginn.trainability
    cells = [(sw, d) for sw in ta.sigma_w2 for d in ta.depths]
    rows = []
    for sw, depth in progress(cells, desc="trainability"):
        for model, build in (("ginn", _ginn), ("mlp", _mlp)):
            m = build(cfg, data, ta.width, depth, sw, cfg.seed)
            r = train(m, data, train_spec(g.train, epochs=ta.epochs, seed=cfg.seed), progress=False)
            rows.append(
                {
                    "model": model,
                    "sigma_w2": sw,
                    "depth": depth,
                    "test_accuracy": r.test_accuracy,
                    "diverged": r.diverged,
                }
            )
    sws = torch.linspace(min(ta.sigma_w2), max(ta.sigma_w2), 60, dtype=torch.float64)
    mf = mean_field_grid(GaussianIntegrator(get_activation(MLP_ACTIVATION)), sws, g.mlp_sigma_b2)
    kind, off = g.activation.value, g.modrelu_offset
    q = ginn_q_star(sws, kind, off).x
    chi = chi_ginn(torch.where(torch.isfinite(q), q, torch.full_like(q, 1e6)), sws, kind, off)
    bnd = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": "mlp",
                    "sigma_w2": sws.numpy(),
                    "depth_boundary": 6 * mf.depth_scale_c.numpy(),
                    "label": r"$6\,\xi_c$ (mean field)",
                }
            ),
            pd.DataFrame(
                {
                    "model": "ginn",
                    "sigma_w2": sws.numpy(),
                    "depth_boundary": (6 / torch.log(chi).abs()).numpy(),
                    "label": r"$6/|\ln\chi_{GINN}|$",
                }
            ),
        ],
        ignore_index=True,
    )
    bnd["depth_boundary"] = bnd.depth_boundary.replace(np.inf, 1e6)
    return pd.DataFrame(rows), bnd


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
    optional = {
        "trainability.csv": result.trainability,
        "trainability_boundary.csv": result.boundary,
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
