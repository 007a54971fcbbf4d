"""What a run shows in MLflow: agreement with theory per child, stepped curves, params without noise.

The agreement numbers are checked against z recomputed by hand from merged/one_loop_crossings.csv (the smoke
pipeline's collected sweep) and from synthetic crossings; the curves against layers.csv / sweep.csv through MLflow's
`get_metric_history`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.stages.mlp_sweep import SIGMA_W2_STEP, MlpSweepResult, agreement
from pipeline.tracking.run import Curve, RunLogger, curve_keys, stage_run

CURVES = ("q_hat", "c_hat", "lambda_layer", "lambda_vs_sigma_w2", "lambda_mean_field_vs_sigma_w2")


def _result(xi: float = 1.0, **crossing) -> MlpSweepResult:
    """A job's result with only what `agreement` reads: its design (sweep.csv's first row) and crossing."""
    sweep = pd.DataFrame({"activation": ["tanh"], "width": [64], "depth": [50], "sigma_b2": [0.05], "xi": [xi]})
    base = {"crossing_measured": 1.90, "crossing_measured_se": 0.04, "crossing_measured_status": "ok",
            "crossing_mean_field": 1.76, "crossing_mean_field_status": "ok", "crossing_one_loop": 1.95,
            "crossing_one_loop_deep": 1.93, "crossing_mean_field_finite_depth": 1.80, "crossing_exact": None,
            "one_loop_expansion_parameter": 0.05, "one_loop_status": "ok", "one_loop_status_deep": "ok"}  # fmt: skip
    return MlpSweepResult(sweep, pd.DataFrame(), {**base, **crossing})


def test_agreement_is_the_hand_z_and_difference_for_both_theories():
    a = agreement(_result())
    assert a["crossing_z_mean_field"] == pytest.approx((1.90 - 1.76) / 0.04, rel=1e-12)  # 3.5: a sign flip fails
    assert a["crossing_z_one_loop"] == pytest.approx((1.90 - 1.95) / 0.04, rel=1e-12)  # -1.25
    assert a["crossing_minus_mean_field"] == pytest.approx(0.14, abs=1e-12)
    assert a["crossing_minus_one_loop"] == pytest.approx(-0.05, abs=1e-12)
    assert a["crossing_z_mean_field_status"] == a["crossing_z_one_loop_status"] == "ok"


@pytest.mark.parametrize(
    ("result", "gone", "why"),
    [
        (_result(one_loop_status="expansion_breakdown"), ["one_loop"], "one_loop: expansion_breakdown"),
        # xi != 1: the job has no one-loop values at all (compute leaves them out), as collect sees it
        (_result(xi=1.5, one_loop_status=None, crossing_one_loop=None), ["one_loop"], "not_derived (one loop is"),
        (_result(crossing_mean_field_status="no_crossing", crossing_mean_field=float("nan")), ["mean_field"],
         "mean_field: no_crossing"),
        (_result(crossing_measured_status="no_crossing"), ["mean_field", "one_loop"], "measured crossing: no_crossing"),
        (_result(crossing_measured_se=float("nan")), ["mean_field", "one_loop"], "no finite z"),
    ],
)  # fmt: skip
def test_agreement_gives_no_number_whose_status_is_invalid_and_says_why(result, gone, why):
    """A one-loop value with status expansion_breakdown is still a number in the job's metrics: its z must not be."""
    a = agreement(result)
    for name in ("mean_field", "one_loop"):
        if name in gone:
            assert f"crossing_z_{name}" not in a and f"crossing_minus_{name}" not in a
            assert why in a[f"crossing_z_{name}_status"]
        else:
            assert math.isfinite(a[f"crossing_z_{name}"]) and a[f"crossing_z_{name}_status"] == "ok"


