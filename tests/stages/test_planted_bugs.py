"""Planted-bug guards for the code that joins theory with measurement (outside the mutation-testing scope).

Each test names, in its docstring, the one-line bug it was written against (a bug planted in a clone that the rest
of the fast suite did not catch) and checks exact behaviour against an independent reference: a hand computation
written here, a closed form (ReLU's critical sigma_w2 = 2, tanh's 1 at sigma_b2 = 0, docs/science.md §1), or the
pipeline.theory function of the row's own key. Stage functions are called in-process on small inputs.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import comb, digamma

from pipeline.plots import prepare
from pipeline.stages import collect, gauge_scan, report, theory, theory_inputs
from pipeline.stages import mlp_sweep as mlp_stage

TANH_SB005 = 1.76095  # tanh's critical sigma_w2 at sigma_b2 = 0.05 (docs/science.md §1)


def _relu_lambda_exact(n: int, sigma_w2: float) -> float:
    """docs/science.md §2: 0.5 [ln(2 sigma_w2/N) + E_k psi(k/2)], k ~ Binomial(N, 1/2) conditioned on k >= 1."""
    k = np.arange(1, n + 1)
    p = comb(n, k) / (2.0**n - 1)
    return 0.5 * (math.log(2 * sigma_w2 / n) + float((p * digamma(k / 2)).sum()))


# ---------------------------------------------------------------- collect: finite_width.csv, one-loop table


def test_finite_width_table_is_n_times_measured_minus_theory_with_n_times_se():
    """Guards collect.finite_width_table: sign flip `(sweep[theo] - sweep[col]) * n`, the log-q SE without the
    factor N (`sweep.log_q_L_se`), and the exponent against the deep `lambda_mf` instead of mean field over the same
    layers (`lambda_mf_finite_depth`). Hand computation: N (x - x_theory) and N se, per row's own width."""
    sweep = pd.DataFrame({
        "activation": ["tanh", "tanh"], "width": [100, 10], "depth": [6, 6], "sigma_b2": [0.05, 0.05], "xi": [1.0, 1.0],
        "sigma_w2": [1.5, 1.5], "log_q_L": [math.log(1.1), math.log(0.5)], "log_q_L_se": [0.002, 0.03],
        "q_L_theory": [1.0, 1.0], "c_L": [0.51, 0.45], "c_L_theory": [0.5, 0.5], "c_L_se": [0.001, 0.02],
        "lambda_replica": [-0.02, 0.1], "lambda_mf_finite_depth": [-0.01, 0.05], "lambda_mf": [0.3, 0.3],
        "lambda_replica_se": [0.003, 0.01], "lambda_coeff_1overN": [9.0, 9.0],
        "lambda_coeff_1overN_finite_depth": [-1.1, -0.7],
    })  # fmt: skip
    fw = collect.finite_width_table(sweep).set_index("width")
    assert fw.loc[100, "dlogq_L_times_N"] == pytest.approx(100 * math.log(1.1))
    assert fw.loc[10, "dlogq_L_times_N"] == pytest.approx(10 * math.log(0.5))
    assert fw.loc[100, "dlogq_L_times_N_se"] == pytest.approx(0.2)
    assert fw.loc[10, "dlogq_L_times_N_se"] == pytest.approx(0.3)
    assert fw.loc[100, "dc_L_times_N"] == pytest.approx(1.0) and fw.loc[10, "dc_L_times_N"] == pytest.approx(-0.5)
    assert fw.loc[100, "dc_L_times_N_se"] == pytest.approx(0.1) and fw.loc[10, "dc_L_times_N_se"] == pytest.approx(0.2)
    assert fw.loc[100, "dlambda_times_N"] == pytest.approx(-1.0) and fw.loc[10, "dlambda_times_N"] == pytest.approx(0.5)
    assert fw.loc[100, "dlambda_times_N_se"] == pytest.approx(0.3)
    assert fw.dlambda_times_N_one_loop.to_dict() == {100: -1.1, 10: -0.7}  # one loop over the same layers


