"""The theory stage's tables as inputs of the finite-width stages (one source for every crossing).

The theory package stays pure; this module is the one place that reads `outputs/theory/`. Rows are
looked up by their full key (activation, sigma_b2, xi; width for one loop); a row that the table lacks is
computed instead, and the source is recorded
beside the value (`crossing_mean_field_source`), never silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.activations import get_activation
from pipeline.theory.one_loop import crossing_table
from pipeline.theory.predictions import critical_sigma_w2
from pipeline.theory.predictions import theory_threshold as computed_threshold

# critical_line.csv's crossing_status -> the status of a theory threshold (critical.threshold_status)
_TABLE_STATUS = {"crossing": "ok", "none": "no_crossing", "jump": "jump"}


class TheoryThreshold(NamedTuple):
    """A stage's theory crossing: value (NaN unless status is "ok"), status and where it came from."""

    value: float
    status: str
    source: str


def crossing_columns(measured, theory: TheoryThreshold) -> dict:
    """The crossing columns every finite-width stage writes: a measured `statistics.Crossing` beside the theory
    threshold, each with its status (and the reason / source behind it)."""
    return {
        "crossing_measured": measured.x,
        "crossing_measured_se": measured.se,
        "crossing_measured_status": measured.status,
        "crossing_measured_reason": measured.reason,
        "crossing_mean_field": theory.value,
        "crossing_mean_field_status": theory.status,
        "crossing_mean_field_source": theory.source,
    }


def theory_threshold(theory_outputs: str | Path, activation: str, sigma_b2: float, xi: float = 1.0) -> TheoryThreshold:
    """The order-to-chaos threshold of (activation, sigma_b2, xi) for mlp_sweep, lyapunov and gauge_scan, with status.

    The rule has one home, `critical.chaos_line` (via `predictions.theory_threshold`). For non-homogeneous
    activations it is the chi_1 = 1 root, which the theory stage's critical_line.csv holds: its row of the full
    key (activation, sigma_b2, xi) is read where it exists (never a row of another key; a table without an `xi`
    column is not used), else the value is computed. For ReLU/linear the rule also takes the length root A_q = 1
    (ReLU, sigma_b2 = 0, xi = 2: 1.517, where chi_1 = 1 says 2), which the table does not hold: always computed
    (q* in closed form: the variance map is affine; fast). A status other than "ok" (no crossing in the range, a
    jump of the gain across 1, docs/science.md §7, or an unverified quadrature) comes with a NaN value.
    """
    table = Path(theory_outputs) / "critical_line.csv"
    if table.is_file() and not get_activation(activation).homogeneous:
        t = pd.read_csv(table)
        if "xi" in t.columns:
            row = t[
                (t.activation == activation)
                & np.isclose(t.sigma_b2, sigma_b2, rtol=0, atol=1e-12)
                & np.isclose(t.xi, xi, rtol=0, atol=1e-12)
            ]
            if len(row) == 1:
                r = row.iloc[0]
                value = float(r.sigma_w2_crit)
                if "crossing_status" in row.columns:
                    status = _TABLE_STATUS.get(str(r.crossing_status), str(r.crossing_status))
                else:  # written before the column existed
                    status = "ok" if np.isfinite(value) else "no_crossing"
                if status == "ok" and str(r.get("quad_status", "ok")) != "ok":
                    status = "inaccurate"
                return TheoryThreshold(value if status == "ok" else float("nan"), status, "theory_stage")
    value, status = computed_threshold(activation, sigma_b2, xi)
    return TheoryThreshold(value, status, "computed")


def theory_crossing(theory_outputs: str | Path, activation: str, sigma_b2: float, xi: float = 1.0) -> tuple[float, str]:
    """(value, source) of `theory_threshold` (NaN unless its status is "ok")."""
    t = theory_threshold(theory_outputs, activation, sigma_b2, xi)
    return t.value, t.source


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
