"""The project root: $GINN_LAB_ROOT, else the ginn-lab checkout the working directory is in, else the package's."""

import shutil

from pipeline import paths
from tests.conftest import ROOT, inprocess


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


def test_a_stage_run_inside_another_checkout_reads_that_checkout(tmp_path, monkeypatch):
    """End to end through the stage's entry point: `python -m pipeline.report` started in a second checkout looks
    for that checkout's outputs (and stops there, naming them), never this one's. In this process (the exit code
    and error line are the CLI's, tests/conftest.py: inprocess), with the working directory in the clone; the
    unit tests above cover repo_root itself."""
    clone = tmp_path / "clone_b"
    clone.mkdir()
    for name in ("conf", "dvc.yaml", "pyproject.toml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, clone / name)
    monkeypatch.delenv("GINN_LAB_ROOT", raising=False)
    monkeypatch.chdir(clone)
    p = inprocess("report", "tracking.enabled=false")
    assert p.returncode != 0
    assert f"report.inputs={clone.resolve() / 'outputs'}" in p.stderr, p.stderr
    assert str(ROOT / "outputs") not in p.stderr
