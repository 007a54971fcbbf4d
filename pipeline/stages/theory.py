"""`theory` stage: mean-field curves over (sigma_w2, sigma_b2) grids, critical lines, iterates (§1).

Status before number (`mask_tables`): every table it writes carries NaN in the values its own status column
says are invalid (an unconverged or unstable solve, an unverified quadrature, a placeholder q* where no critical
point was found, a one-loop value whose status is not "ok"); the statuses stay beside them and the headline
numbers of metrics.json are taken over valid rows only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.activations import get_activation
from pipeline.config.schema import TheoryConfig
from pipeline.plots.figures import draw_stage_figures
from pipeline.progress import progress
from pipeline.stages.runner import StageOutput
from pipeline.stages.tables import write_tables
from pipeline.status import mask_invalid
from pipeline.theory import one_loop as ol
from pipeline.theory.critical import chaos_line
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import mean_field_grid
from pipeline.theory.one_loop import crossing_table, one_loop_table
from pipeline.theory.predictions import critical_sigma_w2
from pipeline.theory.propagation import layer_iterates
from pipeline.theory.tables import critical_table, finite_or_none, grid_table

log = logging.getLogger("ginn.theory")


@dataclass
class TheoryResult:
    """Tables of the theory stage plus the quadrature each activation used."""

    theory: pd.DataFrame
    critical: pd.DataFrame
    iterates: pd.DataFrame
    quadrature: dict[str, dict[str, float]]
    figures: bool = True
    one_loop: pd.DataFrame | None = None  # per (case, sigma_w2, width): V*, K1*, 1/N coefficient (docs/science.md §6)
    one_loop_crossings: pd.DataFrame | None = None  # per (case, width): mean-field, one-loop, exact crossings
    output: StageOutput | None = None  # headline metrics, curves and summary line (computed, not written)


def integrator_for(act_name: str, cfg: TheoryConfig, sigma_w2_max: float, sigma_b2_max: float) -> GaussianIntegrator:
    """Quadrature sized to the largest variance the grid can reach (bounded activations) or quad.q_max."""
    act = get_activation(act_name)
    q = cfg.theory.quad
    q_max = q.q_max or (sigma_w2_max * act.sup_phi2 + sigma_b2_max if act.sup_phi2 else 20.0)
    return GaussianIntegrator(act, q_max=q_max, n_nodes=q.n_nodes, tol=q.tol)


def quad_summary(g: GaussianIntegrator) -> dict:
    """metrics.json entry of one integrator: node count, range, error estimate, verified range (largest variance
    where the quadrature meets theory.quad.tol; None: unbounded, homogeneous activation), accurate."""
    return {"n_nodes": g.n_nodes, "q_max": g.q_max, "quad_error": g.quad_error, "q_verified": finite_or_none(g.q_ok),
            "accurate": g.accurate}  # fmt: skip


ONE_LOOP_COLUMNS = ["activation", "sigma_w2", "sigma_b2", "width", "q_star", "chi_par", "V_star", "K1_star",
                    "lambda_mf", "lambda_coeff_1overN", "lambda_one_loop", "expansion_parameter", "status"]  # fmt: skip
CROSSING_THEORY_COLUMNS = ["activation", "sigma_b2", "width", "crossing_mean_field", "crossing_one_loop",
                           "crossing_annealed", "crossing_exact", "expansion_parameter", "status"]  # fmt: skip


def one_loop_tables(
    settings, sigma_w2: torch.Tensor, sigma_w2_search: tuple[float, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one_loop.csv, one_loop_crossings.csv): coefficients on the theory grid and crossings vs width, per case."""
    rows, crossings = [], []
    for case in progress(settings.cases, desc="one loop"):
        act = case.activation.value
        rows.append(one_loop_table(act, sigma_w2, case.sigma_b2, widths=settings.widths)[ONE_LOOP_COLUMNS])
        cr = crossing_table(act, [case.sigma_b2], settings.widths)
        # the mean-field crossing has one home, the critical line (it also covers a discontinuous transition, e.g.
        # gelu's finite q* vanishing at a saddle node, where one loop has no crossing and says so in `status`)
        cr["crossing_mean_field"] = critical_sigma_w2(act, case.sigma_b2, sigma_w2_range=sigma_w2_search)
        crossings.append(cr[CROSSING_THEORY_COLUMNS])
    return pd.concat(rows, ignore_index=True), pd.concat(crossings, ignore_index=True)


