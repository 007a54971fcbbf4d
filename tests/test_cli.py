"""Console scripts and `python -m` entry points, run as a user runs them (issue 13: ginn-theory was broken)."""

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline.stages.registry import STAGES
from tests.conftest import ROOT, inprocess

BIN = Path(sys.executable).parent
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _run(cmd, tmp_path, timeout=120):
    env = {**os.environ, "TQDM_DISABLE": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_console_script_composes_its_own_config(stage, tmp_path, monkeypatch):
    """`ginn-<stage>` is pyproject's `pipeline.cli:<stage>`, and that function composes conf/<stage>.yaml from any
    directory. Here in this process, through the entry-point function the script calls: the installed scripts run
    as real processes in the two tests below (a stage's and a helper's)."""
    name = f"ginn-{stage.replace('_', '-')}"
    assert SCRIPTS[name] == f"pipeline.cli:{stage}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    p = inprocess(stage, "--cfg", "job")
    assert p.returncode == 0, p.stderr
    assert f"stage: {stage}" in p.stdout
    assert not (tmp_path / "mlflow.db").exists()


def test_ginn_theory_runs_the_theory_stage_from_any_directory(tmp_path):
    """The installed console script as a user runs it, in a folder outside the checkout (the smallest theory run:
    one activation, no one-loop tables, no figures)."""
    script = BIN / "ginn-theory"
    if not script.exists():
        pytest.skip("ginn-theory not installed (run `pip install -e .`)")
    out = tmp_path / "out"
    cheap = ["theory.activations=[tanh]", "theory.one_loop.enabled=false", "theory.figures=false"]
    p = _run([str(script), "experiment=smoke", "tracking.enabled=false", *cheap, f"hydra.run.dir={out}"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert (out / "critical_line.csv").is_file() and (out / "metrics.json").is_file()


def test_a_helper_console_script_answers_help_as_a_process(tmp_path):
    """One helper script end to end (the other's entry-point function: the in-process test below)."""
    script = BIN / "ginn-collect"
    if not script.exists():
        pytest.skip("ginn-collect not installed")
    p = _run([str(script), "--help"], tmp_path)
    assert p.returncode == 0 and "usage" in p.stdout.lower(), p.stderr


@pytest.mark.parametrize("name", ["ginn-collect", "ginn-compare"])
def test_helper_scripts_answer_help(name, tmp_path, monkeypatch, capsys):
    """The function each helper script calls (pyproject's entry point) parses the script's own argv."""
    module, _, func = SCRIPTS[name].partition(":")
    assert module == "pipeline.cli"
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        getattr(importlib.import_module(module), func)()
    assert exc.value.code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_python_dash_m_entry_points_compose_their_own_config(stage, monkeypatch, capsys):
    """`python -m pipeline.<stage>` runs the module as `__main__` (here in this process: the console scripts above
    are the real processes)."""
    import runpy

    from hydra.core.global_hydra import GlobalHydra

    from pipeline.stages import lifecycle

    monkeypatch.setattr(lifecycle, "install_interrupt_handlers", lambda: None)  # pytest keeps its Ctrl-C
    monkeypatch.setattr(sys, "argv", [f"pipeline.{stage}", "--cfg", "job"])
    monkeypatch.chdir(ROOT)
    GlobalHydra.instance().clear()
    try:
        runpy.run_module(f"pipeline.{stage}", run_name="__main__", alter_sys=False)
    except SystemExit as exc:
        assert exc.code in (None, 0), capsys.readouterr().err
    finally:
        GlobalHydra.instance().clear()
    assert f"stage: {stage}" in capsys.readouterr().out


def test_plus_on_an_interpolated_key_says_what_hydra_says_for_any_existing_key(run_inprocess, tmp_path):
    """`+out_dir=...` (out_dir is an interpolation): before, 'HydraConfig was not set', a message about our
    internals; now the one line Hydra gives for `+` on any existing key, naming both fixes."""
    p = run_inprocess("mlp_sweep", "experiment=smoke", "tracking.enabled=false", f"+out_dir={tmp_path / 'o'}")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "already at 'out_dir'" in lines[0] and f"'++out_dir={tmp_path / 'o'}'" in lines[0]
    assert "HydraConfig" not in lines[0] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["12.7", "[1, 2]", "null"])
def test_a_type_error_in_a_preset_file_names_its_key(value, tmp_path):
    """A preset's bad value fails while Hydra composes, before any stage code; Hydra names the key only on an
    indented `full_key:` line, which the one-line formatter used to drop (the line named no key)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from pipeline.config.store import register
    from pipeline.stages.lifecycle import one_line

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "bad.yaml").write_text(f"# @package _global_\nnet:\n  width: {value}\n")
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        with pytest.raises(HydraException) as info:
            compose("mlp_sweep", overrides=["experiment=bad", f"hydra.searchpath=[file://{tmp_path}]"])
    GlobalHydra.instance().clear()
    line = one_line(info.value)
    assert line.startswith("net.width: ") and "\n" not in line, line


def test_a_mistyped_preset_lists_the_presets_and_suggests_the_nearest_in_one_line():
    """Issue 24: `experiment=smok` printed "Available options in 'experiment': Config search path:" and nothing
    else (Hydra lists the presets on indented lines, which the one-line formatter dropped)."""
    p = inprocess("theory", "experiment=smok")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    presets = sorted(f.stem for f in (ROOT / "experiments").glob("*.yaml"))
    assert lines == [f"error: experiment=smok: no such preset; did you mean 'smoke'? presets: {', '.join(presets)}"]
