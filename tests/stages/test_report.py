"""The report from stage outputs: every stage figure embedded and copied; summary lists zero crossings."""

import base64
import math
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.plots.figures import REPORT_FIGURES
from pipeline.stages import report
from tests.conftest import ROOT, TANH_SB005, relu_lambda_exact, runs


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


@pytest.fixture
def smoke_outputs(smoke_pipeline):
    """Every stage's outputs at smoke size (the session pipeline, read only: copy before changing anything)."""
    return smoke_pipeline.root


def test_report_embeds_every_figure_and_lists_crossings(smoke_pipeline, smoke_outputs):
    out = smoke_pipeline["report"]  # `python -m pipeline.report report.inputs=<the session outputs>`
    assert list(runs(smoke_pipeline.store, "report").status) == ["FINISHED"]
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


def test_report_names_missing_inputs(run_inprocess, tmp_path):
    p = run_inprocess("report", "tracking.enabled=false", f"report.inputs={tmp_path}", f"hydra.run.dir={tmp_path}/r")
    assert p.returncode != 0 and "report inputs missing" in p.stderr
    assert not (tmp_path / "r" / "report.html").exists()


def test_report_names_a_missing_stage_figure(smoke_pipeline, run_inprocess, tmp_path):
    root = smoke_pipeline.copy_all(tmp_path / "outputs")
    gone = next(f for f in REPORT_FIGURES if f.stage == "mlp_sweep" and f.name == "layer_profiles.png")
    (root / gone.source).unlink()
    p = run_inprocess("report", "tracking.enabled=false", f"report.inputs={root}", f"hydra.run.dir={tmp_path / 'r'}")
    assert p.returncode != 0
    line = next(ln for ln in p.stderr.splitlines() if "report inputs missing" in ln)
    assert str(root / gone.source) in line and "dvc repro" in line
    assert not (tmp_path / "r" / "report.html").exists()


def test_compare_pulls_runs_into_a_table(run_inprocess, store, tmp_path, monkeypatch):
    cheap = ["experiment=smoke", "theory.activations=[tanh]", "theory.one_loop.enabled=false", "theory.figures=false"]
    p = run_inprocess("theory", "-m", "net.sigma_w2=1.0,2.0", *cheap, f"hydra.sweep.dir={tmp_path / 's'}")
    assert p.returncode == 0, p.stderr
    c = run_inprocess("compare", "--experiment", "theory", "--x", "net.sigma_w2", "--y", "final_q", "--uri", store,
                      "--out", str(tmp_path / "cmp.png"))  # fmt: skip
    assert c.returncode == 0, c.stderr
    t = pd.read_csv(tmp_path / "cmp.csv")
    assert list(t["metrics.net.sigma_w2"]) == [1.0, 2.0] and t["metrics.final_q"].notna().all()
    # a second sweep: compare defaults to the newest sweep only and writes into that sweep's folder
    p = run_inprocess("theory", "-m", "net.sigma_w2=3.0", *cheap, f"hydra.sweep.dir={tmp_path / 's2'}")
    assert p.returncode == 0, p.stderr
    monkeypatch.chdir(tmp_path)
    c = run_inprocess("compare", "--experiment", "theory", "--x", "net.sigma_w2", "--y", "final_q", "--uri", store)
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
    g = s[(s.context == "gelu sb2=0 L=50 N=16") & (s.quantity == "one_loop_zero_crossing")].iloc[0]
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

    summary = report.headline(_headline_tables())
    result = report.ReportResult({}, summary, {"lyapunov_crossing_max_abs_diff": 0.1,
                                               "n_excluded_lyapunov_crossing_max_abs_diff": 0}, {}, None)  # fmt: skip
    report.write(result, tmp_path)
    text = (tmp_path / "summary.csv").read_text()
    digits = [len(m.replace(".", "").lstrip("0")) for m in re.findall(r"(?<![\w.])\d+\.\d+", text)]
    assert max(digits) == 10, text  # 2 pi / (pi + 1) and others at 10, never 16-17 (those differ between machines)


# ---------------------------------------------------------------- planted-bug guards: each docstring names the
# one-line bug (planted in a clone, missed by the rest of the suite) and the independent reference it is checked on


