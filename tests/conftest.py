"""Shared fixtures: an isolated MLflow store and a helper that runs stage CLIs as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh SQLite tracking store in a temp dir (the repo's own store is never touched)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def run_cli(tmp_path: Path, store: str):
    """Run `python -m pipeline.<stage> args...` with the temp store; returns CompletedProcess."""

    def _run(stage: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "MLFLOW_TRACKING_URI": store, "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "0"}
        return subprocess.run(
            [sys.executable, "-m", f"pipeline.{stage}", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run


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
    """A TrainSpec with every value not given taken from the config schema's TrainConfig."""
    from pipeline.config.schema import TrainConfig
    from pipeline.training.langevin import TrainSpec

    tc = TrainConfig()
    base = dict(optimizer=tc.optimizer.value, lr=tc.lr, epochs=tc.epochs, batch_size=tc.batch_size,
                temperature=tc.temperature, xi=tc.xi, seed=0, noise_seed=tc.noise_seed, max_loss=tc.max_loss,
                restore_best=tc.restore_best)  # fmt: skip
    return TrainSpec(**{**base, **kw})


def default_signals() -> None:
    """Popen preexec_fn: the child starts with SIGINT/SIGTERM at their defaults and unblocked, as from a shell.

    A signal that is ignored or blocked in the test process is inherited through fork and exec; the interrupt
    tests must send their signals to a process that can receive them, whatever earlier in-process tests did.
    """
    import signal

    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
