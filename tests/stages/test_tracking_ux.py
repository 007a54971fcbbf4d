"""The everyday path in MLflow (issue 16): runs named for what they are, a parent that describes its sweep,
no params a job does not use, artifacts beside the store, and last lines that say where things are."""

import mlflow

from tests.conftest import ROOT, runs

SMOKE = ["experiment=smoke"]


def test_a_sweep_is_named_described_and_stored_beside_its_store(run_cli, store, tmp_path):
    p = run_cli("mlp_sweep", "-m", "net.width=16,32", *SMOKE, f"hydra.sweep.dir={tmp_path / 's'}")
    assert p.returncode == 0, p.stderr
    df = runs(store, "mlp_sweep")
    children = df[df["tags.mlflow.parentRunId"].notna()]
    parent = df[df["tags.mlflow.parentRunId"].isna()].iloc[0]
    names = sorted(children["tags.mlflow.runName"])
    assert names == ["tanh N=16 L=10 sb2=0.05", "tanh N=32 L=10 sb2=0.05"]  # never a seeded random name
    assert parent["tags.mlflow.runName"].startswith("mlp_sweep 2 jobs ")
    assert parent["params.swept.net.width"] == "16,32" and parent["params.net.activation"] == "tanh"
    assert "metrics.sweep.crossing_measured.median" in parent.index
    assert "params.net.sigma_w2" not in children.columns  # mlp_sweep sweeps grid.sigma_w2, never net.sigma_w2
    client = mlflow.MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("mlp_sweep")
    assert exp.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())  # beside the store, not the repo
    out = p.stdout + p.stderr
    assert "done in" in out and "mlflow ui --backend-store-uri" in out
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("sweep folder: ") and "python -m pipeline.collect mlp_sweep --jobs" in last


def test_an_option_the_stage_replaces_is_rejected_in_one_line(run_cli, tmp_path):
    p = run_cli("mlp_sweep", *SMOKE, "net.sigma_w2=2.0", f"hydra.run.dir={tmp_path / 'o'}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: net.sigma_w2: not used by stage 'mlp_sweep'")
    assert not (tmp_path / "o").exists() and not (ROOT / "compare.png").exists()
