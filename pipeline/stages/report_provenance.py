"""How a report was made: who built it (`dvc repro` or a hand run), from which code, inputs and presets.

The report's inputs are hashed the way DVC hashes them (a file: md5 of its bytes; a folder: md5 of the sorted
JSON list of its files' md5s, plus ".dir"), so the header can say whether they are the outputs `dvc.lock`
records. Presets, seeds, widths and depths come from the config each stage's Hydra run saved beside its outputs
(`<stage>/.hydra/`; mlp_sweep: every job's): what was run, not the config keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.paths import repo_root

# the stage outputs the report reads (dvc.yaml's report deps under outputs/; tests keep the two equal)
REPORT_INPUTS = (
    "theory/critical_line.csv",
    "theory/figures",
    "mlp_sweep/figures",
    "mlp_sweep/one_loop_crossings.csv",
    "lyapunov/zero_crossings.csv",
    "lyapunov/relu_finite_width.csv",
    "lyapunov/figures",
    "gauge_scan/thresholds.csv",
    "gauge_scan/figures",
    "field/spectra.csv",
    "field/figures",
    "ginn_train/metrics.json",
    "ginn_train/figures",
)
SMOKE_PRESET = "smoke"


def dvc_md5(path: Path) -> str | None:
    """DVC's md5 of a file or folder (dvc_data's Tree digest: folders end in '.dir'); None if absent."""
    path = Path(path)
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - DVC's content hash, not security
    if not path.is_dir():
        return None
    entries = sorted(
        ({"md5": hashlib.md5(p.read_bytes()).hexdigest(), "relpath": p.relative_to(path).as_posix()}  # noqa: S324
         for p in path.rglob("*") if p.is_file()),
        key=lambda e: e["relpath"],
    )  # fmt: skip
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"  # noqa: S324


def inputs_md5(hashes: dict[str, str | None]) -> str:
    """One md5 over the inputs' DVC hashes ('<path> <md5>' lines, sorted): the report's inputs in one word."""
    text = "".join(f"{k} {v}\n" for k, v in sorted(hashes.items()))
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def locked_hashes(lock: Path) -> dict[str, str]:
    """'outputs/<stage>/<file>' -> md5 of every stage out recorded in dvc.lock ({} without a dvc.lock)."""
    if not Path(lock).is_file():
        return {}
    data = yaml.safe_load(Path(lock).read_text()) or {}
    return {o["path"]: o.get("md5") for s in data.get("stages", {}).values() for o in s.get("outs", [])}


def code_state(root: Path | None = None) -> tuple[str, bool]:
    """(commit, dirty) of the checkout, where dirty means uncommitted changes to tracked files other than
    dvc.lock and outputs/ (which `dvc repro` itself rewrites before the report runs); ('unknown', False) off git."""
    root = str(root or repo_root())
    git = ["git", "-C", root]
    try:
        sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock",
                                ":!outputs"], capture_output=True, text=True, check=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha.stdout.strip(), bool(dirty.stdout.strip())


def built_by_dvc(environ=os.environ) -> bool:
    """True only inside `dvc repro`/`dvc exp run` of the report stage: DVC sets DVC_STAGE to the stage it runs."""
    return environ.get("DVC_STAGE") == "report"


@dataclass
class StageRun:
    """What one stage ran: its preset ('' = its defaults), seeds, widths and depths (from its saved config)."""

    stage: str
    preset: str = ""
    seeds: str = ""
    widths: str = ""
    depths: str = ""
    found: bool = True


@dataclass
class Provenance:
    built_by: str  # "dvc repro" or "hand-run"
    commit: str
    dirty: bool
    date: str
    inputs: str  # the outputs folder the report read
    inputs_md5: str
    lock_status: str  # "matches dvc.lock", or which inputs differ from it
    stages: list[StageRun] = field(default_factory=list)

    @property
    def presets(self) -> set[str]:
        return {s.preset for s in self.stages if s.found}

    @property
    def smoke(self) -> bool:
        return SMOKE_PRESET in self.presets


def _join(values) -> str:
    vals = sorted({v for v in values if v is not None}, key=lambda v: (isinstance(v, str), v))
    return ", ".join(map(str, vals))


def _job_configs(folder: Path) -> list[tuple[dict, list[str]]]:
    """(config, overrides) of the Hydra run saved in folder/.hydra, or of every job of a sweep under folder/jobs."""
    dirs = [folder / ".hydra"] if (folder / ".hydra" / "config.yaml").is_file() else []
    dirs += sorted(p.parent for p in (folder / "jobs").glob("*/.hydra/config.yaml"))
    out = []
    for d in dirs:
        cfg = yaml.safe_load((d / "config.yaml").read_text()) or {}
        ov = d / "overrides.yaml"
        out.append((cfg, [str(o) for o in (yaml.safe_load(ov.read_text()) or [])] if ov.is_file() else []))
    return out


def _get(cfg: dict, dotted: str):
    for k in dotted.split("."):
        if not isinstance(cfg, dict) or k not in cfg:
            return None
        cfg = cfg[k]
    return cfg


def stage_run(root: Path, stage: str) -> StageRun:
    """The preset, seeds, widths and depths a stage's outputs under root were made with."""
    jobs = [(c, o) for c, o in _job_configs(Path(root) / stage) if c.get("stage", stage) == stage]
    if not jobs:
        return StageRun(stage, found=False)
    presets = {next((o.split("=", 1)[1] for o in ov if o.lstrip("+").startswith("experiment=")), "") for _, ov in jobs}
    seeds = {f"{_get(c, 'engine.n_seeds')} (seed {_get(c, 'seed')})" for c, _ in jobs if _get(c, "engine.n_seeds")}
    net = "ginn" if stage == "ginn_train" else "net"
    return StageRun(
        stage,
        preset=_join(presets),
        seeds=_join(seeds),
        widths=_join(w for c, _ in jobs for w in [_get(c, f"{net}.width"), *(_get(c, "gauge.widths") or [])]),
        depths=_join(_get(c, f"{net}.depth") for c, _ in jobs),
    )


def shown_path(root: Path) -> str:
    """`root` relative to the checkout (e.g. "outputs") when inside it, else absolute: report.html is a DVC output,
    and an absolute path made its bytes depend on where the clone lives (the committed dvc.lock never reproduced)."""
    try:
        return Path(root).resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return str(root)


def collect(root: Path, stages: list[str], git: tuple[str, bool], now: dt.datetime | None = None) -> Provenance:
    """Everything the report's header says about how it was made (git = (commit, dirty) of the checkout)."""
    root = Path(root).resolve()
    hashes = {f"outputs/{k}": dvc_md5(root / k) for k in REPORT_INPUTS}
    locked = locked_hashes(repo_root() / "dvc.lock")
    differ = [k for k, v in hashes.items() if locked.get(k) != v]
    if not locked:
        lock_status = "no dvc.lock to compare with"
    elif not differ:
        lock_status = "matches dvc.lock"
    elif len(differ) == len(hashes):
        lock_status = f"none of the {len(hashes)} inputs is the output dvc.lock records"
    else:
        lock_status = f"{len(differ)} of {len(hashes)} inputs differ from dvc.lock ({', '.join(differ)})"
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return Provenance(
        built_by="dvc repro" if built_by_dvc() else "hand-run",
        commit=git[0],
        dirty=git[1],
        date=when,
        inputs=shown_path(root),
        inputs_md5=inputs_md5(hashes),
        lock_status=lock_status,
        stages=[stage_run(root, s) for s in stages],
    )
