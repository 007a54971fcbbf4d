"""Red-team findings on inputs (guarantees 5 and 6): an all-overflow sweep point is excluded, not averaged;
options the rest of the config turns off are rejected; the smallest values of integer fields either work or
are rejected in one line; the report checks its inputs before a run or a folder exists.

The validation itself is checked directly (fast); what only the command line has (Hydra's overrides and
`--config-dir`, the report's pre-run check, exit code 2 and no output folder) through the stage's entry point
in-process (`run_inprocess`); the same exit path through a real process is tested in tests/reliability.
"""

from __future__ import annotations

import math

import pytest

from pipeline.config.errors import ConfigError
from pipeline.stages.registry import check_stage, validate_stage
from tests.config.draws import compose_fast
from tests.conftest import runs

SMOKE = ["experiment=smoke", "tracking.enabled=false"]


def _compose(stage: str, overrides=()):
    """conf/<stage>.yaml composed with `overrides` (out_dir set): `compose_fast`, the composed config reused
    (tests/config/test_validation.py::test_fast_path_agrees_with_a_full_compose checks that shortcut)."""
    return compose_fast(stage, overrides)


def _validated(stage: str, overrides: list[str]):
    """Schema, ranges and the stage's cross-field checks, with `overrides` as the command line's."""
    return validate_stage(_compose(stage, SMOKE + overrides), stage, overrides, preflight=False)


@pytest.mark.parametrize(
    "stage,overrides,key",
    [
        # finding 3: compute broke on these (IndexError at width 1; ValueError at an odd node count after the run began)
        ("mlp_sweep", ["net.width=1"], "net.width"),
        ("lyapunov", ["net.width=1"], "net.width"),
        ("mlp_sweep", ["fluctuations.widths=[1]"], "fluctuations.widths"),
        ("lyapunov", ["lyapunov.relu_finite_width.widths=[1,4]"], "lyapunov.relu_finite_width.widths"),
        ("theory", ["theory.quad.n_nodes=9"], "theory.quad.n_nodes"),
        ("mlp_sweep", ["fluctuations.n_seeds=1"], "fluctuations.n_seeds"),  # a variance of one network: 0/0
        ("ginn_train", ["ginn.gauge_fixing.burn_in_steps=100000"], "ginn.gauge_fixing.burn_in_steps"),
        # finding 2: options that were silently ignored
        ("mlp_sweep", ["net.xi=0.5"], "net.xi"),  # smoke's fluctuation study (one loop: i.i.d. weights only)
        ("mlp_sweep", ["net.weights=orthogonal"], "net.weights"),
        (
            "ginn_train",
            ["ginn.model=ginn", "ginn.trainability.enabled=false", "ginn.mlp_sigma_b2=0.3"],
            "ginn.mlp_sigma_b2",
        ),
        ("ginn_train", ["ginn.trainability.enabled=false", "ginn.trainability.width=4"], "ginn.trainability.width"),
        ("ginn_train", ["ginn.gauge_fixing.enabled=false", "ginn.gauge_fixing.xi_gf=[1,2]"], "ginn.gauge_fixing.xi_gf"),
        ("mlp_sweep", ["grid.refine_halfwidth=0.3"], "grid.refine_halfwidth"),  # smoke: grid.refine=0
        ("mlp_sweep", ["fluctuations.n_seeds=0", "fluctuations.sigma_w2=[2.0]"], "fluctuations.sigma_w2"),
        ("theory", ["theory.one_loop.enabled=false", "theory.one_loop.widths=[8]"], "theory.one_loop.widths"),
        ("theory", ["net.xi=2", "theory.one_loop.widths=[8]"], "theory.one_loop.widths"),  # one loop: xi = 1 only
        # red team F12: a single job at a width outside fluctuations.widths runs no fluctuation study
        ("mlp_sweep", ["net.width=16", "fluctuations.sigma_w2=[1.0,2.0]"], "fluctuations.sigma_w2"),
        ("mlp_sweep", ["net.width=16", "fluctuations.n_seeds=8"], "fluctuations.n_seeds"),
        # red team F13: the Langevin noise seed with adam and no gauge-fixing scan (nothing draws noise)
        (
            "ginn_train",
            ["ginn.train.noise_seed=7", "ginn.trainability.enabled=false", "ginn.gauge_fixing.enabled=false"],
            "ginn.train.noise_seed",
        ),
    ],
)
def test_bad_or_ignored_values_are_rejected_in_one_line_naming_the_key(stage, overrides, key):
    with pytest.raises(ConfigError) as err:
        _validated(stage, overrides)
    msg = str(err.value)
    assert key in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "stage,overrides",
    [
        # the smallest values that compute handles are accepted
        ("mlp_sweep", ["net.width=2", "fluctuations.n_seeds=0"]),
        ("mlp_sweep", ["net.depth=1", "engine.burn_in=0", "engine.n_seeds=2", "engine.n_pairs=1"]),
        ("mlp_sweep", ["fluctuations.n_seeds=2"]),
        ("theory", ["theory.quad.n_nodes=2"]),
        ("ginn_train", ["ginn.width=1", "ginn.depth=1", "ginn.train.batch_size=1"]),
        # the switches themselves, and a dependent option whose switch is on, pass
        ("ginn_train", ["ginn.trainability.enabled=false", "ginn.gauge_fixing.enabled=false"]),
        ("ginn_train", ["ginn.model=both", "ginn.mlp_sigma_b2=0.3"]),
        ("mlp_sweep", ["grid.refine=4", "grid.refine_halfwidth=0.3"]),
        ("mlp_sweep", ["net.xi=0.5", "fluctuations.n_seeds=0", "grid.refine=4"]),
        ("theory", ["net.xi=2"]),  # mean field at xi = 2; the one-loop tables are skipped with a warning
        ("theory", ["theory.one_loop.widths=[8]"]),
        ("mlp_sweep", ["net.width=16"]),  # smoke's fluctuation settings, not the user's, at another width
        ("mlp_sweep", ["net.width=16", "fluctuations.widths=[16]", "fluctuations.sigma_w2=[1.0,2.0]"]),
        ("ginn_train", ["ginn.train.noise_seed=7"]),  # the gauge-fixing scan is Langevin
        ("ginn_train", ["ginn.train.optimizer=langevin", "ginn.train.noise_seed=7", "ginn.gauge_fixing.enabled=false"]),
    ],
)
def test_smallest_working_values_and_active_options_are_accepted(stage, overrides):
    _validated(stage, overrides)


