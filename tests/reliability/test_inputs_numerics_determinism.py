"""Guarantees 5-8: numerics flagged not fatal, fuzzed bad input, determinism, security defaults."""

import copy
import filecmp
import functools
import math
import os
import re
import subprocess
import sys
from enum import Enum

import numpy as np
import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.validate import ConfigError, to_validated
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import summarize
from pipeline.tracking.provenance import config_params
from tests.conftest import ROOT, engine_spec, runs
from tests.conftest import compose_config as _compose

STAGES = ["theory", "mlp_sweep", "lyapunov", "gauge_scan", "ginn_train"]
KEYS = [
    "net.sigma_w2",
    "net.sigma_b2",
    "net.width",
    "net.depth",
    "net.xi",
    "net.activation",
    "engine.n_seeds",
    "engine.eps",
    "engine.burn_in",
    "engine.memory_budget_gb",
    "engine.dtype",
    "grid.sigma_w2.num",
    "theory.sigma_w2.num",
    "theory.activations",
    "theory.iterate.c0",
    "gauge.xi",
    "gauge.widths",
    "ginn.width",
    "ginn.sigma_w2",
    "ginn.train.lr",
    "ginn.train.optimizer",
    "ginn.modrelu_offset",
    "ginn.gauge_fixing.xi_gf",
    "lyapunov.relu_finite_width.widths",
    "seed",
]
VALUES = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(
        ["0", "-1", "1e12", "abc", "[]", "[1,2]", "[-1]", "nan", "inf", "null", "tanh", "float16", "''", "10**6"]
    ),
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f"{v:.3g}"),
)


@functools.cache
def _base_config(stage: str):
    return _compose(stage, [])


def _compose_fast(stage: str, overrides: list[str]):
    """`_compose(stage, overrides)` without a compose per example (~0.2 s): Hydra's own override step (what
    `compose` runs after loading the files) on a copy of the stage's composed config
    (tests/config/test_validation.py::test_fast_path_agrees_with_a_full_compose checks that shortcut)."""
    cfg = copy.deepcopy(_base_config(stage))
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(overrides), cfg)
    return cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stage=st.sampled_from(STAGES), key=st.sampled_from(KEYS), value=VALUES)
def test_fuzzed_override_is_accepted_or_rejected_with_a_one_line_message_naming_the_key(stage, key, value):
    override = f"{key}={value}"
    try:
        obj = to_validated(_compose_fast(stage, [override]))
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg, (override, msg)  # one line
        named = msg.split(":")[0].split("=")[0].split("[")[0]
        assert named == key or key.startswith(named + ".") or named.startswith(key), (override, msg)  # the key
        return
    except (HydraException, OmegaConfBaseException) as exc:  # Hydra's own message for types and grammar
        assert key.split(".")[-1] in str(exc) or override in str(exc), (override, str(exc))
        return
    # accepted: the validated config holds the override's value (nothing silently dropped or replaced)
    node = obj
    for part in key.split("."):
        node = getattr(node, part)
    want = OverridesParser.create().parse_override(override).value()  # what Hydra reads from the command line
    assert _holds(node, want), (override, node, want)


def _holds(node, want) -> bool:
    """The validated value `node` is the command line's `want` (an enum by its value, a str field by the text)."""
    if isinstance(node, Enum):
        node = node.value
    if isinstance(want, list) or isinstance(node, (list, tuple)):
        return isinstance(want, list) and len(node) == len(want) and all(map(_holds, node, want))
    if isinstance(node, str):
        return node == str(want)
    if isinstance(want, float) and math.isnan(want):
        return isinstance(node, float) and math.isnan(node)
    if isinstance(want, bool) or isinstance(node, bool):
        return node is want
    return node == want


@pytest.mark.parametrize("override", ["net.width=0", "engine.n_seeds=1", "net.width=10000000", "engine.dtype=float16"])
def test_bad_input_exits_2_without_runs_or_outputs(run_inprocess, store, tmp_path, override):
    out = tmp_path / "o"
    p = run_inprocess("mlp_sweep", "experiment=smoke", override, f"hydra.run.dir={out}")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.error.startswith(f"error: {override.split('=')[0]}"), p.stderr
    assert not out.exists()  # rejected input leaves no output folder
    assert "RUNNING" not in set(runs(store, "mlp_sweep").status)


