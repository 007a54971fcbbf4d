"""A merged sweep figure never joins points of different configurations into one line (red-team finding).

measured_vs_theory drew the theory of two sigma_b2 as one zig-zag line and both biases' points in one colour;
layer_profiles joined curves of different jobs; collapse and one_loop_crossings put jobs that differ in a swept
config value (engine.q0) on one line. Every series drawn (a line or a set of error-bar points) must belong to one
configuration: within one series no x value repeats (two configurations on the same grid would repeat it), and a
line's x runs one way (no zig-zag).
"""

from __future__ import annotations

import matplotlib.figure
import numpy as np
import pytest

from pipeline.stages.collect import collect_mlp_sweep
from tests.stages.test_redteam_collect import sweep_of

FIGS = ("measured_vs_theory.png", "layer_profiles.png", "finite_width_collapse.png", "one_loop_crossings.png",
        "one_loop_fluctuations.png")  # fmt: skip


@pytest.fixture
def drawn(monkeypatch):
    """{png name: matplotlib Figure} of every figure saved while the test runs."""
    figs = {}
    save = matplotlib.figure.Figure.savefig

    def record(self, path, *a, **kw):
        figs[str(path).rsplit("/", 1)[-1]] = self
        return save(self, path, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figs


def series(fig):
    """(axes title, x, y, joined) of every data series with 2+ points, reference lines (axhline) left out."""
    out = []
    for ax in fig.axes:
        for line in ax.get_lines():
            x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            if len(x) < 2 or (len(x) == 2 and list(x) == [0.0, 1.0]):  # axhline spans the axes 0..1
                continue
            out.append((ax.get_title(), x, y, line.get_linestyle() not in ("None", "", " ")))
    return out


def assert_one_configuration_per_series(fig, name, require=True):
    found = series(fig)
    assert found or not require, f"{name}: nothing drawn"
    for title, x, y, joined in found:
        ok = np.isfinite(y)
        assert len(np.unique(x[ok])) == ok.sum(), f"{name} [{title}]: a series repeats x (two configurations): {x}"
        if joined and ok.sum() > 1:
            d = np.diff(x[ok])
            assert (d > 0).all() or (d < 0).all(), f"{name} [{title}]: line zig-zags: {x}"


def titles(fig) -> str:
    return " | ".join(ax.get_title() for ax in fig.axes)


def test_two_biases_are_never_one_line(tmp_path, drawn):
    """Finding 1: `-m net.sigma_b2=0.0,0.3` at one width (the default DVC sweep varies sigma_b2 over {0, 0.05})."""
    jobs = sweep_of(tmp_path / "jobs", [{"sigma_b2": 0.0}, {"sigma_b2": 0.3}])
    collect_mlp_sweep(jobs, tmp_path / "out")
    for name in FIGS:  # one width: a crossing is one point per configuration
        assert_one_configuration_per_series(drawn[name], name, require=name != "one_loop_crossings.png")
    for name in ("measured_vs_theory.png", "layer_profiles.png"):
        t = titles(drawn[name])
        assert "sigma_b2=0:" in t and "sigma_b2=0.3:" in t, f"{name} does not say which bias: {t}"


def test_measured_vs_theory_theory_line_is_one_bias(tmp_path, drawn):
    """The theory line of each panel is the mean field of one sigma_b2 (before: drop_duplicates('sigma_w2') mixed)."""
    jobs = sweep_of(tmp_path / "jobs", [{"sigma_b2": 0.0, "width": w} for w in (16, 32)]
                    + [{"sigma_b2": 0.3, "width": w} for w in (16, 32)])  # fmt: skip
    collect_mlp_sweep(jobs, tmp_path / "out")
    fig = drawn["measured_vs_theory.png"]
    assert_one_configuration_per_series(fig, "measured_vs_theory.png")
    theory = [(t, y) for t, x, y, joined in series(fig) if joined]
    assert len(theory) == 8  # 2 biases x 4 panels, each one line


def test_a_swept_engine_value_is_never_one_line(tmp_path, drawn):
    """Finding 2: `-m engine.q0=0.5,2.0` over two widths: one line per q0 in every figure, named in its title."""
    jobs = sweep_of(tmp_path / "jobs", [{"engine": {"q0": q0}, "width": w} for q0 in (0.5, 2.0) for w in (16, 32)])
    collect_mlp_sweep(jobs, tmp_path / "out")
    for name in FIGS:
        assert_one_configuration_per_series(drawn[name], name)
        t = titles(drawn[name])
        assert "engine.q0=0.5" in t and "engine.q0=2" in t, f"{name} does not say which q0: {t}"
    crossing_lines = [s for s in series(drawn["one_loop_crossings.png"]) if s[3]]
    assert crossing_lines and all(len(x) == 2 for _, x, _, _ in crossing_lines)  # across the two widths
