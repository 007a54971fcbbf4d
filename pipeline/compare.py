"""`python -m pipeline.compare`: one sweep's runs as a table and a figure, a metric against a swept axis.

Example: python -m pipeline.compare --experiment mlp_sweep --x net.width --y crossing_measured --hue net.activation
By default the newest sweep (parent run) of the experiment; `--parent <run id>` picks another, `--all` mixes every
finished run. Error bars are the runs' own standard errors (`<y>_se` metrics, seeds of one network ensemble);
runs that share (x, hue) but differ in another swept param are never averaged together: the other param joins
the grouping and is named in the output. Numeric sweep axes are read from metrics (params sort as text).
Writes <sweep folder>/compare/<y>_vs_<x>.{csv,png} (or ./compare/ for --all).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from pipeline.stages.tables import write_csv  # noqa: E402 - after the backend is chosen
from pipeline.tracking.store import resolve_uri  # noqa: E402


def _experiment(experiment: str, uri: str | None):
    import mlflow  # lazy: ~1 s, and `--help` never needs it

    mlflow.set_tracking_uri(resolve_uri(uri))
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"error: --experiment {experiment!r}: no such MLflow experiment")
    return mlflow, exp


def newest_parent(experiment: str, uri: str | None = None):
    """(run_id, sweep folder) of the newest sweep parent run of the experiment, or (None, None)."""
    mlflow, exp = _experiment(experiment, uri)
    df = mlflow.search_runs([exp.experiment_id], filter_string="tags.sweep = 'parent'", order_by=["start_time DESC"])
    if df.empty:
        return None, None
    row = df.iloc[0]
    return row.run_id, row.get("tags.hydra_output_dir")


def runs_table(experiment: str, uri: str | None = None, parent: str | None = None, finished_only: bool = True):
    """The (child) runs of an experiment as a pandas DataFrame via mlflow.search_runs (one sweep if `parent`)."""
    mlflow, exp = _experiment(experiment, uri)
    filters = []
    if finished_only:
        filters.append("attributes.status = 'FINISHED'")
    if parent:
        filters.append(f"tags.mlflow.parentRunId = '{parent}'")
    df = mlflow.search_runs([exp.experiment_id], filter_string=" and ".join(filters))
    if "tags.sweep" in df.columns:  # sweep parents carry bookkeeping, not results
        df = df[df["tags.sweep"] != "parent"]
    return df


def column(df, name: str) -> str:
    """Resolve a user name (net.width) to a DataFrame column, preferring numeric metrics over params."""
    for prefix in ("metrics.", "params.", "tags.", ""):
        if prefix + name in df.columns:
            return prefix + name
    raise SystemExit(
        f"error: {name!r}: not a metric, param or tag of these runs "
        f"(e.g. {', '.join(c.split('.', 1)[1] for c in df.columns if c.startswith('metrics.'))[:300]})"
    )


# params that name a run, not a configuration: a different value per job (its folder) or bookkeeping of the tracking;
# grouping by them would make every run its own line and no line would ever cross the swept axis
NOT_CONFIG = ("out_dir", "resume", "stage", "tracking.", "swept.", "hydra.")


def varying_params(df, keep: list[str]) -> list[str]:
    """Configuration params that take more than one value across the runs, besides the ones already used (x, hue).

    A metric mirror of a param (numeric axes are logged as both) counts as the param: keep `metrics.net.width`
    excludes `params.net.width`.
    """
    kept = {c.split(".", 1)[1] if c.startswith(("metrics.", "params.")) else c for c in keep}
    return [
        c
        for c in df.columns
        if c.startswith("params.")
        and c not in keep
        and c.split(".", 1)[1] not in kept
        and not c.split(".", 1)[1].startswith(NOT_CONFIG)
        and df[c].nunique(dropna=True) > 1
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="MLflow experiment (= stage name)")
    p.add_argument("--x", required=True, help="param or metric on the x axis, e.g. net.width")
    p.add_argument("--y", required=True, help="metric on the y axis, e.g. crossing_measured")
    p.add_argument("--hue", help="param to colour by, e.g. net.activation")
    p.add_argument("--parent", help="the sweep's parent run id (default: the newest sweep of the experiment)")
    p.add_argument("--all", action="store_true", help="every finished run of the experiment, not one sweep")
    p.add_argument("--uri", help="tracking URI (default: the repo's store or $MLFLOW_TRACKING_URI)")
    p.add_argument("--out", type=Path, help="figure path (table: same name .csv); default <sweep>/compare/")
    a = p.parse_args(argv)
    import matplotlib.pyplot as plt  # lazy: `--help` never needs it

    parent, folder = (None, None) if a.all else ((a.parent, None) if a.parent else newest_parent(a.experiment, a.uri))
    if not a.all and parent is None:
        print(f"error: experiment {a.experiment!r} has no sweep (parent run): run one with -m, or use --all",
              file=sys.stderr)  # fmt: skip
        return 2
    df = runs_table(a.experiment, a.uri, parent)
    if df.empty:
        print(f"error: no finished runs in {'sweep ' + parent if parent else 'experiment ' + a.experiment}",
              file=sys.stderr)  # fmt: skip
        return 2
    x, y = column(df, a.x), column(df, a.y)
    hue = column(df, a.hue) if a.hue else None
    se = f"{y}_se" if f"{y}_se" in df.columns else None
    others = varying_params(df, [c for c in (x, hue) if c])
    group = [c for c in [hue, *others] if c]
    cols = ["run_id", *group, x, y] + ([se] if se else [])
    table = df[cols].sort_values([*group, x]).reset_index(drop=True)
    out = a.out or (Path(folder) if folder else Path.cwd()) / "compare" / f"{a.y}_vs_{a.x}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out.with_suffix(".csv"))  # floats at the project's on-disk precision
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for key, d in table.groupby(group, sort=False, dropna=False) if group else [((), table)]:
        label = ", ".join(
            f"{g.split('.', 1)[-1]}={v}" for g, v in zip(group, key if isinstance(key, tuple) else (key,))
        )
        ax.errorbar(d[x], d[y], yerr=d[se] if se else None, fmt="o-", ms=4, capsize=2, label=label or None)
    title = f"{a.experiment}: {a.y} vs {a.x}" + (f" (sweep {parent[:8]})" if parent else " (all runs)")
    ax.set(xlabel=a.x, ylabel=a.y + (" (+- SE over seeds)" if se else ""), title=title)
    if group:
        ax.legend(fontsize=7)
    fig.savefig(out, dpi=100)
    print(table.to_string(index=False))
    if others:
        print(f"note: grouped also by {', '.join(o.split('.', 1)[1] for o in others)} (they vary across these runs)")
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
