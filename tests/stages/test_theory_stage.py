"""The theory stage: the smoke run of the session pipeline, a multirun, bad inputs, its tables' statuses."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.stages import theory
from pipeline.stages.outputs import read_run_record
from tests.conftest import TANH_SB005, runs

SMOKE = ["experiment=smoke"]


def test_single_run_writes_tables_figures_and_a_finished_run(smoke_pipeline):
    out, store = smoke_pipeline["theory"], smoke_pipeline.store  # `python -m pipeline.theory experiment=smoke`
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
    assert read_run_record(out) == df.run_id[0] and "mlflow_run_id" not in metrics  # not in a DVC-tracked file
    assert (out / ".ginn-stage").read_text() == "theory\n"  # the folder is the theory stage's to replace
    assert df["tags.stage"][0] == "theory" and "tags.git_commit" in df
    assert df["params.net.sigma_w2"][0] == "1.5" and df["metrics.net.sigma_w2"][0] == 1.5
    # the UI shows values rounded to 6 significant digits (issue 16); metrics.json keeps full precision
    logged = {k[len("metrics.") :]: v for k, v in df.iloc[0].items() if k.startswith("metrics.") and pd.notna(v)}
    assert logged and all(float(f"{v:.6g}") == v for v in logged.values())
    full = {k: v for k, v in metrics.items() if k in logged and isinstance(v, float) and float(f"{v:.6g}") != v}
    assert full, "no metric with more than 6 significant digits: the rounding check above would pass vacuously"
    assert all(abs(logged[k] - v) <= 5e-6 * abs(v) for k, v in full.items())
    # the iterates as curves, one point per layer 0..L (step = layer), as iterates.csv has them
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    iters = pd.read_csv(out / "iterates.csv")
    assert len(iters) == 11  # smoke: net.depth = 10
    for key, col in (("iterate_q11", "q11"), ("iterate_c", "c")):
        hist = sorted((m.step, m.value) for m in client.get_metric_history(df.run_id[0], key))
        assert [s for s, _ in hist] == list(range(11)), key
        assert [v for _, v in hist] == pytest.approx(iters[col].tolist(), rel=1e-5), key
    assert len(client.get_run(df.run_id[0]).data.params) > 20


def test_multirun_gives_one_parent_and_three_finished_children(run_inprocess, store, tmp_path):
    """A Hydra multirun (here in this process: the lifecycle, not the interpreter, makes parent and children)."""
    cheap = ["theory.activations=[tanh]", "theory.one_loop.enabled=false", "theory.figures=false"]
    p = run_inprocess("theory", "-m", "net.activation=tanh,relu,erf", *SMOKE, *cheap,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert p.returncode == 0, p.stderr
    df = runs(store, "theory")
    parent = df[df["tags.mlflow.parentRunId"].isna()]
    children = df[df["tags.mlflow.parentRunId"].notna()]
    assert len(parent) == 1 and parent.status.item() == "FINISHED"
    assert len(children) == 3 and set(children.status) == {"FINISHED"}
    assert set(children["tags.mlflow.parentRunId"]) == {parent.run_id.item()}
    assert sorted(children["params.net.activation"]) == ["erf", "relu", "tanh"]


def _no_outputs_no_runs(out, store):
    leftovers = [f.name for f in out.iterdir()] if out.exists() else []
    assert set(leftovers) <= {".hydra", "theory.log"}, leftovers
    assert "RUNNING" not in set(runs(store, "theory").status)


@pytest.mark.parametrize("override", ["net.activation=foo", "net.sigma_w2=-1", "net.sigma_w2=abc"])
def test_bad_input_exits_2_with_the_key_and_leaves_no_outputs_or_runs(run_inprocess, store, tmp_path, override):
    out = tmp_path / "bad"
    p = run_inprocess("theory", override, f"hydra.run.dir={out}")
    assert p.returncode == 2, p.stderr
    assert p.error.startswith(f"error: {override.split('=')[0]}") and "Traceback" not in p.stderr, p.stderr
    _no_outputs_no_runs(out, store)


# the same through a real process (exit code and stderr a shell sees):
# tests/stages/test_harness.py::test_inprocess_rejection_prints_what_the_cli_prints (net.activation=foo)


def test_values_whose_own_status_says_invalid_are_nan_and_leave_the_headline():
    """Issue 21, theory stage: an unconverged solve (relu at sigma_w2 = 2, sigma_b2 > 0 stopped at max_iter with
    q* ~ 1e6, no finite fixed point), a placeholder q* where no critical point was found, a one-loop value whose
    status is not ok and an unverified quadrature were written as numbers. They are NaN with their status beside
    them; a diverged q* = inf and relu's chi1 at a degenerate c* are results and stay."""
    from pipeline.stages import theory

    grid = pd.DataFrame({
        "activation": ["relu"] * 4, "sigma_w2": [2.0, 3.0, 1.0, 1.5], "sigma_b2": [0.5, 0.5, 0.0, 0.1],
        "xi": [1.0] * 4, "q_star": [2.3e6, float("inf"), 0.0, 0.4], "c_star": [1.0, 1.0, float("nan"), 0.9],
        "chi1": [1.0, 1.5, 0.5, 0.75], "a_q": [1.0, 1.5, 0.5, 0.75], "chi_c": [1.0, 1.0, 0.5, 0.8],
        "depth_scale_q": [1e9, float("inf"), 1.4, 3.5], "depth_scale_c": [1e9, 2.0, 1.4, 4.0],
        "lambda_mf": [0.0, 0.2, -0.35, -0.14], "q_status": ["max_iter", "diverged", "converged", "converged"],
        "c_status": ["converged", "converged", "degenerate", "converged"],
        "quad_status": ["ok", "ok", "ok", "inaccurate"],
    })  # fmt: skip
    crit = pd.DataFrame({"activation": ["relu", "tanh", "gelu"], "sigma_b2": [0.0, 0.0, 0.05], "xi": [1.0] * 3,
                         "sigma_w2_crit": [2.0, 1.0, float("nan")], "q_star": [0.0, 0.0, 7.0],
                         "found": [True, True, False], "crossing_status": ["crossing", "crossing", "jump"],
                         "sigma_w2_jump": [float("nan"), float("nan"), 1.9],
                         "quad_status": ["ok", "inaccurate", "ok"]})  # fmt: skip
    iters = pd.DataFrame({"activation": ["tanh"] * 2, "layer": [0, 1], "q11": [1.0, 0.6], "c": [0.5, 0.51],
                          "quad_status": ["ok", "ok"]})  # fmt: skip
    ol = pd.DataFrame({"activation": ["tanh"] * 2, "width": [16, 64], "V_star": [0.3, 0.3],
                       "lambda_coeff_1overN": [-2.0, -2.0], "lambda_one_loop": [0.1, 0.03],
                       "expansion_parameter": [0.4, 0.1], "status": ["expansion_breakdown", "ok"]})  # fmt: skip
    oc = pd.DataFrame({"activation": ["tanh", "tanh"], "sigma_b2": [0.05, 0.05], "width": [16, 64],
                       "crossing_mean_field": [1.76, 1.76], "crossing_one_loop": [2.9, 1.9],
                       "status": ["expansion_breakdown", "ok"]})  # fmt: skip
    res = theory.mask_tables(theory.TheoryResult(grid, crit, iters, {}, one_loop=ol, one_loop_crossings=oc))
    t = res.theory
    assert t.loc[0, ["q_star", "chi1", "lambda_mf", "c_star", "depth_scale_c"]].isna().all()  # max_iter
    assert t.loc[1, "q_star"] == float("inf") and t.loc[1, "chi1"] == 1.5  # diverged: a result
    assert t.loc[2, "chi1"] == 0.5 and t.loc[2, "q_star"] == 0.0  # degenerate c*: the q side stays
    assert t.loc[3, theory.GRID_VALUES].isna().all() and t.loc[3, "sigma_w2"] == 1.5  # quadrature not verified
    assert (t.q_status == grid.q_status).all() and (t.quad_status == grid.quad_status).all()
    c = res.critical.set_index("activation")
    assert c.loc["relu", "sigma_w2_crit"] == 2.0 and np.isnan(c.loc["tanh", "sigma_w2_crit"])
    assert np.isnan(c.loc["gelu", "q_star"])  # a placeholder where found is False
    assert res.one_loop.lambda_one_loop.tolist()[1] == 0.03 and np.isnan(res.one_loop.lambda_one_loop[0])
    assert res.one_loop.expansion_parameter.tolist() == [0.4, 0.1]  # the diagnostic behind the status stays
    assert np.isnan(res.one_loop_crossings.crossing_one_loop[0])
    m = theory.headline(res).metrics
    assert m["critical_sigma_w2_at_sigma_b2_0"] == {"relu": 2.0, "tanh": None}
    assert m["critical_sigma_w2_at_sigma_b2_0_status"] == {"relu": "ok", "tanh": "quad_inaccurate"}  # red team F11
    assert m["n_excluded_critical_points"] == 2
    assert m["one_loop_crossing_shift_at_min_width"] == {"tanh_sb0.05_N16": None}  # was 2.9 - 1.76
    assert m["n_excluded_one_loop_crossings"] == 1


