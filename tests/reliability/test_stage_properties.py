"""Guarantee 6 end to end (slow): the real command line of every stage, with random valid and invalid
override combinations drawn from the stage's own config (the draws of `tests/config/test_validation.py`).

For every stage: one combination of values of the right type and range that the stage's validation accepts
(the full run, as DVC runs it: a multirun plus `collect` for mlp_sweep; the report reads the folders the
other stages wrote here), and a few random combinations (mostly rejected). Each run must end

- exit 0, with every output the stage registry lists (plus metrics.json) and no staging folder, or
- exit 2, with exactly one stderr line `error: ...` naming one of the overridden keys, the same line as the
  in-process validation gives, and no output folder and no run in the store,

never with a Python traceback, and no run of the store may be left RUNNING.

Reproduce a failure with the seed it prints: `GINN_PROPERTY_SEED=<seed> pytest -m slow <this file>`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.config.validate import ConfigError
from pipeline.stages.registry import STAGES
from tests.config.draws import (
    Chooser,
    Draw,
    draw_overrides,
    draw_valid,
    names_a_key,
    validate_fast,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("GINN_PROPERTY_SEED") or random.SystemRandom().randrange(2**31))
N_RANDOM = 2  # random combinations per stage, besides the accepted one
PARALLEL = 2  # stage commands at a time (2 cores)
BASE = ["experiment=smoke"]  # tracked (the temporary store), so a run left RUNNING would show
STORE_KEYS = ("tracking.uri",)  # a store fault is found when the store is opened, not by the config validation

# Keys left out of the end-to-end draws: paths, set by the test to its own folders (a random string would
# write or read elsewhere; the in-process test covers their values; a missing report input has its own test).
EXCLUDED = frozenset({"out_dir", "theory_outputs", "report.inputs"})
FINITE_WIDTH = ("mlp_sweep", "lyapunov", "gauge_scan")  # the stages that read `theory_outputs`

# Outputs a stage writes only when the study behind them runs; an override of one of these keys may drop them.
OPTIONAL_OUTS = {
    "theory.figures": {"figures"},
    "theory.one_loop.enabled": {"one_loop.csv", "one_loop_crossings.csv"},
    "net.xi": {"one_loop.csv", "one_loop_crossings.csv"},  # theory: one loop at xi = 1 only (skipped, warned)
    "ginn.model": {"ginn.pt", "mlp.pt"},
    "ginn.trainability.enabled": {
        "trainability.csv",
        "trainability_boundary.csv",
        "trainability_lmax.csv",
        "trainability_law.csv",
    },
    "ginn.gauge_fixing.enabled": {"gauge_fixing.csv", "gauge_spectra.csv"},
    "fluctuations.n_seeds": {"fluctuations.csv"},
    "fluctuations.widths": {"fluctuations.csv"},
    "net.width": {"fluctuations.csv"},  # mlp_sweep: the study runs at the listed widths only
}


# mlp_sweep: tables `python -m pipeline.collect` merges from the jobs (a single job's folder lacks them)
COLLECTED = {"crossings.csv", "finite_width.csv", "one_loop_crossings.csv"}


@dataclass
class Run:
    stage: str
    draw: Draw
    kind: str  # "accepted" (must exit 0) or "random"
    expected: str | None  # the in-process validation's message; None: accepted
    out: Path
    cmds: list[list[str]] = field(default_factory=list)
    results: list[subprocess.CompletedProcess] = field(default_factory=list)
    seconds: float = 0.0


def _in_process(stage: str, overrides) -> str | None:
    """The in-process verdict on the command line's config: tracked, as BASE runs it (the draws' own base turns
    tracking off, which would make `tracking.*` and `resume` overrides inert)."""
    try:
        validate_fast(stage, ["tracking.enabled=true", *overrides])
    except ConfigError as exc:
        return str(exc)
    return None


def _pinned(stage: str, root: Path) -> list[str]:
    """Where the inputs of `stage` are: the folders the accepted runs of this test write."""
    if stage in FINITE_WIDTH:
        return [f"theory_outputs={root / 'outputs' / 'theory'}"]
    if stage == "report":
        return [f"report.inputs={root / 'outputs'}"]
    return []


def _plan(stage: str, rnd: random.Random, root: Path) -> list[Run]:
    """One accepted combination and N_RANDOM random ones; the expected outcome from the in-process validation
    of exactly the overrides the command line gets (so plan the report after its inputs exist)."""
    c = Chooser(rnd=rnd)
    pinned = tuple(_pinned(stage, root))
    runs = []
    for _ in range(200):  # a combination the validation accepts (most are); complete outputs: no study off
        d = draw_valid(stage, c, exclude=EXCLUDED | set(OPTIONAL_OUTS), max_keys=2)
        if _in_process(stage, d.overrides + pinned) is None:
            break
    else:
        d = Draw((), (), False)
    runs.append(Run(stage, Draw(d.overrides + pinned, d.keys, False), "accepted", None, root / "outputs" / stage))
    for i in range(N_RANDOM):
        d = draw_overrides(stage, c, exclude=EXCLUDED, max_keys=2)
        d = Draw(d.overrides + pinned, d.keys, d.must_fail)
        runs.append(Run(stage, d, "random", _in_process(stage, d.overrides), root / "runs" / f"{stage}-{i}"))
    return runs


def _commands(run: Run) -> list[list[str]]:
    args = [*BASE, *run.draw.overrides]
    if run.stage == "mlp_sweep" and run.kind == "accepted":  # as DVC runs it: one-job multirun, then collect
        jobs = run.out / "jobs"
        return [
            [sys.executable, "-m", "pipeline.mlp_sweep", "-m", *args, f"hydra.sweep.dir={jobs}"],
            [sys.executable, "-m", "pipeline.collect", "mlp_sweep", "--jobs", str(jobs), "--out", str(run.out)],
        ]
    return [[sys.executable, "-m", f"pipeline.{run.stage}", *args, f"hydra.run.dir={run.out}"]]


def _execute(run: Run, root: Path, store: str) -> Run:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("GINN_LAB_CODE_VERSION", None)
    cwd = root / "cwd"  # relative paths a random value may name land here, never in the repository
    started = time.monotonic()
    run.cmds = _commands(run)
    for cmd in run.cmds:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        run.results.append(p)
        if p.returncode != 0:
            break
    run.seconds = time.monotonic() - started
    return run


def _expected_outs(run: Run) -> set[str]:
    outs = set(STAGES[run.stage].outs) | {"metrics.json"}
    if STAGES[run.stage].multirun and len(run.cmds) == 1:  # one job without `collect`: no merged tables
        outs -= COLLECTED
    for key in run.draw.keys:
        outs -= OPTIONAL_OUTS.get(key, set())
    return outs


def _check(run: Run, store: str) -> None:
    where = f"seed {SEED}, {run.kind} run of {run.stage}: {' '.join(run.cmds[len(run.results) - 1][1:])}"
    last = run.results[-1]
    for p in run.results:
        assert "Traceback" not in p.stderr, f"{where}\n{p.stderr[-3000:]}"
    if last.returncode == 0:
        assert len(run.results) == len(run.cmds)
        assert run.expected is None, f"{where}: accepted, but the in-process validation says {run.expected!r}"
        assert not run.draw.must_fail, f"{where}: an unknown or unread key was accepted"
        present = {p.name for p in run.out.iterdir()}
        missing = _expected_outs(run) - present
        assert not missing, f"{where}: outputs missing {sorted(missing)} (present {sorted(present)})"
        assert not [p for p in run.out.rglob(".staging-*")], where
        return
    assert run.kind == "random", (
        f"{where}: an accepted combination failed (exit {last.returncode})\n{last.stderr[-3000:]}"
    )
    lines = last.stderr.strip().splitlines()
    assert last.returncode == 2, f"{where}: exit {last.returncode}\n{last.stderr[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{where}: stderr is not one line\n{last.stderr}"
    assert names_a_key(lines[0], run.draw.keys), f"{where}: {lines[0]!r} names none of {run.draw.keys}"
    if not lines[0].startswith(tuple(f"error: {k}" for k in STORE_KEYS)):
        assert run.expected is not None, f"{where}: rejected ({lines[0]!r}) but the in-process validation accepts it"
        assert lines[0] == f"error: {run.expected}", f"{where}: the command line and the validation disagree"
    assert not run.out.exists(), f"{where}: a rejected run left {sorted(p.name for p in run.out.rglob('*'))}"
    n = _count(store, "SELECT count(*) FROM tags WHERE key = 'hydra_output_dir' AND value = ?", str(run.out.resolve()))
    assert n == 0, f"{where}: a rejected run was recorded in the store"


def _count(store: str, sql: str, *args) -> int:
    """A count from the store with sqlite3 (0 while no run has created its tables)."""
    db = store[len("sqlite:///") :]
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        con.close()


def _in_parallel(runs: list[Run], root: Path, store: str) -> None:
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda r: _execute(r, root, store), runs))


def test_every_stage_on_the_command_line_exits_0_with_complete_outputs_or_2_with_one_line(tmp_path):
    root = tmp_path
    (root / "cwd").mkdir()
    store = f"sqlite:///{root / 'mlflow.db'}"
    rnd = random.Random(SEED)
    plans = {stage: _plan(stage, rnd, root) for stage in STAGES if stage != "report"}
    first = [r for s, rs in plans.items() for r in rs if s == "theory" or r.kind == "random"]
    then = [r for s, rs in plans.items() for r in rs if s != "theory" and r.kind == "accepted"]
    _in_parallel(first, root, store)  # theory's outputs first: the finite-width stages read them
    _in_parallel(then, root, store)
    plans["report"] = _plan("report", rnd, root)  # its inputs: what the accepted runs wrote under outputs/
    _in_parallel(plans["report"], root, store)
    summary = "\n".join(
        f"  {r.stage} {r.kind} {list(r.draw.overrides)} -> exit {r.results[-1].returncode} in {r.seconds:.0f} s"
        for rs in plans.values()
        for r in rs
    )
    print(f"seed {SEED}:\n{summary}")  # -s shows what ran
    errors = []
    for rs in plans.values():
        for r in rs:
            try:
                _check(r, store)
            except AssertionError as exc:
                errors.append(str(exc))
    running = _count(store, "SELECT count(*) FROM runs WHERE status = 'RUNNING'")
    if running:
        errors.append(f"{running} run(s) left RUNNING")
    if list(root.rglob(".staging-*")):
        errors.append(f"staging folders left: {list(root.rglob('.staging-*'))}")
    assert not errors, f"seed {SEED}: {len(errors)} violation(s)\n" + "\n\n".join(errors) + f"\nruns:\n{summary}"


def test_report_with_missing_inputs_exits_2_with_one_line_and_no_output_folder(run_cli, tmp_path):
    out = tmp_path / "o"
    p = run_cli("report", "experiment=smoke", f"report.inputs={tmp_path / 'nothing'}", f"hydra.run.dir={out}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("error: report.inputs") and "Traceback" not in p.stderr
    assert not out.exists()
