"""The shared test harness (no test module imports helpers from another one: they live here).

Fixtures:
- `store`: a fresh SQLite MLflow store (a file copy of a template migrated once per test session);
  `fresh_store`: the URI of a store file that does not exist yet (where creating it is the point).
- `run_cli(stage, *args)`: `python -m pipeline.<stage> args...` in a subprocess with the `store` (keep it where the
  process boundary is the point: signals, exit codes of the real process, console scripts).
- `run_inprocess(stage, *args)`: the same command line run in this process (the stage's Hydra entry point, or
  `collect`/`compare`'s main): exit code, stdout, stderr and the one-line `error:` the CLI prints, no start-up cost.
- `compose(stage, *overrides)`: the composed DictConfig of conf/<stage>.yaml; `compose.validated(...)`: the
  validated config object (`pipeline.stages.runner.validate_config`, the project's one validation entry point).
- `smoke_pipeline`: every stage once at `experiment=smoke` with tracking into one session store, built once per
  session (across pytest-xdist workers) and shared read-only: copy (`smoke_pipeline.copy(stage, dest)`) to modify.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ("experiment=smoke",)
SMOKE_WIDTHS = "net.width=16,32"  # the smoke pipeline's mlp_sweep multirun: two jobs


def _cli_env(store: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "0"}


def _shared_dir(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this session sees (the session's basetemp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pytest_configure(config):
    """Under pytest-xdist with several workers, each process (the workers, the controller's smoke build and every
    stage subprocess, which inherit the environment) runs torch on one intra-op thread unless OMP_NUM_THREADS is
    set: two workers of two threads each on CI's 2 cores spun at OpenMP barriers (the gelu breakdown test: 3.2 s
    alone, 12-18 s in the suite). Tests of thread-count behaviour set their threads explicitly."""
    if not hasattr(config, "workerinput") and (getattr(config.option, "numprocesses", 0) or 0) > 1:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")


def pytest_collection_modifyitems(config, items):
    """The tests that read the session smoke pipeline run last (the order is otherwise kept): under pytest-xdist the
    controller builds the pipeline in the background (pytest_sessionstart below) while the workers run the rest, so
    no worker waits for it; `--dist worksteal` hands each worker a contiguous half, so module fixtures are mostly
    computed once."""
    items.sort(key=lambda item: "smoke_pipeline" in getattr(item, "fixturenames", ()))


# ---- MLflow stores ------------------------------------------------------------------------------------------


def _make_store_template(shared: Path) -> Path:
    """A SQLite store with MLflow's schema migrated, made once per session (in a subprocess: no engine, lock or
    cache of this process holds it) and only ever copied."""
    from filelock import FileLock

    db = shared / "template-mlflow.db"
    with FileLock(str(shared / "template-mlflow.lock")):
        if not (shared / "template-mlflow.ok").is_file():
            db.unlink(missing_ok=True)
            code = "import mlflow, sys; mlflow.MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)"
            subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], check=True, cwd=ROOT, capture_output=True)
            (shared / "template-mlflow.ok").write_text("ok\n")
    return db


@pytest.fixture(scope="session")
def _store_template(tmp_path_factory) -> Path:
    return _make_store_template(_shared_dir(tmp_path_factory))


def copy_store(template: Path, dest: Path) -> str:
    """A fresh store at `dest` (a copy of the migrated template): its sqlite:/// URI."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, dest)
    return f"sqlite:///{dest}"


@pytest.fixture
def store(tmp_path: Path, _store_template: Path) -> str:
    """A fresh SQLite tracking store in a temp dir, already migrated (the repo's own store is never touched)."""
    return copy_store(_store_template, tmp_path / "mlflow.db")


@pytest.fixture
def fresh_store(tmp_path: Path) -> str:
    """The URI of a store file that does not exist yet: for tests of store creation (first users, races) and
    of 'no store was created'."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


# ---- running stages -----------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(tmp_path: Path, store: str):
    """Run `python -m pipeline.<stage> args...` with the temp store; returns CompletedProcess."""

    def _run(stage: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", f"pipeline.{stage}", *args],
            cwd=ROOT,
            env=_cli_env(store),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run


@dataclass
class InProcessResult:
    """What a CLI run left: exit code and output, like subprocess.CompletedProcess."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one line the CLI prints for a rejected input (`error: ...`), or '' if there is none."""
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.startswith("error")]
        return lines[-1] if lines else ""


