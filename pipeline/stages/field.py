"""`field` stage: the kernel as a stochastic field in depth, spectra measured on the exact chain (docs/science.md §7b).

Length mode (one input, every case x width), correlation mode (two inputs, chaotic side) and the gauge scan of the
length mode (xi up to the length threshold of §4): AR(1)/Lorentzian fits against chi_par / A_q(xi) / chi_c(c*), the
dressed multiplier rho_N = chi + c1/N and the plateau Sigma/(1 - chi)^2; the one-loop coefficient fitted over widths.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.activations import get_activation
from pipeline.config.errors import ConfigError
from pipeline.config.schema import FieldConfig
from pipeline.dynamics.chain import ChainSpec, kernel_path
from pipeline.dynamics.spectra import ar1_fit, periodogram
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.status import mask_invalid
from pipeline.theory.critical import critical_line
from pipeline.theory.field import ar1_spectrum, correlation_masses, correlation_mode, length_mode
from pipeline.theory.field_exact import TAIL_MOMENTS, ExactChain, exact_chain, homogeneous_exact, kesten_tail_exponent
from pipeline.theory.field_vector import correlation_dressing
from pipeline.theory.gauge import gauge_theory
from pipeline.theory.one_loop import EXPANSION_LIMIT, STATUS_BREAKDOWN, STATUS_OK
from pipeline.theory.predictions import integrator

log = logging.getLogger("ginn.field")
STATUS_HEAVY_TAIL = "heavy_tail"  # tail exponent <= TAIL_MOMENTS (field_exact.kesten_tail_exponent)
MEASURED_VALUES = ["multiplier_measured", "multiplier_se", "mass_measured", "mass_se", "plateau_measured", "plateau_se"]
SPECTRA_COLUMNS = [
    "activation", "sigma_w2", "sigma_b2", "xi", "width", "mode", "multiplier_measured", "multiplier_se",
    "multiplier_mean_field", "multiplier_one_loop", "mass_measured", "mass_se", "mass_mean_field",
    "plateau_measured", "plateau_se", "plateau_predicted", "multiplier_exact", "plateau_exact", "expansion_parameter",
    "tail_exponent", "status",
]  # fmt: skip
N_CURVE = 64  # frequencies kept per spectrum curve (log-spaced indices)


@dataclass
class FieldResult:
    spectra: pd.DataFrame  # one row per (mode, activation, sigma_w2, sigma_b2, xi, width)
    curves: pd.DataFrame  # periodograms N I(omega) with SE and the predicted N S(omega)
    fit: pd.DataFrame  # N (multiplier - chi) = c + d/N per length case
    theory: pd.DataFrame  # mean-field masses on fine grids: correlation vs sigma_w2, gauge (length) vs xi
    output: StageOutput | None = None


def _chain(act: str, width: int, sws, sb: float, xi: float, k: int, cfg: FieldConfig, n_networks: int,
           job: int) -> torch.Tensor:  # fmt: skip
    """Chains of one job after burn-in; network ids job * BLOCK + i: no two jobs share random numbers, so the
    widths of a one-loop fit are independent measurements."""
    fs = cfg.field
    spec = ChainSpec(activation=act, width=width, depth=fs.burn_in + fs.depth, sigma_w2=tuple(sws), sigma_b2=sb,
                     xi=xi, n_networks=n_networks, n_inputs=k, c0=0.0, seed=cfg.seed,
                     first_network=job * max(fs.n_networks, fs.gauge_networks))  # fmt: skip
    return kernel_path(spec)[:, :, fs.burn_in :]  # (S, K, L, k, k) after burn-in


def _segments(x: np.ndarray, seg: int) -> np.ndarray:
    """(S, L) -> (S * L // seg, seg): non-overlapping segments for the zero-frequency estimate and periodogram."""
    n = x.shape[1] // seg
    return x[:, : n * seg].reshape(x.shape[0] * n, seg)


def _row(act, sw, sb, xi, width, mode, fit, seg_fit, chi, rho1, plateau, exact=None, expansion=math.nan,
         tail=math.inf) -> dict:  # fmt: skip
    """One spectra.csv row. Status: heavy_tail where the chain's tail exponent is at most TAIL_MOMENTS (the fit and
    its SE do not hold), else expansion_breakdown where v1/(N K^2) > EXPANSION_LIMIT (one loop does not), else ok."""
    ex = (exact.rho, exact.plateau) if exact is not None else (math.nan, math.nan)
    status = (
        STATUS_HEAVY_TAIL if tail <= TAIL_MOMENTS else STATUS_BREAKDOWN if expansion > EXPANSION_LIMIT else STATUS_OK
    )
    return dict(zip(SPECTRA_COLUMNS, [
        act, sw, sb, xi, width, mode, fit.multiplier, fit.multiplier_se, chi, rho1, fit.mass, fit.mass_se,
        -math.log(chi), width * seg_fit.s0, width * seg_fit.s0_se, plateau, *ex, expansion, tail, status,
    ]))  # fmt: skip


def exact_reference(act: str, sw: float, sb: float, xi: float, width: int) -> ExactChain | None:
    """The exact finite-width chain where one exists: closed form (homogeneous activations, any xi) or the
    transition operator (bounded activations, xi = 1); None elsewhere or where it has no finite variance."""
    a = get_activation(act)
    try:
        if a.homogeneous:
            return homogeneous_exact(a, sw, sb, xi, width)
        if a.sup_phi2 and xi == 1:
            return exact_chain(a, sw, sb, width, n_nodes=64, n_bins=512)
    except ValueError as err:
        log.warning("no exact reference: %s", err)
    return None


def _curve(x: np.ndarray, key: dict, width: int, chi: float, noise: float, seg: int) -> pd.DataFrame:
    omega, per, se = periodogram(_segments(x, seg))
    idx = np.unique(np.geomspace(1, len(omega) - 1, N_CURVE).astype(int))
    pred = width * ar1_spectrum(omega[idx], chi, noise).numpy()
    return pd.DataFrame({**key, "omega": omega[idx], "n_s_measured": width * per[idx], "n_s_se": width * se[idx],
                         "n_s_predicted": pred})  # fmt: skip


def mask_by_status(spectra: pd.DataFrame) -> pd.DataFrame:
    """Status before number: the dressed (one-loop) multiplier is NaN where the expansion broke down
    (v1/(N K^2) > EXPANSION_LIMIT), and every measured value is NaN on heavy_tail rows (no valid SE); the theory
    values and the diagnostics (expansion_parameter, tail_exponent) stay."""
    out = mask_invalid(spectra, MEASURED_VALUES, "status", (STATUS_OK, STATUS_BREAKDOWN))
    out.loc[out.expansion_parameter > EXPANSION_LIMIT, "multiplier_one_loop"] = math.nan
    return out


def check_config(cfg: FieldConfig) -> None:
    """Cross-field checks before compute: every requested mode exists at its points (ConfigError naming the key)."""
    fs = cfg.field
    if fs.segment > fs.depth:
        raise ConfigError(f"field.segment={fs.segment}: must be <= field.depth={fs.depth}")
    keys = [(c.activation.value, c.sigma_w2, c.sigma_b2) for c in fs.cases]
    if not keys or len(set(keys)) != len(keys):
        raise ConfigError(f"field.cases: needs at least 1 entry and no duplicates, got {keys}")
    for act, sw, sb in keys:
        try:
            length_mode(act, sw, sb)
        except (ValueError, ArithmeticError) as err:
            raise ConfigError(f"field.cases: {err}") from None
    for xi in fs.gauge_xi:
        try:
            length_mode(fs.gauge_activation.value, fs.gauge_sigma_w2, fs.gauge_sigma_b2, xi)
        except (ValueError, ArithmeticError) as err:
            raise ConfigError(
                f"field.gauge_xi={xi:g} at field.gauge_activation, field.gauge_sigma_w2, field.gauge_sigma_b2: {err}"
            ) from None
    for act in fs.corr_activations:
        chi = correlation_masses(act.value, list(fs.corr_sigma_w2), fs.corr_sigma_b2)["chi_c"]
        bad = [sw for sw, c in zip(fs.corr_sigma_w2, chi.tolist()) if not c == c]
        if bad:
            raise ConfigError(
                f"field.corr_sigma_w2={bad}: not on the chaotic side for field.corr_activations={act.value} at "
                f"field.corr_sigma_b2={fs.corr_sigma_b2:g} (c* = 1; allowed: sigma_w2 above the critical line)"
            )


def compute(cfg: FieldConfig) -> FieldResult:
    """Simulate the chains of every mode and fit their spectra (docs/science.md §7b)."""
    torch.set_num_threads(1)  # tiny batched ops: one thread is faster on a shared machine (chain_api note)
    fs = cfg.field
    rows, curves = [], []
    jobs = [("length", c.activation.value, c.sigma_w2, c.sigma_b2, 1.0, w) for c in fs.cases for w in fs.widths]
    jobs += [("gauge", fs.gauge_activation.value, fs.gauge_sigma_w2, fs.gauge_sigma_b2, x, fs.gauge_width)
             for x in fs.gauge_xi]  # fmt: skip
    for job, (mode, act, sw, sb, xi, width) in enumerate(progress(jobs, desc="field: length/gauge")):
        lm = length_mode(act, sw, sb, xi)
        n_net = fs.gauge_networks if mode == "gauge" else fs.n_networks
        x = _chain(act, width, (sw,), sb, xi, 1, cfg, n_net, job)[:, 0, :, 0, 0].numpy()
        fit, seg_fit = ar1_fit(x), ar1_fit(_segments(x, fs.segment))
        rows.append(_row(act, sw, sb, xi, width, mode, fit, seg_fit, lm.chi, lm.multiplier(width), lm.plateau,
                         exact_reference(act, sw, sb, xi, width), lm.v1 / (width * lm.K**2),
                         kesten_tail_exponent(act, sw, xi, width)))  # fmt: skip
        key = dict(mode=mode, activation=act, sigma_w2=sw, sigma_b2=sb, xi=xi, width=width)
        curve = _curve(x, key, width, lm.chi, lm.sigma / width, fs.segment)
        if rows[-1]["status"] == STATUS_HEAVY_TAIL:  # no valid SE: its curve keeps only the predicted spectrum
            curve[["n_s_measured", "n_s_se"]] = math.nan
        curves.append(curve)
    for job, act in enumerate(progress([a.value for a in fs.corr_activations], desc="field: correlation"), len(jobs)):
        sws = list(fs.corr_sigma_w2)
        G = _chain(act, fs.corr_width, sws, fs.corr_sigma_b2, 1.0, 2, cfg, fs.n_networks, job)
        for j, sw in enumerate(sws):
            cm = correlation_mode(act, sw, fs.corr_sigma_b2)
            dressed = correlation_dressing(act, sw, fs.corr_sigma_b2).multiplier(fs.corr_width)
            g = G[:, j].numpy()
            q1, q2 = g[..., 0, 0], g[..., 1, 1]
            c = g[..., 0, 1] / np.sqrt(q1 * q2)
            fit = ar1_fit(c, (q1, q2))  # partial multiplier of c: J_cc = chi_c of the vector AR(1)
            seg_fit = ar1_fit(_segments(c, fs.segment), (_segments(q1, fs.segment), _segments(q2, fs.segment)))
            rows.append(_row(act, sw, fs.corr_sigma_b2, 1.0, fs.corr_width, "correlation", fit, seg_fit, cm.chi,
                             dressed, math.nan))  # fmt: skip
    spectra = mask_by_status(pd.DataFrame(rows, columns=SPECTRA_COLUMNS))
    result = FieldResult(spectra, pd.concat(curves, ignore_index=True), one_loop_fit(spectra), theory_curves(cfg))
    result.output = headline(result)
    return result


def theory_curves(cfg: FieldConfig, n: int = 80) -> pd.DataFrame:
    """Mean-field masses on fine grids, with the threshold where each vanishes: the correlation mass
    -ln chi_c(c*) from the edge of chaos (chi_1 = 1) up, and the length mass -ln A_q(xi) up to A_q = 1 (§4)."""
    fs, out = cfg.field, []
    sb = fs.corr_sigma_b2
    for act in [a.value for a in fs.corr_activations]:
        g = integrator(act, max(fs.corr_sigma_w2), sb)
        crit = float(critical_line(g, sb).sigma_w2_crit[0])
        x = np.linspace(crit + 1e-3, 1.05 * max(fs.corr_sigma_w2), n)
        m = correlation_masses(act, x, sb)["mass"].numpy()
        out.append(pd.DataFrame(dict(mode="correlation", activation=act, sigma_b2=sb, x=x, mass_mean_field=m,
                                     critical=crit)))  # fmt: skip
    act, sw, sb = fs.gauge_activation.value, fs.gauge_sigma_w2, fs.gauge_sigma_b2
    xi = np.linspace(0.0, 1.3 * max(max(fs.gauge_xi), 0.1), n)
    a_q = gauge_theory(integrator(act, sw, sb), sw, sb, xi)["a_q"].numpy()
    above = np.nonzero(a_q >= 1)[0]
    crit = math.nan
    if len(above) and above[0] > 0:  # linear interpolation of A_q - 1 across its first sign change
        i = above[0]
        crit = float(xi[i - 1] + (1 - a_q[i - 1]) * (xi[i] - xi[i - 1]) / (a_q[i] - a_q[i - 1]))
    mass = np.where(a_q < 1, -np.log(np.clip(a_q, 1e-300, None)), np.nan)
    out.append(pd.DataFrame(dict(mode="gauge", activation=act, sigma_b2=sb, x=xi, mass_mean_field=mass, critical=crit)))
    return pd.concat(out, ignore_index=True)


def one_loop_fit(spectra: pd.DataFrame) -> pd.DataFrame:
    """Weighted least squares N (multiplier - chi) = c + d/N per length case, beside c1 of docs/science.md §7b."""
    out = []
    length = spectra[(spectra["mode"] == "length") & (spectra.status != STATUS_HEAVY_TAIL)]  # no SE, no weight
    for (act, sw, sb), d in length.groupby(["activation", "sigma_w2", "sigma_b2"]):
        n = d.width.to_numpy(float)
        y = n * (d.multiplier_measured - d.multiplier_mean_field).to_numpy()
        se = n * d.multiplier_se.to_numpy()
        c1 = length_mode(act, sw, sb).c1
        c = d_ = c_se = d_se = c_ex = d_ex = math.nan
        y_ex = n * (d.multiplier_exact - d.multiplier_mean_field).to_numpy()
        if len(n) >= 2 and np.isfinite(y_ex).all():
            c_ex, d_ex = np.linalg.lstsq(np.stack([np.ones_like(n), 1 / n], 1), y_ex, rcond=None)[0]
        if len(n) >= 3:
            X = np.stack([np.ones_like(n), 1 / n], 1) / se[:, None]
            cov = np.linalg.inv(X.T @ X)
            c, d_ = cov @ X.T @ (y / se)
            c_se, d_se = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
        widths = ",".join(str(int(w)) for w in n)
        out.append(dict(activation=act, sigma_w2=sw, sigma_b2=sb, c_measured=c, c_se=c_se, d_measured=d_, d_se=d_se,
                        c_one_loop=c1, c_exact=c_ex, d_exact=d_ex, widths=widths))  # fmt: skip
    return pd.DataFrame(out)


def write(result: FieldResult, folder: Path) -> StageOutput:
    """spectra.csv, spectrum_curves.csv, one_loop_fit.csv and figures; returns the headline from `compute`."""
    frames = {"spectra.csv": result.spectra, "spectrum_curves.csv": result.curves, "one_loop_fit.csv": result.fit,
              "mass_theory.csv": result.theory}  # fmt: skip
    tables = write_tables("field", folder, frames)
    draw_stage_figures("field", tables, folder / "figures")
    return result.output


def headline(result: FieldResult) -> StageOutput:
    """metrics.json: worst |z| of multipliers (one loop, N >= 64; exact) and plateaus (linear sector for the length
    mode; exact chain wherever one exists), relative mass SEs, and the fitted one-loop coefficient."""
    s = result.spectra
    n_breakdown = int((s.status == STATUS_BREAKDOWN).sum())
    n_heavy = int((s.status == STATUS_HEAVY_TAIL).sum())
    s = s[s.status == STATUS_OK]  # a tail exponent <= 4 (no SE) or v1/(N K^2) > 0.3 (no one loop): left out
    ln = s[s["mode"] != "correlation"]
    wide = ln[ln.width >= 64]
    length = s[s["mode"] == "length"]
    co = s[s["mode"] == "correlation"]
    f = result.fit

    def _max(x: pd.Series) -> float | None:
        x = x[np.isfinite(x)]
        return float(x.max()) if len(x) else None

    def _z(a: str, b: str, se: str, d: pd.DataFrame) -> pd.Series:
        return ((d[a] - d[b]) / d[se]).abs()

    metrics = {
        "multiplier_max_z_one_loop": _max(_z("multiplier_measured", "multiplier_one_loop", "multiplier_se", wide)),
        "multiplier_max_z_exact": _max(_z("multiplier_measured", "multiplier_exact", "multiplier_se", ln)),
        "length_plateau_max_z": _max(_z("plateau_measured", "plateau_predicted", "plateau_se", length)),
        "plateau_max_z_exact": _max(_z("plateau_measured", "plateau_exact", "plateau_se", ln)),
        "length_mass_max_relative_se": _max((wide[wide["mode"] == "length"].mass_se / wide.mass_measured).abs()),
        "mass_max_relative_se": _max((s.mass_se / s.mass_measured).abs()),
        "correlation_multiplier_max_z_mean_field": _max(
            _z("multiplier_measured", "multiplier_mean_field", "multiplier_se", co)
        ),  # fmt: skip
        "correlation_multiplier_max_z_one_loop": _max(
            _z("multiplier_measured", "multiplier_one_loop", "multiplier_se", co)
        ),  # fmt: skip
        "one_loop_c_max_z": _max(((f.c_measured - f.c_one_loop) / f.c_se).abs()),
        "one_loop_c_exact_max_abs_err": _max((f.c_exact - f.c_one_loop).abs()),
        "n_excluded_expansion_breakdown": n_breakdown,
        "n_excluded_heavy_tail": n_heavy,
    }

    def _fmt(key: str) -> str:
        return "n/a" if metrics[key] is None else f"{metrics[key]:.3g}"

    summary = (f"multipliers at N >= 64: max |z| {_fmt('multiplier_max_z_one_loop')} vs one loop; length plateaus "
               f"max |z| {_fmt('length_plateau_max_z')}; exact-operator c - one loop "
               f"{_fmt('one_loop_c_exact_max_abs_err')}; correlation mode max |z| "
               f"{_fmt('correlation_multiplier_max_z_one_loop')} vs one loop "
               f"({_fmt('correlation_multiplier_max_z_mean_field')} vs mean field)")  # fmt: skip
    return StageOutput(metrics, {}, summary)
