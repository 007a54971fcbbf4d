"""The theory stage as users run it: single run, 3-job multirun, bad inputs (subprocesses)."""

import json

import pandas as pd
import pytest

from tests.conftest import runs

SMOKE = ["experiment=smoke"]


def test_single_run_writes_tables_figures_and_a_finished_run(run_cli, store, tmp_path):
    out = tmp_path / "theory"
    p = run_cli("theory", *SMOKE, f"hydra.run.dir={out}")
    assert p.returncode == 0, p.stderr
    for f in (
        "theory.csv",
        "critical_line.csv",
        "iterates.csv",
        "metrics.json",
        "figures/phase_diagram.png",
        "figures/chi1_depth_scale_c.png",
    ):
        assert (out / f).stat().st_size > 0, f
    theory = pd.read_csv(out / "theory.csv")
    assert {
        "activation",
        "sigma_w2",
        "sigma_b2",
        "q_star",
        "c_star",
        "chi1",
        "depth_scale_q",
        "depth_scale_c",
        "lambda_mf",
        "q_status",
        "c_status",
    } <= set(theory.columns)
    crit = pd.read_csv(out / "critical_line.csv")
    relu0 = crit[(crit.activation == "relu") & (crit.sigma_b2 == 0)].sigma_w2_crit.item()
    assert abs(relu0 - 2) < 1e-6
    metrics = json.loads((out / "metrics.json").read_text())
    df = runs(store, "theory")
    assert list(df.status) == ["FINISHED"]
    assert metrics["mlflow_run_id"] == df.run_id[0]
    assert df["tags.stage"][0] == "theory" and "tags.git_commit" in df
    assert df["params.net.sigma_w2"][0] == "1.5" and df["metrics.net.sigma_w2"][0] == 1.5
    # the UI shows values rounded to 6 significant digits (issue 16); metrics.json keeps full precision
    logged = {k[len("metrics.") :]: v for k, v in df.iloc[0].items() if k.startswith("metrics.") and pd.notna(v)}
    assert logged and all(float(f"{v:.6g}") == v for v in logged.values())
    full = {k: v for k, v in metrics.items() if k in logged and isinstance(v, float) and float(f"{v:.6g}") != v}
    assert full, "no metric with more than 6 significant digits: the rounding check above would pass vacuously"
    assert all(abs(logged[k] - v) <= 5e-6 * abs(v) for k, v in full.items())


def test_multirun_gives_one_parent_and_three_finished_children(run_cli, store, tmp_path):
    p = run_cli("theory", "-m", "net.activation=tanh,relu,erf", *SMOKE, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 0, p.stderr
    df = runs(store, "theory")
    parent = df[df["tags.mlflow.parentRunId"].isna()]
    children = df[df["tags.mlflow.parentRunId"].notna()]
    assert len(parent) == 1 and parent.status.item() == "FINISHED"
    assert len(children) == 3 and set(children.status) == {"FINISHED"}
    assert set(children["tags.mlflow.parentRunId"]) == {parent.run_id.item()}
    assert sorted(children["params.net.activation"]) == ["erf", "relu", "tanh"]


@pytest.mark.parametrize("override", ["net.activation=foo", "net.sigma_w2=-1", "net.sigma_w2=abc"])
def test_bad_input_exits_nonzero_with_the_key_and_leaves_no_outputs_or_runs(run_cli, store, tmp_path, override):
    out = tmp_path / "bad"
    p = run_cli("theory", override, f"hydra.run.dir={out}")
    assert p.returncode != 0
    key = override.split("=")[0]
    first_lines = "\n".join(p.stderr.strip().splitlines()[:2])
    assert key in first_lines and "Traceback" not in p.stderr
    leftovers = [f.name for f in out.iterdir()] if out.exists() else []
    assert set(leftovers) <= {".hydra", "theory.log"}, leftovers
    df = runs(store, "theory")
    assert "RUNNING" not in set(df.status)
