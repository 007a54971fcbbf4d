"""Command-line entry points of every stage, built from the stage registry.

`python -m pipeline.<stage> [overrides]` and the console scripts `ginn-<stage>` (pyproject.toml) call
the same functions defined here; `ginn-collect` and `ginn-compare` are the helper commands.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.stages.hydra_app import hydra_entry
from pipeline.stages.registry import STAGES
from pipeline.stages.runner import run_stage


def stage_main(stage: str) -> Callable[[], None]:
    """The Hydra `main()` of one registered stage (config conf/<stage>.yaml)."""

    def task(cfg) -> None:
        run_stage(cfg, stage)

    task.__name__ = task.__qualname__ = stage
    return hydra_entry(stage, task)


theory = stage_main("theory")
mlp_sweep = stage_main("mlp_sweep")
lyapunov = stage_main("lyapunov")
gauge_scan = stage_main("gauge_scan")
field = stage_main("field")
ginn_train = stage_main("ginn_train")
report = stage_main("report")
STAGE_NAMES = {"theory", "mlp_sweep", "lyapunov", "gauge_scan", "field", "ginn_train", "report"}
assert set(STAGES) == STAGE_NAMES, "add an entry above"


def collect() -> None:
    """`ginn-collect <stage>`: merge a multirun's jobs (pipeline.stages.collect)."""
    from pipeline.stages.collect import main  # lazy: the stage entry points above never need it

    raise SystemExit(main())


def compare() -> None:
    """`ginn-compare`: runs of an MLflow experiment as a table and a figure (pipeline.compare)."""
    from pipeline.compare import main  # lazy: matplotlib and mlflow, which the stage entry points never need

    raise SystemExit(main())