UNSOLVED = ("max_iter", "unstable")  # a fixed-point solve that did not deliver x* (docs/science.md §7)
Q_VALUES = ["q_star", "chi1", "a_q", "depth_scale_q", "lambda_mf"]  # read at q*: void where q* was not solved
C_VALUES = ["c_star", "chi_c", "depth_scale_c"]  # read at (q*, c*)
GRID_VALUES = Q_VALUES + C_VALUES


def _mask_where(df: pd.DataFrame, cols: list[str], bad) -> pd.DataFrame:
    """`mask_invalid` for a validity that is not one status column equal to "ok" (several columns, a bool)."""
    marked = df.assign(_valid=np.where(np.asarray(bad, dtype=bool), "invalid", "ok"))
    return mask_invalid(marked, cols, "_valid").drop(columns="_valid")


def mask_tables(result: TheoryResult) -> TheoryResult:
    """The theory tables with the status-before-number rule applied (pipeline.status.mask_invalid).

    theory.csv: the q-side values NaN where q_status is max_iter/unstable, the c-side ones also where c_status is,
    every value where quad_status is not ok (a diverged q* = inf or a degenerate c* are results, not failures).
    critical_line.csv: sigma_w2_crit and q_star NaN unless found and quad_status ok (q_star is a placeholder
    otherwise). iterates.csv: the iterates NaN where quad_status is not ok. one_loop.csv / one_loop_crossings.csv:
    the one-loop predictions NaN where `status` is not ok.
    """
    t = result.theory
    q_bad = t.q_status.isin(UNSOLVED)
    t = _mask_where(t, Q_VALUES, q_bad)
    t = _mask_where(t, C_VALUES, q_bad | t.c_status.isin(UNSOLVED))
    if "quad_status" in t:
        t = mask_invalid(t, GRID_VALUES, "quad_status")
    c = result.critical
    c = _mask_where(c, ["sigma_w2_crit", "q_star"], ~c.found.astype(bool))
    if "quad_status" in c:
        c = mask_invalid(c, ["sigma_w2_crit", "q_star"], "quad_status")
    it = result.iterates
    if "quad_status" in it:
        it = mask_invalid(it, [k for k in it.columns if k not in ("activation", "layer", "quad_status")], "quad_status")
    loop = result.one_loop
    loop = None if loop is None else mask_invalid(loop, ol.ONE_LOOP_VALUE_COLUMNS, "status", ol.VALID_STATUSES)
    cross = result.one_loop_crossings
    cross = None if cross is None else mask_invalid(cross, ol.CROSSING_VALUE_COLUMNS, "status")
    return TheoryResult(t, c, it, result.quadrature, result.figures, one_loop=loop, one_loop_crossings=cross)


GRID_BLOCK_CELLS = 1 << 16  # grid points per progress step (the default 99 x 41 grid is one block: unchanged)