def _crossings(**over) -> pd.DataFrame:
    """Per-job crossings rows as collect builds them from metrics.json (two widths, listed widest first)."""
    d = {
        "activation": ["tanh", "tanh"], "width": [64, 32], "depth": [50, 50], "sigma_b2": [0.05, 0.05],
        "xi": [1.0, 1.0], "crossing_measured": [1.80, 1.85],
        "crossing_measured_se": [0.01, 0.02], "crossing_theory": [TANH_SB005, TANH_SB005],
        "crossing_one_loop": [1.79, 1.88], "crossing_one_loop_deep": [1.83, 1.95],
        "crossing_mean_field_finite_depth": [1.75, 1.75], "crossing_exact": [None, None],
        "one_loop_expansion_parameter": [0.1, 0.2], "one_loop_status": ["ok", "ok"],
    }  # fmt: skip
    d.update(over)
    return pd.DataFrame(d)


def test_one_loop_crossings_keep_each_jobs_theory_and_z_by_key():
    """Guards collect.one_loop_crossings: `crossing_one_loop` filled from the deep (fixed-point) value
    `c.crossing_one_loop_deep`, and a sign flip in z_one_loop. Hand computation per width (rows re-sorted)."""
    loop = collect.one_loop_crossings(_crossings()).set_index("width")
    assert list(loop.index) == [32, 64]  # sorted by width; the values below must have moved with their keys
    assert loop.loc[64, "crossing_one_loop"] == 1.79 and loop.loc[64, "crossing_one_loop_deep"] == 1.83
    assert loop.loc[32, "crossing_one_loop"] == 1.88 and loop.loc[32, "crossing_mean_field"] == TANH_SB005
    assert loop.loc[64, "z_one_loop"] == pytest.approx((1.80 - 1.79) / 0.01)  # +1.0
    assert loop.loc[32, "z_one_loop"] == pytest.approx((1.85 - 1.88) / 0.02)  # -1.5
    assert loop.loc[64, "z_mean_field"] == pytest.approx((1.80 - TANH_SB005) / 0.01)  # +3.905


def test_one_loop_closer_compares_absolute_distances():
    """Guards collect.one_loop_closer: `.abs()` dropped on the mean-field side (a measured crossing *below* mean
    field then never counts as closer to one loop). Hand: |1.80-1.85| = 0.05 < |1.80-1.90| = 0.10 -> True."""
    loop = pd.DataFrame({
        "crossing_measured": [1.80, 1.80, 1.95, np.nan], "crossing_one_loop": [1.85, 1.70, 1.90, 1.8],
        "crossing_mean_field": [1.90, 1.76, 1.76, 1.76],
    })  # fmt: skip
    assert collect.one_loop_closer(loop).tolist() == [True, False, True, None]
    s = collect.one_loop_summary(loop.assign(z_one_loop=[1.0, -2.0, 0.5, np.nan], z_mean_field=[-1.0, 4.0, 3.0, 0]))
    assert s["one_loop_closer_than_mean_field"] == "2/3" and s["one_loop_max_abs_z"] == 2.0


def test_group_labels_tell_every_bias_and_depth_apart():
    """Guards collect.group_label: sigma_b2 dropped from the label (`f"{row['activation']} L={row['depth']}..."`),
    which merges two biases into one dvc-plots line."""
    c = _crossings(width=[64, 64], sigma_b2=[0.0, 0.05])
    loop = collect.one_loop_crossings(c, ["sigma_b2"])
    assert loop.group.tolist() == ["tanh sb2=0 L=50", "tanh sb2=0.05 L=50"]
    c = _crossings(width=[64, 64], depth=[20, 50])
    assert collect.one_loop_crossings(c, ["depth"]).group.tolist() == ["tanh sb2=0.05 L=20", "tanh sb2=0.05 L=50"]


