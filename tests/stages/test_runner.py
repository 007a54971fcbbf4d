"""Guarantee 2 (resume): the matched config hash includes the code version; a resume in any sweep
directory leaves every job's outputs there (copied from the finished run's folder or its artifacts)."""

import json
import shutil

import pytest

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


def test_resume_in_a_new_sweep_dir_leaves_every_jobs_outputs_there(run_inprocess, store, tmp_path, monkeypatch):
    monkeypatch.setenv("GINN_LAB_CODE_VERSION", "pinned-for-this-test")  # others may edit the package meanwhile
    args = ["-m", "net.depth=4", "experiment=smoke", "engine.burn_in=1"]
    p = run_inprocess("mlp_sweep", *args, f"hydra.sweep.dir={tmp_path / 'a'}")
    assert p.returncode == 0, p.stderr
    first = {d.name: read_run_record(d) for d in (tmp_path / "a").glob("[0-9]")}
    for sweep in ("b", "c"):  # b: copied from a's folders; c (a deleted): downloaded from the artifacts
        if sweep == "c":
            shutil.rmtree(tmp_path / "a")
        p = run_inprocess("mlp_sweep", *args, "resume=true", f"hydra.sweep.dir={tmp_path / sweep}")
        assert p.returncode == 0, p.stderr
        for job, run_id in first.items():
            d = tmp_path / sweep / job
            assert read_run_record(d) == run_id and "mlflow_run_id" not in json.loads((d / "metrics.json").read_text())
            assert (d / "sweep.csv").exists() and (d / ".hydra" / "config.yaml").exists()
    df = runs(store, "mlp_sweep")
    assert (df.status == "FINISHED").sum() == 1 + 3  # 1 job + 3 parents: a resumed job adds no run


def test_resume_key_follows_the_contents_of_every_file_the_stage_reads(tmp_path, compose):
    """The bug: theory_outputs/critical_line.csv edited, resume=true reused the FINISHED run (crossing_mean_field
    stayed 1.761 where a fresh run gives 2.5): the key covered the path, not the content."""
    from pipeline.config.validate import to_validated
    from pipeline.stages.runner import resume_key

    theory = tmp_path / "theory"
    theory.mkdir()
    crit = theory / "critical_line.csv"
    crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,1.761\n")
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\n")
    for stage in ("mlp_sweep", "lyapunov", "gauge_scan"):
        obj = to_validated(compose(stage, f"theory_outputs={theory}"))
        logged = {"theory_outputs": str(theory), "seed": 0}
        crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,1.761\n")
        before = resume_key(stage, obj, logged)
        assert resume_key(stage, obj, logged) == before  # stable
        crit.write_text("activation,sigma_b2,xi,sigma_w2_crit\ntanh,0.05,1.0,2.5\n")
        assert resume_key(stage, obj, logged)[0] != before[0], stage
        crit.unlink()  # absent: the stage computes the value itself, another key again
        assert resume_key(stage, obj, logged)[0] not in (before[0],), stage
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\ntanh,0.05,64\n")
    obj = to_validated(compose("mlp_sweep", f"theory_outputs={theory}"))
    k1 = resume_key("mlp_sweep", obj, {})
    (theory / "one_loop_crossings.csv").write_text("activation,sigma_b2,width\ntanh,0.05,128\n")
    assert resume_key("mlp_sweep", obj, {})[0] != k1[0]


def test_report_resume_key_covers_the_stage_tables_and_figures_it_embeds(tmp_path, compose):
    from pipeline.config.validate import to_validated
    from pipeline.stages.runner import resume_key
    from pipeline.stages.stage_inputs import input_files

    obj = to_validated(compose("report", f"report.inputs={tmp_path}"))
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


