"""The theory stage's tables as inputs of the finite-width stages (one source for every crossing).

The theory package stays pure; this module is the one place that reads `outputs/theory/`. Rows are
looked up by their full key (activation, sigma_b2, xi; width for one loop); a row that the table lacks is
computed instead, and the source is recorded
beside the value (`crossing_theory_source`), never silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.theory.one_loop import crossing_table
from pipeline.theory.predictions import critical_sigma_w2


def theory_crossing(theory_outputs: str | Path, activation: str, sigma_b2: float, xi: float = 1.0) -> tuple[float, str]:
    """(sigma_w2 where chi1 = 1, source): the theory stage's critical_line.csv row for the full key
    (activation, sigma_b2, xi) where it exists, else computed; never a row of another key.

    A table without an `xi` column (written before the column existed) cannot say which xi its rows are for,
    so it is not used. NaN (no crossing, or a jump of chi_1 across 1, docs/science.md §7) is returned as is.
    """
    table = Path(theory_outputs) / "critical_line.csv"
    if table.is_file():
        t = pd.read_csv(table)
        if "xi" in t.columns:
            row = t[
                (t.activation == activation)
                & np.isclose(t.sigma_b2, sigma_b2, rtol=0, atol=1e-12)
                & np.isclose(t.xi, xi, rtol=0, atol=1e-12)
            ]
            if len(row) == 1:
                return float(row.sigma_w2_crit.iloc[0]), "theory_stage"
    return critical_sigma_w2(activation, sigma_b2, xi), "computed"


def one_loop_crossing(theory_outputs: str | Path, activation: str, sigma_b2: float, width: int) -> tuple[dict, str]:
    """Theory columns of one_loop_crossings.csv for (activation, sigma_b2, width), and their source.

    Read from the theory stage's table where it has the row, else computed (docs/science.md §6).
    """
    cols = ["crossing_mean_field", "crossing_one_loop", "crossing_exact", "expansion_parameter", "status"]
    table = Path(theory_outputs) / "one_loop_crossings.csv"
    if table.is_file():
        t = pd.read_csv(table)
        row = t[
            (t.activation == activation) & np.isclose(t.sigma_b2, sigma_b2, rtol=0, atol=1e-12) & (t.width == width)
        ]
        if len(row) == 1:
            return {c: row[c].iloc[0] for c in cols}, "theory_stage"
    row = crossing_table(activation, [sigma_b2], [width]).iloc[0]
    out = {c: row[c] for c in cols}
    out["crossing_mean_field"] = critical_sigma_w2(activation, sigma_b2)
    return out, "computed"
