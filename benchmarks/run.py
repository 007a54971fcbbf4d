"""Run every benchmark once on this machine and write benchmarks/RESULTS.md (ratios measured in one run)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import chain, engine, pipeline_costs, theory_grid, trainability  # noqa: E402

SUITES = {
    "theory": theory_grid.run,
    "engine": engine.run,
    "pipeline": pipeline_costs.run,
    "chain": chain.run,
    "trainability": trainability.run,
}


def main() -> int:
    only = sys.argv[1:] or list(SUITES)
    rows = []
    for name in only:
        print(f"[bench] {name} ...", flush=True)
        rows += SUITES[name]()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {datetime.datetime.now().isoformat(timespec='seconds')} on {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads). "
        "Regenerate with `make bench`.",
        "",
        "| benchmark | measured | target | met | note |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['measured']} | {r['target']} | {'yes' if r['met'] else 'NO'} | {r['note']} |"
        )
    out = Path(__file__).with_name("RESULTS.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
