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
    return out


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
            }
        )
    fw = finite_width_table(sweep)
    with staged(out) as folder:
        sweep.to_csv(folder / "sweep.csv", index=False)
        layers.to_csv(folder / "layers.csv", index=False)
        fw.to_csv(folder / "finite_width.csv", index=False)
        pd.DataFrame(crossings).to_csv(folder / "crossings.csv", index=False)
        # the merged figures (registry: measured_vs_theory, layer_profiles at the widest width, collapse)
        merged = {"mlp_sweep/sweep.csv": sweep, "mlp_sweep/layers.csv": layers, "mlp_sweep/finite_width.csv": fw}
        draw_stage_figures("mlp_sweep", merged, folder / "figures")
        metrics = {
            "n_jobs": len(dirs),
            "n_rows": len(sweep),
            "n_failed_networks": int(sweep.n_failed_networks.sum()),
            "crossing": {f"{c['activation']}_N{c['width']}_L{c['depth']}": c["crossing_measured"] for c in crossings},
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
            [out / "sweep.csv", out / "finite_width.csv", out / "crossings.csv", out / "figures"],
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
