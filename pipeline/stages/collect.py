"""Merge the jobs of a stage's multirun into one set of tables and figures (the DVC-owned outputs).

`python -m pipeline.collect mlp_sweep` reads outputs/mlp_sweep/jobs/<n>/ and writes
outputs/mlp_sweep/{sweep.csv, finite_width.csv, layers.csv, figures/, metrics.json} (figures/: every
mlp_sweep figure of the registry `pipeline.plots.figures`, drawn from the merged tables); the merged
artifacts are also attached to the sweep's MLflow parent run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.paths import repo_root
from pipeline.plots.figures import draw_stage_figures
from pipeline.stages.outputs import staged, write_json
from pipeline.tracking.sweep import PARENT_FILE

log = logging.getLogger("ginn.collect")


def job_dirs(jobs: Path) -> list[Path]:
    """Numbered job folders of a Hydra sweep dir, in job order."""
    return sorted((p for p in jobs.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def finite_width_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Deviation from mean field times N (docs/science.md §2: loop corrections scale as 1/N)."""
    keys = ["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2"]
    out = sweep[keys].copy()
    n = sweep.width
    # the variance as a relative (log) deviation: ReLU's chaotic q^L spans hundreds of decades
    out["dlogq_L_times_N"] = (sweep.log_q_L - np.log(sweep.q_L_theory)) * n
    out["dlogq_L_times_N_se"] = sweep.log_q_L_se * n
    for col, theo in (("c_L", "c_L_theory"), ("lambda_replica", "lambda_mf")):
        short = "lambda" if col.startswith("lambda") else col
        out[f"d{short}_times_N"] = (sweep[col] - sweep[theo]) * n
        out[f"d{short}_times_N_se"] = sweep[f"{col}_se"] * n
    if "lambda_coeff_1overN" in sweep:  # one loop: N (lambda - lambda_MF) -> c1 (docs/science.md §6)
        out["dlambda_times_N_one_loop"] = sweep.lambda_coeff_1overN
    return out


ONE_LOOP_KEYS = ("crossing_one_loop", "crossing_one_loop_deep", "crossing_mean_field_finite_depth", "crossing_exact",
                 "one_loop_expansion_parameter", "one_loop_status")  # fmt: skip


def one_loop_crossings(crossings: pd.DataFrame) -> pd.DataFrame:
    """one_loop_crossings.csv: measured zero crossings beside mean field, one loop and (ReLU) the exact formula.

    crossing_one_loop is the one-loop prediction at the job's depth (exponent averaged over the measured layers);
    crossing_one_loop_deep its deep-layer (fixed-point) value; crossing_mean_field the N -> inf, L -> inf value
    (the critical line) and crossing_mean_field_finite_depth N -> inf at the job's depth. z columns:
    (measured - prediction) / SE. One row per job, from that job's own key (activation, sigma_b2, width, depth).
    """
    c = crossings
    out = pd.DataFrame({
        "activation": c.activation, "sigma_b2": c.sigma_b2, "width": c.width, "depth": c.depth,
        "crossing_measured": c.crossing_measured, "crossing_se": c.crossing_measured_se,
        "crossing_mean_field": c.crossing_theory, "crossing_one_loop": c.crossing_one_loop,
        "crossing_exact": c.crossing_exact, "expansion_parameter": c.one_loop_expansion_parameter,
        "crossing_one_loop_deep": c.crossing_one_loop_deep,
        "crossing_mean_field_finite_depth": c.crossing_mean_field_finite_depth,
        "one_loop_status": c.one_loop_status,
    })  # fmt: skip
    num = ["crossing_measured", "crossing_se", "crossing_mean_field", "crossing_one_loop", "crossing_exact",
           "crossing_one_loop_deep", "crossing_mean_field_finite_depth"]  # fmt: skip
    out[num] = out[num].apply(pd.to_numeric, errors="coerce")
    out["z_mean_field"] = (out.crossing_measured - out.crossing_mean_field) / out.crossing_se
    out["z_one_loop"] = (out.crossing_measured - out.crossing_one_loop) / out.crossing_se
    out["group"] = [f"{a} sb2={b:g} L={d}" for a, b, d in zip(out.activation, out.sigma_b2, out.depth)]  # dvc plots
    return out.sort_values(["activation", "sigma_b2", "depth", "width"], kind="stable").reset_index(drop=True)


def one_loop_summary(loop: pd.DataFrame) -> dict:
    """A few headline numbers of the one-loop comparison (metrics.json stays short; the table has the rest)."""
    ok = loop.crossing_one_loop.notna() & loop.crossing_measured.notna()
    closer = (loop.crossing_measured - loop.crossing_one_loop).abs() < (
        loop.crossing_measured - loop.crossing_mean_field
    ).abs()
    return {
        "one_loop_max_abs_z": float(loop.z_one_loop[ok].abs().max()) if ok.any() else None,
        "mean_field_max_abs_z": float(loop.z_mean_field[ok].abs().max()) if ok.any() else None,
        "one_loop_closer_than_mean_field": f"{int((closer & ok).sum())}/{int(ok.sum())}",
    }


