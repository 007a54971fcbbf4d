"""Guarantee 6 (outputs): a stage folder is swapped in as one unit; Hydra's and DVC's files are kept."""

import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.stages import outputs
from pipeline.stages.outputs import staged
from tests.conftest import ROOT


def _old_folder(tmp_path):
    out = tmp_path / "theory"
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").write_text("old config\n")
    (out / ".gitignore").write_text("/theory.csv\n")
    (out / "old_only.csv").write_text("stale\n")
    (out / "theory.csv").write_text("old\n")
    (out / "figures").write_text("a file where the new run writes a folder\n")
    return out


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _no_staging(tmp_path):
    return not [p for p in tmp_path.rglob("*") if p.name.startswith(".staging-")]


def test_successful_rerun_replaces_everything_but_hydra_and_dvc_files_and_keeps_the_open_log(tmp_path):
    out = _old_folder(tmp_path)
    log = open(out / "theory.log", "a")  # Hydra's FileHandler stays open across the swap
    log.write("before\n")
    log.flush()
    with staged(out) as folder:
        (folder / "theory.csv").write_text("new\n")
        (folder / "figures").mkdir()
        (folder / "figures" / "a.png").write_text("png")
    log.write("after\n")
    log.close()
    assert _tree(out) == [
        ".gitignore",
        ".hydra",
        ".hydra/config.yaml",
        "figures",
        "figures/a.png",
        "theory.csv",
        "theory.log",
    ]
    assert (out / "theory.csv").read_text() == "new\n"
    assert (out / "theory.log").read_text() == "before\nafter\n"
    assert (out / ".hydra" / "config.yaml").read_text() == "old config\n"
    assert _no_staging(tmp_path)


@pytest.mark.parametrize("exc", [RuntimeError("writer failed"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_the_old_folder_intact_and_no_staging(tmp_path, exc):
    out = _old_folder(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(type(exc)):
        with staged(out) as folder:
            (folder / "theory.csv").write_text("half")
            raise exc
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _no_staging(tmp_path)


@pytest.mark.parametrize("failing_call", [1, 2])
def test_failure_during_the_swap_rolls_back(tmp_path, monkeypatch, failing_call):
    """A rename failing part-way (read-only parent, ...) leaves the old folder whole, kept files included."""
    out = _old_folder(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = os.rename
    calls = []

    def flaky(src, dst):
        if ".hydra" not in str(src) and ".gitignore" not in str(src):  # the folder renames
            calls.append(src)
            if len(calls) == failing_call:
                raise OSError("simulated: read-only filesystem")
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "rename", flaky)
    with pytest.raises(OSError):
        with staged(out) as folder:
            (folder / "theory.csv").write_text("new")
    monkeypatch.setattr(outputs.os, "rename", real)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _no_staging(tmp_path)


def test_a_swap_cut_by_sigkill_is_repaired_by_the_next_staged(tmp_path):
    out = tmp_path / "theory"
    aside = tmp_path / ".staging-theory-999999999-abcd1234-old"  # a dead pid's folder set aside
    aside.mkdir()
    (aside / "theory.csv").write_text("old\n")
    half = tmp_path / ".staging-theory-999999999-abcd1234"
    half.mkdir()
    with pytest.raises(RuntimeError):
        with staged(out):
            raise RuntimeError("x")
    assert (out / "theory.csv").read_text() == "old\n"
    assert _no_staging(tmp_path)


def test_sigterm_while_writing_leaves_old_outputs_and_no_staging(tmp_path):
    out = _old_folder(tmp_path)
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from pipeline.stages.runner import install_sigterm_handler
        from pipeline.stages.outputs import staged
        install_sigterm_handler()
        with staged(Path({str(out)!r})) as f:
            (f / "theory.csv").write_text("half")
            print("ready", flush=True)
            time.sleep(30)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.terminate()
    p.wait(timeout=30)
    assert p.returncode != 0
    assert (out / "theory.csv").read_text() == "old\n" and (out / "old_only.csv").exists()
    assert _no_staging(tmp_path)