def test_curves_log_at_their_own_steps_and_the_tag_names_them(store):
    c = mlflow.MlflowClient(store)
    exp = c.create_experiment("curves_test")  # created before the kind tag existed: it gets it
    chosen = c.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    with stage_run("curves_test", uri=store, run_name="c") as run:
        run.log_curves(
            {"q_hat": Curve([0, 1, 2], [1.0, float("nan"), 0.25], "layer"), "plain": [3.0, 4.0]},
            scalars={"x": 1.5},
        )
        with pytest.raises(ValueError, match="2 steps for 3 values"):
            run.log_curves({"bad": Curve([0, 1], [1.0, 2.0, 3.0], "layer")})
    with stage_run("chosen", uri=store, run_name="d"):
        pass
    q = [(m.step, m.value) for m in c.get_metric_history(run.run_id, "q_hat")]
    assert sorted(q) == [(0, 1.0), (2, 0.25)]  # the NaN point is left out, the others keep their step
    assert sorted((m.step, m.value) for m in c.get_metric_history(run.run_id, "plain")) == [(0, 3.0), (1, 4.0)]
    tags = c.get_run(run.run_id).data.tags
    assert tags["curves"] == "q_hat: step = layer; plain: step = index" and curve_keys(tags) == {"q_hat", "plain"}
    assert c.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    assert c.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"  # never over a choice


def test_disabled_tracking_logs_nothing():
    RunLogger(None).log_curves({"q_hat": Curve([0], [1.0], "layer")})  # no store touched: no error


# ---- the smoke pipeline's tracked sweep (two mlp_sweep children, collected) --------------------------------


@pytest.fixture(scope="module")
def children(smoke_pipeline):
    """(merged one_loop_crossings.csv, {width: child run}) of the smoke pipeline's mlp_sweep."""
    root = smoke_pipeline.root / "mlp_sweep"
    loop = pd.read_csv(root / "one_loop_crossings.csv")
    ids = pd.read_csv(root / "runs.csv")
    c = mlflow.MlflowClient(smoke_pipeline.store)
    runs = {int(r.width): c.get_run(r.mlflow_run_id) for r in ids.itertuples()}
    assert sorted(runs) == sorted(loop.width.astype(int)) == [16, 32]
    return loop, runs


def test_each_child_logs_the_z_of_its_merged_csv_row(children):
    """Hand z from the merged row: (measured - prediction) / se, with the CSV's own NaN where a status is not ok."""
    loop, runs = children
    for row in loop.itertuples():
        m, tags = runs[int(row.width)].data.metrics, runs[int(row.width)].data.tags
        for name, pred in (("mean_field", row.crossing_mean_field), ("one_loop", row.crossing_one_loop)):
            hand = (row.crossing_measured - pred) / row.crossing_se
            if np.isfinite(hand):
                assert m[f"crossing_z_{name}"] == pytest.approx(hand, rel=1e-5, abs=1e-6), (row.width, name)
                assert m[f"crossing_minus_{name}"] == pytest.approx(row.crossing_measured - pred, rel=1e-5, abs=1e-7)
                assert tags[f"crossing_z_{name}_status"] == "ok"
            else:  # invalid: no number in MLflow, the reason as a tag
                assert f"crossing_z_{name}" not in m and f"crossing_minus_{name}" not in m
                assert tags[f"crossing_z_{name}_status"] != "ok"


def test_each_child_logs_q_c_and_the_exponent_as_curves_of_its_tables(children, smoke_pipeline):
    """q_hat/c_hat/lambda_layer by layer at curves_sigma_w2 equal layers.csv there; the exponent against sigma_w2
    sits at step round(1000 sigma_w2) and equals sweep.csv's lambda_replica."""
    _, runs = children
    c = mlflow.MlflowClient(smoke_pipeline.store)
    jobs = pd.read_csv(smoke_pipeline.root / "mlp_sweep" / "runs.csv")
    for width, run in runs.items():
        job = smoke_pipeline.root / "mlp_sweep" / "jobs" / str(jobs[jobs.width == width].job.iloc[0])
        layers, sweep = pd.read_csv(job / "layers.csv"), pd.read_csv(job / "sweep.csv")
        at = run.data.metrics["curves_sigma_w2"]
        grid = np.sort(sweep.sigma_w2.unique())
        assert at in grid
        one = layers[np.isclose(layers.sigma_w2, at)].sort_values("layer")
        hist = {k: {m.step: m.value for m in c.get_metric_history(run.info.run_id, k)} for k in CURVES}
        for key, col in (("q_hat", "q"), ("c_hat", "c"), ("lambda_layer", "lambda_replica")):
            want = {int(r.layer): getattr(r, col) for r in one.itertuples() if np.isfinite(getattr(r, col))}
            assert sorted(hist[key]) == sorted(want), key  # step = layer; lambda has no layer 0
            assert [hist[key][s] for s in sorted(want)] == pytest.approx([want[s] for s in sorted(want)], rel=1e-5)
        steps = {round(SIGMA_W2_STEP * sw): v for sw, v in zip(sweep.sigma_w2, sweep.lambda_replica)}
        assert hist["lambda_vs_sigma_w2"] == pytest.approx(steps, rel=1e-5, abs=1e-7)
        assert set(hist["lambda_mean_field_vs_sigma_w2"]) == set(steps)
        assert curve_keys(run.data.tags) == set(CURVES)


