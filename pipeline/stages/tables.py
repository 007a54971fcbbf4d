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