def test_verdict_tolerance_is_max_of_two_se_and_0_02():
    """Guards report.one_loop_verdicts: 2 SE -> 3 SE, and the 0.02 floor changed (0.02 -> 0.05 or 0.01).
    Hand: 0.030 off at SE 0.0125 is 2.4 SE > max(0.025, 0.02): disagrees; 0.019 at SE 0.001 is inside the floor."""
    loop = pd.DataFrame({
        "activation": ["tanh"] * 4, "sigma_b2": [0.05] * 4, "width": [64, 128, 256, 512], "depth": [50] * 4,
        "crossing_measured": [1.90, 1.90, 1.819, 1.821], "crossing_se": [0.0125, 0.0125, 0.001, 0.001],
        "crossing_mean_field": [TANH_SB005] * 4, "crossing_one_loop": [1.93, 1.876, 1.80, 1.80],
        "one_loop_status": ["ok"] * 4,
    })  # fmt: skip
    one = report.one_loop_verdicts(loop)
    assert one.tolerance.tolist() == pytest.approx([0.025, 0.025, 0.02, 0.02])
    assert one.verdict[0] == "DISAGREES: measured - one loop = -0.030 (-2.4 SE)"
    assert one.verdict[1] == "agrees"  # 0.024 <= 0.025
    assert one.verdict[2] == "agrees"  # 0.019 <= 0.02
    assert one.verdict[3].startswith("DISAGREES: measured - one loop = +0.021")


def _headline_tables() -> dict:
    zc = pd.DataFrame({"activation": ["tanh"], "width": [256], "sigma_b2": [0.05], "xi": [1.0],
                       "crossing_measured": [1.79], "crossing_measured_se": [0.01],
                       "crossing_mean_field": [TANH_SB005]})  # fmt: skip
    crit = pd.DataFrame({"activation": ["relu", "tanh", "tanh"], "sigma_b2": [0.0, 0.0, 0.05], "xi": [1.0] * 3,
                         "sigma_w2_crit": [2.0, 1.0, TANH_SB005]})  # fmt: skip
    len_th = 2 * math.pi / (math.pi + 1)  # relu, xi = 2 (tests/stages/test_finite_width_stages.py)
    th = pd.DataFrame({
        "activation": ["relu", "relu"], "xi": [2.0, 2.0], "sigma_b2": [0.0, 0.0], "width": [256, 32],
        "len_threshold_theory": [len_th, len_th], "len_threshold_measured": [1.55, 1.70],
        "len_threshold_se": [0.01, 0.05],
        "chaos_threshold_theory": [np.inf, np.inf], "chaos_threshold_measured": [np.nan, np.nan],
        "chaos_threshold_se": [np.nan, np.nan],
    })  # fmt: skip
    rfw = pd.DataFrame({"width": [8, 64], "sigma_w2": [2.0, 2.0], "lambda_measured": [-0.08, -0.01],
                        "lambda_measured_se": [0.01, 0.004], "lambda_exact": [relu_lambda_exact(8, 2.0),
                                                                           relu_lambda_exact(64, 2.0)]})  # fmt: skip
    loop = pd.DataFrame({"activation": ["tanh"], "sigma_b2": [0.05], "width": [64], "depth": [50],
                         "crossing_measured": [1.85], "crossing_se": [0.01], "crossing_mean_field": [TANH_SB005],
                         "crossing_one_loop": [1.84], "one_loop_status": ["ok"],
                         "group": ["tanh sb2=0.05 L=50"]})  # fmt: skip
    return {"lyapunov/zero_crossings.csv": zc, "theory/critical_line.csv": crit, "gauge_scan/thresholds.csv": th,
            "lyapunov/relu_finite_width.csv": rfw, "mlp_sweep/one_loop_crossings.csv": loop,
            "ginn_train/metrics.json": {"test_accuracy": 0.9, "dataset": "spirals", "activation": "tanh"}}  # fmt: skip


