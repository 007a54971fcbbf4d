"""Merge the jobs of a stage's multirun into one set of tables and figures (the DVC-owned outputs).

`python -m pipeline.collect mlp_sweep` reads outputs/mlp_sweep/jobs/<n>/ and writes
outputs/mlp_sweep/{sweep.csv, finite_width.csv, layers.csv, figures/, metrics.json} (figures/: every
mlp_sweep figure of the registry `pipeline.plots.figures`, drawn from the merged tables); the merged
artifacts are also attached to the sweep's MLflow parent run. Run ids stay out of those DVC-tracked files:
the parent run's id goes to mlflow_run.json, each job's to runs.csv (both git-ignored, not DVC outs).

Status before number: one_loop_crossings.csv carries NaN in its one-loop values where `one_loop_status` is not
"ok", and the headline numbers of metrics.json are taken over valid rows, with the excluded rows counted.

Tables meet by key, never by position: every config value that differs between the jobs (read from each job's
.hydra/config.yaml, else its overrides.yaml; bookkeeping such as out_dir and tracking.* excepted) is a key column
of every merged table (`engine.q0`, `seed`, ...; net.* values under the stage's own names: sigma_b2, depth, xi)
and of the dvc plots `group`; metrics.json lists them as `swept_keys`. A merged table whose key (the stage's own
plus these) is not unique is refused with one line. Figures draw one line per configuration of these keys.
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
from pipeline.stages.outputs import (
    ForeignOutputDir,
    check_out_dir,
    read_run_record,
    staged,
    write_json,
    write_run_record,
)
from pipeline.stages.tables import write_csv
from pipeline.status import mask_invalid
from pipeline.tracking.sweep import PARENT_FILE

log = logging.getLogger("ginn.collect")


def job_dirs(jobs: Path) -> list[Path]:
    """Numbered job folders of a Hydra sweep dir, in job order."""
    return sorted((p for p in jobs.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


# a job's design (README: one (activation, width, depth, sigma_b2, xi) job): config leaves whose column name in the
# stage's tables is the short name; every other config leaf that differs between jobs keeps its dotted path
ALIASES = {"net.activation": "activation", "net.width": "width", "net.depth": "depth", "net.sigma_b2": "sigma_b2",
           "net.xi": "xi", "net.weights": "weights", "engine.dtype": "dtype"}  # fmt: skip
DESIGN = ("activation", "width", "depth", "sigma_b2", "xi")  # every merged table carries these columns
# bookkeeping, not configuration: the same job with another value gives the same numbers
NOT_KEYS = ("tracking.", "out_dir", "resume", "stage", "hydra.")
# each table's natural key within one job; the merged key adds DESIGN and every config leaf that differs between jobs
NATURAL_KEYS = {
    "sweep.csv": ("sigma_w2",), "finite_width.csv": ("sigma_w2",), "layers.csv": ("sigma_w2", "layer"),
    "fluctuations.csv": ("sigma_w2", "layer"), "crossings.csv": (), "one_loop_crossings.csv": (),
}  # fmt: skip


def _leaves(node, prefix: str = "") -> dict:
    """Flatten a config to {dotted.path: value}; a list is one leaf (as its JSON text)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    if isinstance(node, list):
        return {prefix[:-1]: json.dumps(node, default=str)}
    return {prefix[:-1]: node}


def job_config(job: Path) -> dict | None:
    """A job's config leaves from <job>/.hydra/config.yaml (unresolved), else its overrides.yaml; None if neither."""
    import yaml

    hydra = job / ".hydra"
    if (hydra / "config.yaml").is_file():
        return _leaves(yaml.safe_load((hydra / "config.yaml").read_text()) or {})
    if (hydra / "overrides.yaml").is_file():
        out = {}
        for o in yaml.safe_load((hydra / "overrides.yaml").read_text()) or []:
            k, _, v = str(o).lstrip("+~").partition("=")
            out[k] = yaml.safe_load(v) if v else None
        return out
    return None


def key_column(leaf: str) -> str:
    """The merged tables' column for a config leaf: the stage's own name for the design leaves, else the path."""
    return ALIASES.get(leaf, leaf)