def test_collect_pairs_each_jobs_crossing_with_its_own_swept_values(tmp_path):
    """Guards collect.collect_mlp_sweep: the crossings rows built from `zip(dirs, values)` with the values in another
    order (e.g. `reversed(values)`), so job 0's crossing carries job 1's engine.q0. Reference: the synthetic job n
    has crossing_measured 1.5 + 1e-3 (n + 1) and mlflow_run_id run<n> (tests/stages/test_redteam_collect.py), which
    runs.csv keeps (not crossings.csv: run ids stay out of DVC-tracked files)."""
    from tests.stages.test_redteam_collect import sweep_of

    jobs = sweep_of(tmp_path / "jobs", [{"engine": {"q0": 0.5}}, {"engine": {"q0": 2.0}}, {"engine": {"q0": 3.0}}])
    collect.collect_mlp_sweep(jobs, tmp_path / "out")
    cr = pd.read_csv(tmp_path / "out" / "crossings.csv").set_index("engine.q0")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("engine.q0")
    assert runs.mlflow_run_id.to_dict() == {0.5: "run0", 2.0: "run1", 3.0: "run2"}
    assert cr.crossing_measured.to_dict() == pytest.approx({0.5: 1.501, 2.0: 1.502, 3.0: 1.503})
    loop = pd.read_csv(tmp_path / "out" / "one_loop_crossings.csv").set_index("engine.q0")
    assert loop.crossing_one_loop.to_dict() == pytest.approx({0.5: 1.603, 2.0: 1.606, 3.0: 1.609})
    sweep = pd.read_csv(tmp_path / "out" / "sweep.csv")  # and the sweep rows of the same key: q_L = sw q0 + off
    one = sweep[sweep.sigma_w2 == 1.0].set_index("engine.q0").q_L.to_dict()
    assert one == pytest.approx({0.5: 0.501, 2.0: 2.002, 3.0: 3.003})


# ---------------------------------------------------------------- report: verdicts and headline numbers


def test_verdict_tolerance_is_max_of_two_se_and_0_02():
    """Guards report.one_loop_verdicts: 2 SE -> 3 SE, and the 0.02 floor changed (0.02 -> 0.05 or 0.01).
    Hand: 0.030 off at SE 0.0125 is 2.4 SE > max(0.025, 0.02): disagrees; 0.019 at SE 0.001 is inside the floor."""
    loop = pd.DataFrame({
        "activation": ["tanh"] * 4, "sigma_b2": [0.05] * 4, "width": [64, 128, 256, 512], "depth": [50] * 4,
        "crossing_measured": [1.90, 1.90, 1.819, 1.821], "crossing_se": [0.0125, 0.0125, 0.001, 0.001],
        "crossing_mean_field": [TANH_SB005] * 4, "crossing_one_loop": [1.93, 1.876, 1.80, 1.80],
        "one_loop_status": ["ok"] * 4,
    })  # fmt: skip
    one = report.one_loop_verdicts(loop)
    assert one.tolerance.tolist() == pytest.approx([0.025, 0.025, 0.02, 0.02])
    assert one.verdict[0] == "DISAGREES: measured - one loop = -0.030 (-2.4 SE)"
    assert one.verdict[1] == "agrees"  # 0.024 <= 0.025
    assert one.verdict[2] == "agrees"  # 0.019 <= 0.02
    assert one.verdict[3].startswith("DISAGREES: measured - one loop = +0.021")


def _headline_tables() -> dict:
    zc = pd.DataFrame({"activation": ["tanh"], "width": [256], "sigma_b2": [0.05], "xi": [1.0],
                       "crossing_measured": [1.79], "crossing_measured_se": [0.01],
                       "crossing_theory": [TANH_SB005]})  # fmt: skip
    crit = pd.DataFrame({"activation": ["relu", "tanh", "tanh"], "sigma_b2": [0.0, 0.0, 0.05], "xi": [1.0] * 3,
                         "sigma_w2_crit": [2.0, 1.0, TANH_SB005]})  # fmt: skip
    len_th = 2 * math.pi / (math.pi + 1)  # relu, xi = 2 (tests/stages/test_finite_width_stages.py)
    th = pd.DataFrame({
        "activation": ["relu", "relu"], "xi": [2.0, 2.0], "sigma_b2": [0.0, 0.0], "width": [256, 32],
        "len_threshold_theory": [len_th, len_th], "len_threshold_measured": [1.55, 1.70],
        "len_threshold_se": [0.01, 0.05],
        "chaos_threshold_theory": [np.inf, np.inf], "chaos_threshold_measured": [np.nan, np.nan],
        "chaos_threshold_se": [np.nan, np.nan],
    })  # fmt: skip
    rfw = pd.DataFrame({"width": [8, 64], "sigma_w2": [2.0, 2.0], "lambda_measured": [-0.08, -0.01],
                        "lambda_measured_se": [0.01, 0.004], "lambda_exact": [_relu_lambda_exact(8, 2.0),
                                                                           _relu_lambda_exact(64, 2.0)]})  # fmt: skip
    loop = pd.DataFrame({"activation": ["tanh"], "sigma_b2": [0.05], "width": [64], "depth": [50],
                         "crossing_measured": [1.85], "crossing_se": [0.01], "crossing_mean_field": [TANH_SB005],
                         "crossing_one_loop": [1.84], "one_loop_status": ["ok"],
                         "group": ["tanh sb2=0.05 L=50"]})  # fmt: skip
    return {"lyapunov/zero_crossings.csv": zc, "theory/critical_line.csv": crit, "gauge_scan/thresholds.csv": th,
            "lyapunov/relu_finite_width.csv": rfw, "mlp_sweep/one_loop_crossings.csv": loop,
            "ginn_train/metrics.json": {"test_accuracy": 0.9, "dataset": "spirals", "activation": "tanh"}}  # fmt: skip