def grid_row_chunks(n_sigma_w2: int, n_sigma_b2: int, cells: int = GRID_BLOCK_CELLS) -> list[tuple[int, int]]:
    """[lo, hi) blocks of sigma_w2 rows of about `cells` grid points each (at least one row per block)."""
    step = max(1, cells // max(1, n_sigma_b2))
    return [(lo, min(lo + step, n_sigma_w2)) for lo in range(0, n_sigma_w2, step)]


def compute(cfg: TheoryConfig) -> TheoryResult:
    """All mean-field quantities of the config; a pure function of it."""
    th = cfg.theory
    sw = torch.linspace(th.sigma_w2.start, th.sigma_w2.stop, th.sigma_w2.num, dtype=torch.float64)
    sb = torch.linspace(th.sigma_b2.start, th.sigma_b2.stop, th.sigma_b2.num, dtype=torch.float64)
    solver = dict(tol=th.quad.fixed_point_tol, max_iter=th.quad.max_iter)
    grids, crits, quad = [], [], {}
    names = list(dict.fromkeys(a.value for a in th.activations))
    rows = grid_row_chunks(th.sigma_w2.num, th.sigma_b2.num, GRID_BLOCK_CELLS)
    # progress per unit of work: each block of grid rows and each critical line (a large grid is minutes per activation)
    bar = progress(desc="theory", total=len(names) * (len(rows) + 1), unit="block")
    for name in names:
        g = integrator_for(
            name, cfg, max(float(sw.max()), *th.sigma_w2_search), float(max(sb.max(), *th.critical_sigma_b2))
        )
        for lo, hi in rows:  # row-major blocks of sigma_w2: the concatenation is the whole grid's table, in order
            grids.append(grid_table(name, mean_field_grid(g, sw[lo:hi, None], sb[None, :], cfg.net.xi, **solver)))
            bar.update(1)
        crits.append(critical_table(name, chaos_line(g, th.critical_sigma_b2, cfg.net.xi, tuple(th.sigma_w2_search))))
        bar.update(1)
        # after the work: the rule follows the variances it was asked about (GaussianIntegrator.cover)
        quad[name] = quad_summary(g)
    bar.close()
    net = cfg.net
    g = integrator_for(net.activation.value, cfg, net.sigma_w2, net.sigma_b2)
    it = th.iterate
    iters = layer_iterates(g, net.sigma_w2, net.sigma_b2, net.depth, it.q11, it.q22, it.c0, net.xi)
    iters.insert(0, "activation", net.activation.value)
    iters = iters.drop(columns="sigma_w2")
    verified = g.kernel_verified(*(torch.tensor(iters[k].to_numpy()) for k in ("q11", "q22", "c")))
    iters["quad_status"] = ["ok" if bool(v) else "inaccurate" for v in verified]
    quad[f"iterates:{net.activation.value}"] = quad_summary(g)
    loop, loop_cross = (
        one_loop_tables(th.one_loop, sw, tuple(th.sigma_w2_search))
        if th.one_loop.enabled and cfg.net.one_loop_applies
        else (None, None)
    )
    if th.one_loop.enabled and not cfg.net.one_loop_applies:
        log.warning("one-loop tables skipped: derived for i.i.d. weights (net.xi = 1), got net.xi=%g", cfg.net.xi)
    result = mask_tables(
        TheoryResult(
            pd.concat(grids, ignore_index=True),
            pd.concat(crits, ignore_index=True),
            iters,
            quad,
            th.figures,
            one_loop=loop,
            one_loop_crossings=loop_cross,
        )
    )
    result.output = headline(result)
    return result


def write(result: TheoryResult, folder: Path) -> StageOutput:
    """CSV tables and (unless theory.figures=false) the stage's figures; returns the headline from `compute`."""
    optional = {"one_loop.csv": result.one_loop, "one_loop_crossings.csv": result.one_loop_crossings}
    tables = write_tables(
        "theory",
        folder,
        {
            "theory.csv": result.theory,
            "critical_line.csv": result.critical,
            "iterates.csv": result.iterates,
            **{k: v for k, v in optional.items() if v is not None},
        },
    )
    if result.figures:
        draw_stage_figures("theory", tables, folder / "figures")
    return result.output


def critical_status(crit: pd.DataFrame) -> dict[str, str]:
    """Per activation of critical_line.csv rows: "ok" where sigma_w2_crit is a number, else why it is NaN:
    "jump" (chi_1 jumps across 1: no crossing), "quad_inaccurate" (quadrature not verified there), "not_found"
    (no chi_1 = 1 root within theory.sigma_w2_search)."""
    out = {}
    for r in crit.itertuples():
        if np.isfinite(r.sigma_w2_crit):
            out[r.activation] = "ok"
        elif getattr(r, "crossing_status", "") == "jump":
            out[r.activation] = "jump"
        elif getattr(r, "quad_status", "ok") != "ok":
            out[r.activation] = "quad_inaccurate"
        else:
            out[r.activation] = "not_found"
    return out


def headline(result: TheoryResult) -> StageOutput:
    """metrics.json numbers, per-layer curves and the one-line summary of the theory tables."""
    crit0 = result.critical[result.critical.sigma_b2 == 0].set_index("activation").sigma_w2_crit  # NaN: not valid
    bad = ("max_iter", "unstable")
    unconverged = int((result.theory.q_status.isin(bad) | result.theory.c_status.isin(bad)).sum())
    no_fixed_point = int(((result.theory.q_status == "diverged") | (result.theory.c_status == "degenerate")).sum())
    inaccurate = int((result.theory.quad_status != "ok").sum())
    jumps = result.critical[result.critical.crossing_status == "jump"]
    metrics = {
        "critical_sigma_w2_at_sigma_b2_0": {a: finite_or_none(v) for a, v in crit0.items()},
        # status before number: why each value above is None (ok where it is a number)
        "critical_sigma_w2_at_sigma_b2_0_status": critical_status(result.critical[result.critical.sigma_b2 == 0]),
        "grid_points": int(len(result.theory)),
        "grid_points_not_converged": unconverged,  # solver gave up (critical slowing down)
        "grid_points_without_fixed_point": no_fixed_point,  # q* infinite, or c* undefined at q* = 0
        "grid_points_inaccurate": inaccurate,  # quadrature not verified at the row's variances (quad_status)
        "critical_points_inaccurate": int((result.critical.quad_status != "ok").sum()),
        # critical points without a valid sigma_w2_crit (no crossing, a jump, unverified quadrature): None above
        "n_excluded_critical_points": int(result.critical.sigma_w2_crit.isna().sum()),
        "critical_jumps": {f"{r.activation}_sb{r.sigma_b2:g}": float(r.sigma_w2_jump) for r in jumps.itertuples()},
        "quadrature": result.quadrature,
        "final_q": float(result.iterates.q11.iloc[-1]),
        "final_c": float(result.iterates.c.iloc[-1]),
    }
    if result.one_loop_crossings is not None:  # the one-loop shift of the crossing at the narrowest width, per case
        oc = result.one_loop_crossings
        narrow = oc[oc.width == oc.width.min()]
        metrics["one_loop_crossing_shift_at_min_width"] = {
            f"{r.activation}_sb{r.sigma_b2:g}_N{r.width}": finite_or_none(r.crossing_one_loop - r.crossing_mean_field)
            for r in narrow.itertuples()
        }
        metrics["one_loop_points_flagged"] = int((result.one_loop.status != "ok").sum())
        # the shifts above are None where the crossing's status is not ok; counted here
        metrics["n_excluded_one_loop_crossings"] = int((oc.status.astype(str) != "ok").sum()) if "status" in oc else 0
    curves = {"iterate_q11": result.iterates.q11.tolist(), "iterate_c": result.iterates.c.tolist()}
    crit_txt = ", ".join(f"{a} {v:.6f}" for a, v in crit0.items())
    return StageOutput(
        metrics,
        curves,
        f"critical sigma_w2 at sigma_b2=0: {crit_txt}; "
        f"{unconverged}/{len(result.theory)} grid points not converged, "
        f"{no_fixed_point} without a finite fixed point"
        + (f"; {inaccurate} INACCURATE (quad_status)" if inaccurate else "")
        + (f"; chi_1 jumps across 1 (no crossing) at {len(jumps)} critical point(s)" if len(jumps) else ""),
    )
