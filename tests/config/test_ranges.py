"""Range, order and size checks of the stage configs: one-line errors naming the key."""

import pytest

from pipeline.config.validate import ConfigError, to_validated
from pipeline.paths import repo_root
from pipeline.stages import hydra_app  # noqa: F401  (registers the repo_root resolver)
from pipeline.stages.registry import STAGES, check_stage
from tests.config.draws import compose_fast

SCHEMAS = sorted(STAGES)

EXPERIMENTS = sorted(p.stem for p in (repo_root() / "experiments").glob("*.yaml"))


def _compose(stage: str, overrides=()):
    """conf/<stage>.yaml composed with `overrides` (out_dir set): `compose_fast`, the composed config reused
    (tests/config/test_validation.py::test_fast_path_agrees_with_a_full_compose checks that shortcut)."""
    return compose_fast(stage, overrides)


@pytest.mark.parametrize(
    "override,key",
    [
        ("net.sigma_w2=-1", "net.sigma_w2"),
        ("net.sigma_w2=0", "net.sigma_w2"),
        ("net.depth=0", "net.depth"),
        ("net.sigma_b2=-0.1", "net.sigma_b2"),
        ("theory.iterate.c0=1.5", "theory.iterate.c0"),
        ("theory.activations=[]", "theory.activations"),
        ("theory.critical_sigma_b2=[0.1,-2]", "theory.critical_sigma_b2"),
    ],
)
def test_range_errors_name_the_key_in_one_line(override, key):
    with pytest.raises(ConfigError) as err:
        to_validated(_compose("theory", [override]))
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg


def test_unknown_activation_is_rejected_by_the_schema():
    with pytest.raises(Exception, match="net.activation"):
        _compose("theory", ["net.activation=foo"])


def test_every_registered_activation_is_a_config_choice():
    from pipeline.activations import ACTIVATIONS

    for name in ACTIVATIONS:
        assert to_validated(_compose("theory", [f"net.activation={name}"])).net.activation.value == name


def _checked(stage, overrides):
    obj = to_validated(_compose(stage, overrides))
    check_stage(obj)
    return obj


@pytest.mark.parametrize(
    "stage,overrides,key",
    [
        # a descending grid once joined theory of sigma_w2 = 1 to the measurement at 3 (issue 13)
        ("mlp_sweep", ["grid.sigma_w2.start=3", "grid.sigma_w2.stop=1"], "grid.sigma_w2"),
        ("theory", ["theory.sigma_w2.start=3", "theory.sigma_w2.stop=1"], "theory.sigma_w2"),
        ("gauge_scan", ["gauge.sigma_w2.start=2", "gauge.sigma_w2.stop=2"], "gauge.sigma_w2"),
        ("mlp_sweep", ["grid.sigma_w2.num=1", "grid.sigma_w2.start=1", "grid.sigma_w2.stop=2"], "grid.sigma_w2"),
        ("lyapunov", ["lyapunov.curves=[{activation: tanh, sigma_w2: {start: 2, stop: 1, num: 3}}]"],
         "lyapunov.curves[0].sigma_w2"),
        ("gauge_scan", ["gauge.xi=[1.0,0.0]"], "gauge.xi"),
        ("gauge_scan", ["gauge.widths=[64,64]"], "gauge.widths"),
        ("theory", ["theory.activations=[tanh,tanh]"], "theory.activations"),
        ("theory", ["theory.sigma_w2_search=[10,0.05]"], "theory.sigma_w2_search"),
        ("lyapunov", ["lyapunov.eps_check.eps=[1e-3,1e-6]"], "lyapunov.eps_check.eps"),
        ("ginn_train", ["ginn.gauge_fixing.xi_gf=[10.0,1.0]"], "ginn.gauge_fixing.xi_gf"),
        # orthogonal weights have no gauge structure: xi would be silently ignored (issue 13)
        ("mlp_sweep", ["net.weights=orthogonal", "net.xi=2.0"], "net.xi"),
        ("lyapunov", ["net.weights=orthogonal", "net.xi=0.5"], "net.xi"),
        ("gauge_scan", ["net.weights=orthogonal"], "net.weights"),
        ("gauge_scan", ["gauge.cases=[]"], "gauge.cases"),
        ("lyapunov", ["lyapunov.curves=[]"], "lyapunov.curves"),
        ("mlp_sweep", ["grid.sigma_w2.start=-1"], "grid.sigma_w2"),
        ("mlp_sweep", ["engine.burn_in=60"], "engine.burn_in"),
        ("theory", ["theory.one_loop.cases=[]"], "theory.one_loop.cases"),
        ("theory", ["theory.one_loop.cases=[{activation: erf},{activation: erf}]"], "theory.one_loop.cases"),
        ("theory", ["theory.one_loop.widths=[64,32]"], "theory.one_loop.widths"),
        # options the chosen optimizer or activation would ignore (issue 14)
        ("ginn_train", ["ginn.train.temperature=0.01"], "ginn.train.temperature"),
        ("ginn_train", ["ginn.train.xi_gf=2.0"], "ginn.train.xi_gf"),
        ("ginn_train", ["ginn.modrelu_offset=-0.3"], "ginn.modrelu_offset"),
    ],
)  # fmt: skip
def test_disordered_grids_and_ignored_options_are_rejected_in_one_line(stage, overrides, key):
    with pytest.raises(ConfigError) as err:
        _checked(stage, overrides)
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg, msg