def _fresh_process_state() -> None:
    """What a new process starts without: Hydra's global and job config, the lifecycle's state (signals received,
    open sweep parents, sweep folders), so one in-process run cannot steer the next."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from pipeline.stages.lifecycle import STATE

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
    STATE.reset()


def inprocess(stage: str, *args: str) -> InProcessResult:
    """`python -m pipeline.<stage> args...` in this process: the stage's Hydra entry point (pipeline.cli) with
    `sys.argv` set, or `main(argv)` of collect/compare. SystemExit gives the exit code; an uncaught exception
    is printed as Python would (traceback, exit 1). Logging handlers, signal handlers, argv and Hydra's global
    state are put back. Environment and cwd: set them with monkeypatch (the fixture does)."""

    import pipeline.cli as cli

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved_log = (root.handlers[:], root.level)
    saved_sig = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_argv = sys.argv
    sys.argv = [f"pipeline.{stage}", *args]
    _fresh_process_state()
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                if stage in ("collect", "compare"):
                    main = __import__(f"pipeline.{'stages.collect' if stage == 'collect' else 'compare'}",
                                      fromlist=["main"]).main  # fmt: skip
                    code = main(list(args)) or 0
                else:
                    getattr(cli, stage)()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - what the interpreter would print, exit 1
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        _fresh_process_state()
        for h in root.handlers[:]:
            if h not in saved_log[0]:
                root.removeHandler(h)
                h.close()
        root.handlers[:] = saved_log[0]
        root.setLevel(saved_log[1])
        for s, h in saved_sig.items():
            signal.signal(s, h)
    return InProcessResult([stage, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_inprocess(monkeypatch, store: str):
    """`run_inprocess(stage, *args)` -> InProcessResult: the CLI command in this process with the temp store
    (what `run_cli` does without the ~2.5 s interpreter start-up). For rejected-input tests."""
    for k, v in _cli_env(store).items():
        if os.environ.get(k) != v:
            monkeypatch.setenv(k, v)
    monkeypatch.chdir(ROOT)
    return inprocess


# ---- configs ------------------------------------------------------------------------------------------------


def compose_config(stage: str, overrides=(), out_dir: str | Path | None = None):
    """conf/<stage>.yaml composed with `overrides` by Hydra's compose API (no run dir: `out_dir`, which
    interpolates Hydra's output dir, is set to `out_dir` unless an override sets it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import pipeline.stages.hydra_app  # noqa: F401  (registers the repo_root resolver and the config store)
    from pipeline.config import store as config_store
    from pipeline.paths import conf_dir

    if hasattr(config_store, "register"):
        config_store.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name=stage, overrides=list(overrides), return_hydra_config=False)
    if not any(o.lstrip("+").startswith("out_dir=") for o in overrides):
        OmegaConf.update(cfg, "out_dir", str(out_dir or "/tmp/unused"), force_add=True)
    return cfg


class Composer:
    """`compose(stage, *overrides)` -> DictConfig; `compose.validated(stage, *overrides)` -> the validated object
    (the one validation entry point, `validate_config`, with the overrides as the command line gave them)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir

    def __call__(self, stage: str, *overrides: str):
        return compose_config(stage, overrides, self.out_dir)

    def validated(self, stage: str, *overrides: str):
        return validate_composed(self(stage, *overrides), stage, overrides)


def validate_composed(cfg, stage: str, overrides=()):
    """The validated config object of a composed `cfg`, by the project's one validation entry point."""
    from pipeline.stages import registry, runner

    validate = getattr(registry, "validate_stage", None) or runner.validate_config
    return validate(cfg, stage, list(overrides))


@pytest.fixture
def compose(tmp_path: Path) -> Composer:
    return Composer(tmp_path / "out")


# ---- the session smoke pipeline -----------------------------------------------------------------------------


