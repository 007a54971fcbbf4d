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
        from pipeline.stages.lifecycle import install_interrupt_handlers
        from pipeline.stages.outputs import staged
        install_interrupt_handlers()
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


# ---- issue 21: a stage never deletes or overwrites a file it did not write --------------------------------


def _foreign(tmp_path):
    x = tmp_path / "thesis_folder"
    (x / "sub").mkdir(parents=True)
    (x / "precious.txt").write_text("mine\n")
    (x / "sub" / "thesis.tex").write_text("\\documentclass{article}\n")
    return x


def _snapshot(path):
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in path.rglob("*")}


@pytest.mark.parametrize(
    "where",
    ["foreign", "other_stage", "cwd", "empty_string", "home", "root", "parent_of_repo", "repo_root", "a_file"],
)
def test_check_out_dir_refuses_what_the_stage_does_not_own_with_one_line(tmp_path, monkeypatch, where):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    other = tmp_path / "lyapunov_out"
    other.mkdir()
    (other / outputs.MARKER).write_text("lyapunov\n")
    (other / "zero_crossings.csv").write_text("x\n")
    (tmp_path / "f.txt").write_text("x\n")
    target = {
        "foreign": _foreign(tmp_path),
        "other_stage": other,
        "cwd": ".",
        "empty_string": "",
        "home": str(tmp_path / "home"),
        "root": "/",
        "parent_of_repo": str(ROOT.parent),
        "repo_root": str(ROOT),
        "a_file": str(tmp_path / "f.txt"),
    }[where]
    with pytest.raises(outputs.ForeignOutputDir) as e:
        outputs.check_out_dir(target, "theory")
    assert "\n" not in str(e.value) and str(e.value).startswith("out_dir=")
    assert isinstance(e.value, __import__("pipeline.config.validate").config.validate.ConfigError)


def test_check_out_dir_accepts_new_empty_own_and_clean_clone_dvc_folders(tmp_path):
    outputs.check_out_dir(tmp_path / "new", "theory")
    (tmp_path / "empty").mkdir()
    outputs.check_out_dir(tmp_path / "empty", "theory")
    hydra_only = tmp_path / "hydra_only"  # Hydra's files of this very job, DVC's .gitignore
    (hydra_only / ".hydra").mkdir(parents=True)
    (hydra_only / "theory.log").write_text("")
    (hydra_only / ".gitignore").write_text("/theory.csv\n")
    outputs.check_out_dir(hydra_only, "theory")
    own = tmp_path / "own"
    own.mkdir()
    (own / outputs.MARKER).write_text("theory\n")
    (own / "anything.csv").write_text("x\n")
    outputs.check_out_dir(own, "theory")
    clone = tmp_path / "clone"  # outputs/report/ of a clean clone without the marker: .gitignore + DVC metrics
    clone.mkdir()
    for name in (".gitignore", "metrics.json", "summary.csv"):
        (clone / name).write_text("{}\n")
    outputs.check_out_dir(clone, "report")
    with pytest.raises(outputs.ForeignOutputDir):
        outputs.check_out_dir(clone, "theory")  # summary.csv is not a theory output


def test_staged_with_an_owner_refuses_a_foreign_folder_untouched_and_marks_its_own(tmp_path):
    x = _foreign(tmp_path)
    before = _snapshot(x)
    with pytest.raises(outputs.ForeignOutputDir):
        with staged(x, owner="theory") as folder:
            (folder / "theory.csv").write_text("new\n")
    assert _snapshot(x) == before and _no_staging(tmp_path)
    out = tmp_path / "theory"
    for _ in range(2):  # the marker is written the same each time (committed in git for outputs/<stage>/)
        with staged(out, owner="theory") as folder:
            (folder / "theory.csv").write_text("new\n")
        assert (out / outputs.MARKER).read_text() == "theory\n"
    with staged(out) as folder:  # a writer that names no stage (collect) keeps the marker
        (folder / "theory.csv").write_text("newer\n")
    assert (out / outputs.MARKER).read_text() == "theory\n"


