"""The project root: $GINN_LAB_ROOT, else the ginn-lab checkout the working directory is in, else the package's."""

import os
import shutil
import subprocess
import sys

from pipeline import paths
from tests.conftest import ROOT


def _checkout(folder, name="ginn-lab"):
    (folder / "conf").mkdir(parents=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    return folder


def test_the_checkout_you_are_in_wins_over_the_one_the_package_was_installed_from(tmp_path, monkeypatch):
    """Issue 24: a console script of clone A's venv run inside clone B wrote into A's outputs and store."""
    monkeypatch.delenv("GINN_LAB_ROOT", raising=False)
    other = _checkout(tmp_path / "clone_b")
    (other / "outputs" / "x").mkdir(parents=True)
    monkeypatch.chdir(other / "outputs" / "x")  # anywhere inside it
    assert paths.repo_root() == other.resolve() != ROOT
    assert paths.default_tracking_uri() == f"sqlite:///{other.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("GINN_LAB_ROOT", str(ROOT))  # the variable still decides when set
    assert paths.repo_root() == ROOT


def test_a_folder_that_is_not_a_ginn_lab_checkout_falls_back_to_the_package_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("GINN_LAB_ROOT", raising=False)
    monkeypatch.chdir(_checkout(tmp_path / "another_hydra_dvc_project", name="someone-else"))
    assert paths.repo_root() == ROOT  # conf/ + dvc.yaml alone is not enough
    monkeypatch.chdir(tmp_path)
    assert paths.repo_root() == ROOT


def test_a_stage_run_inside_another_checkout_reads_that_checkout(tmp_path):
    """End to end: this venv's `python -m pipeline.report` started in a second checkout looks for that checkout's
    outputs (and stops there, naming them), never this one's."""
    clone = tmp_path / "clone_b"
    clone.mkdir()
    for name in ("conf", "dvc.yaml", "pyproject.toml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, clone / name)
    env = {k: v for k, v in os.environ.items() if k != "GINN_LAB_ROOT"}
    p = subprocess.run([sys.executable, "-m", "pipeline.report", "tracking.enabled=false"], cwd=clone, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode != 0
    assert f"report.inputs={clone.resolve() / 'outputs'}" in p.stderr, p.stderr
    assert str(ROOT / "outputs") not in p.stderr