def test_report_headline_differences_are_measured_minus_theory_at_the_widest_width(monkeypatch):
    """Guards report.headline: sign flip `r.crossing_theory - r.crossing_measured`, and the thresholds read at the
    narrowest width (`th.width.min()`) instead of the widest; and report.compute's ReLU finite-width z. Hand
    computation; the exact ReLU exponent from the binomial-digamma sum of docs/science.md §2."""
    tables = _headline_tables()
    s = report.headline(tables)
    zc = s[s.quantity == "lyapunov_zero_crossing"].iloc[0]
    assert zc.difference == pytest.approx(1.79 - TANH_SB005) and zc.theory == TANH_SB005
    crit = s[s.quantity == "critical_sigma_w2_sigma_b2_0"].set_index("activation").theory.to_dict()
    assert crit == {"relu": 2.0, "tanh": 1.0}  # closed forms at sigma_b2 = 0
    thr = s[s.quantity.str.endswith("_threshold")]
    assert len(thr) == 1 and thr.iloc[0].context.endswith("N=256")  # no finite chaos threshold: len only
    assert thr.iloc[0].difference == pytest.approx(1.55 - 2 * math.pi / (math.pi + 1))
    ol = s[s.quantity == "one_loop_zero_crossing"].iloc[0]
    assert ol.difference == pytest.approx(0.01) and ol.context == "tanh sb2=0.05 L=50 N=64"
    rf = s[s.quantity == "relu_finite_width_lambda"].set_index("context")
    assert rf.loc["N=8 sigma_w2=2", "difference"] == pytest.approx(-0.08 - _relu_lambda_exact(8, 2.0))
    monkeypatch.setattr(report, "find_figures", lambda root: {})
    monkeypatch.setattr(report, "read_tables", lambda root: tables)
    m = report.compute(SimpleNamespace(report=SimpleNamespace(inputs="unused"))).metrics
    z8 = abs(-0.08 - _relu_lambda_exact(8, 2.0)) / 0.01
    z64 = abs(-0.01 - _relu_lambda_exact(64, 2.0)) / 0.004
    assert m["relu_finite_width_max_z"] == pytest.approx(max(z8, z64))
    assert m["lyapunov_crossing_max_abs_diff"] == pytest.approx(1.79 - TANH_SB005)
    assert m["gauge_threshold_max_abs_diff"] == pytest.approx(1.55 - 2 * math.pi / (math.pi + 1))
    assert m["one_loop_agrees"] == "1/1"


# ---------------------------------------------------------------- theory and gauge_scan headlines


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


# ---------------------------------------------------------------- theory_inputs lookups


