"""pipeline.stages.collect: the merged tables of a sweep.

collect keys every merged table by the job's configuration: tables meet by key, never by position.

Red-team findings: merged tables lost a swept config value (engine.q0, seed, ...) as a key, so two jobs gave two
rows with the same key and different numbers; layers.csv had no sigma_b2/depth/xi column. The job folders here are
synthetic (the tables a real mlp_sweep job writes, with numbers that tell the jobs apart), so no simulation runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from pipeline.stages import collect
from pipeline.stages.collect import collect_mlp_sweep
from tests.conftest import TANH_SB005, sweep_of

NATURAL = {  # the stage's own key of each merged table (before the swept config values)
    "sweep.csv": ["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2"],
    "finite_width.csv": ["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2"],
    "layers.csv": ["activation", "width", "sigma_w2", "layer"],
    "fluctuations.csv": ["activation", "width", "sigma_b2", "sigma_w2", "layer"],
    "crossings.csv": ["activation", "width", "depth", "sigma_b2", "xi"],
    "one_loop_crossings.csv": ["activation", "width", "depth", "sigma_b2"],
}


@pytest.fixture(autouse=True)
def figures_built_not_rasterised(monkeypatch):
    """collect draws the merged figures: their code runs on every table here, but `savefig` writes a stub instead of
    rasterising (the constrained layout and PNG encoding were ~90% of each test). Real PNGs of merged sweeps:
    tests/plots/test_figures.py (swept engine.q0 and sigma_b2, every figure) and the smoke pipeline's collect."""

    def save(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", save)


def merged(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(out / name) for name in NATURAL}


# a config value that is not a column of the stage's tables: each one, swept, must become a key of every table
SWEPT = {
    "engine.q0": {"engine": {"q0": 0.5}},
    "engine.c0": {"engine": {"c0": 0.9}},
    "engine.burn_in": {"engine": {"burn_in": 4}},
    "engine.n_seeds": {"engine": {"n_seeds": 8}},
    "engine.eps": {"engine": {"eps": 1e-6}},
    "seed": {"seed": 7},
}


@pytest.mark.parametrize("leaf", sorted(SWEPT))
def test_a_swept_config_value_is_a_key_of_every_merged_table(tmp_path, leaf):
    jobs = sweep_of(tmp_path / "jobs", [{}, SWEPT[leaf]])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    tables = merged(tmp_path / "out")
    for name, table in tables.items():
        assert leaf in table.columns, f"{name} lost the swept {leaf}"
        assert table[leaf].nunique() == 2, name
        key = [*NATURAL[name], leaf]
        assert not table.duplicated(key).any(), f"{name}: two rows share the key {key}"
    assert metrics["swept_keys"] == [leaf]
    loop = tables["one_loop_crossings.csv"]  # the dvc plots line: one per configuration
    assert loop.group.nunique() == 2 and all(leaf in g for g in loop.group)


def test_before_the_fix_the_key_had_two_rows_with_different_numbers(tmp_path):
    """The finding as seen in the table: (stage key + engine.q0) is unique and tells the rows' numbers apart."""
    jobs = sweep_of(tmp_path / "jobs", [{"engine": {"q0": 0.5}}, {"engine": {"q0": 2.0}}])
    collect_mlp_sweep(jobs, tmp_path / "out")
    sweep = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert sweep.duplicated(NATURAL["sweep.csv"]).any()  # the stage's own key alone cannot tell the jobs apart
    by_q0 = sweep.set_index([*NATURAL["sweep.csv"], "engine.q0"]).q_L  # ... the merged key can
    assert by_q0.index.is_unique
    assert by_q0.xs(0.5, level="engine.q0").iloc[0] != by_q0.xs(2.0, level="engine.q0").iloc[0]


def test_layers_and_fluctuations_carry_sigma_b2_depth_and_xi(tmp_path):
    jobs = sweep_of(tmp_path / "jobs", [{"sigma_b2": 0.0}, {"sigma_b2": 0.3}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    for name in ("layers.csv", "fluctuations.csv"):
        t = pd.read_csv(tmp_path / "out" / name)
        assert {"sigma_b2", "depth", "xi"} <= set(t.columns), f"{name}: {list(t.columns)}"
        assert sorted(t.sigma_b2.unique()) == [0.0, 0.3]
        assert not t.duplicated(["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2", "layer"]).any()
    assert metrics["swept_keys"] == ["sigma_b2"]


def test_depth_and_xi_swept_keep_their_rows_apart(tmp_path):
    jobs = sweep_of(tmp_path / "jobs", [{"depth": 6, "xi": 1.0}, {"depth": 8, "xi": 1.0}, {"depth": 6, "xi": 2.0}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    assert sorted(metrics["swept_keys"]) == ["depth", "xi"]
    tables = merged(tmp_path / "out")
    for name, t in tables.items():
        key = list(dict.fromkeys([*NATURAL[name], "depth", "xi"]))
        assert not t.duplicated(key).any(), name
    assert tables["one_loop_crossings.csv"].group.nunique() == 3


def test_bookkeeping_values_are_not_keys(tmp_path):
    """out_dir, tracking uri and run name differ per job: not configuration, so no column and no extra line."""
    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}, {"width": 32}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    assert metrics["swept_keys"] == ["width"]
    assert collect.swept_keys(collect.job_dirs(jobs))[0] == ["width"]
    loop = pd.read_csv(tmp_path / "out" / "one_loop_crossings.csv")
    assert loop.group.nunique() == 1  # one line across the widths
    assert not [c for c in loop.columns if c.startswith(("tracking", "out_dir"))]


def test_overrides_yaml_is_the_fallback_for_the_swept_values(tmp_path):
    jobs = sweep_of(tmp_path / "jobs", [{"engine": {"q0": 0.5}}, {"engine": {"q0": 2.0}}], config="overrides")
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    assert metrics["swept_keys"] == ["engine.q0"]
    assert sorted(pd.read_csv(tmp_path / "out" / "sweep.csv")["engine.q0"].unique()) == [0.5, 2.0]


def test_jobs_that_no_config_tells_apart_fail_in_one_line(tmp_path):
    """Two jobs whose tables share a key and whose configs do not differ: refuse, never merge them silently."""
    jobs = sweep_of(tmp_path / "jobs", [{}, {}], config=None)
    with pytest.raises(SystemExit) as exc:
        collect_mlp_sweep(jobs, tmp_path / "out")
    msg = str(exc.value)
    assert "\n" not in msg and "share a key" in msg and "jobs 0, 1" in msg
    assert not (tmp_path / "out" / "sweep.csv").exists()


def test_a_one_loop_value_whose_status_is_not_ok_is_nan_and_leaves_the_headline(tmp_path):
    """Issue 21: gelu's one-loop crossings with status no_crossing (z up to 29) drove one_loop_max_abs_z = 29.2.
    Here job 1's one loop says no_crossing and sits 20 SE off; the ok jobs are 2.2 and 2.4 SE off (hand:
    (1.5 + 1e-3 (n+1) - 1.6 - 3e-3 (n+1)) / 0.05 = -2 - 0.04 (n+1))."""
    far = {"crossing_one_loop": 0.5, "crossing_one_loop_deep": 0.4, "one_loop_status": "no_crossing"}
    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}, {"width": 32, "loop": far}, {"width": 64}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    loop = pd.read_csv(tmp_path / "out" / "one_loop_crossings.csv").set_index("width")
    assert loop.loc[32, ["crossing_one_loop", "crossing_one_loop_deep", "z_one_loop"]].isna().all()
    assert loop.loc[32, "one_loop_status"] == "no_crossing"  # the status stays beside the NaN
    assert loop.loc[32, "crossing_measured"] == pytest.approx(1.502)  # the measurement is not the one loop's
    assert loop.loc[[16, 64], "z_one_loop"].tolist() == pytest.approx([-2.04, -2.12])
    assert metrics["one_loop_max_abs_z"] == pytest.approx(2.12)  # was 20.04: (1.502 - 0.5) / 0.05
    assert metrics["n_excluded_one_loop"] == 1 and metrics["one_loop_excluded_statuses"] == {"no_crossing": 1}
    assert metrics["one_loop_closer_than_mean_field"].endswith("/2")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n_excluded_one_loop"] == 1


def test_a_job_without_a_one_loop_status_is_counted_as_not_derived(tmp_path):
    """xi != 1 jobs record no one-loop status (one loop is derived for i.i.d. weights): they leave the one-loop
    numbers and are counted, instead of a NaN status that names nothing."""
    none = {"crossing_one_loop": None, "crossing_one_loop_deep": None, "one_loop_status": None}
    jobs = sweep_of(tmp_path / "jobs", [{"xi": 1.0}, {"xi": 2.0, "loop": none}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    loop = pd.read_csv(tmp_path / "out" / "one_loop_crossings.csv").set_index("xi")
    assert loop.loc[2.0, "one_loop_status"] == "not_derived" and loop.loc[1.0, "one_loop_status"] == "ok"
    assert metrics["one_loop_excluded_statuses"] == {"not_derived": 1}


def test_run_ids_stay_out_of_the_dvc_tracked_files(tmp_path, monkeypatch):
    """Run ids differ on every run: in metrics.json or crossings.csv (DVC-tracked) they broke dvc.lock's checksums.
    The parent's id goes to mlflow_run.json, each job's to runs.csv (neither is a DVC out)."""
    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}, {"width": 32}])
    (jobs / "mlflow_parent_run.json").write_text(json.dumps({"run_id": "parent0", "uri": "sqlite:///nowhere.db"}))
    import pipeline.tracking.run as run

    attached = []
    monkeypatch.setattr(run, "attach_to_run", lambda *a, **k: attached.append(a))
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    out = tmp_path / "out"
    assert "mlflow_run_id" not in metrics and "parent0" not in (out / "metrics.json").read_text()
    for name in NATURAL:
        assert "run0" not in (out / name).read_text() and "mlflow_run_id" not in (out / name).read_text(), name
    assert json.loads((out / "mlflow_run.json").read_text()) == {"mlflow_run_id": "parent0"}
    runs = pd.read_csv(out / "runs.csv").set_index("width")
    assert runs.mlflow_run_id.to_dict() == {16: "run0", 32: "run1"} and runs.job.tolist() == [0, 1]
    assert attached and attached[0][0] == "parent0"
    dvc = (Path(__file__).parents[2] / "dvc.yaml").read_text()  # neither file is a DVC out
    assert "runs.csv" not in dvc and "mlflow_run.json" not in dvc


def test_a_job_written_before_mlflow_run_json_keeps_its_run_id_from_metrics_json(tmp_path):
    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}])
    (jobs / "0" / "mlflow_run.json").unlink()
    m = json.loads((jobs / "0" / "metrics.json").read_text())
    (jobs / "0" / "metrics.json").write_text(json.dumps({**m, "mlflow_run_id": "old0"}))
    collect_mlp_sweep(jobs, tmp_path / "out")
    assert pd.read_csv(tmp_path / "out" / "runs.csv").mlflow_run_id.tolist() == ["old0"]
    assert "old0" not in (tmp_path / "out" / "crossings.csv").read_text()