def test_report_headline_differences_are_measured_minus_theory_at_the_widest_width(monkeypatch):
    """Guards report.headline: sign flip `r.crossing_mean_field - r.crossing_measured`, and the thresholds read at the
    narrowest width (`th.width.min()`) instead of the widest; and report.compute's ReLU finite-width z. Hand
    computation; the exact ReLU exponent from the binomial-digamma sum of docs/science.md §2."""
    tables = _headline_tables()
    s = report.headline(tables)
    zc = s[s.quantity == "lyapunov_zero_crossing"].iloc[0]
    assert zc.difference == pytest.approx(1.79 - TANH_SB005) and zc.theory == TANH_SB005
    crit = s[s.quantity == "critical_sigma_w2_sigma_b2_0"].set_index("activation").theory.to_dict()
    assert crit == {"relu": 2.0, "tanh": 1.0}  # closed forms at sigma_b2 = 0
    thr = s[s.quantity.str.endswith("_threshold")]
    assert len(thr) == 1 and thr.iloc[0].context.endswith("N=256")  # no finite chaos threshold: len only
    assert thr.iloc[0].difference == pytest.approx(1.55 - 2 * math.pi / (math.pi + 1))
    ol = s[s.quantity == "one_loop_zero_crossing"].iloc[0]
    assert ol.difference == pytest.approx(0.01) and ol.context == "tanh sb2=0.05 L=50 N=64"
    rf = s[s.quantity == "relu_finite_width_lambda"].set_index("context")
    assert rf.loc["N=8 sigma_w2=2", "difference"] == pytest.approx(-0.08 - relu_lambda_exact(8, 2.0))
    monkeypatch.setattr(report, "find_figures", lambda root: {})
    monkeypatch.setattr(report, "read_tables", lambda root: tables)
    m = report.compute(SimpleNamespace(report=SimpleNamespace(inputs="unused"))).metrics
    z8 = abs(-0.08 - relu_lambda_exact(8, 2.0)) / 0.01
    z64 = abs(-0.01 - relu_lambda_exact(64, 2.0)) / 0.004
    assert m["relu_finite_width_max_z"] == pytest.approx(max(z8, z64))
    assert m["lyapunov_crossing_max_abs_diff"] == pytest.approx(1.79 - TANH_SB005)
    assert m["gauge_threshold_max_abs_diff"] == pytest.approx(1.55 - 2 * math.pi / (math.pi + 1))
    assert m["one_loop_agrees"] == "1/1"


# ---------------------------------------------------------------- issue 24: a verdict on every comparison, provenance


def test_every_row_gets_z_and_a_verdict_and_a_twelve_se_miss_is_flagged():
    """Guards report.judge: z = difference / combined SE, |difference| <= max(2 SE, floor) agrees. The issue's miss:
    the tanh chaos threshold 1.517 +- 0.042 against 1 (12.3 SE) went unflagged. Hand computation."""
    tables = _headline_tables()
    tables["gauge_scan/thresholds.csv"] = pd.DataFrame({
        "activation": ["tanh"], "xi": [1.0], "sigma_b2": [0.0], "width": [256],
        "len_threshold_theory": [1.0], "len_threshold_measured": [1.03], "len_threshold_se": [0.02],
        "chaos_threshold_theory": [1.0], "chaos_threshold_measured": [1.517], "chaos_threshold_se": [0.042],
    })  # fmt: skip
    s = report.headline(tables).set_index("quantity", append=True)
    assert {"z", "verdict", "reason", "combined_se", "section"} <= set(s.columns)
    chaos = s.xs("chaos_threshold", level="quantity").iloc[0]
    assert chaos.z == pytest.approx(0.517 / 0.042) and chaos.verdict == "disagrees"  # 12.3 SE
    assert "12.3 SE" in chaos.reason
    length = s.xs("len_threshold", level="quantity").iloc[0]
    assert length.z == pytest.approx(1.5) and length.verdict == "agrees"  # 0.03 <= 2 x 0.02
    zc = s.xs("lyapunov_zero_crossing", level="quantity").iloc[0]  # 1.79 vs 1.76095: 2.9 SE
    assert zc.z == pytest.approx((1.79 - TANH_SB005) / 0.01) and zc.verdict == "disagrees"
    ol = s.xs("one_loop_zero_crossing", level="quantity").iloc[0]  # 0.01 off at SE 0.01: 1 SE
    assert ol.verdict == "agrees" and ol.z == pytest.approx(1.0)
    acc = s.xs("test_accuracy", level="quantity")
    assert set(acc.verdict) == {"no theory"} and acc.reason.str.startswith("no prediction").all()
    crit = s.xs("critical_sigma_w2_sigma_b2_0", level="quantity")
    assert set(crit.verdict) == {"no measurement"}
    assert set(s.verdict) <= set(report.VERDICTS)


