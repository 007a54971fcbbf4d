"""The one-loop tables of the theory and mlp_sweep stages, and the report's verdicts (docs/science.md §6)."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.stages.mlp_sweep import refined_grid
from pipeline.stages.report import one_loop_verdicts

SMOKE = ["experiment=smoke", "tracking.enabled=false"]
ISSUE_COLUMNS = ["activation", "sigma_w2", "sigma_b2", "q_star", "chi_par", "V_star", "K1_star",
                 "lambda_coeff_1overN", "expansion_parameter"]  # fmt: skip
CROSSING_COLUMNS = ["activation", "sigma_b2", "width", "depth", "crossing_measured", "crossing_se",
                    "crossing_mean_field", "crossing_one_loop", "crossing_exact", "expansion_parameter"]  # fmt: skip


def test_refined_grid_adds_points_around_the_center_and_stays_ascending():
    base = (0.5, 1.0, 1.5, 2.0)
    g = refined_grid(base, 1.2, 5, 0.1)
    assert set(base) <= set(g) and list(g) == sorted(set(g))
    assert sum(1.1 - 1e-12 <= x <= 1.3 + 1e-12 for x in g) == 5
    assert refined_grid(base, float("nan"), 5, 0.1) == base and refined_grid(base, 1.2, 0, 0.1) == base


def test_verdicts_flag_disagreements_with_their_numbers_and_never_widen_the_tolerance():
    loop = pd.DataFrame({
        "activation": ["tanh"] * 3, "sigma_b2": [0.05] * 3, "width": [64, 128, 256], "depth": [50] * 3,
        "crossing_measured": [1.90, 1.90, 1.80], "crossing_se": [0.005, 0.05, 0.005],
        "crossing_mean_field": [1.761] * 3, "crossing_one_loop": [1.896, 1.825, np.nan],
        "one_loop_status": ["ok", "ok", "no_crossing"],
    })  # fmt: skip
    v = one_loop_verdicts(loop).verdict.tolist()
    assert v[0] == "agrees"  # |0.004| <= max(2 x 0.005, 0.02)
    assert v[1] == "agrees"  # |0.075| <= 2 x 0.05
    assert v[2] == "no one-loop prediction (no_crossing)"
    loop.loc[0, "crossing_measured"] = 1.93  # 0.034 off, 6.8 SE: outside max(2 SE, 0.02)
    assert one_loop_verdicts(loop).verdict[0].startswith("DISAGREES: measured - one loop = +0.034 (+6.8 SE)")


def test_theory_stage_writes_the_one_loop_tables(run_inprocess, tmp_path):
    out = tmp_path / "th"
    cases = (
        "[{activation: tanh, sigma_b2: 0.05}, {activation: relu, sigma_b2: 0.0}, {activation: gelu, sigma_b2: 0.05}]"
    )
    # the mean-field grid at tanh only, the critical-point search over [1, 3] (every crossing here lies inside it):
    # relu's q* solves over smoke's whole grid and search range were ~2/3 of the run and no assertion reads them
    cheap = ["theory.activations=[tanh]", "theory.sigma_w2_search=[1.0,3.0]"]
    p = run_inprocess("theory", *SMOKE, *cheap, "theory.one_loop.widths=[32,128]", f"theory.one_loop.cases={cases}",
                      f"hydra.run.dir={out}")  # fmt: skip
    assert p.returncode == 0, p.stderr
    t = pd.read_csv(out / "one_loop.csv")
    assert set(ISSUE_COLUMNS) <= set(t.columns) and set(t.width) == {32, 128}
    c = pd.read_csv(out / "one_loop_crossings.csv")
    assert len(c) == 3 * 2  # three cases x two widths
    assert (c.status[c.activation == "gelu"] == "no_crossing").all()  # saddle-node transition: no one-loop root
    # the exact ReLU crossing where (and only where) it exists: bias-free ReLU
    relu0 = (c.activation == "relu") & (c.sigma_b2 == 0)
    assert c.crossing_exact[relu0].notna().all() and c.crossing_exact[~relu0].isna().all()
    # mean field is the critical line (one home): tanh at sigma_b2 = 0.05 crosses at 1.76095
    assert np.allclose(c.crossing_mean_field[(c.activation == "tanh") & (c.sigma_b2 == 0.05)], 1.76095, atol=1e-5)


def test_mlp_sweep_job_joins_one_loop_by_key_and_measures_fluctuations(run_inprocess, tmp_path):
    from pipeline.theory.one_loop import one_loop_table

    out = tmp_path / "job"
    p = run_inprocess("mlp_sweep", *SMOKE, "net.width=32", "grid.refine=4", "grid.sigma_w2.start=2.5",
                      "grid.sigma_w2.stop=1.5", "fluctuations.n_seeds=32", "fluctuations.widths=[32]",
                      "fluctuations.sigma_w2=[1.5]", f"hydra.run.dir={out}")  # fmt: skip
    assert p.returncode == 2 and p.error.startswith("error: grid.sigma_w2"), p.stderr  # a descending grid: rejected
    p = run_inprocess("mlp_sweep", *SMOKE, "net.width=32", "grid.refine=4", "fluctuations.n_seeds=32",
                      "fluctuations.widths=[32]", "fluctuations.sigma_w2=[1.5]", f"hydra.run.dir={out}")  # fmt: skip
    assert p.returncode == 0, p.stderr
    sweep = pd.read_csv(out / "sweep.csv")
    assert len(sweep) == 5 + 4  # the smoke grid plus the refinement around the one-loop crossing
    # every row's one-loop coefficient is the theory of that row's own sigma_w2 (key join, any order)
    rows = sweep.sample(frac=1.0, random_state=0)
    ref = one_loop_table("tanh", rows.sigma_w2.to_numpy(), 0.05)
    assert np.allclose(rows.lambda_coeff_1overN.to_numpy(), ref.lambda_coeff_1overN.to_numpy(), equal_nan=True)
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["crossing_one_loop"]) and m["one_loop_status"] == "ok"
    fl = pd.read_csv(out / "fluctuations.csv")
    assert set(fl.layer) == set(range(11)) and (fl.n_networks == 32).all()
    assert fl.N_var_q.iloc[0] < 1e-6  # layer 0 has exactly |h^0|^2 = N q0: no fluctuation


@pytest.mark.slow
def test_n_var_q_hat_within_10_percent_of_one_loop_at_depth_20_and_beyond(tmp_path):
    """Issue 12's acceptance: N Var(q_hat^L) within 10% of V + 2K^2 at depth >= 20, N = 128 (tanh, sigma_b2 0.05).
    4000 networks put the relative SE near 2.5%, so a 10% miss would be ~4 SE."""
    import torch

    from pipeline.dynamics.engine_spec import spec_with_defaults
    from pipeline.dynamics.ensemble import simulate
    from pipeline.theory.one_loop import layer_recursion

    sws = (1.2, 1.8)
    m = simulate(spec_with_defaults(activation="tanh", width=128, depth=30, sigma_w2=sws, sigma_b2=0.05,
                                    n_seeds=4000, n_pairs=1, dtype="float64"))  # fmt: skip
    q = torch.exp(m.log_q[..., 0, :])  # first input of each network: independent samples
    nvar = 128 * q.var(0)  # (K, L+1)
    th = layer_recursion("tanh", torch.tensor(sws, dtype=torch.float64), 0.05, 30, 1.0)
    pred = th.V + 2 * th.K**2
    ratio = (nvar / pred)[:, 20:]
    assert torch.all((ratio - 1).abs() < 0.10), ratio


@pytest.mark.slow
def test_reproduced_crossings_meet_the_one_loop_acceptance():
    """Issue 12's acceptance on the `dvc repro` outputs (CI runs `make reproduce` before the slow tests): measured
    crossings within max(2 SE, 0.02) of one loop at every width >= 64 for tanh, erf and relu at sigma_b2 = 0.05,
    and one loop closer than mean field at every width <= 128. The effect guarded, the one-loop shift
    crossing_one_loop - crossing_mean_field, is 0.03-0.5 at these widths: larger than the tolerance."""
    from tests.conftest import ROOT

    path = ROOT / "outputs" / "mlp_sweep" / "one_loop_crossings.csv"
    if not path.is_file():
        pytest.skip(f"{path} is missing: run `make reproduce` first")
    d = one_loop_verdicts(pd.read_csv(path))
    d = d[d.activation.isin(["tanh", "erf", "relu"]) & np.isclose(d.sigma_b2, 0.05)]
    assert set(d.width) >= {16, 32, 64, 128, 256, 512}, sorted(d.width)
    wide = d[d.width >= 64]
    assert len(wide) == 3 * 4 and (wide.verdict == "agrees").all(), wide[["activation", "width", "verdict"]]
    narrow = d[d.width <= 128]
    assert narrow.one_loop_closer_than_mean_field.all(), narrow[["activation", "width", "crossing_measured"]]
    shift = (d.crossing_one_loop - d.crossing_mean_field)[d.width <= 128]
    assert (shift.abs() > 0.02).all(), shift  # the effect is larger than the 0.02 tolerance floor


def _tanh_layer_average(sigma_w2, sigma_b2, q0, depth, burn_in):
    """Independent reference: the tanh variance map by 200-node probabilists' Gauss-Hermite, chi1 along it,
    0.5 ln chi1 averaged over transitions burn_in..depth-1."""
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    q, vals = q0, []
    for layer in range(depth):
        h = np.sqrt(q) * z
        if layer >= burn_in:
            vals.append(0.5 * np.log(sigma_w2 * np.sum(w / np.cosh(h) ** 4)))
        q = sigma_w2 * np.sum(w * np.tanh(h) ** 2) + sigma_b2
    return float(np.mean(vals))


def test_finite_width_lambda_is_measured_against_mean_field_over_the_same_layers():
    """Red-team finding: finite_width.csv took N (lambda - lambda_MF(q*)) against the deep one-loop coefficient,
    so from q0 = 4 at depth 4 it compared a finite-depth offset times N (+3.6 at sigma_w2 = 3, q0 = 0.2) with
    -1.2. Now both sides are averaged over the measured transitions: the mean-field side against a
    Gauss-Hermite iteration written here (1e-7; the offset is > 0.03), the deviation in collect taken from it."""
    from types import SimpleNamespace

    from pipeline.stages.collect import finite_width_table
    from pipeline.stages.mlp_sweep import finite_depth_theory
    from pipeline.theory.predictions import predictions

    sws, sb2, q0, depth, burn_in = (1.0, 2.0, 3.0), 0.05, 4.0, 4, 1
    cfg = SimpleNamespace(
        net=SimpleNamespace(activation=SimpleNamespace(value="tanh"), sigma_b2=sb2, depth=depth, width=10**6),
        engine=SimpleNamespace(burn_in=burn_in, q0=q0),
    )
    _, iters = predictions("tanh", sws, sb2, depth, q0, 0.5, 1.0)
    fd = finite_depth_theory(cfg, sws, iters, iid=True).set_index("sigma_w2")
    for sw in sws:
        ref = _tanh_layer_average(sw, sb2, q0, depth, burn_in)
        assert abs(fd.lambda_mf_finite_depth[sw] - ref) < 1e-7, (sw, fd.lambda_mf_finite_depth[sw], ref)
    deep = predictions("tanh", sws, sb2, depth, q0, 0.5, 1.0)[0].set_index("sigma_w2").lambda_mf
    assert (fd.lambda_mf_finite_depth - deep).abs().min() > 0.03  # the offset this guards is not small here
    assert fd.lambda_coeff_1overN_finite_depth.notna().all()
    assert finite_depth_theory(cfg, sws, iters, iid=False).lambda_coeff_1overN_finite_depth.isna().all()

    sweep = pd.DataFrame({"activation": "tanh", "width": 64, "depth": depth, "sigma_b2": sb2, "xi": 1.0,
                          "sigma_w2": [2.0], "log_q_L": [0.0], "q_L_theory": [1.0], "log_q_L_se": [0.1],
                          "c_L": [0.5], "c_L_theory": [0.5], "c_L_se": [0.01], "lambda_replica": [0.01],
                          "lambda_replica_se": [0.002], "lambda_mf": [0.05], "lambda_mf_finite_depth": [-0.02],
                          "lambda_coeff_1overN": [-0.9], "lambda_coeff_1overN_finite_depth": [-1.1]})  # fmt: skip
    fw = finite_width_table(sweep)
    assert fw.dlambda_times_N[0] == pytest.approx(64 * 0.03) and fw.dlambda_times_N_one_loop[0] == -1.1


def test_a_job_without_a_measured_crossing_is_said_so_not_called_a_disagreement():
    """Planted-bug drill finding: a NaN measured crossing gave 'DISAGREES: ... = +nan (+nan SE)'."""
    loop = pd.DataFrame({"activation": ["tanh"], "sigma_b2": [0.05], "width": [16], "depth": [50],
                         "crossing_measured": [np.nan], "crossing_se": [np.nan], "crossing_mean_field": [1.76095],
                         "crossing_one_loop": [1.9], "one_loop_status": ["ok"]})  # fmt: skip
    v = one_loop_verdicts(loop).verdict[0]
    assert v.startswith("no measured crossing") and "nan" not in v, v
