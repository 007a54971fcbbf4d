"""Pure data helpers for the figures: select and derive what a plot draws (no matplotlib here).

Plot functions only draw; anything that picks rows, derives columns or evaluates theory curves lives
here, so it can be tested without drawing and reused by the stages and the figure registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pick_evenly(values, n: int) -> np.ndarray:
    """Up to `n` of the sorted unique `values`, evenly spaced (first and last included)."""
    u = np.unique(values)
    if len(u) == 0:
        return u
    return u[np.unique(np.linspace(0, len(u) - 1, n).round().astype(int))]


# columns that name a network configuration in the stage tables (collect adds the swept config values, see `keys`)
CASE_COLUMNS = ("activation", "width", "depth", "sigma_b2", "xi", "weights", "dtype")


def case_columns(df: pd.DataFrame, keys=(), exclude=()) -> list[str]:
    """The columns that tell one configuration from another: the stage's own (activation, width, depth, sigma_b2,
    xi, ...), the swept config values `keys` (collect's `mlp_sweep/keys`) and any dotted config-path column, minus
    `exclude` (the plot's axes). A figure draws one line per distinct value of these, never one across them."""
    cols = [*CASE_COLUMNS, *keys, *(c for c in df.columns if "." in str(c))]
    return [c for c in dict.fromkeys(cols) if c in df.columns and c not in exclude]


def cases(df: pd.DataFrame, keys=(), exclude=()) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per configuration (`case_columns`), in table order; the label names the activation and every
    case column that takes more than one value, e.g. 'tanh sigma_b2=0.05 engine.q0=2'."""
    cols = case_columns(df, keys, exclude)
    if not cols:
        return [("", df)]
    shown = [c for c in cols if c == "activation" or df[c].nunique(dropna=False) > 1]
    out = []
    for key, d in df.groupby(cols, sort=False, dropna=False):
        values = dict(zip(cols, key if isinstance(key, tuple) else (key,)))
        out.append((" ".join(_fmt(c, values[c]) for c in shown), d))
    return out


def _fmt(col: str, v) -> str:
    if col == "activation":
        return str(v)
    return f"{col}={v:g}" if isinstance(v, (float, np.floating)) else f"{col}={v}"


def widest_first_activation(layers: pd.DataFrame) -> pd.DataFrame:
    """Rows of the widest network, first activation only (merged mlp_sweep layers -> layer profiles); every other
    configuration of that network (sigma_b2, depth, swept config values) stays, drawn as its own panel row."""
    d = layers[layers.width == layers.width.max()]
    return d[d.activation == d.activation.iloc[0]]


def widest_per_case(scan: pd.DataFrame) -> list[pd.DataFrame]:
    """Per (activation, sigma_b2) case, in groupby order, the rows of that case's widest network."""
    return [d[d.width == d.width.max()] for _, d in scan.groupby(["activation", "sigma_b2"])]


def spectrum_orders(columns) -> list[int]:
    """The k of every `lambda_<k>` column (QR spectrum), sorted."""
    return sorted(
        int(c.split("_")[1])
        for c in columns
        if c.startswith("lambda_") and c.split("_")[1].isdigit() and not c.endswith("_se")
    )


def relu_exact_curve(df: pd.DataFrame, n_points: int = 60) -> pd.DataFrame:
    """Exact finite-width ReLU exponent on a log grid of widths spanning `df.width`, per sigma_w2."""
    from pipeline.theory.finite_width import relu_lyapunov_exact

    rows = []
    for sw, d in df.groupby("sigma_w2"):
        n = np.unique(np.geomspace(d.width.min(), d.width.max(), n_points).round().astype(int))
        rows.extend({"sigma_w2": sw, "width": int(k), "lambda_exact": relu_lyapunov_exact(int(k), sw)} for k in n)
    return pd.DataFrame(rows, columns=["sigma_w2", "width", "lambda_exact"])


def ln_chi1_grid(theory: pd.DataFrame, activation: str) -> pd.DataFrame:
    """ln chi_1 pivoted to sigma_b2 (rows) x sigma_w2 (columns) for one activation."""
    d = theory[theory.activation == activation]
    return np.log(d.pivot_table(index="sigma_b2", columns="sigma_w2", values="chi1"))


def gain_depth_curves(theory: pd.DataFrame, activation: str, sigma_b2s) -> pd.DataFrame:
    """One activation's rows at the chosen sigma_b2 (as a rounded string label), depth_scale_c = inf -> NaN."""
    d = theory[(theory.activation == activation) & theory.sigma_b2.isin(sigma_b2s)].copy()
    d["sigma_b2"] = d.sigma_b2.round(4).astype(str)
    d["depth_scale_c"] = d.depth_scale_c.replace(np.inf, np.nan)
    return d


def iterates_title(iterates: pd.DataFrame) -> str:
    """Title of the theory stage's iterates figure."""
    return f"mean-field iterates ({iterates.activation.iloc[0]})"