def test_merged_tables_are_written_at_ten_significant_digits(tmp_path):
    """Floats printed to 17 digits differ between machines in the last ones (DVC byte checksums): every merged
    CSV goes through pipeline.stages.tables.write_csv. The synthetic log_q_L = log(q) has 16-17 digits."""
    import re

    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}, {"width": 32}])
    collect_mlp_sweep(jobs, tmp_path / "out")
    for name in (*NATURAL, "fluctuations.csv"):
        text = (tmp_path / "out" / name).read_text()
        digits = [len(m.group(1).replace(".", "").lstrip("0")) for m in re.finditer(r"(?<![\w.])(\d+\.\d+)", text)]
        assert digits and max(digits) <= 10, (name, max(digits))
    sweep = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert sweep.log_q_L.iloc[0] == pytest.approx(math.log(1.0 + 1e-3), rel=1e-9)


def _runs(n_widths=3):
    """A sweep's child runs as mlflow.search_runs returns them: per-run out_dir, numeric axes also as metrics."""
    rows = []
    for i, (act, w) in enumerate((a, w) for a in ("tanh", "relu") for w in (16, 32, 64)[:n_widths]):
        rows.append({"run_id": f"r{i}", "params.out_dir": f"/sweep/{i}", "params.net.width": str(w),
                     "metrics.net.width": float(w), "params.net.activation": act, "params.resume": "false",
                     "params.tracking.run_name": f"job {i}", "params.engine.q0": "1.0",
                     "metrics.crossing_measured": 1.0 + 1 / w, "metrics.crossing_measured_se": 0.01})  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_never_groups_by_a_per_run_param():
    """Finding 3: out_dir (one value per job) made every run its own line; it is not configuration."""
    from pipeline.compare import varying_params

    assert varying_params(_runs(), ["metrics.net.width"]) == ["params.net.activation"]
    assert varying_params(_runs(), ["metrics.net.width", "params.net.activation"]) == []


