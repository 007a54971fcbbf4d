"""`python -m pipeline.compare`: pull the runs of an MLflow experiment into a table and plot a metric vs a param.

Example: python -m pipeline.compare --experiment mlp_sweep --x net.width --y crossing_measured --hue net.activation
For users who prefer scripts to the UI; numeric sweep axes are read from metrics (params sort as text).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def runs_table(experiment: str, uri: str | None = None, parent: str | None = None, finished_only: bool = True):
    """All (child) runs of an experiment as a pandas DataFrame via mlflow.search_runs."""
    import mlflow

    from pipeline.tracking.store import resolve_uri

    mlflow.set_tracking_uri(resolve_uri(uri))
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"error: --experiment {experiment!r}: no such MLflow experiment")
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="MLflow experiment (= stage name)")
    p.add_argument("--x", required=True, help="param or metric on the x axis, e.g. net.width")
    p.add_argument("--y", required=True, help="metric on the y axis, e.g. crossing_measured")
    p.add_argument("--hue", help="param to colour by, e.g. net.activation")
    p.add_argument("--parent", help="only children of this sweep parent run id")
    p.add_argument("--uri", help="tracking URI (default: the repo's store or $MLFLOW_TRACKING_URI)")
    p.add_argument("--out", type=Path, default=Path("compare.png"), help="figure path (table: same name .csv)")
    a = p.parse_args(argv)
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = runs_table(a.experiment, a.uri, a.parent)
    if df.empty:
        print(f"error: no finished runs in experiment {a.experiment!r}", file=sys.stderr)
        return 2
    x, y = column(df, a.x), column(df, a.y)
    hue = column(df, a.hue) if a.hue else None
    cols = ["run_id", x, y] + ([hue] if hue else [])
    table = df[cols].sort_values(x)
    table.to_csv(a.out.with_suffix(".csv"), index=False)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    sns.lineplot(table, x=x, y=y, hue=hue, marker="o", ax=ax)
    ax.set(title=f"{a.experiment}: {a.y} vs {a.x}")
    fig.savefig(a.out, dpi=100)
    print(table.to_string(index=False))
    print(f"wrote {a.out} and {a.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