def test_orthogonal_weights_at_xi_1_are_accepted():
    assert _checked("mlp_sweep", ["net.weights=orthogonal"]).net.weights.value == "orthogonal"


def test_every_stage_has_an_entry_and_a_console_script():
    import tomllib

    import pipeline.cli as cli

    scripts = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["scripts"]
    for name in STAGES:
        assert callable(getattr(cli, name))
        assert scripts[f"ginn-{name.replace('_', '-')}"] == f"pipeline.cli:{name}"
        assert (repo_root() / "pipeline" / (f"{name}/__main__.py" if name == "theory" else f"{name}.py")).is_file()


@pytest.mark.parametrize(
    "stage,overrides,key",
    [
        ("lyapunov", ["lyapunov.relu_finite_width.widths=[10000000]"], "lyapunov.relu_finite_width.widths=10000000"),
        ("lyapunov", ["engine.memory_budget_gb=1e6"], "engine.memory_budget_gb=1e+06"),
        ("mlp_sweep", ["net.width=300000"], "net.width=300000"),
        ("mlp_sweep", ["engine.n_seeds=100000000"], "engine.n_seeds=100000000"),
        ("mlp_sweep", ["fluctuations.n_seeds=100000000", "fluctuations.widths=[256]"], "fluctuations.n_seeds="),
        ("gauge_scan", ["gauge.widths=[16,10000000]"], "gauge.widths=10000000"),
        ("theory", ["theory.sigma_w2.num=10000000", "theory.sigma_b2.num=1000000"], "theory.sigma_w2.num="),
        ("theory", ["net.depth=100000000000"], "net.depth=100000000000"),
        ("ginn_train", ["ginn.width=10000000"], "ginn.width=10000000"),
        ("ginn_train", ["ginn.trainability.width=10000000"], "ginn.trainability.width=10000000"),
        ("ginn_train", ["ginn.gauge_fixing.width=10000000"], "ginn.gauge_fixing.width=10000000"),
    ],
)
def test_every_size_is_checked_against_physical_memory_before_compute(stage, overrides, key):
    with pytest.raises(ConfigError) as err:
        check_stage(to_validated(_compose(stage, overrides)), overrides, preflight=False)
    msg = str(err.value)
    assert msg.startswith(key) and "physical memory" in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "stage,overrides,key",
    [  # red team F20: the line named net.width=32 for every size of one network's working set
        ("mlp_sweep", ["grid.refine=100000000"], "grid.sigma_w2.num + grid.refine (100000005 points)"),
        ("mlp_sweep", ["engine.n_pairs=100000000"], "engine.n_pairs=100000000"),
        ("mlp_sweep", ["engine.n_spectrum=32", "engine.n_seeds=10000000"], "engine.n_spectrum=32"),
        # red team F18: a node count no machine holds ran without a check
        ("theory", ["theory.quad.n_nodes=200000000"], "theory.quad.n_nodes=200000000"),
    ],
)
def test_a_size_over_physical_memory_names_its_own_key(stage, overrides, key):
    with pytest.raises(ConfigError) as err:
        check_stage(to_validated(_compose(stage, ["experiment=smoke", *overrides])), overrides, preflight=False)
    msg = str(err.value)
    assert key in msg.split(":")[0] and "physical memory" in msg and "\n" not in msg, msg


def test_theory_solver_sweeps_are_bounded():
    """red team F19: quad.max_iter=1e12 let unconverged points iterate for hours (bisection ends in ~2100)."""
    with pytest.raises(ConfigError, match=r"^theory\.quad\.max_iter"):
        to_validated(_compose("theory", ["theory.quad.max_iter=1000000000000"]))
    assert to_validated(_compose("theory", ["theory.quad.max_iter=10000"])).theory.quad.max_iter == 10000


def test_a_memory_budget_too_small_is_reported_in_a_unit_that_shows_the_size():
    with pytest.raises(ConfigError, match=r"needs 5 MiB"):  # was "needs 0.00 GiB"
        check_stage(to_validated(_compose("mlp_sweep", ["engine.memory_budget_gb=1e-6"])), [], preflight=False)


def test_format_bytes_keeps_three_significant_digits():
    from pipeline.config.validate import format_bytes

    assert [format_bytes(n) for n in (512, 1536, 5 * 2**20, 720 * 2**30, 1.46 * 2**50)] == [
        "512 B", "1.5 KiB", "5 MiB", "720 GiB", "1.46 PiB"]  # fmt: skip
