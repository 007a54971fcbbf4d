"""Stage tables on disk: one CSV per DataFrame at a fixed precision, keyed for the figure registry.

Floats are written with `CSV_SIGNIFICANT_DIGITS` significant digits. DVC checksums are byte checksums, and
the last digits of a float (summation order, SIMD paths) differ between machines; rounding well above that
noise and well below any standard error we report (>= 1e-6 relative) lets a committed `dvc.lock` reproduce.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CSV_SIGNIFICANT_DIGITS = 10
FLOAT_FORMAT = f"%.{CSV_SIGNIFICANT_DIGITS}g"


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """`df` as CSV (no index) with floats at CSV_SIGNIFICANT_DIGITS significant digits."""
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT)


def round_float(x: float) -> float:
    """`x` rounded to CSV_SIGNIFICANT_DIGITS significant digits (metrics.json uses the same precision)."""
    return float(f"{x:.{CSV_SIGNIFICANT_DIGITS}g}")


def write_tables(stage: str, folder: Path, tables: dict) -> dict:
    """Write each DataFrame as folder/<file> (see write_csv); return them keyed '<stage>/<file>' for the figures."""
    for name, df in tables.items():
        write_csv(df, folder / name)
    return {f"{stage}/{name}": df for name, df in tables.items()}


def mask_invalid(df: pd.DataFrame, value_cols: list[str], status_col: str = "status", ok: str = "ok") -> pd.DataFrame:
    """Status before number: a copy of `df` whose `value_cols` are NaN on every row whose `status_col` is not `ok`.

    A value whose own status says it is invalid is never shown and never enters an aggregate; diagnostic
    columns that explain the status (not listed in `value_cols`) are kept.
    """
    out = df.copy()
    bad = out[status_col].astype(str) != ok
    cols = [c for c in value_cols if c in out.columns]
    out.loc[bad, cols] = float("nan")
    return out
