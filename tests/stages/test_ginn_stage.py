"""ginn_train: the session smoke run's outputs and run, and the default config's accuracy on digits."""

import json

import pandas as pd
import torch

from pipeline.config.validate import to_validated
from pipeline.stages import ginn_train
from pipeline.stages.outputs import read_run_record
from tests.conftest import compose_config as _compose
from tests.conftest import runs


def test_default_config_ginn_reaches_95_percent_on_digits():
    cfg = to_validated(_compose("ginn_train", ["ginn.trainability.enabled=false", "ginn.gauge_fixing.enabled=false"]))
    res = ginn_train.compute(cfg)
    assert res.summary["test_accuracy"] >= 0.95, res.summary
    assert res.summary["mlp_test_accuracy"] >= 0.9
    assert res.summary["gauge_invariance_max_abs_diff"] < 1e-5


def test_ginn_train_smoke_run(smoke_pipeline):
    out, store = smoke_pipeline["ginn_train"], smoke_pipeline.store  # `python -m pipeline.ginn_train experiment=smoke`
    m = json.loads((out / "metrics.json").read_text())
    for k in (
        "test_accuracy",
        "mlp_test_accuracy",
        "gauge_invariance_max_abs_diff",
        "var_G_ratio_xi10_over_xi1",
    ):
        assert k in m, k
    assert "mlflow_run_id" not in m  # the run id lives in the git-ignored mlflow_run.json
    run_id = read_run_record(out)
    assert m["gauge_fixing_max_output_diff"] < 1e-10
    hist = pd.read_csv(out / "history.csv")
    assert set(hist.model) == {"ginn", "mlp"} and len(hist) == 6
    acc = pd.read_csv(out / "trainability.csv")  # 3 sigma_w2 x 3 depths x 2 seeds x 2 models, one row per key
    assert len(acc) == 36 and not acc.duplicated(["model", "sigma_w2", "depth", "seed"]).any()
    law = pd.read_csv(out / "trainability_law.csv")
    assert set(law.model) == {"mlp", "ginn"} and set(law.branch) == {"ordered", "chaotic", "both"}
    assert isinstance(m["trainability_verdict"], str) and m["trainability_verdict"].startswith("mlp:")
    for f in ("training_curves.png", "trainability.png", "trainability_law.png", "gauge_spectra.png"):
        assert (out / "figures" / f).stat().st_size > 0
    state = torch.load(out / "ginn.pt", weights_only=True)
    assert "links.0.theta" in state
    df = runs(store, "ginn_train")
    assert list(df.status) == ["FINISHED"] and run_id == df.run_id[0]
    import mlflow

    hist_metric = mlflow.MlflowClient(tracking_uri=store).get_metric_history(run_id, "ginn.val_accuracy")
    assert len(hist_metric) == 3


def test_critical_point_follows_the_configured_modulus_activation_and_threads_are_restored():
    """Regression (issue 13): the GINN critical point was computed for tanh whatever ginn.activation was,
    and ginn_train left torch's process-wide thread count at ginn.train.threads."""
    from pipeline.theory.ginn import ginn_critical_sigma_w2

    over = ["experiment=smoke", "ginn.activation=modrelu", "ginn.modrelu_offset=-0.2", "ginn.train.threads=1",
            "ginn.trainability.enabled=false", "ginn.gauge_fixing.enabled=false"]  # fmt: skip
    cfg = to_validated(_compose("ginn_train", over))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        res = ginn_train.compute(cfg)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    want = ginn_critical_sigma_w2("modrelu", -0.2)
    assert abs(res.critical_sigma_w2 - want) < 1e-9
    # modReLU's dead zone |z| < 0.2 lowers the gain: its critical point lies well above tanh's (= 1)
    assert want > 1.1 and abs(ginn_critical_sigma_w2("tanh") - 1.0) < 1e-6
