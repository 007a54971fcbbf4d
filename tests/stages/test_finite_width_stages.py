"""mlp_sweep, collect, lyapunov and gauge_scan: the session smoke pipeline's outputs and runs, rejected inputs,
and the stage functions on small inputs."""

import math
import shutil
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.stages import gauge_scan, lyapunov, mlp_sweep
from pipeline.stages.outputs import read_run_record
from tests.conftest import relu_lambda_exact, runs

SMOKE = ["experiment=smoke"]


def test_mlp_sweep_multirun_then_collect(smoke_pipeline, run_inprocess, tmp_path):
    """The session pipeline's `mlp_sweep -m net.width=16,32` and `collect --jobs .../jobs --out ...` (dvc.yaml)."""
    store, out = smoke_pipeline.store, smoke_pipeline["mlp_sweep"]
    sweep = out / "jobs"
    for job in ("0", "1"):
        t = pd.read_csv(sweep / job / "sweep.csv")
        assert {
            "q_L",
            "q_L_theory",
            "c_L",
            "chi",
            "chi1",
            "lambda_replica",
            "lambda_replica_se",
            "lambda_tangent",
            "lambda_mf",
            "width",
            "activation",
        } <= set(t.columns)
        assert len(t) == 5
    merged = pd.read_csv(out / "sweep.csv")
    assert sorted(merged.width.unique()) == [16, 32]
    fw = pd.read_csv(out / "finite_width.csv")
    assert {"dlogq_L_times_N", "dlambda_times_N", "dc_L_times_N"} <= set(fw.columns)
    assert (out / "figures" / "finite_width_collapse.png").stat().st_size > 0
    df = runs(store, "mlp_sweep")
    parent = df[df["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1 and parent.status.item() == "FINISHED"
    assert read_run_record(out) == parent.run_id.item()  # mlflow_run.json (not the DVC-tracked metrics.json)
    arts = [a.path for a in mlflow.MlflowClient(tracking_uri=store).list_artifacts(parent.run_id.item(), "merged")]
    assert "merged/sweep.csv" in arts
    child = df[df["tags.mlflow.parentRunId"].notna()].run_id.iloc[0]
    # why a headline is (or is not) NaN is a tag beside it in the UI, not only in metrics.json (issue 21)
    assert df[df["tags.mlflow.parentRunId"].notna()]["tags.crossing_measured_status"].notna().all()
    client = mlflow.MlflowClient(tracking_uri=store)
    # per-layer curves are one table artifact and figures, not dozens of metric keys (issue 16)
    assert not [k for k in client.get_run(child).data.metrics if k.startswith(("q_l.", "c_l."))]
    assert "layers.csv" in [a.path for a in client.list_artifacts(child)]
    # collect without --out never writes the DVC-owned outputs/mlp_sweep/: it merges beside the sweep (a copy of
    # the shared jobs, without the parent-run file so the session store is left as it is)
    jobs = shutil.copytree(sweep, tmp_path / "jobs")
    (jobs / "mlflow_parent_run.json").unlink()
    c = run_inprocess("collect", "mlp_sweep", "--jobs", str(jobs))
    assert c.returncode == 0, c.stderr
    assert pd.read_csv(jobs / "merged" / "sweep.csv").equals(merged)


def test_collect_refuses_a_sweep_with_a_missing_job(run_inprocess, tmp_path):
    (tmp_path / "0").mkdir()
    c = run_inprocess("collect", "mlp_sweep", "--jobs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert c.returncode != 0 and "jobs without outputs" in c.stderr
    assert not (tmp_path / "out" / "sweep.csv").exists()


def test_lyapunov_smoke_run(smoke_pipeline):
    out = smoke_pipeline["lyapunov"]
    lyap = pd.read_csv(out / "lyapunov.csv")
    assert {"lambda_replica", "lambda_tangent", "lambda_mf", "chi1", "lambda_1", "lambda_4"} <= set(lyap.columns)
    zc = pd.read_csv(out / "zero_crossings.csv")
    assert list(zc.columns) == [
        "activation",
        "width",
        "sigma_b2",
        "xi",
        "crossing_measured",
        "crossing_measured_se",
        "crossing_measured_status",  # "ok" or why there is none (then the two values before it are NaN)
        "crossing_measured_reason",
        "crossing_mean_field",
        "crossing_mean_field_status",
        "crossing_mean_field_source",
    ]
    rfw = pd.read_csv(out / "relu_finite_width.csv")
    assert list(rfw.columns[:6]) == [
        "width",
        "sigma_w2",
        "lambda_measured",
        "lambda_measured_se",
        "lambda_tangent",
        "lambda_exact",
    ]
    for f in ("lyapunov_vs_sigma_w2.png", "spectrum.png", "relu_finite_width.png", "eps_flatness.png"):
        assert (out / "figures" / f).stat().st_size > 0
    assert list(runs(smoke_pipeline.store, "lyapunov").status) == ["FINISHED"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown where no GPU exists")
def test_cuda_request_without_a_gpu_is_a_one_line_config_error(run_inprocess, tmp_path):
    p = run_inprocess("mlp_sweep", *SMOKE, "engine.device=cuda", f"hydra.run.dir={tmp_path / 'x'}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: engine.device='cuda'")


def test_burn_in_longer_than_depth_is_rejected(run_inprocess, tmp_path):
    p = run_inprocess("mlp_sweep", *SMOKE, "engine.burn_in=50", f"hydra.run.dir={tmp_path / 'x'}")
    assert p.returncode == 2 and p.error.startswith("error: engine.burn_in"), p.stderr


def test_gauge_scan_smoke_run(smoke_pipeline):
    out = smoke_pipeline["gauge_scan"]
    th = pd.read_csv(out / "thresholds.csv")
    assert list(th.columns) == [*gauge_scan.THRESHOLD_COLUMNS, "group"]  # "group": the dvc-plots line label
    assert len(th) == 4
    relu = th[th.activation == "relu"].set_index("xi")
    assert abs(relu.len_threshold_theory[2.0] - 2 * 3.141592653589793 / (3.141592653589793 + 1)) < 1e-6
    assert abs(relu.chaos_threshold_theory[2.0] - 2 * 3.141592653589793 / (3.141592653589793 + 1)) < 1e-6
    bad = th[th.len_threshold_status != "ok"]  # a missing measurement is NaN and says why
    assert bad.len_threshold_measured.isna().all() and bad.len_threshold_reason.notna().all()
    scan = pd.read_csv(out / "gauge_scan.csv")
    assert {"a_q", "chi1", "half_ln_a_q", "half_ln_chi1", "lambda_theory", "log_q_growth"} <= set(scan.columns)
    for f in ("thresholds_vs_xi.png", "a_q_vs_sigma_w2.png", "lyapunov_vs_sigma_w2_per_xi.png"):
        assert (out / "figures" / f).stat().st_size > 0
    assert list(runs(smoke_pipeline.store, "gauge_scan").status) == ["FINISHED"]


@pytest.fixture(scope="module")
def small_cfg():
    from pipeline.config.validate import to_validated
    from tests.conftest import compose_config as _compose

    def make(stage: str, *overrides: str):
        return to_validated(_compose(stage, ["experiment=smoke", "tracking.enabled=false", *overrides]))

    return make


def test_mlp_sweep_theory_crossing_follows_xi_for_relu(small_cfg, tmp_path):
    """issue 21: relu, sigma_b2 = 0, xi = 2 printed and logged 'theory 2.0000' (chi_1 = 1 only); the threshold is
    2 pi/(pi + 1) = 1.517 (docs/science.md §4: the longitudinal mode grows first), with its status."""
    cfg = small_cfg("mlp_sweep", "net.activation=relu", "net.sigma_b2=0.0", "net.xi=2.0", "net.width=8",
                    "net.depth=4", "engine.burn_in=1", "engine.n_seeds=4", "fluctuations.n_seeds=0", "grid.refine=0",
                    "grid.sigma_w2.start=1.0", "grid.sigma_w2.stop=2.0", "grid.sigma_w2.num=3",
                    f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    res = mlp_sweep.compute(cfg)
    want = 2 * math.pi / (math.pi + 1)
    assert res.crossing["crossing_mean_field"] == pytest.approx(want, abs=1e-8)
    assert res.crossing["crossing_mean_field_status"] == "ok"
    assert f"(theory {want:.4f})" in res.output.summary


def test_a_nan_crossing_names_its_reason_in_the_summary_and_metrics(small_cfg, tmp_path):
    """issue 21: a one-point grid said 'sigma_w2 = nan +- nan' without the reason."""
    cfg = small_cfg("mlp_sweep", "net.width=8", "net.depth=4", "engine.burn_in=1", "engine.n_seeds=3",
                    "fluctuations.n_seeds=0", "grid.refine=0", "grid.sigma_w2.start=1.0", "grid.sigma_w2.stop=1.0",
                    "grid.sigma_w2.num=1", f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    out = mlp_sweep.compute(cfg).output
    assert math.isnan(out.metrics["crossing_measured"]) and math.isnan(out.metrics["crossing_measured_se"])
    assert out.metrics["crossing_measured_status"] == "too_few_points"
    assert "1 grid point(s) with a finite lambda_replica" in out.metrics["crossing_measured_reason"]
    assert "nan (too_few_points: 1 grid point(s)" in out.summary


def test_gelu_one_loop_values_past_the_expansion_breakdown_are_nan_with_that_status(small_cfg, tmp_path):
    """issue 21: gelu at sigma_b2 = 0.05 (no smooth crossing: V/(N K^2) ~ 4-100 near its root) gave a one-loop
    crossing and 1/N coefficients, with the deep table's status 'no_crossing' beside this depth's value.
    The status now speaks for the finite-depth value (the deep one is kept as status_deep), and the value
    and the layer-averaged c1 are NaN where the expansion broke down.

    The deep values come from theory-stage tables written here (what the theory stage writes for gelu at 0.05:
    a jump, no one-loop root; tests/stages/test_one_loop_stage.py), so only this depth's one loop is computed."""
    nan = float("nan")
    theory = tmp_path / "theory"
    theory.mkdir()
    pd.DataFrame([{"activation": "gelu", "sigma_b2": 0.05, "xi": 1.0, "sigma_w2_crit": nan, "crossing_status": "jump",
                   "quad_status": "ok"}]).to_csv(theory / "critical_line.csv", index=False)  # fmt: skip
    pd.DataFrame([{"activation": "gelu", "sigma_b2": 0.05, "width": 16, "crossing_mean_field": nan,
                   "crossing_one_loop": nan, "crossing_exact": nan, "expansion_parameter": nan,
                   "status": "no_crossing"}]).to_csv(theory / "one_loop_crossings.csv", index=False)  # fmt: skip
    cfg = small_cfg("mlp_sweep", "net.activation=gelu", "net.sigma_b2=0.05", "net.width=16", "net.depth=20",
                    "engine.burn_in=5", "engine.n_seeds=2", "fluctuations.n_seeds=0", "grid.refine=0",
                    "grid.sigma_w2.start=1.0", "grid.sigma_w2.stop=4.0", "grid.sigma_w2.num=5",
                    f"theory_outputs={theory}")  # fmt: skip
    res = mlp_sweep.compute(cfg)
    c = res.crossing
    assert c["one_loop_status"] in ("expansion_breakdown", "no_crossing") and "one_loop_status_deep" in c, c
    assert c["one_loop_source"] == "theory_stage" and c["one_loop_status_deep"] == "no_crossing", c
    assert math.isnan(c["crossing_one_loop"])
    c1 = res.sweep.lambda_coeff_1overN_finite_depth
    assert c1.isna().any() and c1.notna().any(), c1.tolist()  # flagged where V/(N K^2) > 0.3 only


def test_gauge_scan_headline_counts_excluded_rows_and_says_why_a_value_is_null():
    """red team F10: the threshold errors were maxima over the valid rows only (4/9, 6/9) with no count, and
    exact_exponent_median_z was null with no reason (no exact exponent in the scan)."""
    nan = float("nan")
    th = pd.DataFrame({"len_threshold_measured": [1.0, nan, 2.0], "len_threshold_theory": [1.1, 1.0, nan],
                       "chaos_threshold_measured": [1.5, 1.6, nan],
                       "chaos_threshold_theory": [1.4, 1.9, 2.0]})  # fmt: skip
    scan = pd.DataFrame({"lambda_theory": [nan, nan], "lambda_replica": [0.1, 0.2], "lambda_replica_se": [0.01] * 2,
                         "n_failed_networks": [0, 1]})  # fmt: skip
    m = gauge_scan.headline(gauge_scan.GaugeScanResult(scan, th)).metrics
    assert m["len_threshold_max_abs_err"] == pytest.approx(0.1, abs=1e-12) and m["n_excluded_len_thresholds"] == 2
    assert m["chaos_threshold_max_abs_err"] == pytest.approx(0.3, abs=1e-12) and m["n_excluded_chaos_thresholds"] == 1
    assert m["exact_exponent_median_z"] is None and m["exact_exponent_median_z_status"] == "no_exact_exponent"
    scan = scan.assign(lambda_theory=[0.1, 0.0], lambda_replica=[0.12, nan])
    m = gauge_scan.headline(gauge_scan.GaugeScanResult(scan, th)).metrics
    assert m["exact_exponent_median_z"] == pytest.approx(2.0) and m["n_excluded_exact_exponents"] == 1
    assert m["exact_exponent_median_z_status"] == "ok"


# ---------------------------------------------------------------- planted-bug guards: each docstring names the
# one-line bug (planted in a clone, missed by the rest of the suite) and the independent reference it is checked on


def test_gauge_headline_compares_each_threshold_with_its_own_theory():
    """Guards gauge_scan.headline: the chaos error taken against the length threshold's theory column
    (`th.chaos_threshold_measured - th.len_threshold_theory`), and the z of the exact exponent over the wrong SE."""
    th = pd.DataFrame({"len_threshold_theory": [1.5171, 1.0], "len_threshold_measured": [1.55, 1.01],
                       "chaos_threshold_theory": [2.0, 1.2], "chaos_threshold_measured": [2.1, 1.25]})  # fmt: skip
    scan = pd.DataFrame({"lambda_replica": [0.1, 0.2, 0.3], "lambda_theory": [0.08, np.nan, 0.33],
                         "lambda_replica_se": [0.01, 0.01, 0.02], "lambda_tangent_se": [1.0, 1.0, 1.0],
                         "n_failed_networks": [0, 1, 0]})  # fmt: skip
    m = gauge_scan.headline(gauge_scan.GaugeScanResult(scan, th)).metrics
    assert m["len_threshold_max_abs_err"] == pytest.approx(0.0329)
    assert m["chaos_threshold_max_abs_err"] == pytest.approx(0.1)
    assert m["exact_exponent_median_z"] == pytest.approx((2.0 + 1.5) / 2)  # z = 0.02/0.01, 0.03/0.02
    assert m["n_failed_networks"] == 1


def test_fluctuation_table_se_is_the_std_over_seeds_over_sqrt_s(monkeypatch):
    """Guards mlp_sweep.fluctuation_table: the SE without /sqrt(S) (`v.std()`), a population std (ddof 0), and the
    unbiased factor S/(S-1) dropped. A synthetic ensemble replaces the simulation; hand computation at layer 1:
    q over 4 seeds (both inputs alike) = 1, 2, 3, 4; N = 8: per-seed N (q - 2.5)^2 4/3 = 24, 8/3, 8/3, 24; mean
    40/3, sample std 64/sqrt(27), SE 32/sqrt(27)."""
    q = torch.ones(4, 1, 2, 3, dtype=torch.float64)  # (seeds, sigma_w2, inputs, layers 0..2)
    q[:, 0, :, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    monkeypatch.setattr(mlp_sweep, "ensemble_spec", lambda *a, **k: None)
    monkeypatch.setattr(mlp_sweep, "simulate", lambda spec: SimpleNamespace(log_q=torch.log(q)))
    cfg = SimpleNamespace(
        fluctuations=SimpleNamespace(n_seeds=4, widths=[8], sigma_w2=[1.5]), seed=0, engine=SimpleNamespace(q0=1.0),
        net=SimpleNamespace(width=8, depth=2, xi=1.0, sigma_b2=0.05, weights=SimpleNamespace(value="gaussian"),
                            one_loop_applies=True,
                            activation=SimpleNamespace(value="tanh")),
    )  # fmt: skip
    fl = mlp_sweep.fluctuation_table(cfg).set_index("layer")
    assert fl.loc[1, "N_var_q"] == pytest.approx(40 / 3)
    assert fl.loc[1, "N_var_q_se"] == pytest.approx(32 / math.sqrt(27))
    assert fl.loc[0, "N_var_q"] == 0 and fl.loc[0, "N_var_q_se"] == 0
    # N (E q - K): layer 0 has K = q0 = 1 exactly; per seed 8 (q - K)
    assert fl.loc[0, "N_mean_shift"] == pytest.approx(0.0, abs=1e-9)
    k1 = fl.loc[1, "K"]
    assert fl.loc[1, "N_mean_shift"] == pytest.approx(8 * (2.5 - k1))
    assert fl.loc[1, "N_mean_shift_se"] == pytest.approx(8 * np.std([1, 2, 3, 4], ddof=1) / 2)


def test_mlp_sweep_exponent_averages_transitions_burn_in_to_l_minus_1(small_cfg, tmp_path):
    """Guards mlp_sweep.compute: burn-in off by one (`summarize(m, eng.burn_in - 1)` or `+ 1`, the one-loop
    finite-depth crossing at `burn_in + 1`, and finite_depth_theory's layers `>= b` -> `> b`). Reference: the
    per-layer exponents of layers.csv (row l holds transition l-1 -> l) averaged over rows burn_in+1..L, the iterates'
    0.5 ln chi1 over layers burn_in..L-1, and one_loop.finite_depth_crossing at the job's own key."""
    from pipeline.theory.one_loop import finite_depth_crossing

    cfg = small_cfg("mlp_sweep", "net.width=8", "net.depth=5", "engine.burn_in=2", "fluctuations.n_seeds=0",
                   "grid.sigma_w2.start=1.0", "grid.sigma_w2.stop=3.0", "grid.sigma_w2.num=3", "grid.refine=0",
                   f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    res = mlp_sweep.compute(cfg)
    lay = res.layers[res.layers.layer >= 3].groupby("sigma_w2")[["lambda_replica", "lambda_tangent", "chi"]].mean()
    s = res.sweep.set_index("sigma_w2")
    for col in ("lambda_replica", "lambda_tangent", "chi"):
        assert np.allclose(s[col].to_numpy(), lay.loc[s.index, col].to_numpy(), rtol=1e-9, atol=1e-12), col
    fd = finite_depth_crossing("tanh", 0.05, 8, 5, 2, 1.0)
    assert res.crossing["crossing_one_loop"] == pytest.approx(fd.one_loop, nan_ok=True)
    assert res.crossing["crossing_mean_field_finite_depth"] == pytest.approx(fd.mean_field, nan_ok=True)
    # theory joined by key: chi1 of every row is tanh's chi_1 at that row's own sigma_w2; lambda_mf = 0.5 ln chi1
    assert np.allclose(s.lambda_mf, 0.5 * np.log(s.chi1))
    # mean field over the same transitions 2..4: 0.5 ln chi1 of the iterates at layers 2, 3, 4 (layers.csv)
    it = res.layers[(res.layers.layer >= 2) & (res.layers.layer <= 4)]
    ref = (0.5 * np.log(it.chi1_theory)).groupby(it.sigma_w2).mean()
    assert np.allclose(s.lambda_mf_finite_depth.to_numpy(), ref.loc[s.index].to_numpy(), rtol=1e-12)


def test_lyapunov_theory_columns_are_those_of_each_curves_own_key(small_cfg, tmp_path):
    """Guards lyapunov.compute: the crossing theory looked up at `net.sigma_b2` instead of the curve's sigma_b2, and
    the ReLU mean-field column without its 1/2 (`math.log(r.sigma_w2 / 2)`). References: tanh's closed form 1 at
    sigma_b2 = 0 (lyapunov's net config has no sigma_b2 of its own now); 0.5 ln(sigma_w2 / 2) and the binomial-digamma
    exact exponent (§2)."""
    curves = "[{activation: tanh, sigma_b2: 0.0, sigma_w2: {start: 0.5, stop: 2.0, num: 4}}]"
    cfg = small_cfg("lyapunov", "net.width=8", "net.depth=4", "engine.burn_in=1", f"lyapunov.curves={curves}",
                   "lyapunov.relu_finite_width.widths=[4,6]", "lyapunov.relu_finite_width.sigma_w2=[3.0]",
                   "lyapunov.relu_finite_width.depth=4", "lyapunov.eps_check.eps=[1e-3]",
                   f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    assert not hasattr(cfg.net, "sigma_b2")  # lyapunov's net has none: only each curve's own can be read
    res = lyapunov.compute(cfg)
    assert res.crossings.crossing_mean_field.tolist() == pytest.approx([1.0], abs=1e-4)
    rfw = res.relu_finite_width.set_index("width")
    for n in (4, 6):
        assert rfw.loc[n, "lambda_mean_field"] == pytest.approx(0.5 * math.log(1.5))
        assert rfw.loc[n, "lambda_exact"] == pytest.approx(relu_lambda_exact(n, 3.0), rel=1e-9)
    # the mean-field theory joined by key: lambda_mf = 0.5 ln chi1 on each row
    ly = res.lyapunov
    assert np.allclose(ly.lambda_mf, 0.5 * np.log(ly.chi1))
