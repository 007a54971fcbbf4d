"""The report from stage outputs: every stage figure embedded and copied; summary lists zero crossings."""

import base64
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest

from pipeline.plots.figures import REPORT_FIGURES
from tests.conftest import ROOT

SMOKE_STAGES = ["theory", "lyapunov", "gauge_scan", "ginn_train"]


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.captions, self._cap = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        self._cap = tag == "figcaption"

    def handle_data(self, data):
        if self._cap and data.strip():
            self.captions.append(data)


@pytest.fixture(scope="module")
def smoke_outputs(tmp_path_factory):
    """Every upstream stage at smoke size into a temp outputs/ tree, plus a 2-job mlp_sweep and its merge."""
    root = tmp_path_factory.mktemp("outputs")
    env = {**__import__("os").environ, "TQDM_DISABLE": "1"}
    for stage in SMOKE_STAGES:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                f"pipeline.{stage}",
                "experiment=smoke",
                "tracking.enabled=false",
                f"hydra.run.dir={root / stage}",
                *([f"theory_outputs={root / 'theory'}"] if stage in ("lyapunov", "gauge_scan") else []),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
        assert p.returncode == 0, (stage, p.stderr)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.mlp_sweep",
            "-m",
            "net.width=8,16",
            "experiment=smoke",
            "tracking.enabled=false",
            f"hydra.sweep.dir={root / 'mlp_sweep' / 'jobs'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.collect",
            "mlp_sweep",
            "--jobs",
            str(root / "mlp_sweep" / "jobs"),
            "--out",
            str(root / "mlp_sweep"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    return root


def test_report_embeds_every_figure_and_lists_crossings(smoke_outputs, tmp_path):
    out = tmp_path / "report"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.report",
            "tracking.enabled=false",
            f"report.inputs={smoke_outputs}",
            f"hydra.run.dir={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    parser = _Imgs()
    parser.feed((out / "report.html").read_text())
    present = [f for f in REPORT_FIGURES if (smoke_outputs / f.source).is_file()]
    assert all(f in present for f in REPORT_FIGURES if not f.optional)  # every required figure was drawn
    assert len(parser.srcs) == len(present) == len(parser.captions)
    for f in REPORT_FIGURES:
        if f not in present:  # an optional study that did not run is named, not silently dropped
            assert f"{f.name}: not produced" in (out / "report.html").read_text()
    for src, fig in zip(parser.srcs, present):
        m = re.match(r"data:image/png;base64,(.+)", src)
        assert m
        png = base64.b64decode(m.group(1))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        # the stage's own PNG, embedded and copied as is (the report does not re-draw)
        assert png == (smoke_outputs / fig.source).read_bytes() == (out / "figures" / fig.name).read_bytes()
    summary = pd.read_csv(out / "summary.csv")
    zc = summary[summary.quantity == "lyapunov_zero_crossing"]
    assert len(zc) >= 1 and {"measured", "theory", "difference"} <= set(summary.columns)


def test_summary_accuracy_rows_name_the_activation_and_data_set_that_ginn_train_recorded(smoke_outputs):
    """The accuracy rows used to say 'tanh' and 'digits' whatever ginn.activation and ginn.data.name were."""
    from pipeline.stages.report import headline, read_tables

    tables = read_tables(smoke_outputs)
    gm = tables["ginn_train/metrics.json"]
    assert (gm["activation"], gm["mlp_activation"], gm["dataset"]) == (
        "tanh",
        "tanh",
        "spirals",
    )  # smoke: the old row said "digits"
    gm.update(activation="modrelu", dataset="some_data")
    acc = headline(tables).set_index("quantity").loc[["test_accuracy"]].set_index("context")
    assert acc.activation.to_dict() == {"ginn on some_data": "modrelu", "mlp on some_data": "tanh"}


def test_report_names_missing_inputs(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.report",
            "tracking.enabled=false",
            f"report.inputs={tmp_path}",
            f"hydra.run.dir={tmp_path / 'r'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0 and "report inputs missing" in p.stderr
    assert not (tmp_path / "r" / "report.html").exists()


def test_report_names_a_missing_stage_figure(smoke_outputs, tmp_path):
    root = tmp_path / "outputs"
    shutil.copytree(smoke_outputs, root, ignore=shutil.ignore_patterns("jobs"))
    gone = next(f for f in REPORT_FIGURES if f.stage == "mlp_sweep" and f.name == "layer_profiles.png")
    (root / gone.source).unlink()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.report",
            "tracking.enabled=false",
            f"report.inputs={root}",
            f"hydra.run.dir={tmp_path / 'r'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0
    line = next(ln for ln in p.stderr.splitlines() if "report inputs missing" in ln)
    assert str(root / gone.source) in line and "dvc repro" in line
    assert not (tmp_path / "r" / "report.html").exists()


def test_compare_pulls_runs_into_a_table(run_cli, store, tmp_path):
    p = run_cli("theory", "-m", "net.sigma_w2=1.0,2.0", "experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}")
    assert p.returncode == 0, p.stderr
    c = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.compare",
            "--experiment",
            "theory",
            "--x",
            "net.sigma_w2",
            "--y",
            "final_q",
            "--uri",
            store,
            "--out",
            str(tmp_path / "cmp.png"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert c.returncode == 0, c.stderr
    t = pd.read_csv(tmp_path / "cmp.csv")
    assert list(t["metrics.net.sigma_w2"]) == [1.0, 2.0] and t["metrics.final_q"].notna().all()
    # a second sweep: compare defaults to the newest sweep only and writes into that sweep's folder
    p = run_cli("theory", "-m", "net.sigma_w2=3.0", "experiment=smoke", f"hydra.sweep.dir={tmp_path / 's2'}")
    assert p.returncode == 0, p.stderr
    args = [sys.executable, "-m", "pipeline.compare", "--experiment", "theory", "--x", "net.sigma_w2", "--y", "final_q",
            "--uri", store]  # fmt: skip
    c = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    t = pd.read_csv(tmp_path / "s2" / "compare" / "final_q_vs_net.sigma_w2.csv")
    assert list(t["metrics.net.sigma_w2"]) == [3.0]
    assert not (ROOT / "compare.png").exists() and not (tmp_path / "compare.png").exists()


def test_a_row_whose_status_is_not_ok_never_disagrees_and_leaves_every_headline(monkeypatch):
    """Issue 21: gelu's one-loop crossings with status no_crossing (written as numbers by an older collect) were
    compared, called DISAGREES and counted in one_loop_agrees' denominator; an excluded lyapunov crossing would
    have set lyapunov_crossing_max_abs_diff. Now each such row says why it has no comparison, keeps no number its
    status speaks for, and is counted beside the headline it left."""
    from types import SimpleNamespace

    from pipeline.stages import report
    from tests.stages.test_planted_bugs import TANH_SB005, _headline_tables

    tables = _headline_tables()
    zc = tables["lyapunov/zero_crossings.csv"]
    bad = zc.assign(width=[512], crossing_measured=[2.9], excluded=[True])  # 1.14 off, but excluded
    tables["lyapunov/zero_crossings.csv"] = pd.concat([zc.assign(excluded=[False]), bad], ignore_index=True)
    loop = tables["mlp_sweep/one_loop_crossings.csv"]
    gelu = pd.DataFrame({"activation": ["gelu"], "sigma_b2": [0.0], "width": [16], "depth": [50],
                         "crossing_measured": [3.103], "crossing_se": [0.0329], "crossing_mean_field": [float("nan")],
                         "crossing_one_loop": [2.189], "one_loop_status": ["no_crossing"],
                         "group": ["gelu sb2=0 L=50"]})  # fmt: skip
    tables["mlp_sweep/one_loop_crossings.csv"] = pd.concat([loop, gelu], ignore_index=True)
    s = report.headline(tables)
    g = s[s.context == "gelu sb2=0 L=50 N=16"].iloc[0]
    assert g.status == "one_loop_status=no_crossing" and g.measured == 3.103  # the measurement stays
    assert pd.isna(g.theory) and pd.isna(g.difference)  # was 2.189 and +0.914
    x = s[(s.quantity == "lyapunov_zero_crossing") & (s.status != "ok")].iloc[0]
    assert x.status == "excluded=True" and pd.isna(x.measured) and pd.isna(x.difference)
    verdicts = report.one_loop_verdicts(tables["mlp_sweep/one_loop_crossings.csv"])
    assert verdicts.verdict.tolist() == ["agrees", "no one-loop prediction (no_crossing)"]  # not DISAGREES (27.8 SE)
    monkeypatch.setattr(report, "find_figures", lambda root: {})
    monkeypatch.setattr(report, "read_tables", lambda root: tables)
    m = report.compute(SimpleNamespace(report=SimpleNamespace(inputs="unused"))).metrics
    assert m["one_loop_agrees"] == "1/1" and m["n_excluded_one_loop"] == 1  # was "1/2"
    assert m["lyapunov_crossing_max_abs_diff"] == pytest.approx(1.79 - TANH_SB005)  # was 2.9 - 1.761 = 1.139
    assert m["n_excluded_lyapunov_crossing_max_abs_diff"] == 1
    assert m["n_excluded_gauge_threshold_max_abs_diff"] == 0 and m["n_excluded_relu_finite_width_max_z"] == 0


def test_summary_is_written_at_ten_significant_digits(tmp_path):
    from pipeline.stages import report
    from tests.stages.test_planted_bugs import _headline_tables

    summary = report.headline(_headline_tables())
    result = report.ReportResult({}, summary, {"lyapunov_crossing_max_abs_diff": 0.1,
                                               "n_excluded_lyapunov_crossing_max_abs_diff": 0}, {}, None)  # fmt: skip
    report.write(result, tmp_path)
    text = (tmp_path / "summary.csv").read_text()
    digits = [len(m.replace(".", "").lstrip("0")) for m in re.findall(r"(?<![\w.])\d+\.\d+", text)]
    assert max(digits) == 10, text  # 2 pi / (pi + 1) and others at 10, never 16-17 (those differ between machines)