def collect_mlp_sweep(jobs: Path, out: Path) -> dict:
    """Concatenate job tables; fail loudly if a job has no outputs (it failed or never ran)."""
    dirs = job_dirs(jobs)
    missing = [d.name for d in dirs if not (d / "sweep.csv").exists()]
    if not dirs or missing:
        raise SystemExit(f"error: collect mlp_sweep: jobs without outputs in {jobs}: {missing or 'no jobs'}")
    sweep = pd.concat([pd.read_csv(d / "sweep.csv") for d in dirs], ignore_index=True)
    layers = pd.concat([pd.read_csv(d / "layers.csv") for d in dirs], ignore_index=True)
    crossings = []
    for d in dirs:
        m = json.loads((d / "metrics.json").read_text())
        row = pd.read_csv(d / "sweep.csv", nrows=1).iloc[0]
        crossings.append(
            {
                "activation": row.activation,
                "width": int(row.width),
                "depth": int(row.depth),
                "sigma_b2": row.sigma_b2,
                "xi": row.xi,
                "mlflow_run_id": m.get("mlflow_run_id"),
                **{k: m.get(k) for k in ("crossing_measured", "crossing_measured_se", "crossing_theory")},
                **{k: m.get(k) for k in ONE_LOOP_KEYS},
            }
        )
    fw = finite_width_table(sweep)
    loop = one_loop_crossings(pd.DataFrame(crossings))
    fluct = [d / "fluctuations.csv" for d in dirs if (d / "fluctuations.csv").is_file()]
    fluct = pd.concat([pd.read_csv(f) for f in fluct], ignore_index=True) if fluct else None
    with staged(out) as folder:
        sweep.to_csv(folder / "sweep.csv", index=False)
        layers.to_csv(folder / "layers.csv", index=False)
        fw.to_csv(folder / "finite_width.csv", index=False)
        pd.DataFrame(crossings).drop(columns=list(ONE_LOOP_KEYS)).to_csv(folder / "crossings.csv", index=False)
        loop.to_csv(folder / "one_loop_crossings.csv", index=False)
        merged = {"mlp_sweep/sweep.csv": sweep, "mlp_sweep/layers.csv": layers, "mlp_sweep/finite_width.csv": fw,
                  "mlp_sweep/one_loop_crossings.csv": loop}  # fmt: skip
        if fluct is not None:
            fluct.to_csv(folder / "fluctuations.csv", index=False)
            merged["mlp_sweep/fluctuations.csv"] = fluct
        # the merged figures (registry: measured_vs_theory, layer_profiles at the widest width, collapse, one loop)
        draw_stage_figures("mlp_sweep", merged, folder / "figures")
        metrics = {
            "n_jobs": len(dirs),
            "n_rows": len(sweep),
            "n_failed_networks": int(sweep.n_failed_networks.sum()),
            **one_loop_summary(loop),
        }
        parent = jobs / PARENT_FILE
        metrics["mlflow_run_id"] = json.loads(parent.read_text())["run_id"] if parent.exists() else None
        write_json(folder / "metrics.json", metrics)
    if parent.exists():
        from pipeline.tracking.run import attach_to_run

        info = json.loads(parent.read_text())
        attach_to_run(
            info["run_id"],
            info["uri"],
            {"n_jobs": len(dirs)},
            [
                out / "sweep.csv",
                out / "finite_width.csv",
                out / "crossings.csv",
                out / "one_loop_crossings.csv",
                out / "figures",
            ],  # fmt: skip
            "merged",
        )
    return metrics


COLLECTORS = {"mlp_sweep": collect_mlp_sweep}


def latest_sweep(stage: str) -> Path | None:
    """The newest sweep folder of `stage` under outputs/multirun/ (by name: Hydra names them by time)."""
    root = repo_root() / "outputs" / "multirun" / stage
    dirs = sorted(p for p in root.glob("*") if p.is_dir() and any(c.name.isdigit() for c in p.iterdir()))
    return dirs[-1] if dirs else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.collect",
        description=__doc__.splitlines()[0],
        epilog="Without --out the merged tables go to <jobs>/merged: the DVC-owned outputs/<stage>/ is written only "
        "when asked for with --out (as dvc.yaml does).",
    )
    p.add_argument("stage", choices=sorted(COLLECTORS))
    p.add_argument("--jobs", type=Path, help="sweep dir (default: the newest outputs/multirun/<stage>/<time>)")
    p.add_argument("--out", type=Path, help="merged output dir (default: <jobs>/merged)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    jobs = a.jobs or latest_sweep(a.stage)
    if jobs is None or not jobs.is_dir():
        print(f"error: --jobs {jobs or ''}: no such sweep directory (run a sweep with -m first)", file=sys.stderr)
        return 2
    out = a.out or jobs / "merged"
    m = COLLECTORS[a.stage](jobs, out)
    log.info("collected %s jobs of %s from %s -> %s", m["n_jobs"], a.stage, jobs, out)
    return 0