@pytest.mark.parametrize("arg", ["hydra.run.dir", "out_dir=.", "out_dir=''"])
def test_cli_refuses_a_foreign_output_folder_before_compute_and_leaves_it_alone(run_inprocess, store, tmp_path, arg):
    """The bug: the folder came back holding only theory outputs (precious.txt, sub/thesis.tex deleted), exit 0;
    out_dir=. failed after compute with an EBUSY traceback."""
    x = _foreign(tmp_path)
    before = _snapshot(x)
    repo_before = sorted(p.name for p in ROOT.iterdir())
    args = [f"hydra.run.dir={x}"] if arg == "hydra.run.dir" else [arg, f"hydra.run.dir={tmp_path / 'run'}"]
    p = run_inprocess("theory", *args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out_dir=") and "Traceback" not in p.stderr, p.stderr
    assert _snapshot(x) == before  # not even Hydra's .hydra/ and theory.log are left there
    assert sorted(p.name for p in ROOT.iterdir()) == repo_before
    from tests.conftest import runs

    assert len(runs(store, "theory")) == 0  # refused before any run was opened


# ---- issue 21: a full disk is one line, the run FAILED, nothing half-written --------------------------------


@pytest.mark.slow  # ~7 s: a fresh MLflow store
def test_disk_full_while_writing_fails_the_run_and_leaves_the_old_outputs(tmp_path, store, compose):
    import errno

    from omegaconf import OmegaConf

    from pipeline.stages.runner import run_stage
    from tests.conftest import runs

    out = tmp_path / "theory"
    with staged(out, owner="theory") as folder:
        (folder / "theory.csv").write_text("old\n")
    before = _snapshot(out)
    cfg = compose("theory", f"tracking.uri={store}")
    OmegaConf.update(cfg, "out_dir", str(out), force_add=True)

    def write(result, folder):
        (folder / "theory.csv").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "figures" / "a.png"))

    with pytest.raises(OSError) as e:
        run_stage(cfg, "theory", compute=lambda obj: None, write=write)
    assert e.value.errno == errno.ENOSPC
    assert _snapshot(out) == before and _no_staging(tmp_path)
    assert list(runs(store, "theory").status) == ["FAILED"]


def test_disk_full_is_reported_in_one_line_with_exit_1(capsys):
    """The bug: ENOSPC (on a 64 KiB tmpfs) gave a 53-line traceback; a PNG writer raises another error while
    handling it, so the ENOSPC is found in the exception's context."""
    import errno

    from pipeline.stages.lifecycle import report_error

    def job():
        try:
            raise AttributeError("'_idat' object has no attribute 'fileno'")
        except AttributeError:
            raise OSError(errno.ENOSPC, "No space left on device", "/full/theory/figures/a.png") from None

    def job_chained():
        try:
            raise AttributeError("'_idat' object has no attribute 'fileno'")
        except AttributeError:
            raise OSError(errno.ENOSPC, "No space left on device")  # noqa: B904 - as PIL does

    for func in (job, job_chained):
        try:
            func()
        except OSError as exc:
            code = report_error(exc)
        assert code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: no space left on the device"), err
        assert "Traceback" not in err[0] and ("a.png" in err[0]) == (func is job)


# ---- issue 21 (red team F1-F3, F5-F8): Hydra's writes before the task are put back; links, '~', the store ----


def _users_hydra_folder(tmp_path, kind):
    x = tmp_path / kind
    (x / ".hydra").mkdir(parents=True)
    (x / ".hydra" / "config.yaml").write_text("mine\n")
    if kind == "notes_beside":  # F1: a user's folder with notes and their own .hydra/ and theory.log
        (x / "notes.txt").write_text("precious\n")
        (x / "theory.log").write_text("my log\n")
    else:  # F2: nothing but a user's .hydra/ (config.yaml and notes): not an empty folder
        (x / ".hydra" / "notes.txt").write_text("n\n")
    return x


@pytest.mark.parametrize("kind", ["notes_beside", "hydra_only"])
def test_cli_refusal_puts_back_the_users_hydra_files_and_log_byte_for_byte(run_inprocess, tmp_path, kind):
    """The bug: the refusal deleted the user's .hydra/ (Hydra had overwritten config.yaml first), left a theory.log
    holding the preset warning; a folder holding only a user's .hydra/ counted as empty and was written into."""
    x = _users_hydra_folder(tmp_path, kind)
    before = _snapshot(x)
    p = run_inprocess("theory", "experiment=smoke", f"hydra.run.dir={x}", "tracking.enabled=false")  # smoke: a warning
    assert p.returncode == 2, p.stderr
    assert "error: out_dir=" in p.stderr and ".hydra" in p.stderr
    assert _snapshot(x) == before


def test_cli_rejected_job_in_an_earlier_runs_folder_keeps_that_runs_hydra_files(run_inprocess, tmp_path):
    """The bug (F3): a rejected run overwrote job 0's .hydra/config.yaml and overrides.yaml; collect then labelled
    the earlier job's rows with the rejected run's values."""
    out = tmp_path / "theory"
    with staged(out, owner="theory") as folder:
        (folder / "theory.csv").write_text("earlier run\n")
    (out / ".hydra").mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (out / ".hydra" / name).write_text(f"earlier job's {name}\n")
    (out / "theory.log").write_text("earlier job's log\n")
    before = _snapshot(out)
    p = run_inprocess("theory", "theory.quad.n_nodes=0", f"hydra.run.dir={out}", "tracking.enabled=false")
    assert p.returncode == 2 and "theory.quad.n_nodes" in p.stderr, p.stderr
    assert _snapshot(out) == before


