"""One schema per stage: a key is accepted exactly by the stages whose schema has it, from every source
(command line, experiment preset, a `--config-dir` file), and each range check holds at its boundary."""

import dataclasses
import shutil
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config import schema as sc
from pipeline.config.errors import ConfigError
from pipeline.config.store import register
from pipeline.paths import conf_dir, repo_root
from pipeline.stages import registry
from pipeline.stages.lifecycle import one_line as _one_line
from pipeline.stages.registry import STAGES, logged_params, validate_stage
from tests.config.draws import validate_sourced


def validated(stage: str, *overrides: str, config_dir=None):
    """Validate conf/<stage>.yaml (or `config_dir`'s) with `overrides` as the entry point does: with conf/, by
    `validate_sourced` (the composed config reused, tests/config/draws.py; `test_the_shortcut_agrees_with_a_full
    _compose` below), else composed here."""
    if config_dir is None:
        return validate_sourced(stage, overrides)
    return validated_full(stage, *overrides, config_dir=config_dir)


def validated_full(stage: str, *overrides: str, config_dir=None):
    """Compose conf/<stage>.yaml (or `config_dir`'s) with `overrides` and validate it as the entry point does."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir or conf_dir()), version_base="1.3"):
        cfg = compose(stage, overrides=[*overrides, "out_dir=/tmp/unused"])
        return validate_stage(cfg, stage, list(overrides), preflight=False, sources=(stage, list(overrides)))


def rejected(stage: str, *overrides: str, config_dir=None, validate=validated) -> str:
    """The one-line error the entry point would print for this config."""
    with pytest.raises((ConfigError, HydraException, OmegaConfBaseException)) as info:
        validate(stage, *overrides, config_dir=config_dir)
    line = _one_line(info.value)
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    "stage,overrides",
    [
        ("theory", ["net.width=4"]),  # a key the stage does not read
        ("mlp_sweep", ["experiment=smoke", "grid.refine_halfwidth=0.2"]),  # inactive, after a group choice
        ("ginn_train", ["ginn.train.optimizer=langevin", "ginn.train.xi_gf=2.0"]),  # accepted
    ],
)
def test_the_shortcut_agrees_with_a_full_compose(stage, overrides):
    """`validated` (conf/: the composed config reused) gives what composing for each call gives."""
    outcomes = []
    for validate in (validated, validated_full):
        try:
            outcomes.append(OmegaConf.to_yaml(OmegaConf.structured(validate(stage, *overrides))))
        except (ConfigError, HydraException, OmegaConfBaseException) as exc:
            outcomes.append(f"error: {_one_line(exc)}")
    assert outcomes[0] == outcomes[1]


@pytest.fixture
def conf_copy(tmp_path):
    """A copy of conf/ (with the presets) to use as a `--config-dir`."""
    dest = tmp_path / "conf"
    shutil.copytree(conf_dir(), dest, symlinks=False)
    return dest


@pytest.fixture
def probe_in(monkeypatch):
    """`probe_in(stage)`: a top-level int key `probe` added to that one stage's schema (undone after)."""

    def add(stage: str) -> None:
        spec = STAGES[stage]
        schema = dataclasses.make_dataclass("Probed", [("probe", int, 0)], bases=(spec.schema,))
        monkeypatch.setitem(STAGES, stage, dataclasses.replace(spec, schema=schema))
        register()

    yield add
    monkeypatch.undo()
    register()


@pytest.mark.parametrize("owner", sorted(STAGES))
def test_a_key_added_to_one_stage_schema_is_read_there_and_rejected_by_every_other_stage(probe_in, owner):
    probe_in(owner)
    assert validated(owner, "probe=3").probe == 3
    for stage in sorted(set(STAGES) - {owner}):
        assert rejected(stage, "probe=3").startswith("probe: ")


def test_a_probe_key_in_another_stage_preset_file_is_rejected(probe_in, conf_copy):
    probe_in("theory")
    (conf_copy / "experiment" / "lyapunov" / "probe.yaml").write_text("probe: 3\n")
    (conf_copy / "experiment" / "theory" / "probe.yaml").write_text("probe: 3\n")
    (conf_copy / "experiment" / "probe.yaml").write_text("# @package _global_\n")
    assert validated("theory", "experiment=probe", config_dir=conf_copy).probe == 3
    assert "probe" in rejected("lyapunov", "experiment=probe", config_dir=conf_copy)