def _mlp_sweep_config(tmp_path, overrides):
    return _validated("mlp_sweep", [f"theory_outputs={tmp_path / 'none'}", "fluctuations.n_seeds=0", *overrides])


def _flagging(monkeypatch, cause: str):
    """mlp_sweep's engine with every network of the last sigma_w2 and 2 of 3 of the one before flagged from
    layer 4 on for `cause` ("overflow" or "vanish"), as the engine leaves it (NaN from there, finite before)."""
    from pipeline.stages import mlp_sweep

    real = mlp_sweep.simulate

    def flagged(spec):
        m = real(spec)
        for s, k in [(0, -1), (1, -1), (2, -1), (0, -2), (1, -2)]:
            k = len(spec.sigma_w2) + k
            m.failed_layer[s, k] = getattr(m, f"{cause}_layer")[s, k] = 4
            m.log_q[s, k, :, 4:] = m.c[s, k, :, 4:] = math.nan
            for a in (m.chi, m.log_growth_replica, m.log_growth_tangent):
                a[s, k, :, 3:] = math.nan
        return m

    monkeypatch.setattr(mlp_sweep, "simulate", flagged)
    return mlp_sweep


def test_the_stage_excludes_points_with_fewer_than_2_finite_networks_and_crosses_without_them(tmp_path, monkeypatch):
    """Fast: the real engine, then overflows injected (`_flagging`): an overflowed network is dropped whole."""
    mlp_sweep = _flagging(monkeypatch, "overflow")
    r = mlp_sweep.compute(_mlp_sweep_config(tmp_path, ["grid.sigma_w2.start=1", "grid.sigma_w2.stop=3"]))
    s = r.sweep
    # before: n_seeds_used 3 and 1, excluded False, estimates from the layers before the overflow
    assert s.n_seeds_used.tolist() == [3, 3, 3, 1, 0] and s.n_failed_networks.tolist() == [0, 0, 0, 2, 3]
    assert s.n_overflowed_networks.tolist() == [0, 0, 0, 2, 3] and s.n_vanished_networks.tolist() == [0] * 5
    assert s.excluded.tolist() == [False, False, False, True, True]
    assert "1 of 3" in s.exclusion_reason[3] and "0 of 3" in s.exclusion_reason[4]
    assert "(2 overflowed, 0 vanished)" in s.exclusion_reason[3], s.exclusion_reason[3]  # the cause, counted
    assert s.lambda_replica[3:].isna().all() and s.q_L[3:].isna().all() and s.chi[3:].isna().all()
    assert s.lambda_replica[:3].notna().all()
    # tanh sigma_b2=0.05 at N=32, L=10 crosses between 1.5 and 2.5: the crossing uses the kept points only
    kept = s[~s.excluded]
    x0, _ = mlp_sweep.zero_crossing(kept.sigma_w2.values, kept.lambda_replica.values, kept.lambda_replica_se.values)
    assert r.crossing["crossing_measured"] == x0 or (math.isnan(x0) and math.isnan(r.crossing["crossing_measured"]))
    assert r.output.metrics["n_excluded_points"] == 2
    layers = r.layers[r.layers.sigma_w2 == s.sigma_w2[4]]
    assert layers.q.isna().all() and layers.lambda_replica.isna().all()  # its layers before the overflow too