def test_failure_after_validation_in_an_earlier_runs_folder_puts_its_hydra_files_back(tmp_path, compose):
    """F3, disk-full case: the old outputs stayed but .hydra/ described the failed run."""
    import errno

    import hydra.core.utils as hu
    from omegaconf import OmegaConf

    from pipeline.stages.runner import run_stage

    out = tmp_path / "theory"
    with staged(out, owner="theory") as folder:
        (folder / "theory.csv").write_text("old\n")
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("earlier job\n")
    before = _snapshot(out)
    hu._save_config(OmegaConf.create({"new": 1}), "config.yaml", out / ".hydra")  # what Hydra does before the task
    hu._save_config(OmegaConf.create(["x=1"]), "overrides.yaml", out / ".hydra")
    assert (out / ".hydra" / "config.yaml").read_text() != "earlier job\n"
    cfg = compose("theory", "tracking.enabled=false")
    OmegaConf.update(cfg, "out_dir", str(out), force_add=True)

    def write(result, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        run_stage(cfg, "theory", compute=lambda obj: None, write=write)
    assert _snapshot(out) == before
    # a job whose outputs were swapped in keeps its own .hydra/ (nothing is put back afterwards)
    hu._save_config(OmegaConf.create({"new": 2}), "config.yaml", out / ".hydra")
    run_stage(cfg, "theory", compute=lambda obj: None, write=lambda r, f: outputs.StageOutput(metrics={}))
    assert "new: 2" in (out / ".hydra" / "config.yaml").read_text() and not outputs._PRIOR


def test_staged_through_a_symlink_keeps_the_link_and_fills_the_folder_it_names(tmp_path):
    """The bug (F5): the user's symlink was replaced by a real folder and left aside as .staging-...-old."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    for text in ("a\n", "b\n"):
        with staged(link, owner="theory") as folder:
            (folder / "theory.csv").write_text(text)
        assert link.is_symlink() and (real / "theory.csv").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_out_dir_with_a_leading_tilde_is_refused_in_one_line(tmp_path):
    """The bug (F7): the check looked at $HOME/gout, the stage wrote to a literal ./~/gout."""
    with pytest.raises(outputs.ForeignOutputDir) as e:
        outputs.check_out_dir("~/gout", "theory")
    assert str(e.value).startswith("out_dir=~/gout") and "'~'" in str(e.value)


@pytest.mark.parametrize("uri", ["sqlite:///{out}/mlflow.db", "{out}/mlruns", "file://{out}/sub/mlruns"])
def test_a_store_inside_the_output_folder_is_refused_before_compute(tmp_path, uri, capsys, compose):
    """The bug (F8): refused only at the swap, after compute, leaving a FAILED run."""
    from omegaconf import OmegaConf

    from pipeline.stages.runner import run_stage

    out = tmp_path / "S"
    out.mkdir()  # Hydra created the run dir
    cfg = compose("theory", f"tracking.uri={uri.format(out=out)}")
    OmegaConf.update(cfg, "out_dir", str(out), force_add=True)

    def compute(obj):
        raise AssertionError("computed")

    with pytest.raises(SystemExit) as e:
        run_stage(cfg, "theory", compute=compute, write=None)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: tracking.uri=") and "inside out_dir" in err[0]
    assert not any(out.iterdir())  # no store created there


def test_the_private_hydra_functions_the_run_dir_guard_wraps_still_exist_and_are_called():
    """Hydra has no public hook between creating a job's run dir and writing into it, so `outputs._guard_hydra`
    wraps `hydra.core.utils._save_config` and `configure_log` (checked with hydra-core 1.3.2-1.3.8; pin
    `hydra-core>=1.3.2,<1.4`). An upgrade that renames them, or whose run_job stops looking them up in the module
    at call time, fails here instead of silently losing the put-back of a user's files."""
    import inspect

    import hydra
    import hydra.core.utils as hu

    assert hydra.__version__.startswith("1.3."), hydra.__version__
    assert getattr(hu._save_config, "_ginn_guard", False) and callable(hu.configure_log)
    src = inspect.getsource(hu.run_job)
    assert "_save_config(" in src and "configure_log(" in src
