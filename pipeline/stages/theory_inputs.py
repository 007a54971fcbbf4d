"""The theory stage's tables as inputs of the finite-width stages (one source for every crossing).

The theory package stays pure; this module is the one place that reads `outputs/theory/`. A row
that the table lacks (another sigma_b2, or xi != 1) is computed instead, and the source is recorded
beside the value (`crossing_theory_source`), never silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.theory.predictions import critical_sigma_w2


def theory_crossing(theory_outputs: str | Path, activation: str, sigma_b2: float, xi: float = 1.0) -> tuple[float, str]:
    """(sigma_w2 where chi1 = 1, source): the theory stage's critical_line.csv row where it exists, else computed."""
    table = Path(theory_outputs) / "critical_line.csv"
    if xi == 1.0 and table.is_file():
        t = pd.read_csv(table)
        row = t[(t.activation == activation) & np.isclose(t.sigma_b2, sigma_b2, rtol=0, atol=1e-12)]
        if len(row) == 1 and np.isfinite(row.sigma_w2_crit.iloc[0]):
            return float(row.sigma_w2_crit.iloc[0]), "theory_stage"
    return critical_sigma_w2(activation, sigma_b2, xi), "computed"