def test_a_network_whose_norm_vanished_keeps_its_finite_layers_and_its_point_is_not_excluded(tmp_path, monkeypatch):
    """The same flags for a vanishing norm (q -> 0, physics): dropping these whole failed the default dvc repro."""
    mlp_sweep = _flagging(monkeypatch, "vanish")
    r = mlp_sweep.compute(_mlp_sweep_config(tmp_path, ["grid.sigma_w2.start=1", "grid.sigma_w2.stop=3"]))
    s = r.sweep
    assert s.n_seeds_used.tolist() == [3] * 5 and s.n_failed_networks.tolist() == [0, 0, 0, 2, 3]
    assert s.n_vanished_networks.tolist() == [0, 0, 0, 2, 3] and s.n_overflowed_networks.tolist() == [0] * 5
    assert not s.excluded.any() and s.lambda_replica.notna().all() and s.lambda_replica_se.notna().all()
    assert r.output.metrics["n_excluded_points"] == 0


@pytest.mark.slow
def test_a_sweep_point_where_every_network_overflowed_is_excluded_flagged_and_not_in_the_crossing(tmp_path):
    """The finding's own command, in-process (minutes: the mean-field predictions at q ~ 1e50 dominate)."""
    from pipeline.stages.mlp_sweep import compute

    cfg = _mlp_sweep_config(
        tmp_path,
        ["net.activation=gelu", "net.depth=40", "grid.sigma_w2.start=1", "grid.sigma_w2.stop=100",
         "grid.sigma_w2.num=3"],
    )  # fmt: skip
    r = compute(cfg)
    s = r.sweep.set_index("sigma_w2")
    # before: n_seeds_used=3, excluded=False, lambda_replica 1.72 +- 0.03 from the layers before the overflow
    # (float32: q ~ 50^l passes the float range near layer 22; the engine calls that an overflow)
    assert s.n_failed_networks[100.0] == 3 and s.n_seeds_used[100.0] == 0
    assert s.n_overflowed_networks[100.0] == 3 and s.n_overflowed_networks[50.5] == 3
    assert s.excluded[50.5] and s.excluded[100.0] and not s.excluded[1.0]
    assert "0 of 3" in s.exclusion_reason[100.0]
    assert math.isnan(s.lambda_replica[100.0]) and math.isnan(s.lambda_replica_se[100.0])
    # before: a crossing at 14.9 interpolated towards the excluded point; one kept point has no crossing
    assert math.isnan(r.crossing["crossing_measured"])
    assert r.output.metrics["n_excluded_points"] == 2


