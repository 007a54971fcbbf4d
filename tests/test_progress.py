"""Progress reaches logs when output is piped (CI, nohup, SLURM), and a terminal still gets a bar."""

import logging
import re

from pipeline.progress import LogProgress, progress


def test_piped_progress_logs_one_line_per_interval(monkeypatch, caplog):
    monkeypatch.setenv("GINN_PROGRESS_SECONDS", "0")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    caplog.set_level(logging.INFO, logger="ginn.progress")
    bar = progress(range(4), desc="work")
    assert isinstance(bar, LogProgress)  # pytest captures stderr: not a terminal
    assert list(bar) == [0, 1, 2, 3]
    lines = [r.message for r in caplog.records]
    assert lines[0].startswith("work: 1/4 (25%)") and "elapsed" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("work: 4/4 (100%)") and lines[-1].endswith("(done)")


def test_tqdm_disable_silences_progress(monkeypatch, caplog):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("GINN_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO, logger="ginn.progress")
    assert list(progress(range(3), desc="quiet")) == [0, 1, 2]
    assert not caplog.records


def test_a_stage_with_piped_output_prints_progress_lines(run_inprocess, monkeypatch, tmp_path):
    """The stage's own loop reports through `progress` when its output is not a terminal (captured here)."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("GINN_PROGRESS_SECONDS", "0")
    cheap = ["theory.activations=[tanh]", "theory.one_loop.enabled=false", "theory.figures=false"]
    p = run_inprocess("theory", "experiment=smoke", "tracking.enabled=false", *cheap, f"hydra.run.dir={tmp_path / 'o'}")
    assert p.returncode == 0, p.stderr
    assert re.search(r"theory: 1/\d+ \(\d+%\)", p.stdout + p.stderr), p.stdout + p.stderr