def test_compare_view_params_hold_no_seed_metric_no_path_and_the_parent_no_curve_median(children, smoke_pipeline):
    _, runs = children
    c = mlflow.MlflowClient(smoke_pipeline.store)
    for run in runs.values():
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        assert "seed" in params and "seed" not in metrics
        assert not {"out_dir", "theory_outputs"} & set(params)
        assert tags["path.theory_outputs"].endswith("theory")
        assert Path(tags["path.out_dir"]).resolve() == Path(tags["hydra_output_dir"])
    parent = c.get_run(next(iter(runs.values())).data.tags["mlflow.parentRunId"]).data.metrics
    assert "sweep.crossing_z_mean_field.median" in parent
    assert not [k for k in parent if any(f"sweep.{curve}." in k for curve in CURVES)]
    exp = c.get_experiment(next(iter(runs.values())).info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_lyapunov_run_logs_the_mean_field_z_of_each_crossing(smoke_pipeline):
    """lyapunov measures one crossing per curve: `crossing.<case>.z_mean_field` is the hand z of its
    zero_crossings.csv row; one loop is not predicted there, and a tag says so."""
    out = smoke_pipeline.root / "lyapunov"
    run = mlflow.MlflowClient(smoke_pipeline.store).get_run(json.loads((out / "mlflow_run.json").read_text())[
        "mlflow_run_id"])  # fmt: skip
    rows = pd.read_csv(out / "zero_crossings.csv")
    assert len(rows) >= 1
    for r in rows.itertuples():
        key = f"crossing.{r.activation}_sb{r.sigma_b2:g}"
        hand = (r.crossing_measured - r.crossing_mean_field) / r.crossing_measured_se
        if np.isfinite(hand):
            assert run.data.metrics[f"{key}.z_mean_field"] == pytest.approx(hand, rel=1e-5, abs=1e-6)
            assert run.data.tags[f"{key}.z_mean_field_status"] == "ok"
        else:
            assert f"{key}.z_mean_field" not in run.data.metrics and run.data.tags[f"{key}.z_mean_field_status"] != "ok"
    assert not [k for k in run.data.metrics if "one_loop" in k]
    assert run.data.tags["crossing_z_one_loop_status"].startswith("not computed")


def test_a_refined_grid_with_points_closer_than_a_step_keeps_one_point_per_step():
    """A refined grid put 2.0004 beside 2.0 (a default-preset job crashed on it): one point per step, the one
    nearest the step's own sigma_w2, in sigma_w2 order."""
    import pandas as pd

    from pipeline.stages.mlp_sweep import SIGMA_W2_STEP, curve_grid

    sweep = pd.DataFrame({"sigma_w2": [2.5, 2.0004170097, 2.0, 1.5, 2.0670836764], "lam": [5, 4, 3, 1, 6]})
    kept = curve_grid(sweep)
    assert kept.sigma_w2.tolist() == [1.5, 2.0, 2.0670836764, 2.5] and kept.lam.tolist() == [1, 3, 6, 5]
    steps = (kept.sigma_w2 * SIGMA_W2_STEP).round().astype(int)
    assert steps.is_unique