def test_refinement_without_a_one_loop_prediction_refines_around_the_mean_field_crossing(tmp_path):
    from pipeline.stages.mlp_sweep import compute

    r = compute(_mlp_sweep_config(tmp_path, ["net.xi=0.5", "grid.refine=4"]))
    assert len(r.sweep) == 5 + 4  # before: 5 (refinement silently skipped)
    assert r.crossing["refine_center_source"] == "mean_field" and math.isfinite(r.crossing["refine_center"])


def test_cli_rejects_an_inactive_override_with_exit_2_one_line_and_no_output_folder(run_inprocess, store, tmp_path):
    """In-process (the command line's entry point, exit code and stderr); the same exit path through a real
    process: tests/reliability/test_inputs_numerics_determinism.py::test_bad_input_subprocess_exits_cleanly..."""
    out = tmp_path / "o"
    p = run_inprocess(
        "ginn_train", *SMOKE[:1], "ginn.model=ginn", "ginn.trainability.enabled=false",
        "ginn.gauge_fixing.enabled=false", "ginn.trainability.width=4", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "ginn.trainability.width" in p.stderr, p.stderr
    assert p.error.startswith("error: ginn.trainability.width"), p.stderr
    assert not out.exists() and runs(store, "ginn_train").empty


def test_cli_rejects_width_1_with_exit_2_and_no_traceback(run_inprocess, store, tmp_path):
    """In-process, as above."""
    out = tmp_path / "o"
    p = run_inprocess("mlp_sweep", *SMOKE[:1], "net.width=1", f"hydra.run.dir={out}")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.error.startswith("error: net.width"), p.stderr
    assert not out.exists() and runs(store, "mlp_sweep").empty


def test_report_with_missing_inputs_names_the_stages_and_the_command_before_any_run(run_inprocess, store, tmp_path):
    """In-process: the report's Hydra entry point runs its preflight inside the job, before the run starts."""
    out = tmp_path / "o"
    (tmp_path / "outputs" / "theory").mkdir(parents=True)
    p = run_inprocess("report", f"report.inputs={tmp_path / 'outputs'}", f"hydra.run.dir={out}")
    # before: FileNotFoundError traceback, exit 1, after the MLflow run was created
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: report.inputs="), line
    assert "dvc repro" in line and "mlp_sweep" in line and "theory/critical_line.csv" in line
    assert not out.exists() and runs(store, "report").empty


def test_report_preflight_names_the_missing_stage_outputs_in_process(tmp_path):
    obj = validate_stage(_compose("report", [f"report.inputs={tmp_path}"]), "report", [], preflight=False)
    check_stage(obj, [], preflight=False)  # a config check alone does not need the files
    with pytest.raises(ConfigError) as err:
        check_stage(obj, [], preflight=True)
    msg = str(err.value)
    assert msg.startswith("report.inputs=") and "\n" not in msg and "dvc repro" in msg and "ginn_train" in msg


@pytest.mark.parametrize(
    "args,key",
    [
        (["--config-dir", "{cd}", "experiment=bad"], "theory.figures=5"),  # a preset: OmegaConf read 5 as true
        (["lyapunov.relu_finite_width.widths=[10000000]"], "lyapunov.relu_finite_width.widths=10000000"),  # size
    ],
)
def test_a_bad_preset_value_or_size_exits_2_with_one_line_before_any_run(run_inprocess, tmp_path, store, args, key):
    """In-process: Hydra reads `--config-dir` and the overrides from the same argv as in a shell."""
    (tmp_path / "cd" / "experiment" / "theory").mkdir(parents=True)
    (tmp_path / "cd" / "experiment" / "bad.yaml").write_text("# @package _global_\n")
    (tmp_path / "cd" / "experiment" / "theory" / "bad.yaml").write_text("theory: {figures: 5}\n")
    out = tmp_path / "runs" / "o"
    stage = "theory" if "experiment=bad" in args else "lyapunov"
    p = run_inprocess(stage, *[a.format(cd=tmp_path / "cd") for a in args], f"tracking.uri={store}",
                      f"hydra.run.dir={out}")  # fmt: skip
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), p.stderr
    assert not out.exists() and runs(store, stage).empty  # no folder, no run