@pytest.mark.parametrize(
    "stage,override",
    [
        ("theory", "net.width=4"),
        ("theory", "net.weights=orthogonal"),
        ("theory", "seed=1"),
        ("theory", "engine.n_seeds=3"),
        ("lyapunov", "net.activation=relu"),
        ("gauge_scan", "net.xi=2.0"),
        ("gauge_scan", "net.width=64"),
        ("mlp_sweep", "net.sigma_w2=2.0"),
        ("mlp_sweep", "sweep.refine=2"),  # the retired alias of grid
        ("report", "seed=1"),
        ("ginn_train", "theory_outputs=/tmp"),
    ],
)
def test_a_key_the_stage_does_not_read_is_rejected_naming_it(stage, override):
    key = override.split("=")[0]
    assert rejected(stage, override).startswith(key.split(".")[0])
    assert key.split(".")[-1] in rejected(stage, override)


def test_a_preset_value_the_stage_does_not_read_is_rejected(conf_copy):
    (conf_copy / "experiment" / "theory" / "bad.yaml").write_text("net:\n  width: 4\n")
    (conf_copy / "experiment" / "bad.yaml").write_text("# @package _global_\n")
    assert "width" in rejected("theory", "experiment=bad", config_dir=conf_copy)


def test_a_config_dir_file_value_the_stage_does_not_read_is_rejected(conf_copy):
    text = (conf_copy / "theory.yaml").read_text()
    (conf_copy / "theory.yaml").write_text(text + "net:\n  width: 4\n")
    assert "width" in rejected("theory", config_dir=conf_copy)


@pytest.mark.parametrize(
    "preset,key",
    [
        ("theory:\n  figures: 5\n", "theory.figures=5"),  # OmegaConf alone would read 5 as true
        ("grid:\n  refine_halfwidth: 0.2\n", "grid.refine_halfwidth=0.2"),  # refine=0: inactive
    ],
)
def test_a_preset_value_gets_the_checks_of_the_command_line(conf_copy, preset, key):
    stage = "theory" if key.startswith("theory") else "mlp_sweep"
    (conf_copy / "experiment" / stage / "odd.yaml").write_text(preset)
    (conf_copy / "experiment" / "odd.yaml").write_text("# @package _global_\n")
    line = rejected(stage, "experiment=odd", config_dir=conf_copy)
    assert line.startswith(key)
    if "refine" in key:
        assert "by experiment=odd" in line


@pytest.mark.parametrize(
    "stage,bad,good,key",
    [
        ("mlp_sweep", ["net.depth=12", "engine.burn_in=12"], ["net.depth=12", "engine.burn_in=11"], "engine.burn_in"),
        ("lyapunov", ["lyapunov.relu_finite_width.depth=2", "engine.burn_in=2"],
         ["lyapunov.relu_finite_width.depth=3", "engine.burn_in=2"], "lyapunov.relu_finite_width.depth"),
        ("mlp_sweep", ["engine.n_seeds=1"], ["engine.n_seeds=2"], "engine.n_seeds"),
        ("mlp_sweep", ["engine.c0=1.0"], ["engine.c0=0.999"], "engine.c0"),
        ("mlp_sweep", ["engine.c0=-1.0001"], ["engine.c0=-1.0"], "engine.c0"),
        ("mlp_sweep", ["net.width=1"], ["net.width=2"], "net.width"),
        ("mlp_sweep", ["net.sigma_b2=-0.001"], ["net.sigma_b2=0.0"], "net.sigma_b2"),
        ("mlp_sweep", ["fluctuations.n_seeds=1"], ["fluctuations.n_seeds=2"], "fluctuations.n_seeds"),
        ("theory", ["net.sigma_w2=0.0"], ["net.sigma_w2=1e-9"], "net.sigma_w2"),
        ("theory", ["theory.quad.max_iter=10001"], ["theory.quad.max_iter=10000"], "theory.quad.max_iter"),
        ("theory", ["theory.quad.n_nodes=3"], ["theory.quad.n_nodes=4"], "theory.quad.n_nodes"),
        ("ginn_train", ["ginn.modrelu_offset=0.001", "ginn.activation=modrelu"],
         ["ginn.modrelu_offset=0.0", "ginn.activation=modrelu"], "ginn.modrelu_offset"),
    ],
)  # fmt: skip
def test_each_range_check_holds_at_its_exact_boundary(stage, bad, good, key):
    smoke = ["experiment=smoke"]
    assert rejected(stage, *smoke, *bad).startswith(key)
    obj = validated(stage, *smoke, *good)
    for ov in good:
        k, v = ov.split("=")
        value = obj
        for part in k.split("."):
            value = getattr(value, part)
        assert str(getattr(value, "value", value)) == v or float(value) == float(v)


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("experiment", [None, "smoke", "mlp_sweep_default", "paper_full"])
def test_every_stage_validates_with_every_preset(stage, experiment):
    if stage == "mlp_sweep" and experiment == "mlp_sweep_default":
        # a single job at the default width: the preset's fluctuation study (widths [128]) would not run
        assert "fluctuations" in rejected(stage, f"experiment={experiment}")
        validated(stage, f"experiment={experiment}", "net.width=128")
        return
    ov = [f"experiment={experiment}"] if experiment else []
    assert validated(stage, *ov).stage == stage