@dataclass
class SmokePipeline:
    """Outputs of every stage at `experiment=smoke` (as dvc.yaml lays them out: root/<stage>/, mlp_sweep's jobs
    in root/mlp_sweep/jobs) and the MLflow store they were tracked in (one run per stage; mlp_sweep: a parent
    and its jobs). Shared by the whole session: read only; copy what a test changes."""

    root: Path
    store: str
    logs: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, stage: str) -> Path:
        return self.root / stage

    def copy(self, stage: str, dest: Path) -> Path:
        shutil.copytree(self.root / stage, dest)
        return dest

    def copy_all(self, dest: Path) -> Path:
        shutil.copytree(self.root, dest, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts", "logs"))
        return dest


def _build_smoke_pipeline(root: Path, store: str) -> dict[str, str]:
    """theory, then mlp_sweep (multirun + collect), lyapunov, gauge_scan and ginn_train side by side, then report."""
    env = _cli_env(store)
    th = [f"theory_outputs={root / 'theory'}"]
    py = [sys.executable, "-m"]
    steps = [
        {"theory": py + ["pipeline.theory", *SMOKE, f"hydra.run.dir={root / 'theory'}"]},
        {
            "mlp_sweep": py + ["pipeline.mlp_sweep", "-m", *SMOKE, SMOKE_WIDTHS, *th,
                               f"hydra.sweep.dir={root / 'mlp_sweep' / 'jobs'}"],
            "lyapunov": py + ["pipeline.lyapunov", *SMOKE, *th, f"hydra.run.dir={root / 'lyapunov'}"],
            "gauge_scan": py + ["pipeline.gauge_scan", *SMOKE, *th, f"hydra.run.dir={root / 'gauge_scan'}"],
            "ginn_train": py + ["pipeline.ginn_train", *SMOKE, f"hydra.run.dir={root / 'ginn_train'}"],
        },
        {"collect": py + ["pipeline.collect", "mlp_sweep", "--jobs", str(root / "mlp_sweep" / "jobs"),
                          "--out", str(root / "mlp_sweep")]},
        {"report": py + ["pipeline.report", f"report.inputs={root}", f"hydra.run.dir={root / 'report'}"]},
    ]  # fmt: skip
    logs: dict[str, str] = {}
    (root / "logs").mkdir(parents=True, exist_ok=True)
    for step in steps:
        procs = {}
        for name, cmd in step.items():
            fh = open(root / "logs" / f"{name}.txt", "w+")  # noqa: SIM115 - closed below
            procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT), fh)
        for name, (proc, fh) in procs.items():
            rc = proc.wait(timeout=900)
            fh.seek(0)
            logs[name] = fh.read()
            fh.close()
            if rc != 0:
                raise RuntimeError(f"smoke pipeline: {name} exited {rc}:\n{logs[name][-4000:]}")
    return logs


def _smoke_pipeline_in(shared: Path) -> dict:
    """Build the smoke pipeline in `shared` unless it is built (or failed) already; its record {store, logs}.
    Under a file lock: whoever comes first builds, the others wait and reuse (pytest-xdist's documented recipe)."""
    from filelock import FileLock

    root = shared / "smoke_pipeline"
    done, failed = shared / "smoke_pipeline.done.json", shared / "smoke_pipeline.failed"
    with FileLock(str(shared / "smoke_pipeline.lock")):
        if failed.is_file():
            raise RuntimeError(failed.read_text())
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            store = copy_store(_make_store_template(shared), root / "mlflow.db")
            try:
                logs = _build_smoke_pipeline(root, store)
            except Exception as exc:
                failed.write_text(str(exc))
                raise
            done.write_text(json.dumps({"store": store, "logs": logs}))
    return json.loads(done.read_text())


_PREBUILD: list = []  # the controller's background build (a thread), joined at exit


def pytest_sessionstart(session):
    """Under pytest-xdist, a run of the whole default suite starts building the smoke pipeline in the controller
    (a background thread driving the stage subprocesses) before the workers start their tests: the workers run
    the other tests meanwhile, and only a test that needs it before it is done waits on the lock (pytest-xdist's
    loadgroup, which could have kept those tests on one worker, ignores xdist_group under pytest 9.2:
    pytest-xdist#1386). Runs of selected files or of `-m slow` build it lazily, only if a test asks."""
    import threading

    config = session.config
    whole_suite = not config.args or [str(Path(a).resolve()) for a in config.args] == [str(ROOT / "tests")]
    is_controller = not hasattr(config, "workerinput") and (getattr(config.option, "numprocesses", 0) or 0) > 0
    if not (is_controller and whole_suite and config.option.markexpr == "not slow and not ui"):
        return
    shared = config._tmp_path_factory.getbasetemp()  # the workers' basetemps are its subfolders

    def build():
        try:
            _smoke_pipeline_in(shared)
        except Exception:  # noqa: BLE001 - recorded in smoke_pipeline.failed; each test that needs it fails
            pass

    thread = threading.Thread(target=build, name="smoke-pipeline", daemon=True)
    thread.start()
    _PREBUILD.append(thread)


