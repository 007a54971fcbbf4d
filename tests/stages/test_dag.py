"""The DVC DAG: shape, and that changing one stage's params invalidates only that stage (and what follows)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

DVC = str(Path(__import__("sys").executable).with_name("dvc"))


def _dvc(*args, cwd=ROOT):
    return subprocess.run(
        [DVC, *args], cwd=cwd, capture_output=True, text=True, env={**__import__("os").environ, "DVC_NO_ANALYTICS": "1"}
    )


def test_dvc_stages_follow_the_stage_registry():
    """dvc.yaml's stages, commands, outputs and code deps agree with pipeline.stages.registry (one list)."""
    import yaml

    from pipeline.stages.registry import STAGES

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(dvc) == set(STAGES)
    for name, spec in STAGES.items():
        st = dvc[name]
        cmd = " ".join(st["cmd"].split())
        assert f"python -m pipeline.{name} " in cmd and ("-m experiment=" in cmd) == spec.multirun, cmd
        declared = {next(iter(o)) if isinstance(o, dict) else o for o in st.get("outs", []) + st.get("plots", [])}
        assert declared == {f"outputs/{name}/{o}" for o in spec.outs}, (name, declared)
        metrics = {next(iter(o)) if isinstance(o, dict) else o for o in st["metrics"]}
        assert metrics == {f"outputs/{name}/metrics.json"}
        deps = set(st["deps"])
        assert {f"pipeline/stages/{name}.py", "pipeline/stages/runner.py", "pipeline/stages/registry.py"} <= deps
        assert f"conf/{name}.yaml" in deps
        for dep in deps:
            assert (ROOT / dep).exists() or dep.startswith("outputs/"), (name, dep)


def test_dag_has_theory_then_finite_width_stages_then_report():
    p = _dvc("dag", "--dot")
    assert p.returncode == 0, p.stderr
    edges = {
        tuple(part.strip().strip('"') for part in line.strip().rstrip(";").split("->"))
        for line in p.stdout.splitlines()
        if "->" in line
    }
    for stage in ("mlp_sweep", "lyapunov", "gauge_scan"):
        assert ("theory", stage) in edges and (stage, "report") in edges
    assert ("ginn_train", "report") in edges


@pytest.mark.slow
def test_changing_mlp_sweep_params_invalidates_only_mlp_sweep(tmp_path):
    if _dvc("status", "--json").stdout.strip() not in ("{}", ""):
        pytest.skip("run `make reproduce` first: the workspace pipeline is not up to date")
    copy = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(copy)], check=True)
    shutil.copytree(ROOT / "outputs", copy / "outputs", dirs_exist_ok=True)
    shutil.copy(ROOT / "dvc.lock", copy / "dvc.lock")
    for f in ("dvc.yaml",):
        shutil.copy(ROOT / f, copy / f)
    assert _dvc("commit", "-f", "-q", cwd=copy).returncode == 0  # the clone's cache: the copied outputs
    assert json.loads(_dvc("status", "--json", cwd=copy).stdout or "{}") == {}
    preset = copy / "experiments" / "mlp_sweep_default.yaml"
    text = preset.read_text()
    num = re.search(r"sigma_w2: \{start: [\d.]+, stop: [\d.]+, num: (\d+)\}", text)
    assert num, "experiments/mlp_sweep_default.yaml: grid.sigma_w2 not found"
    preset.write_text(
        text.replace(num.group(0), num.group(0).replace(f"num: {num.group(1)}", f"num: {int(num.group(1)) - 1}"))
    )
    changed = json.loads(_dvc("status", "--json", cwd=copy).stdout)
    assert set(changed) == {"mlp_sweep"}, changed
    dry = _dvc("repro", "--dry", cwd=copy).stdout
    assert "Running stage 'mlp_sweep'" in dry and "Running stage 'theory'" not in dry