def swept_keys(dirs: list[Path]) -> tuple[list[str], list[dict]]:
    """(columns, per-job {column: value}) of the config leaves that differ between the jobs, bookkeeping excepted.

    The design leaves (net.activation/width/depth/sigma_b2/xi) are always in the per-job values, so every merged
    table can carry them; a job without a readable config contributes only what its tables already say.
    """
    configs = [job_config(d) or {} for d in dirs]
    missing = [d.name for d, c in zip(dirs, configs) if not c]
    if missing:
        log.warning("jobs %s have no .hydra/config.yaml or overrides.yaml: their swept values are unknown", missing)
    leaves = sorted({k for c in configs for k in c}, key=lambda k: (k not in ALIASES, k))
    varying = [
        k for k in leaves if not k.startswith(NOT_KEYS) and len({repr(c.get(k, "<unset>")) for c in configs}) > 1
    ]
    cols = [key_column(k) for k in varying]
    design = [k for k, v in ALIASES.items() if v in DESIGN]
    values = [{key_column(k): c[k] for k in (*design, *varying) if k in c} for c in configs]
    return cols, values


def with_job_keys(table: pd.DataFrame, values: dict, cols: list[str]) -> pd.DataFrame:
    """One job's table with its design columns and the swept `cols` added where missing, keys first."""
    table = table.copy()
    at = sum(1 for c in table.columns[: len(DESIGN) + 2] if c in (*DESIGN, "weights", "dtype"))
    for c in [*DESIGN, *cols]:
        if c in table.columns or c not in values or (c not in cols and c not in ("depth", "sigma_b2", "xi")):
            continue
        table.insert(min(at, len(table.columns)), c, values[c])
        at += 1
    return table


def table_key(name: str, table: pd.DataFrame, cols: list[str]) -> list[str]:
    """The merged key of a table: the design columns it has, the swept config columns, its natural key."""
    return list(dict.fromkeys([*(c for c in DESIGN if c in table.columns), *cols, *NATURAL_KEYS[name]]))


def check_unique(name: str, table: pd.DataFrame, key: list[str], jobs: pd.Series | None = None) -> None:
    """Fail with one line if two rows of a merged table share the key (then their numbers could not be told apart)."""
    dup = table.duplicated(key, keep=False)
    if dup.any():
        first = table[dup].iloc[0]
        same = table[dup & (table[key] == first[key]).all(axis=1)]
        who = f" (jobs {', '.join(map(str, jobs[same.index].unique()))})" if jobs is not None else ""
        raise SystemExit(
            f"error: collect: {name}: {int(dup.sum())} rows share a key{who}, e.g. "
            + ", ".join(f"{k}={first[k]}" for k in key)
            + ": the jobs differ in nothing collect can key on (no .hydra/config.yaml?) or were run twice"
        )


def finite_width_table(sweep: pd.DataFrame, cols: list[str] = ()) -> pd.DataFrame:
    """Deviation from mean field at the same depth times N (docs/science.md §2: loop corrections scale as 1/N)."""
    keys = list(dict.fromkeys(["activation", "width", "depth", "sigma_b2", "xi", *cols, "sigma_w2"]))
    out = sweep[keys].copy()
    n = sweep.width
    # the variance as a relative (log) deviation: ReLU's chaotic q^L spans hundreds of decades
    out["dlogq_L_times_N"] = (sweep.log_q_L - np.log(sweep.q_L_theory)) * n
    out["dlogq_L_times_N_se"] = sweep.log_q_L_se * n
    # the exponent against mean field averaged over the same layers (a deep-layer lambda_MF would add the
    # finite-depth offset times N: -3 for tanh sigma_b2=0 at sigma_w2=1.1, N=512, L=50)
    for col, theo in (("c_L", "c_L_theory"), ("lambda_replica", "lambda_mf_finite_depth")):
        short = "lambda" if col.startswith("lambda") else col
        out[f"d{short}_times_N"] = (sweep[col] - sweep[theo]) * n
        out[f"d{short}_times_N_se"] = sweep[f"{col}_se"] * n
    if "lambda_coeff_1overN_finite_depth" in sweep:  # one loop over the same layers (docs/science.md §6)
        out["dlambda_times_N_one_loop"] = sweep.lambda_coeff_1overN_finite_depth
    return out


ONE_LOOP_KEYS = ("crossing_one_loop", "crossing_one_loop_deep", "crossing_mean_field_finite_depth", "crossing_exact",
                 "one_loop_expansion_parameter", "one_loop_status", "one_loop_status_deep")  # fmt: skip