def pytest_unconfigure(config):
    for thread in _PREBUILD:
        thread.join(timeout=900)


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> SmokePipeline:
    """The smoke pipeline, built once per session (by the controller's background build under pytest-xdist, else
    by the first test that asks) and shared by every worker."""
    shared = _shared_dir(tmp_path_factory)
    try:
        rec = _smoke_pipeline_in(shared)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    return SmokePipeline(shared / "smoke_pipeline", rec["store"], rec["logs"])


# ---- shared reference values and synthetic inputs -----------------------------------------------------------

TANH_SB005 = 1.76095  # tanh's critical sigma_w2 at sigma_b2 = 0.05 (docs/science.md §1)


def relu_lambda_exact(n: int, sigma_w2: float) -> float:
    """docs/science.md §2: 0.5 [ln(2 sigma_w2/N) + E_k psi(k/2)], k ~ Binomial(N, 1/2) conditioned on k >= 1."""
    import math

    import numpy as np
    from scipy.special import comb, digamma

    k = np.arange(1, n + 1)
    p = comb(n, k) / (2.0**n - 1)
    return 0.5 * (math.log(2 * sigma_w2 / n) + float((p * digamma(k / 2)).sum()))


SWS = (1.0, 1.5, 2.0, 2.5)


def make_job(
    root: Path,
    n: int,
    *,
    activation="tanh",
    width=32,
    depth=6,
    sigma_b2=0.05,
    xi=1.0,
    seed=0,
    engine=None,
    config="yaml",
    loop=None,
) -> Path:
    """A synthetic finished mlp_sweep job folder <root>/<n>: tables, metrics.json and .hydra/ (config.yaml or
    overrides.yaml).

    Every number depends on the job index n (`off`), so rows of different jobs never coincide; the folder, the
    tracking store and the run name differ per job, as in a real sweep. `loop` overrides metrics.json's one-loop
    values (e.g. a `one_loop_status` other than "ok"); the job's run id is in <job>/mlflow_run.json.
    """
    import math

    import pandas as pd
    import yaml

    eng = {"n_seeds": 3, "n_pairs": 1, "q0": 1.0, "c0": 0.5, "eps": 1e-3, "burn_in": 2, "n_spectrum": 0,
           "dtype": "float32", "device": "cpu", "memory_budget_gb": 2.0, **(engine or {})}  # fmt: skip
    net = {"activation": activation, "sigma_w2": 1.5, "sigma_b2": sigma_b2, "width": width, "depth": depth,
           "xi": xi, "weights": "gaussian"}  # fmt: skip
    cfg = {
        "stage": "mlp_sweep", "seed": seed, "out_dir": str(root / str(n)), "theory_outputs": "/t/outputs/theory",
        "resume": False, "net": net,
        "tracking": {"enabled": True, "uri": f"sqlite:////tmp/{n}.db", "run_name": f"job {n}", "sqlite_wal": True},
        "engine": eng, "grid": {"sigma_w2": {"start": 1.0, "stop": 2.5, "num": 4}, "refine": 0},
        "fluctuations": {"sigma_w2": [1.5], "n_seeds": 16, "widths": [32]},
    }  # fmt: skip
    job = root / str(n)
    (job / ".hydra").mkdir(parents=True)
    if config == "yaml":
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    elif config == "overrides":  # an older job folder: only the command line's overrides
        over = [f"net.sigma_b2={sigma_b2}", f"engine.q0={eng['q0']}", f"tracking.uri=sqlite:////tmp/{n}.db"]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(over))
    off = 1e-3 * (n + 1)
    q0, sb = eng["q0"], sigma_b2
    meta = {"activation": activation, "width": width, "depth": depth, "sigma_b2": sb, "xi": xi,
            "weights": "gaussian", "dtype": eng["dtype"]}  # fmt: skip
    sweep = []
    for sw in SWS:
        q = sw * q0 + off
        lam = 0.5 * math.log(sw) - 0.2 + off
        sweep.append({**meta, "sigma_w2": sw, "q_L": q, "q_L_se": 0.01, "log_q_L": math.log(q), "log_q_L_se": 0.01,
                      "c_L": 0.5 + off, "c_L_se": 0.01, "chi": sw / 2 + off, "chi_se": 0.01, "lambda_replica": lam,
                      "lambda_replica_se": 0.01, "lambda_tangent": lam, "lambda_tangent_se": 0.01, "n_seeds_used": 3,
                      "n_failed_networks": 0, "excluded": False, "q_L_theory": sw * q0 + sb + 2 * off,
                      "c_L_theory": 0.6 + sb + 2 * off, "chi1": sw / 2 + sb + 2 * off, "lambda_mf": lam + sb + off,
                      "lambda_mf_finite_depth": lam + sb + 1.5 * off, "lambda_coeff_1overN": -0.5 - off,
                      "lambda_coeff_1overN_finite_depth": -0.6 - off})  # fmt: skip
    pd.DataFrame(sweep).to_csv(job / "sweep.csv", index=False)
    layers = [
        {"activation": activation, "width": width, "sigma_w2": sw, "layer": layer,
         "q": q0 * sw ** (layer / depth) + off, "c": 0.5 + 0.01 * layer + off, "chi": sw / 2, "lambda_replica": 0.0,
         "lambda_tangent": 0.0, "q_theory": q0 * sw ** (layer / depth) + sb + 2 * off,
         "c_theory": 0.5 + 0.01 * layer + sb + 2 * off, "chi1_theory": sw / 2}
        for sw in SWS for layer in range(depth + 1)
    ]  # fmt: skip
    pd.DataFrame(layers).to_csv(job / "layers.csv", index=False)
    fl = [
        {"activation": activation, "width": width, "sigma_b2": sb, "sigma_w2": 1.5, "layer": layer,
         "N_var_q": layer + off, "N_var_q_se": 0.1, "N_var_q_one_loop": layer + 2 * off,
         "N_mean_shift": -layer - off, "N_mean_shift_se": 0.1, "N_mean_shift_one_loop": -layer - 2 * off,
         "K": 1.0, "n_networks": 16}
        for layer in range(depth + 1)
    ]  # fmt: skip
    pd.DataFrame(fl).to_csv(job / "fluctuations.csv", index=False)
    metrics = {"crossing_measured": 1.5 + off, "crossing_measured_se": 0.05, "crossing_mean_field": 1.0 + 2 * off,
               "crossing_one_loop": 1.6 + 3 * off, "crossing_one_loop_deep": 1.55 + off,
               "crossing_mean_field_finite_depth": 1.52 + off, "crossing_exact": None,
               "one_loop_expansion_parameter": 0.06, "one_loop_status": "ok", **(loop or {})}  # fmt: skip
    (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "mlflow_run.json").write_text(json.dumps({"mlflow_run_id": f"run{n}"}))
    return job


