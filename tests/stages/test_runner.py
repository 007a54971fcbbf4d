"""Guarantee 2 (resume): the matched config hash includes the code version; a resume in any sweep
directory leaves every job's outputs there (copied from the finished run's folder or its artifacts)."""

import json
import shutil

from pipeline.stages.outputs import read_run_record
from pipeline.tracking import provenance
from tests.conftest import runs


def test_config_hash_changes_with_the_code_version(monkeypatch):
    tree = {"stage": "theory", "net": {"width": 4}}
    monkeypatch.setattr(provenance, "code_version", lambda: "aaaa")
    a = provenance.config_hash(tree)
    monkeypatch.setattr(provenance, "code_version", lambda: "bbbb")
    assert provenance.config_hash(tree) != a


def test_code_version_follows_the_package_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("GINN_LAB_CODE_VERSION", raising=False)
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "x.py").write_text("A = 1\n")
    monkeypatch.setattr(provenance, "repo_root", lambda: tmp_path)
    provenance.code_version.cache_clear()
    try:
        v1 = provenance.code_version()
        provenance.code_version.cache_clear()
        (tmp_path / "pipeline" / "x.py").write_text("A = 2\n")
        assert provenance.code_version() != v1
    finally:
        provenance.code_version.cache_clear()


def test_resume_in_a_new_sweep_dir_leaves_every_jobs_outputs_there(run_cli, store, tmp_path, monkeypatch):
    monkeypatch.setenv("GINN_LAB_CODE_VERSION", "pinned-for-this-test")  # others may edit the package meanwhile
    args = ["-m", "net.depth=4", "experiment=smoke", "engine.burn_in=1"]
    p = run_cli("mlp_sweep", *args, f"hydra.sweep.dir={tmp_path / 'a'}")
    assert p.returncode == 0, p.stderr
    first = {d.name: read_run_record(d) for d in (tmp_path / "a").glob("[0-9]")}
    for sweep in ("b", "c"):  # b: copied from a's folders; c (a deleted): downloaded from the artifacts
        if sweep == "c":
            shutil.rmtree(tmp_path / "a")
        p = run_cli("mlp_sweep", *args, "resume=true", f"hydra.sweep.dir={tmp_path / sweep}")
        assert p.returncode == 0, p.stderr
        for job, run_id in first.items():
            d = tmp_path / sweep / job
            assert read_run_record(d) == run_id and "mlflow_run_id" not in json.loads((d / "metrics.json").read_text())
            assert (d / "sweep.csv").exists() and (d / ".hydra" / "config.yaml").exists()
    df = runs(store, "mlp_sweep")
    assert (df.status == "FINISHED").sum() == 1 + 3  # 1 job + 3 parents: a resumed job adds no run


def test_resume_key_follows_the_contents_of_every_file_the_stage_reads(tmp_path):
    """The bug: theory_outputs/critical_line.csv edited, resume=true reused the FINISHED run (crossing_theory
    stayed 1.761 where a fresh run gives 2.5): the key covered the path, not the content."""
    from pipeline.config.validate import to_validated
    from pipeline.stages.runner import resume_key
    from tests.config.test_configs import _compose

    theory = tmp_path / "theory"
    theory.mkdir()
    crit = theory / "critical_line.csv"
    crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,1.761\n")
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\n")
    for stage in ("mlp_sweep", "lyapunov", "gauge_scan"):
        obj = to_validated(_compose(stage, [f"theory_outputs={theory}"]))
        logged = {"theory_outputs": str(theory), "seed": 0}
        crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,1.761\n")
        before = resume_key(stage, obj, logged)
        assert resume_key(stage, obj, logged) == before  # stable
        crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,2.5\n")
        assert resume_key(stage, obj, logged)[0] != before[0], stage
        crit.unlink()  # absent: the stage computes the value itself, another key again
        assert resume_key(stage, obj, logged)[0] not in (before[0],), stage
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\ntanh,0.05,64\n")
    obj = to_validated(_compose("mlp_sweep", [f"theory_outputs={theory}"]))
    k1 = resume_key("mlp_sweep", obj, {})
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\ntanh,0.05,128\n")
    assert resume_key("mlp_sweep", obj, {})[0] != k1[0]


def test_report_resume_key_covers_the_stage_tables_and_figures_it_embeds(tmp_path):
    from pipeline.config.validate import to_validated
    from pipeline.stages.runner import resume_key
    from pipeline.stages.stage_inputs import input_files
    from tests.config.test_configs import _compose

    obj = to_validated(_compose("report", [f"report.inputs={tmp_path}"]))
    files = input_files("report", obj)
    names = {str(p.relative_to(tmp_path)) for p in files}
    assert {"lyapunov/zero_crossings.csv", "ginn_train/metrics.json", "mlp_sweep/one_loop_crossings.csv"} <= names
    assert any(n.endswith(".png") for n in names)
    (tmp_path / "lyapunov").mkdir()
    (tmp_path / "lyapunov" / "zero_crossings.csv").write_text("a\n1\n")
    k = resume_key("report", obj, {})
    (tmp_path / "lyapunov" / "zero_crossings.csv").write_text("a\n2\n")
    assert resume_key("report", obj, {})[0] != k[0]


def test_resume_copies_a_finished_runs_folder_only_if_its_outputs_are_unedited(tmp_path, monkeypatch):
    """The bug (F9): metrics.json edited in the finished run's folder (crossing_measured=42), resume=true copied
    it: ownership was checked through mlflow_run.json only. Now the folder must match the digest the run was
    tagged with; else the run's artifacts are downloaded."""
    from types import SimpleNamespace

    from pipeline.stages import runner
    from pipeline.stages.outputs import outputs_digest, staged, write_json, write_run_record

    def write_genuine(folder):
        write_json(folder / "metrics.json", {"crossing_measured": 1.5})
        (folder / "sweep.csv").write_text("sigma_w2,q_L\n1.0,0.17\n")
        digest = outputs_digest(folder)
        write_run_record(folder, "run1")
        return digest

    src = tmp_path / "A"
    with staged(src, owner="mlp_sweep") as folder:
        digest = write_genuine(folder)
    run = SimpleNamespace(data=SimpleNamespace(tags={"outputs_digest": digest}))
    fake = SimpleNamespace(get_run=lambda run_id: run)
    monkeypatch.setattr(runner, "client", lambda uri: fake)
    downloads = []

    def download(run_id, uri, dst):
        downloads.append(run_id)
        write_genuine(dst)

    monkeypatch.setattr(runner, "download_outputs", download)
    runner._reuse_outputs("run1", src, tmp_path / "B", None, "mlp_sweep")
    assert downloads == [] and json.loads((tmp_path / "B" / "metrics.json").read_text())["crossing_measured"] == 1.5
    write_json(src / "metrics.json", {"crossing_measured": 42.0})  # the user's edit
    runner._reuse_outputs("run1", src, tmp_path / "C", None, "mlp_sweep")
    assert downloads == ["run1"]
    assert json.loads((tmp_path / "C" / "metrics.json").read_text())["crossing_measured"] == 1.5
    assert read_run_record(tmp_path / "C") == "run1"