def test_bad_input_subprocess_exits_cleanly_without_runs_or_outputs(run_cli, store, tmp_path):
    """The same through a real process: exit code 2 and one stderr line, as a shell sees them."""
    out = tmp_path / "o"
    p = run_cli("mlp_sweep", "experiment=smoke", "engine.n_seeds=1", f"hydra.run.dir={out}")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [ln for ln in p.stderr.strip().splitlines() if ln.startswith("error: ")]
    assert "engine.n_seeds" in p.stderr and not out.exists()
    assert "RUNNING" not in set(runs(store, "mlp_sweep").status)


def test_overflow_in_one_sweep_point_is_flagged_and_the_rest_survive():
    m = simulate(
        engine_spec(
            activation="gelu", width=32, depth=300, sigma_w2=(1.0, 1.5, 80.0), sigma_b2=0.0, n_seeds=2, eps=1e-6
        )
    )
    t = summarize(m, 5)
    assert list(t.n_failed_networks) == [0, 0, 2]
    assert np.isfinite(t.lambda_tangent[:2]).all() and not np.isfinite(t.lambda_tangent[2])


def test_divergent_training_marks_the_run_failed_with_its_reason_and_keeps_outputs(run_inprocess, store, tmp_path):
    out = tmp_path / "g"
    p = run_inprocess(
        "ginn_train",
        "experiment=smoke",
        "ginn.model=mlp",
        "ginn.train.lr=1e6",
        "ginn.train.optimizer=sgd",
        "ginn.trainability.enabled=false",
        "ginn.gauge_fixing.enabled=false",
        f"hydra.run.dir={out}",
    )
    assert p.returncode == 1 and p.error.startswith("error: numerical failure"), p.stderr
    df = runs(store, "ginn_train")
    assert list(df.status) == ["FAILED"] and "diverged" in df["tags.error"][0]
    assert (out / "metrics.json").exists() and (out / "history.csv").exists()


def test_same_config_and_seed_give_bit_identical_csvs_across_runs_and_thread_counts(tmp_path):
    """Two processes (the thread count is fixed when torch starts), run side by side, one with 1 thread and one
    with 2: any run-to-run nondeterminism (an unseeded draw, hash order) makes them differ as well, so the pair
    checks both; every table and the metrics must match byte for byte."""
    procs = []
    for i, threads in enumerate(("1", "2")):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TQDM_DISABLE": "1"}
        d = tmp_path / f"r{i}"
        cmd = [sys.executable, "-m", "pipeline.mlp_sweep", "experiment=smoke", "tracking.enabled=false",
               f"hydra.run.dir={d}"]  # fmt: skip
        procs.append((d, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    outs = []
    for d, proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        outs.append(d)
    for f in ("sweep.csv", "layers.csv", "fluctuations.csv", "metrics.json"):
        assert filecmp.cmp(outs[0] / f, outs[1] / f, shallow=False), f  # 1 vs 2 threads, two runs


def test_no_secrets_logged_and_no_eval_and_weights_only_loads():
    params = config_params(
        {"tracking": {"uri": "http://x", "api_token": "s3cret"}, "db_password": "p", "net": {"width": 4}}
    )
    assert "tracking.api_token" not in params and "db_password" not in params and params["net.width"] == "4"
    src = "\n".join(p.read_text() for p in (ROOT / "pipeline").rglob("*.py"))
    assert not re.search(r"(?<![\w.])eval\(", src) and "exec(" not in src
    assert all("weights_only=True" in line for line in src.splitlines() if "torch.load(" in line)
    readme = (ROOT / "README.md").read_text()
    assert "--host 127.0.0.1" in readme and "0.0.0.0" not in readme


@pytest.mark.slow
def test_overflowing_sweep_point_is_excluded_and_flagged_by_the_stage(tmp_path):
    out = tmp_path / "o"
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.mlp_sweep", "experiment=smoke", "tracking.enabled=false",
         "net.activation=gelu", "grid.sigma_w2.start=1", "grid.sigma_w2.stop=1e6", "grid.sigma_w2.num=4",
         f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in p.stderr
    assert p.returncode == 0, p.stderr[-2000:]
    import pandas as pd

    sweep = pd.read_csv(out / "sweep.csv")
    assert len(sweep) == 4 and sweep.n_failed_networks.iloc[-1] > 0 and sweep.n_failed_networks.iloc[0] == 0
    assert sweep.excluded.iloc[-1] and not sweep.excluded.iloc[0]