def sweep_of(root: Path, jobs: list[dict], **kw) -> Path:
    """A sweep folder with one synthetic job per dict of make_job keywords."""
    root.mkdir(parents=True, exist_ok=True)
    for n, job in enumerate(jobs):
        make_job(root, n, **job, **kw)
    return root


# ---- helpers ------------------------------------------------------------------------------------------------


def runs(store: str, experiment: str):
    """All runs of an experiment in `store` as a DataFrame (empty if the experiment does not exist)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        import pandas as pd

        return pd.DataFrame(columns=["run_id", "status"])
    mlflow.set_tracking_uri(store)
    return mlflow.search_runs([exp.experiment_id])


def engine_spec(**kw):
    """An EnsembleSpec with every value not given taken from the config schema (the defaults' one home)."""
    from pipeline.dynamics.engine_spec import spec_with_defaults

    return spec_with_defaults(**kw)


def train_spec(**kw):
    """A TrainSpec with every value not given taken from the config schema's TrainConfig (one home: langevin)."""
    from pipeline.training.langevin import train_spec_with_defaults

    return train_spec_with_defaults(**kw)


def default_signals() -> None:
    """Popen preexec_fn: the child starts with SIGINT/SIGTERM at their defaults and unblocked, as from a shell.

    A signal that is ignored or blocked in the test process is inherited through fork and exec; the interrupt
    tests must send their signals to a process that can receive them, whatever earlier in-process tests did.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
