"""The figure registry: names unique, inputs produced by the owning stage, report fails on a missing PNG."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from pipeline.plots import prepare
from pipeline.plots.figures import FIGURES, REPORT_FIGURES, draw_stage_figures, stage_figures
from pipeline.stages import report
from pipeline.stages.collect import collect_mlp_sweep
from pipeline.stages.registry import STAGES
from tests.conftest import sweep_of


def test_figure_names_are_unique():
    names = [f.name for f in FIGURES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.name)
def test_needs_are_outputs_of_the_owning_stage(fig):
    spec = STAGES[fig.stage]
    assert "figures" in spec.outs, f"{fig.stage} owns {fig.name} but has no figures/ output"
    assert fig.needs
    for key in fig.needs:
        stage, _, file = key.partition("/")
        assert stage in STAGES, f"{fig.name}: {key}: no stage {stage!r}"
        assert file in (*STAGES[stage].outs, "metrics.json"), f"{fig.name}: {key} is not an output of {stage}"
        assert stage == fig.stage, f"{fig.name}: {key} is not a table of its own stage {fig.stage}"


def test_report_figures_have_sections_and_captions():
    assert REPORT_FIGURES and all(f.section and f.caption for f in REPORT_FIGURES)
    sections = [f.section for f in REPORT_FIGURES]
    # each section is one contiguous block in the report
    assert len(set(sections)) == len([s for i, s in enumerate(sections) if i == 0 or s != sections[i - 1]])


def _fake_outputs(root, skip=()):
    for f in REPORT_FIGURES:
        if f.name in skip:
            continue
        path = root / f.source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG\r\n\x1a\n")


def test_report_names_a_missing_figure(tmp_path):
    gone = REPORT_FIGURES[-1]
    _fake_outputs(tmp_path, skip={gone.name})
    cfg = SimpleNamespace(report=SimpleNamespace(inputs=str(tmp_path)))
    with pytest.raises(FileNotFoundError) as exc:
        report.compute(cfg)
    msg = str(exc.value)
    assert "\n" not in msg and "dvc repro" in msg and str(tmp_path / gone.source) in msg
    assert not any(str(tmp_path / f.source) in msg for f in REPORT_FIGURES if f is not gone)


def test_report_finds_every_figure(tmp_path):
    _fake_outputs(tmp_path)
    found = report.find_figures(tmp_path)
    assert list(found) == [f.name for f in REPORT_FIGURES]


def _layers():
    rows = []
    for act in ("tanh", "relu"):
        for width in (8, 16):
            for sw in (0.5, 1.0, 1.5, 2.0, 2.5):
                for layer in range(4):
                    q = sw**layer
                    rows.append(
                        dict(
                            activation=act, width=width, sigma_w2=sw, layer=layer, q=q, q_theory=q, c=0.5, c_theory=0.5
                        )
                    )
    return pd.DataFrame(rows)


def test_draw_stage_figures_draws_what_its_tables_allow(tmp_path):
    written = draw_stage_figures("mlp_sweep", {"mlp_sweep/layers.csv": _layers()}, tmp_path / "figs")
    assert [p.name for p in written] == ["layer_profiles.png"]
    assert (tmp_path / "figs" / "layer_profiles.png").stat().st_size > 1000
    assert {f.name for f in stage_figures("mlp_sweep")} >= {"layer_profiles.png", "measured_vs_theory.png"}


def test_prepare_helpers():
    assert list(prepare.pick_evenly([3, 1, 2, 2, 5, 4], 3)) == [1, 3, 5]
    w = prepare.widest_first_activation(_layers())
    assert set(w.width) == {16} and set(w.activation) == {"tanh"}
    assert prepare.spectrum_orders(["lambda_2", "lambda_1", "lambda_1_se", "lambda_mf", "lambda_replica"]) == [1, 2]
    curve = prepare.relu_exact_curve(pd.DataFrame({"sigma_w2": [2.0, 2.0], "width": [4, 64]}), n_points=10)
    assert curve.width.min() == 4 and curve.width.max() == 64 and np.isfinite(curve.lambda_exact).all()


def test_one_loop_figure_never_draws_a_value_whose_status_is_not_ok(tmp_path, monkeypatch):
    """Issue 21: gelu's one-loop crossings with status no_crossing were drawn as the 'one loop' line. The line
    keeps the ok widths only; the flagged width carries its status as an annotation."""
    import matplotlib.figure

    from pipeline.plots.one_loop import crossings_vs_inverse_width

    figs = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (figs.append(self), save(self, *a, **k))
    )
    loop = pd.DataFrame({
        "activation": ["gelu"] * 3, "sigma_b2": [0.0] * 3, "depth": [50] * 3, "width": [16, 64, 256],
        "crossing_measured": [3.1, 2.55, 2.43], "crossing_se": [0.03, 0.02, 0.01],
        "crossing_mean_field": [2.0] * 3, "crossing_one_loop": [2.19, 2.26, 2.30], "crossing_exact": [np.nan] * 3,
        "one_loop_status": ["no_crossing", "ok", "ok"],
    })  # fmt: skip
    crossings_vs_inverse_width(loop, tmp_path / "f.png")
    ax = figs[0].axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "one loop, same depth")
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.isnan(y[0]) and y[1:].tolist() == [2.26, 2.30]  # sorted by width: 16 (no_crossing) first
    assert [t.get_text() for t in ax.texts] == ["no_crossing"]


def test_phase_diagram_draws_an_activation_whose_every_value_is_masked(tmp_path):
    """Status before number can leave an activation with no valid chi1 at all (theory.quad.n_nodes=2: every point
    quad_status inaccurate, so NaN); the phase diagram crashed on the empty grid and the stage exited 1."""
    from pipeline.plots.theory import phase_diagram

    chi1 = [np.nan] * 4 + [0.5, 1.0, 0.5, 1.0]
    grid = pd.DataFrame({"activation": ["tanh"] * 4 + ["relu"] * 4, "sigma_w2": [1.0, 2.0] * 4,
                         "sigma_b2": [0.0, 0.0, 0.1, 0.1] * 2, "chi1": chi1})  # fmt: skip
    crit = pd.DataFrame({"activation": ["tanh", "relu"], "sigma_b2": [0.0, 0.0], "sigma_w2_crit": [np.nan, 2.0],
                         "found": [False, True]})  # fmt: skip
    phase_diagram(grid, crit, tmp_path / "phase.png")
    assert (tmp_path / "phase.png").stat().st_size > 0


# ---------------------------------------------------------------- merged sweep figures: one configuration per series
# A merged sweep figure never joins points of different configurations into one line (red-team finding).
#
# measured_vs_theory drew the theory of two sigma_b2 as one zig-zag line and both biases' points in one colour;
# layer_profiles joined curves of different jobs; collapse and one_loop_crossings put jobs that differ in a swept
# config value (engine.q0) on one line. Every series drawn (a line or a set of error-bar points) must belong to one
# configuration: within one series no x value repeats (two configurations on the same grid would repeat it), and a
# line's x runs one way (no zig-zag).

FIGS = ("measured_vs_theory.png", "layer_profiles.png", "finite_width_collapse.png", "one_loop_crossings.png",
        "one_loop_fluctuations.png")  # fmt: skip


def _recorder(monkeypatch, rasterise: bool) -> dict:
    figs = {}
    save = matplotlib.figure.Figure.savefig

    def record(self, path, *a, **kw):
        figs[str(path).rsplit("/", 1)[-1]] = self
        if rasterise:
            return save(self, path, *a, **kw)
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")  # the lines are drawn; layout and PNG encoding skipped

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figs


@pytest.fixture
def drawn(monkeypatch):
    """{png name: matplotlib Figure} of every figure saved while the test runs (built, not rasterised)."""
    return _recorder(monkeypatch, rasterise=False)


@pytest.fixture
def drawn_and_saved(monkeypatch):
    """`drawn`, and each figure saved as a real PNG (the layout and rendering of a merged sweep's figures)."""
    return _recorder(monkeypatch, rasterise=True)


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


def test_a_swept_engine_value_is_never_one_line(tmp_path, drawn_and_saved):
    """Finding 2: `-m engine.q0=0.5,2.0` over two widths: one line per q0 in every figure, named in its title."""
    drawn = drawn_and_saved
    jobs = sweep_of(tmp_path / "jobs", [{"engine": {"q0": q0}, "width": w} for q0 in (0.5, 2.0) for w in (16, 32)])
    collect_mlp_sweep(jobs, tmp_path / "out")
    for name in FIGS:  # real PNGs: the titles naming the swept value survive layout and rendering
        assert (tmp_path / "out" / "figures" / name).stat().st_size > 1000, name
    for name in FIGS:
        assert_one_configuration_per_series(drawn[name], name)
        t = titles(drawn[name])
        assert "engine.q0=0.5" in t and "engine.q0=2" in t, f"{name} does not say which q0: {t}"
    crossing_lines = [s for s in series(drawn["one_loop_crossings.png"]) if s[3]]
    assert crossing_lines and all(len(x) == 2 for _, x, _, _ in crossing_lines)  # across the two widths


# ---------------------------------------------------------------- planted-bug guards: each docstring names the
# one-line bug (planted in a clone, missed by the rest of the suite) and the independent reference it is checked on


def test_widest_network_is_found_by_value_not_by_row_order():
    """Guards prepare.widest_first_activation / widest_per_case: the widest width read from a row position
    (`layers.width.iloc[-1]`, `d.width.iloc[0]`) instead of the maximum; rows here are listed widest first."""
    layers = pd.DataFrame({"activation": ["tanh", "tanh", "relu", "relu", "tanh"], "width": [64, 16, 64, 16, 32],
                           "sigma_b2": [0.05] * 5, "layer": [0] * 5})  # fmt: skip
    w = prepare.widest_first_activation(layers)
    assert w.width.tolist() == [64] and w.activation.tolist() == ["tanh"]
    per = prepare.widest_per_case(layers.iloc[::-1])
    assert sorted(int(d.width.iloc[0]) for d in per) == [64, 64] and all(len(d) == 1 for d in per)


def test_ln_chi1_grid_pivots_chi1_by_its_own_keys():
    """Guards prepare.ln_chi1_grid: the pivot reading a neighbouring column (chi_c) or swapped axes. Reference:
    ReLU chi_1 = sigma_w2 / 2 (docs/science.md §1), rows given in shuffled order."""
    rows = [{"activation": "relu", "sigma_w2": sw, "sigma_b2": sb, "chi1": sw / 2, "chi_c": 1.0}
            for sw in (1.0, 2.0, 4.0) for sb in (0.0, 0.5)]  # fmt: skip
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    g = prepare.ln_chi1_grid(pd.concat([df, df.assign(activation="tanh", chi1=9.0)]), "relu")
    assert list(g.index) == [0.0, 0.5] and list(g.columns) == [1.0, 2.0, 4.0]
    assert np.allclose(g.to_numpy(), np.log([[0.5, 1.0, 2.0]] * 2))