# the exact kernel chain's crossing of the typical exponent (mlp_sweep `chain`, docs/science.md §7a): per job, in
# one_loop_crossings.csv only (status `crossing_chain_status`; NaN where the job did not measure it)
CHAIN_KEYS = ("crossing_chain", "crossing_chain_se", "crossing_chain_status", "crossing_chain_networks")
# one_loop_crossings.csv: the one-loop values its `one_loop_status` speaks for (NaN unless "ok", pipeline.status);
# the measured, mean-field and exact columns have their own validity, expansion_parameter explains the status
ONE_LOOP_VALUES = ("crossing_one_loop", "crossing_one_loop_deep", "z_one_loop")
# a job without a one-loop prediction at all (xi != 1 or orthogonal weights: one loop is derived for i.i.d. Gaussian
# weights only, docs/science.md §6) records no status; its one-loop values are NaN and it leaves the one-loop numbers
NOT_DERIVED = "not_derived"
# the job's measured and theory crossings: status column -> the values it speaks for (crossings.csv and, under
# their one_loop_crossings.csv names, there too)
CROSSING_STATUS = {"crossing_measured_status": ["crossing_measured", "crossing_measured_se"],
                   "crossing_theory_status": ["crossing_theory"]}  # fmt: skip
# per-job MLflow run ids: a git-ignored file beside the merged tables, not a DVC out (run ids differ on every run)
RUNS_FILE = "runs.csv"


def group_label(row, cols) -> str:
    """A configuration's name for the dvc plots `group` column: activation, sigma_b2, depth, then the swept keys."""
    extra = "".join(f" {c}={row[c]:g}" if isinstance(row[c], float) else f" {c}={row[c]}" for c in cols)
    return f"{row['activation']} sb2={row['sigma_b2']:g} L={row['depth']}{extra}"