def test_theory_crossing_never_takes_a_neighbouring_bias_row(tmp_path):
    """Guards theory_inputs.theory_crossing: the sigma_b2 tolerance widened (atol 1e-12 -> 0.1), which returns the
    0.05 row for a sigma_b2 = 0 query. Reference: tanh's closed form 1 at sigma_b2 = 0, computed instead."""
    pd.DataFrame({"activation": ["tanh"], "sigma_b2": [0.05], "xi": [1.0], "sigma_w2_crit": [TANH_SB005]}).to_csv(
        tmp_path / "critical_line.csv", index=False
    )
    x, src = theory_inputs.theory_crossing(tmp_path, "tanh", 0.0, 1.0)
    assert src == "computed" and x == pytest.approx(1.0, abs=1e-4)
    x, src = theory_inputs.theory_crossing(tmp_path, "tanh", 0.05, 1.0)
    assert src == "theory_stage" and x == TANH_SB005


# ---------------------------------------------------------------- prepare (figure data)


def test_widest_network_is_found_by_value_not_by_row_order():
    """Guards prepare.widest_first_activation / widest_per_case: the widest width read from a row position
    (`layers.width.iloc[-1]`, `d.width.iloc[0]`) instead of the maximum; rows here are listed widest first."""
    layers = pd.DataFrame({"activation": ["tanh", "tanh", "relu", "relu", "tanh"], "width": [64, 16, 64, 16, 32],
                           "sigma_b2": [0.05] * 5, "layer": [0] * 5})  # fmt: skip
    w = prepare.widest_first_activation(layers)
    assert w.width.tolist() == [64] and w.activation.tolist() == ["tanh"]
    per = prepare.widest_per_case(layers.iloc[::-1])
    assert sorted(int(d.width.iloc[0]) for d in per) == [64, 64] and all(len(d) == 1 for d in per)


def test_ln_chi1_grid_pivots_chi1_by_its_own_keys():
    """Guards prepare.ln_chi1_grid: the pivot reading a neighbouring column (chi_c) or swapped axes. Reference:
    ReLU chi_1 = sigma_w2 / 2 (docs/science.md §1), rows given in shuffled order."""
    rows = [{"activation": "relu", "sigma_w2": sw, "sigma_b2": sb, "chi1": sw / 2, "chi_c": 1.0}
            for sw in (1.0, 2.0, 4.0) for sb in (0.0, 0.5)]  # fmt: skip
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    g = prepare.ln_chi1_grid(pd.concat([df, df.assign(activation="tanh", chi1=9.0)]), "relu")
    assert list(g.index) == [0.0, 0.5] and list(g.columns) == [1.0, 2.0, 4.0]
    assert np.allclose(g.to_numpy(), np.log([[0.5, 1.0, 2.0]] * 2))


# ---------------------------------------------------------------- mlp_sweep: fluctuations, burn-in


