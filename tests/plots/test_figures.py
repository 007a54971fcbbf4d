"""The figure registry: names unique, inputs produced by the owning stage, report fails on a missing PNG."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.plots import prepare
from pipeline.plots.figures import FIGURES, REPORT_FIGURES, draw_stage_figures, stage_figures
from pipeline.stages import report
from pipeline.stages.registry import STAGES


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
