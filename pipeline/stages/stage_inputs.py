"""Which files each stage reads besides its config: their contents are part of the key `resume=true` matches.

A FINISHED run is reused only if every file it read is byte-identical now (`pipeline.tracking.provenance.
files_digest`); an edited `critical_line.csv` gives a new key, so the job runs again. Keep this list in step
with the readers: `pipeline.stages.theory_inputs` (the finite-width stages) and `pipeline.stages.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the theory stage's tables each finite-width stage reads (pipeline.stages.theory_inputs)
THEORY_TABLES: dict[str, tuple[str, ...]] = {
    "mlp_sweep": ("critical_line.csv", "one_loop_crossings.csv"),  # theory_crossing, one_loop_crossing
    "lyapunov": ("critical_line.csv",),  # theory_crossing
    "gauge_scan": ("critical_line.csv",),  # theory_crossing
}


def input_files(stage: str, cfg: Any) -> list[Path]:
    """Every file `stage` reads with the validated config `cfg` (present or not: a missing file is part of the
    key too, since the stage then computes the value instead). theory and ginn_train read none (the digits
    data set ships with scikit-learn, whose version is not a file of this project)."""
    if stage in THEORY_TABLES:
        return [Path(cfg.theory_outputs) / name for name in THEORY_TABLES[stage]]
    if stage == "report":
        from pipeline.plots.figures import REPORT_FIGURES
        from pipeline.stages.report import HEADLINE_TABLES

        root = Path(cfg.report.inputs)
        return list(dict.fromkeys([root / key for key in HEADLINE_TABLES] + [root / f.source for f in REPORT_FIGURES]))
    return []