def test_fluctuation_table_se_is_the_std_over_seeds_over_sqrt_s(monkeypatch):
    """Guards mlp_sweep.fluctuation_table: the SE without /sqrt(S) (`v.std()`), a population std (ddof 0), and the
    unbiased factor S/(S-1) dropped. A synthetic ensemble replaces the simulation; hand computation at layer 1:
    q over 4 seeds (both inputs alike) = 1, 2, 3, 4; N = 8: per-seed N (q - 2.5)^2 4/3 = 24, 8/3, 8/3, 24; mean
    40/3, sample std 64/sqrt(27), SE 32/sqrt(27)."""
    q = torch.ones(4, 1, 2, 3, dtype=torch.float64)  # (seeds, sigma_w2, inputs, layers 0..2)
    q[:, 0, :, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    monkeypatch.setattr(mlp_stage, "ensemble_spec", lambda *a, **k: None)
    monkeypatch.setattr(mlp_stage, "simulate", lambda spec: SimpleNamespace(log_q=torch.log(q)))
    cfg = SimpleNamespace(
        fluctuations=SimpleNamespace(n_seeds=4, widths=[8], sigma_w2=[1.5]), seed=0, engine=SimpleNamespace(q0=1.0),
        net=SimpleNamespace(width=8, depth=2, xi=1.0, sigma_b2=0.05, weights=SimpleNamespace(value="gaussian"),
                            activation=SimpleNamespace(value="tanh")),
    )  # fmt: skip
    fl = mlp_stage.fluctuation_table(cfg).set_index("layer")
    assert fl.loc[1, "N_var_q"] == pytest.approx(40 / 3)
    assert fl.loc[1, "N_var_q_se"] == pytest.approx(32 / math.sqrt(27))
    assert fl.loc[0, "N_var_q"] == 0 and fl.loc[0, "N_var_q_se"] == 0
    # N (E q - K): layer 0 has K = q0 = 1 exactly; per seed 8 (q - K)
    assert fl.loc[0, "N_mean_shift"] == pytest.approx(0.0, abs=1e-9)
    k1 = fl.loc[1, "K"]
    assert fl.loc[1, "N_mean_shift"] == pytest.approx(8 * (2.5 - k1))
    assert fl.loc[1, "N_mean_shift_se"] == pytest.approx(8 * np.std([1, 2, 3, 4], ddof=1) / 2)


@pytest.fixture(scope="module")
def tiny_cfg():
    from pipeline.config.validate import to_validated
    from tests.conftest import compose_config as _compose

    def make(stage: str, *overrides: str):
        return to_validated(_compose(stage, ["experiment=smoke", "tracking.enabled=false", *overrides]))

    return make


def test_mlp_sweep_exponent_averages_transitions_burn_in_to_l_minus_1(tiny_cfg, tmp_path):
    """Guards mlp_sweep.compute: burn-in off by one (`summarize(m, eng.burn_in - 1)` or `+ 1`, the one-loop
    finite-depth crossing at `burn_in + 1`, and finite_depth_theory's layers `>= b` -> `> b`). Reference: the
    per-layer exponents of layers.csv (row l holds transition l-1 -> l) averaged over rows burn_in+1..L, the iterates'
    0.5 ln chi1 over layers burn_in..L-1, and one_loop.finite_depth_crossing at the job's own key."""
    from pipeline.theory.one_loop import finite_depth_crossing

    cfg = tiny_cfg("mlp_sweep", "net.width=8", "net.depth=5", "engine.burn_in=2", "fluctuations.n_seeds=0",
                   "grid.sigma_w2.start=1.0", "grid.sigma_w2.stop=3.0", "grid.sigma_w2.num=3", "grid.refine=0",
                   f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    res = mlp_stage.compute(cfg)
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


# ---------------------------------------------------------------- lyapunov


def test_lyapunov_theory_columns_are_those_of_each_curves_own_key(tiny_cfg, tmp_path):
    """Guards lyapunov.compute: the crossing theory looked up at `net.sigma_b2` instead of the curve's sigma_b2, and
    the ReLU mean-field column without its 1/2 (`math.log(r.sigma_w2 / 2)`). References: tanh's closed form 1 at
    sigma_b2 = 0 (net.sigma_b2 is 0.05); 0.5 ln(sigma_w2 / 2) and the binomial-digamma exact exponent (§2)."""
    curves = "[{activation: tanh, sigma_b2: 0.0, sigma_w2: {start: 0.5, stop: 2.0, num: 4}}]"
    cfg = tiny_cfg("lyapunov", "net.width=8", "net.depth=4", "engine.burn_in=1", f"lyapunov.curves={curves}",
                   "lyapunov.relu_finite_width.widths=[4,6]", "lyapunov.relu_finite_width.sigma_w2=[3.0]",
                   "lyapunov.relu_finite_width.depth=4", "lyapunov.eps_check.eps=[1e-3]",
                   f"theory_outputs={tmp_path / 'none'}")  # fmt: skip
    assert cfg.net.sigma_b2 == 0.05
    res = lyapunov_compute(cfg)
    assert res.crossings.crossing_theory.tolist() == pytest.approx([1.0], abs=1e-4)
    rfw = res.relu_finite_width.set_index("width")
    for n in (4, 6):
        assert rfw.loc[n, "lambda_mean_field"] == pytest.approx(0.5 * math.log(1.5))
        assert rfw.loc[n, "lambda_exact"] == pytest.approx(_relu_lambda_exact(n, 3.0), rel=1e-9)
    # the mean-field theory joined by key: lambda_mf = 0.5 ln chi1 on each row
    ly = res.lyapunov
    assert np.allclose(ly.lambda_mf, 0.5 * np.log(ly.chi1))


def lyapunov_compute(cfg):
    from pipeline.stages import lyapunov

    return lyapunov.compute(cfg)