def test_compare_draws_one_line_across_the_swept_axis(tmp_path, monkeypatch, capsys):
    import matplotlib.figure

    from pipeline import compare

    monkeypatch.setattr(compare, "runs_table", lambda *a, **k: _runs())
    figs = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (figs.append(self), save(self, *a, **k))
    )
    out = tmp_path / "c.png"
    args = [
        "--experiment",
        "mlp_sweep",
        "--parent",
        "p",
        "--x",
        "net.width",
        "--y",
        "crossing_measured",
        "--out",
        str(out),
    ]
    assert compare.main(args) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert "params.out_dir" not in table.columns and "params.net.activation" in table.columns
    assert "out_dir" not in capsys.readouterr().out
    lines = [ln for ax in figs[0].axes for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "", " ")]
    assert sorted(len(ln.get_xdata()) for ln in lines) == [3, 3]  # one line per activation across the 3 widths


def test_a_measured_crossing_whose_status_is_not_ok_is_nan_in_both_tables_and_leaves_the_headline(tmp_path):
    """mlp_sweep jobs record crossing_measured_status (e.g. no sign change on the grid): such a job's number is NaN
    in crossings.csv and one_loop_crossings.csv, with its z's, and leaves metrics.json's maxima."""
    bad = {"crossing_measured": 2.5, "crossing_measured_status": "no_sign_change"}
    jobs = sweep_of(tmp_path / "jobs", [{"width": 16}, {"width": 32, "loop": bad}])
    metrics = collect_mlp_sweep(jobs, tmp_path / "out")
    cr = pd.read_csv(tmp_path / "out" / "crossings.csv").set_index("width")
    assert pd.isna(cr.loc[32, "crossing_measured"]) and cr.loc[32, "crossing_measured_status"] == "no_sign_change"
    assert cr.loc[16, "crossing_measured"] == pytest.approx(1.501)
    loop = pd.read_csv(tmp_path / "out" / "one_loop_crossings.csv").set_index("width")
    assert loop.loc[32, ["crossing_measured", "z_one_loop", "z_mean_field"]].isna().all()
    assert metrics["one_loop_max_abs_z"] == pytest.approx(2.04)  # was (2.5 - 1.606) / 0.05 = 17.9
    assert metrics["n_without_measured_crossing"] == 1


def test_collect_refuses_an_out_folder_it_does_not_own_before_merging(tmp_path, capsys):
    """`collect --out <a user's folder>` used to replace the folder wholesale (its staged swap): now one line,
    exit 2, the user's files untouched; the swap still happens into a folder an mlp_sweep run wrote."""
    from pipeline.stages.collect import main

    (tmp_path / "jobs").mkdir()
    mine = tmp_path / "thesis"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "thesis.tex").write_text("precious")
    assert main(["mlp_sweep", "--jobs", str(tmp_path / "jobs"), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out=") and "thesis.tex" not in err[0], err
    assert (mine / "sub" / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in mine.rglob("*")) == ["sub", "thesis.tex"]


# ---------------------------------------------------------------- planted-bug guards: each docstring names the
# one-line bug (planted in a clone, missed by the rest of the suite) and the independent reference it is checked on


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
        "crossing_measured_se": [0.01, 0.02], "crossing_mean_field": [TANH_SB005, TANH_SB005],
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
    has crossing_measured 1.5 + 1e-3 (n + 1) and mlflow_run_id run<n> (tests/conftest.py: make_job), which
    runs.csv keeps (not crossings.csv: run ids stay out of DVC-tracked files)."""
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