def test_critical_line_csv_follows_the_chaos_rule_at_the_configured_xi():
    """issue 21: critical_line.csv held the chi_1 = 1 root for every xi (relu, sigma_b2 = 0, xi = 2: 2.0); the
    stage now writes critical.chaos_line's threshold, 2 pi/(pi + 1) there, and names the gain whose root it is."""
    from pipeline.config.validate import to_validated
    from pipeline.stages import theory
    from tests.conftest import compose_config as _compose

    cfg = to_validated(
        _compose("theory", ["experiment=smoke", "tracking.enabled=false", "net.xi=2.0", "net.activation=relu",
                            "theory.activations=[relu]", "theory.critical_sigma_b2=[0.0]"])
    )  # fmt: skip
    crit = theory.compute(cfg).critical.set_index("activation")
    assert crit.loc["relu", "sigma_w2_crit"] == pytest.approx(2 * np.pi / (np.pi + 1), abs=1e-8)
    assert crit.loc["relu", "gain"] == "a_q"


@pytest.mark.slow  # ~6 s: two theory computes
def test_a_large_theory_grid_reports_progress_per_block_of_rows_with_the_same_table(monkeypatch, caplog):
    """red team F19: progress came once per activation (a 200000-point sigma_w2 grid was silent for minutes);
    it now comes per block of grid rows and per critical line, and the blocks join into the one-block table."""
    import logging

    from pipeline.config.validate import to_validated
    from pipeline.stages import theory
    from tests.conftest import compose_config as _compose

    cfg = to_validated(_compose("theory", ["experiment=smoke", "tracking.enabled=false", "theory.figures=false",
                                           "theory.one_loop.enabled=false", "theory.activations=[tanh]",
                                           "net.activation=tanh"]))  # fmt: skip
    whole = theory.compute(cfg).theory
    monkeypatch.setenv("GINN_PROGRESS_SECONDS", "0")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(theory, "GRID_BLOCK_CELLS", 12)  # smoke: 11 x 6 grid -> 6 blocks of 2 rows
    with caplog.at_level(logging.INFO, logger="ginn.progress"):
        blocks = theory.compute(cfg).theory
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("theory:")]
    assert any("/7 " in x for x in lines), lines  # 6 blocks + 1 critical line; was /1 (per activation)
    assert len(lines) >= 5, lines
    pd.testing.assert_frame_equal(blocks, whole)
    assert theory.grid_row_chunks(11, 6, 12) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11)]
    assert theory.grid_row_chunks(99, 41) == [(0, 99)]  # the default grid stays one block


