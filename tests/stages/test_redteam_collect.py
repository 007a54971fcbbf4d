"""collect keys every merged table by the job's configuration: tables meet by key, never by position.

Red-team findings: merged tables lost a swept config value (engine.q0, seed, ...) as a key, so two jobs gave two
rows with the same key and different numbers; layers.csv had no sigma_b2/depth/xi column. The job folders here are
synthetic (the tables a real mlp_sweep job writes, with numbers that tell the jobs apart), so no simulation runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.stages import collect
from pipeline.stages.collect import collect_mlp_sweep

SWS = (1.0, 1.5, 2.0, 2.5)
NATURAL = {  # the stage's own key of each merged table (before the swept config values)
    "sweep.csv": ["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2"],
    "finite_width.csv": ["activation", "width", "depth", "sigma_b2", "xi", "sigma_w2"],
    "layers.csv": ["activation", "width", "sigma_w2", "layer"],
    "fluctuations.csv": ["activation", "width", "sigma_b2", "sigma_w2", "layer"],
    "crossings.csv": ["activation", "width", "depth", "sigma_b2", "xi"],
    "one_loop_crossings.csv": ["activation", "width", "depth", "sigma_b2"],
}


def make_job(
    root: Path,
    n: int,
    *,
    activation="tanh",
    width=32,
    depth=6,
    sigma_b2=0.05,
    xi=1.0,
    seed=0,
    engine=None,
    config="yaml",
    loop=None,
) -> Path:
    """A finished mlp_sweep job folder <root>/<n>: tables, metrics.json and .hydra/ (config.yaml or overrides.yaml).

    Every number depends on the job index n (`off`), so rows of different jobs never coincide; the folder, the
    tracking store and the run name differ per job, as in a real sweep. `loop` overrides metrics.json's one-loop
    values (e.g. a `one_loop_status` other than "ok"); the job's run id is in <job>/mlflow_run.json.
    """
    eng = {"n_seeds": 3, "n_pairs": 1, "q0": 1.0, "c0": 0.5, "eps": 1e-3, "burn_in": 2, "n_spectrum": 0,
           "dtype": "float32", "device": "cpu", "memory_budget_gb": 2.0, **(engine or {})}  # fmt: skip
    net = {"activation": activation, "sigma_w2": 1.5, "sigma_b2": sigma_b2, "width": width, "depth": depth,
           "xi": xi, "weights": "gaussian"}  # fmt: skip
    cfg = {
        "stage": "mlp_sweep", "seed": seed, "out_dir": str(root / str(n)), "theory_outputs": "/t/outputs/theory",
        "resume": False, "net": net,
        "tracking": {"enabled": True, "uri": f"sqlite:////tmp/{n}.db", "run_name": f"job {n}", "sqlite_wal": True},
        "engine": eng, "grid": {"sigma_w2": {"start": 1.0, "stop": 2.5, "num": 4}, "refine": 0},
        "fluctuations": {"sigma_w2": [1.5], "n_seeds": 16, "widths": [32]},
    }  # fmt: skip
    job = root / str(n)
    (job / ".hydra").mkdir(parents=True)
    if config == "yaml":
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    elif config == "overrides":  # an older job folder: only the command line's overrides
        over = [f"net.sigma_b2={sigma_b2}", f"engine.q0={eng['q0']}", f"tracking.uri=sqlite:////tmp/{n}.db"]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(over))
    off = 1e-3 * (n + 1)
    q0, sb = eng["q0"], sigma_b2
    meta = {"activation": activation, "width": width, "depth": depth, "sigma_b2": sb, "xi": xi,
            "weights": "gaussian", "dtype": eng["dtype"]}  # fmt: skip
    sweep = []
    for sw in SWS:
        q = sw * q0 + off
        lam = 0.5 * math.log(sw) - 0.2 + off
        sweep.append({**meta, "sigma_w2": sw, "q_L": q, "q_L_se": 0.01, "log_q_L": math.log(q), "log_q_L_se": 0.01,
                      "c_L": 0.5 + off, "c_L_se": 0.01, "chi": sw / 2 + off, "chi_se": 0.01, "lambda_replica": lam,
                      "lambda_replica_se": 0.01, "lambda_tangent": lam, "lambda_tangent_se": 0.01, "n_seeds_used": 3,
                      "n_failed_networks": 0, "excluded": False, "q_L_theory": sw * q0 + sb + 2 * off,
                      "c_L_theory": 0.6 + sb + 2 * off, "chi1": sw / 2 + sb + 2 * off, "lambda_mf": lam + sb + off,
                      "lambda_mf_finite_depth": lam + sb + 1.5 * off, "lambda_coeff_1overN": -0.5 - off,
                      "lambda_coeff_1overN_finite_depth": -0.6 - off})  # fmt: skip
    pd.DataFrame(sweep).to_csv(job / "sweep.csv", index=False)
    layers = [
        {"activation": activation, "width": width, "sigma_w2": sw, "layer": layer,
         "q": q0 * sw ** (layer / depth) + off, "c": 0.5 + 0.01 * layer + off, "chi": sw / 2, "lambda_replica": 0.0,
         "lambda_tangent": 0.0, "q_theory": q0 * sw ** (layer / depth) + sb + 2 * off,
         "c_theory": 0.5 + 0.01 * layer + sb + 2 * off, "chi1_theory": sw / 2}
        for sw in SWS for layer in range(depth + 1)
    ]  # fmt: skip
    pd.DataFrame(layers).to_csv(job / "layers.csv", index=False)
    fl = [
        {"activation": activation, "width": width, "sigma_b2": sb, "sigma_w2": 1.5, "layer": layer,
         "N_var_q": layer + off, "N_var_q_se": 0.1, "N_var_q_one_loop": layer + 2 * off,
         "N_mean_shift": -layer - off, "N_mean_shift_se": 0.1, "N_mean_shift_one_loop": -layer - 2 * off,
         "K": 1.0, "n_networks": 16}
        for layer in range(depth + 1)
    ]  # fmt: skip
    pd.DataFrame(fl).to_csv(job / "fluctuations.csv", index=False)
    metrics = {"crossing_measured": 1.5 + off, "crossing_measured_se": 0.05, "crossing_theory": 1.0 + 2 * off,
               "crossing_one_loop": 1.6 + 3 * off, "crossing_one_loop_deep": 1.55 + off,
               "crossing_mean_field_finite_depth": 1.52 + off, "crossing_exact": None,
               "one_loop_expansion_parameter": 0.06, "one_loop_status": "ok", **(loop or {})}  # fmt: skip
    (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "mlflow_run.json").write_text(json.dumps({"mlflow_run_id": f"run{n}"}))
    return job


def sweep_of(root: Path, jobs: list[dict], **kw) -> Path:
    """A sweep folder with one synthetic job per dict of make_job keywords."""
    root.mkdir(parents=True, exist_ok=True)
    for n, job in enumerate(jobs):
        make_job(root, n, **job, **kw)
    return root


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