def one_loop_crossings(crossings: pd.DataFrame, cols: list[str] = ()) -> pd.DataFrame:
    """one_loop_crossings.csv: measured zero crossings beside mean field, one loop and (ReLU) the exact formula.

    crossing_one_loop is the one-loop prediction at the job's depth (exponent averaged over the measured layers);
    crossing_one_loop_deep its deep-layer (fixed-point) value; crossing_mean_field the N -> inf, L -> inf value
    (the critical line) and crossing_mean_field_finite_depth N -> inf at the job's depth. z columns:
    (measured - prediction) / SE. One row per job, from that job's own key (activation, sigma_b2, width, depth and
    the config values `cols` that differ between the jobs, which also name the dvc plots `group`).
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
        "measured_status": c.get("crossing_measured_status", "ok"),
        "mean_field_status": c.get("crossing_theory_status", "ok"),
    })  # fmt: skip
    extra = [k for k in cols if k not in out.columns]
    for i, k in enumerate(extra):
        out.insert(4 + i, k, c[k])
    num = ["crossing_measured", "crossing_se", "crossing_mean_field", "crossing_one_loop", "crossing_exact",
           "crossing_one_loop_deep", "crossing_mean_field_finite_depth"]  # fmt: skip
    out[num] = out[num].apply(pd.to_numeric, errors="coerce")
    # status before number: a crossing whose own status is not ok is NaN, and so is every z computed from it
    out = mask_invalid(out, ["crossing_measured", "crossing_se"], "measured_status")
    out = mask_invalid(out, ["crossing_mean_field"], "mean_field_status")
    out["z_mean_field"] = (out.crossing_measured - out.crossing_mean_field) / out.crossing_se
    out["z_one_loop"] = (out.crossing_measured - out.crossing_one_loop) / out.crossing_se
    # status before number: a one-loop value whose own status is not "ok" (no_crossing, expansion_breakdown, ...)
    # is NaN here, so it is never drawn, compared or aggregated; the status stays beside it
    out["one_loop_status"] = out.one_loop_status.where(out.one_loop_status.notna(), NOT_DERIVED)
    out = mask_invalid(out, list(ONE_LOOP_VALUES), "one_loop_status")
    if "crossing_chain" in c:
        out = pd.concat([out, chain_columns(c, out)], axis=1)
    label = [k for k in cols if k not in ("activation", "sigma_b2", "depth", "width")]
    out["group"] = [group_label(r, label) for _, r in out.iterrows()]  # dvc plots: one line per configuration
    order = ["activation", "sigma_b2", "depth", *label, "width"]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def chain_columns(c: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
    """The chain-measured crossing beside one loop and the exact ReLU value: z scores, and the next order
    N^2 (crossing_chain - crossing_one_loop) with its SE (docs/science.md §6, §7a). NaN where its status is not ok."""
    chain = pd.DataFrame({
        "crossing_chain": pd.to_numeric(c.crossing_chain, errors="coerce"),
        "crossing_chain_se": pd.to_numeric(c.crossing_chain_se, errors="coerce"),
        "chain_status": c.crossing_chain_status.where(c.crossing_chain_status.notna(), "not_measured"),
        "chain_networks": c.crossing_chain_networks,
    })  # fmt: skip
    chain = mask_invalid(chain, ["crossing_chain", "crossing_chain_se"], "chain_status")
    n2 = out.width.astype(float) ** 2
    chain["z_chain_one_loop"] = (chain.crossing_chain - out.crossing_one_loop) / chain.crossing_chain_se
    chain["z_chain_exact"] = (chain.crossing_chain - out.crossing_exact) / chain.crossing_chain_se
    chain["next_order_N2"] = n2 * (chain.crossing_chain - out.crossing_one_loop)
    chain["next_order_N2_se"] = n2 * chain.crossing_chain_se
    return chain


def one_loop_closer(loop: pd.DataFrame) -> pd.Series:
    """Per row: is the measured crossing closer to one loop than to mean field? None where either theory has
    no crossing (gelu/swish: chi_1 jumps over 1, docs/science.md §1) or nothing was measured."""
    closer = (loop.crossing_measured - loop.crossing_one_loop).abs() < (
        loop.crossing_measured - loop.crossing_mean_field
    ).abs()
    both = loop[["crossing_measured", "crossing_one_loop", "crossing_mean_field"]].notna().all(axis=1)
    return closer.astype(object).where(both, None)


def one_loop_summary(loop: pd.DataFrame) -> dict:
    """A few headline numbers of the one-loop comparison (metrics.json stays short; the table has the rest).

    Taken over valid rows only: a row whose `one_loop_status` is not "ok" (pipeline.status.mask_invalid) or
    without a measured crossing leaves every number; `n_excluded_one_loop` (by status in
    `one_loop_excluded_statuses`) and `n_without_measured_crossing` count what was left out.
    """
    if "one_loop_status" in loop:  # the rule holds whoever built the table
        loop = mask_invalid(loop, list(ONE_LOOP_VALUES), "one_loop_status")
        flagged = loop.one_loop_status.astype(str) != "ok"
        by_status = loop.one_loop_status[flagged].astype(str).value_counts().sort_index()
    else:
        flagged, by_status = pd.Series(False, index=loop.index), pd.Series(dtype=int)
    ok = loop.crossing_one_loop.notna() & loop.crossing_measured.notna()
    closer = one_loop_closer(loop)
    both = closer.notna()
    return {
        "one_loop_max_abs_z": float(loop.z_one_loop[ok].abs().max()) if ok.any() else None,
        "mean_field_max_abs_z": float(loop.z_mean_field[both].abs().max()) if both.any() else None,
        "one_loop_closer_than_mean_field": f"{int((closer[both] == True).sum())}/{int(both.sum())}",  # noqa: E712
        "n_excluded_one_loop": int(flagged.sum()),
        "one_loop_excluded_statuses": {str(k): int(v) for k, v in by_status.items()},
        "n_without_measured_crossing": int(loop.crossing_measured.isna().sum()),
    }


def collect_mlp_sweep(jobs: Path, out: Path) -> dict:
    """Concatenate job tables; fail loudly if a job has no outputs (it failed or never ran)."""
    dirs = job_dirs(jobs)
    missing = [d.name for d in dirs if not (d / "sweep.csv").exists()]
    if not dirs or missing:
        raise SystemExit(f"error: collect mlp_sweep: jobs without outputs in {jobs}: {missing or 'no jobs'}")
    # tables meet by key: every config value that differs between the jobs becomes a key column of every table
    cols, values = swept_keys(dirs)

    def merge(name: str, required: bool = True) -> tuple[pd.DataFrame, pd.Series] | tuple[None, None]:
        parts = [(d, with_job_keys(pd.read_csv(d / name), v, cols)) for d, v in zip(dirs, values)
                 if required or (d / name).is_file()]  # fmt: skip
        if not parts:
            return None, None
        table = pd.concat([t for _, t in parts], ignore_index=True)
        job = pd.Series([d.name for d, t in parts for _ in range(len(t))])
        check_unique(name, table, table_key(name, table, cols), job)
        return table, job

    sweep, _ = merge("sweep.csv")
    layers, _ = merge("layers.csv")
    fluct, _ = merge("fluctuations.csv", required=False)  # only the jobs at fluctuations.widths have it
    crossings, runs = [], []
    for d, v in zip(dirs, values):
        m = json.loads((d / "metrics.json").read_text())
        row = pd.read_csv(d / "sweep.csv", nrows=1).iloc[0]
        crossings.append(
            {
                "activation": row.activation,
                "width": int(row.width),
                "depth": int(row.depth),
                "sigma_b2": row.sigma_b2,
                "xi": row.xi,
                **{k: v.get(k) for k in cols if k not in DESIGN},
                **{k: m.get(k) for k in ("crossing_measured", "crossing_measured_se", "crossing_theory")},
                # each crossing's own status (jobs written before the statuses existed: "ok", their NaN says none)
                **{k: m.get(k) or "ok" for k in CROSSING_STATUS},
                **{k: m.get(k) for k in ONE_LOOP_KEYS},
                **{k: m.get(k) for k in CHAIN_KEYS},
            }
        )
        key = {k: crossings[-1][k] for k in (*DESIGN, *cols) if k in crossings[-1]}
        runs.append({"job": d.name, **key, "mlflow_run_id": read_run_record(d)})
    fw = finite_width_table(sweep, cols)
    loop = one_loop_crossings(pd.DataFrame(crossings), cols)
    check_unique("finite_width.csv", fw, table_key("finite_width.csv", fw, cols))
    table = pd.DataFrame(crossings)  # one row per job, in job order
    for status, values in CROSSING_STATUS.items():
        table = mask_invalid(table, values, status)
    check_unique("crossings.csv", table, table_key("crossings.csv", table, cols), pd.Series([d.name for d in dirs]))
    check_unique("one_loop_crossings.csv", loop, table_key("one_loop_crossings.csv", loop, cols))
    parent = jobs / PARENT_FILE
    parent_run = json.loads(parent.read_text())["run_id"] if parent.exists() else None
    with staged(out, owner="mlp_sweep") as folder:
        write_csv(sweep, folder / "sweep.csv")
        write_csv(layers, folder / "layers.csv")
        write_csv(fw, folder / "finite_width.csv")
        write_csv(table.drop(columns=[*ONE_LOOP_KEYS, *CHAIN_KEYS]), folder / "crossings.csv")
        write_csv(loop, folder / "one_loop_crossings.csv")
        # run ids change on every run: kept out of the DVC-tracked tables and metrics.json (byte checksums)
        write_csv(pd.DataFrame(runs), folder / RUNS_FILE)
        merged = {"mlp_sweep/sweep.csv": sweep, "mlp_sweep/layers.csv": layers, "mlp_sweep/finite_width.csv": fw,
                  "mlp_sweep/one_loop_crossings.csv": loop, "mlp_sweep/keys": cols}  # fmt: skip
        if fluct is not None:
            write_csv(fluct, folder / "fluctuations.csv")
            merged["mlp_sweep/fluctuations.csv"] = fluct
        # the merged figures (registry: measured_vs_theory, layer_profiles at the widest width, collapse, one loop)
        draw_stage_figures("mlp_sweep", merged, folder / "figures")
        metrics = {
            "n_jobs": len(dirs),
            "n_rows": len(sweep),
            "n_failed_networks": int(sweep.n_failed_networks.sum()),
            "swept_keys": cols,  # config values that differ between the jobs: key columns of every table
            **one_loop_summary(loop),
        }
        write_json(folder / "metrics.json", metrics)
        write_run_record(folder, parent_run)  # the sweep's parent run
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
    try:  # before any merge work: never replace a folder another stage or a user owns
        check_out_dir(out, a.stage, key="--out")
    except ForeignOutputDir as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = COLLECTORS[a.stage](jobs, out)
    log.info("collected %s jobs of %s from %s -> %s", m["n_jobs"], a.stage, jobs, out)
    return 0