# ---------------------------------------------------------------- planted-bug guards: each docstring names the
# one-line bug (planted in a clone, missed by the rest of the suite) and the independent reference it is checked on


def test_theory_headline_reads_the_last_layer_and_the_narrowest_width():
    """Guards theory.headline: `final_q` / `final_c` read from the first iterate row (`iloc[0]`, layer 0) instead of
    the last (layer L), and the one-loop shift taken at the widest width. Hand tables; ReLU's closed form 2."""
    grid = pd.DataFrame({"q_status": ["ok"] * 2, "c_status": ["ok"] * 2, "quad_status": ["ok"] * 2})
    crit = pd.DataFrame({"activation": ["relu", "tanh", "tanh"], "sigma_b2": [0.0, 0.0, 0.05],
                         "sigma_w2_crit": [2.0, 1.0, TANH_SB005], "crossing_status": ["ok"] * 3,
                         "sigma_w2_jump": [np.nan] * 3, "quad_status": ["ok"] * 3})  # fmt: skip
    iters = pd.DataFrame({"layer": [0, 1, 2, 3], "q11": [1.0, 0.8, 0.7, 0.65], "c": [0.5, 0.6, 0.7, 0.75]})
    oc = pd.DataFrame({"activation": ["tanh", "tanh"], "sigma_b2": [0.05, 0.05], "width": [128, 32],
                       "crossing_mean_field": [TANH_SB005] * 2, "crossing_one_loop": [1.80, 1.95]})  # fmt: skip
    ol = pd.DataFrame({"status": ["ok", "ok"]})
    res = theory.TheoryResult(grid, crit, iters, {}, one_loop=ol, one_loop_crossings=oc)
    m = theory.headline(res).metrics
    assert m["final_q"] == 0.65 and m["final_c"] == 0.75
    assert m["critical_sigma_w2_at_sigma_b2_0"] == {"relu": 2.0, "tanh": 1.0}
    assert m["one_loop_crossing_shift_at_min_width"] == {"tanh_sb0.05_N32": pytest.approx(1.95 - TANH_SB005)}