def test_a_row_without_a_valid_status_is_never_a_disagreement_and_gives_its_status_as_reason():
    tables = _headline_tables()
    zc = tables["lyapunov/zero_crossings.csv"]
    tables["lyapunov/zero_crossings.csv"] = zc.assign(crossing_measured=[9.0], excluded=[True])  # 724 SE off
    loop = tables["mlp_sweep/one_loop_crossings.csv"]
    tables["mlp_sweep/one_loop_crossings.csv"] = loop.assign(crossing_one_loop=[9.0], one_loop_status=["no_crossing"])
    s = report.headline(tables)
    z = s[s.quantity == "lyapunov_zero_crossing"].iloc[0]
    assert (z.verdict, z.reason) == ("no theory", "excluded=True")  # every number of the row is masked
    o = s[s.quantity == "one_loop_zero_crossing"].iloc[0]
    assert (o.verdict, o.reason) == ("no theory", "one_loop_status=no_crossing")


def test_section_captions_say_what_agreed_and_what_did_not_with_numbers():
    s = report.headline(_headline_tables())
    text = report.section_verdicts(s[s.section == "Lyapunov exponents"])
    rows = s[s.section == "Lyapunov exponents"]
    n_ok = int((rows.verdict == "agrees").sum())
    assert text.startswith(f"{n_ok} of {len(rows)} comparisons agree")
    assert "lyapunov_zero_crossing tanh sigma_b2=0.05 N=256: 1.79 +- 0.01 against 1.761 (z = +2.9)" in text


def test_summary_csv_has_the_verdict_columns_by_name(smoke_pipeline):
    summary = pd.read_csv(smoke_pipeline["report"] / "summary.csv")
    for col in ("z", "verdict", "reason", "tolerance", "section"):
        assert col in summary.columns
    judged = summary.dropna(subset=["z"])
    assert np.allclose(judged.z, judged.difference / judged.combined_se)
    assert set(summary.verdict) <= set(report.VERDICTS)


def test_dvc_md5_is_dvcs_own_hash_of_files_and_folders(tmp_path):
    """The report's inputs hash against DVC's own code (dvc_data): a file's md5, and a folder's Tree digest (md5 of
    its sorted JSON listing + '.dir'), which dvc.lock records."""
    from dvc_data.hashfile.hash import file_md5
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    from pipeline.stages.report_provenance import dvc_md5

    (tmp_path / "d" / "sub").mkdir(parents=True)
    files = {("b.csv",): b"x\n1\n", ("sub", "a.png"): b"\x89PNG" * 100, ("a.csv",): b"y"}
    tree = Tree()
    for parts, data in files.items():
        (tmp_path / "d").joinpath(*parts).write_bytes(data)
        tree.add(parts, None, HashInfo("md5", file_md5(str((tmp_path / "d").joinpath(*parts)))))
    tree.digest()
    assert dvc_md5(tmp_path / "d" / "b.csv") == file_md5(str(tmp_path / "d" / "b.csv"))
    assert dvc_md5(tmp_path / "d") == tree.hash_info.value


