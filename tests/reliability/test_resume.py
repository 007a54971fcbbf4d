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