# ---- the resume key: every value that changes the numbers changes it ----------------------------------------


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _changed(value):
    """Other values of a config leaf, nearest first (the first the stage accepts is used)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2]
    if isinstance(value, float):
        return [value * 1.1 + 1e-3, value * 0.9 - 1e-3, value + 0.5, 0.5]
    if isinstance(value, list) and value and all(isinstance(x, (int, float)) for x in value):
        return [[x * 1.1 if isinstance(x, float) else x + 1 for x in value], value[:-1]]
    if isinstance(value, list) and len(value) > 1:
        return [value[:-1], value[1:]]
    return []


def _text(value) -> str:
    """A value as the command line writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_text(x) for x in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_text(v)}" for k, v in value.items()) + "}"
    return str(getattr(value, "name", value))


class _Key(Exception):
    pass


@pytest.mark.parametrize("stage", ["theory", "mlp_sweep", "lyapunov", "gauge_scan", "ginn_train"])
def test_every_config_value_that_changes_the_numbers_changes_the_resume_key(stage, compose, monkeypatch, tmp_path):
    """The gap planted bugs found: a resume whose only change was the seed reused the finished run. Each leaf of
    the stage's validated config (paths, tracking and bookkeeping keys excepted) is changed in turn: either the
    stage rejects the change (a key it does not read, a value out of range), or the resume key differs."""
    import copy
    import enum

    from omegaconf import OmegaConf

    from pipeline.config.validate import ConfigError
    from pipeline.stages import runner

    monkeypatch.setattr(runner, "install_interrupt_handlers", lambda: None)  # pytest keeps its Ctrl-C
    monkeypatch.setenv("GINN_LAB_CODE_VERSION", "pinned")
    real = runner.resume_key

    def spy(*args):
        raise _Key(real(*args)[0])

    monkeypatch.setattr(runner, "resume_key", spy)
    base = compose(stage, "experiment=smoke", "tracking.enabled=false")
    obj = runner.validate_config(base, stage, [])

    def key_of(cfg):
        with pytest.raises(_Key) as k:
            runner.run_stage(cfg, stage, compute=lambda o: None, write=lambda r, f: None)
        return str(k.value)

    before = key_of(base)
    skip = ("stage", "out_dir", "resume", "tracking.", "sweep.")
    tree = OmegaConf.to_container(OmegaConf.structured(obj), enum_to_str=False)
    accepted, rejected, unchanged = [], [], []
    for key, value in _leaves(tree):
        if key.startswith(skip) or value is None or (isinstance(value, str) and "/" in value):
            continue
        options = [m for m in type(value) if m != value] if isinstance(value, enum.Enum) else _changed(value)
        for new in [o for o in options if o != value]:
            shown = new.name if isinstance(new, enum.Enum) else new
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, key, shown, force_add=False)
            try:
                runner.validate_config(cfg, stage, [f"{key}={_text(shown)}"])
            except ConfigError:
                continue
            accepted.append(key)
            if key_of(cfg) == before:
                unchanged.append(f"{key}={shown}")
            break
        else:
            rejected.append(key)
    assert not unchanged, f"{stage}: the resume key ignores {unchanged}"
    assert "seed" in accepted or stage == "theory", accepted  # theory draws nothing at random
    assert len(accepted) >= 5, (accepted, rejected)


def test_a_resume_whose_only_change_is_the_seed_runs_again(compose, store, monkeypatch):
    """End to end through the store: the same config with resume=true is skipped (the control); with another
    seed it runs and gets its own FINISHED run."""
    from pipeline.stages import runner
    from pipeline.stages.outputs import StageOutput

    monkeypatch.setattr(runner, "install_interrupt_handlers", lambda: None)
    monkeypatch.setenv("GINN_LAB_CODE_VERSION", "pinned")
    computed = []

    def compute(obj):
        computed.append(obj.seed)
        return obj.seed

    def write(seed, folder):
        (folder / "sweep.csv").write_text(f"seed\n{seed}\n")
        return StageOutput(metrics={"seed": seed})

    for seed in (0, 0, 1):
        cfg = compose("mlp_sweep", "experiment=smoke", f"tracking.uri={store}", "resume=true", f"seed={seed}")
        runner.run_stage(cfg, "mlp_sweep", compute=compute, write=write)
    assert computed == [0, 1]
    assert sorted(runs(store, "mlp_sweep").status) == ["FINISHED", "FINISHED"]