def test_provenance_says_dvc_repro_only_under_dvc_and_compares_inputs_with_dvc_lock(tmp_path, monkeypatch):
    from pipeline.stages import report_provenance as rp

    assert rp.built_by_dvc({"DVC_STAGE": "report", "DVC_ROOT": "/x"})  # what `dvc repro` sets for the stage
    assert not rp.built_by_dvc({}) and not rp.built_by_dvc({"DVC_STAGE": "theory"})
    root = tmp_path / "outputs"
    for key in rp.REPORT_INPUTS:
        path = root / key
        if key.endswith((".csv", ".json")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key)
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "f.png").write_bytes(key.encode())
    lock = {"stages": {"s": {"outs": [{"path": f"outputs/{k}", "md5": rp.dvc_md5(root / k)}
                                      for k in rp.REPORT_INPUTS]}}}  # fmt: skip
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.setattr(rp, "repo_root", lambda: tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    p = rp.collect(root, ["theory"], ("abc123", True))
    assert (p.built_by, p.lock_status, p.dirty) == ("hand-run", "matches dvc.lock", True)
    (root / "lyapunov/zero_crossings.csv").write_text("changed")
    p2 = rp.collect(root, ["theory"], ("abc123", False))
    assert p2.lock_status.startswith(f"1 of {len(rp.REPORT_INPUTS)} inputs differ")
    assert "lyapunov/zero_crossings.csv" in p2.lock_status
    assert p2.inputs_md5 != p.inputs_md5
    monkeypatch.setenv("DVC_STAGE", "report")
    assert rp.collect(root, [], ("abc", False)).built_by == "dvc repro"


def test_the_smoke_report_says_smoke_and_hand_run_in_its_header(smoke_pipeline):
    text = (smoke_pipeline["report"] / "report.html").read_text()
    assert "id='smoke-banner'" in text and "SMOKE PRESET" in text
    stamp = (smoke_pipeline["report"] / "build_stamp.js").read_text()
    assert "Hand-run" in stamp and "Rebuilt by" not in stamp and "<script src='build_stamp.js'>" in text
    assert "on the data set spirals" in text and "ginn.data.name" not in text  # what was run, not the key
    from pipeline.stages.report import NOT_FOUND

    assert f"<td>field</td><td>{NOT_FOUND}</td>" in text  # the smoke pipeline has no field stage


def test_report_inputs_are_dvc_yaml_report_deps():
    """One list: the provenance hashes exactly the outputs the report stage depends on in dvc.yaml."""
    from pipeline.stages.report_provenance import REPORT_INPUTS

    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["deps"]
    assert {f"outputs/{k}" for k in REPORT_INPUTS} == {d for d in deps if d.startswith("outputs/")}


def test_dirty_means_code_or_configs_not_what_dvc_repro_rewrites(tmp_path):
    """`dvc repro` rewrites dvc.lock and the tracked metrics.json files before the report runs: they must not make
    every rebuilt report say "uncommitted changes"; an edited config must."""
    import subprocess

    from pipeline.stages.report_provenance import code_state

    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name in ("dvc.lock", "outputs/theory/metrics.json", "conf/theory.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "outputs/theory/metrics.json").write_text("b\n")
    assert code_state(tmp_path) == (sha, False)
    (tmp_path / "conf/theory.yaml").write_text("b\n")
    assert code_state(tmp_path) == (sha, True)


def test_report_html_does_not_change_with_the_build_stamp(tmp_path):
    """report.html is a DVC output: its bytes must not depend on when or from which commit it was built (else the
    committed dvc.lock never reproduces); the stamp goes to build_stamp.js, which the page loads."""
    from pipeline.stages import report as stage
    from pipeline.stages import report_provenance as rp

    def page(commit, date, built_by):
        prov = rp.Provenance(stages=[], inputs="x", inputs_md5="m", lock_status="matches dvc.lock", commit=commit,
                             dirty=False, date=date, built_by=built_by)  # fmt: skip
        return stage._provenance_html(prov), stage.build_stamp_js(prov)

    (html_a, js_a), (html_b, js_b) = page("a" * 40, "2026-01-01 00:00 UTC", "dvc repro"), page("b" * 40, "2027", "x")
    assert html_a == html_b
    assert "a" * 12 in js_a and "2026-01-01" in js_a and "Rebuilt by" in js_a and "Hand-run" in js_b


def test_the_provenance_names_the_inputs_relative_to_the_checkout(tmp_path):
    """A clone elsewhere builds the same report.html: the inputs folder is named relative to the checkout (it was
    the absolute path, so the committed dvc.lock's report.html hash differed on every other machine)."""
    from pipeline.paths import repo_root
    from pipeline.stages.report_provenance import shown_path

    assert shown_path(repo_root() / "outputs") == "outputs"
    assert shown_path(repo_root() / "outputs" / ".." / "outputs") == "outputs"
    assert shown_path(tmp_path) == str(tmp_path)  # outside the checkout: the user's own folder, in full
