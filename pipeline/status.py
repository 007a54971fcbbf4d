"""Status before number: the one rule for values whose own status says they are invalid (pure, no I/O)."""

from __future__ import annotations

import pandas as pd


def mask_invalid(
    df: pd.DataFrame, value_cols: list[str], status_col: str = "status", ok: str | tuple[str, ...] = "ok"
) -> pd.DataFrame:
    """Status before number: a copy of `df` whose `value_cols` are NaN on every row whose `status_col` is not `ok`
    (a status, or the tuple of statuses whose values are valid).

    A value whose own status says it is invalid is never shown and never enters an aggregate; diagnostic
    columns that explain the status (not listed in `value_cols`) are kept.
    """
    out = df.copy()
    bad = ~out[status_col].astype(str).isin((ok,) if isinstance(ok, str) else ok)
    cols = [c for c in value_cols if c in out.columns]
    out.loc[bad, cols] = float("nan")
    return out