def test_defaults_live_in_the_schema_only():
    """conf/<stage>.yaml holds the defaults list, no values (one home: pipeline.config.schema)."""
    import yaml

    for stage in STAGES:
        assert set(yaml.safe_load((conf_dir() / f"{stage}.yaml").read_text())) == {"defaults"}
    cfg = validated("lyapunov")
    assert cfg.engine.dtype == sc.Precision.float64 and cfg.net.depth == 60 and cfg.engine.n_spectrum == 4


def test_one_loop_applies_only_at_xi_1_with_gaussian_weights():
    assert sc.MlpSweepNet().one_loop_applies and sc.TheoryNet().one_loop_applies
    assert not sc.MlpSweepNet(xi=0.5).one_loop_applies and not sc.TheoryNet(xi=2.0).one_loop_applies
    assert not sc.LyapunovNet(weights=sc.WeightDist.orthogonal).one_loop_applies


def test_logged_params_are_every_key_but_tracking():
    obj = validated("gauge_scan", "experiment=smoke")
    logged = logged_params(obj)
    assert "tracking" not in logged and logged["net"] == {"depth": 10, "weights": "gaussian"}
    assert set(logged) == {f.name for f in dataclasses.fields(sc.GaugeScanConfig)} - {"tracking"}


def test_a_gauge_fixing_xi_is_called_xi_gf():
    obj = validated("ginn_train", "ginn.train.optimizer=langevin", "ginn.train.xi_gf=2.0")
    assert obj.ginn.train.xi_gf == 2.0
    assert rejected("ginn_train", "ginn.train.xi=2.0").startswith("ginn.train.xi")


def test_inactive_override_is_rejected_and_its_switch_passes():
    assert rejected("mlp_sweep", "grid.refine_halfwidth=0.2").startswith("grid.refine_halfwidth")
    assert validated("mlp_sweep", "grid.refine=4", "grid.refine_halfwidth=0.2").grid.refine_halfwidth == 0.2
    line = rejected("ginn_train", "ginn.trainability.enabled=false", "ginn.trainability.width=4")
    assert line.startswith("ginn.trainability.width")


def test_the_stage_field_must_name_the_entry_point():
    assert "stage" in rejected("theory", "stage=lyapunov")


def test_registry_has_no_cycle_through_the_report_stage():
    """The registry finds the report's preflight at run time (`StageSpec.preflight`), not by import."""
    code = "import sys, pipeline.stages.registry; print('pipeline.stages.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root(), check=True)
    assert out.stdout.strip() == "False"
    assert registry.get_stage("report").schema is sc.ReportConfig


@pytest.mark.parametrize("stage,override", [("theory", "net.width=4"), ("report", "seed=1")])
def test_cli_exits_2_with_one_line_naming_the_key_and_leaves_nothing(run_inprocess, tmp_path, stage, override):
    """The entry point in-process (exit code, stderr); the same exit path through a real process:
    tests/reliability/test_inputs_numerics_determinism.py::test_bad_input_subprocess_exits_cleanly..."""
    out = tmp_path / "out"
    p = run_inprocess(stage, override, "tracking.enabled=false", f"hydra.run.dir={out}")
    assert p.returncode == 2
    errors = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {override.split('=')[0]}") and p.error == errors[0]
    assert not out.exists()
