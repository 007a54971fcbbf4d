"""The DVC DAG: shape, and that changing one stage's params invalidates only that stage (and what follows)."""

import ast
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
        metrics = {next(iter(o)) if isinstance(o, dict) else o for o in st.get("metrics", [])}
        # metrics.json: a DVC metric for the report (its headline), a plain uncached output elsewhere (issue 24)
        assert declared | metrics == {f"outputs/{name}/{o}" for o in spec.outs} | {f"outputs/{name}/metrics.json"}
        assert metrics == ({"outputs/report/metrics.json"} if name == "report" else set()), (name, metrics)
        # params: only a preset the command runs (what `dvc exp run -S` edits), never a conf/ defaults list
        params = [next(iter(p)) if isinstance(p, dict) else p for p in st.get("params", [])]
        for path in params:
            preset = re.fullmatch(rf"experiments/{name}/(\w+)\.yaml", path)
            assert preset and f"experiment={preset.group(1)}" in cmd, (name, path)
        deps = set(st["deps"])
        assert {f"pipeline/stages/{name}.py", "pipeline/stages/runner.py", "pipeline/stages/registry.py"} <= deps
        assert f"conf/{name}.yaml" in deps
        for dep in deps:
            assert (ROOT / dep).exists() or dep.startswith("outputs/"), (name, dep)


def _module_file(module: str) -> Path | None:
    path = ROOT / Path(*module.split("."))
    for cand in (path / "__init__.py", path.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def import_closure(entries: list[str]) -> set[str]:
    """Every file under pipeline/ that the `python -m <entry>` modules can import: module-level *and*
    function-level imports, parent packages' __init__ and a package's __main__ (found by parsing, not importing)."""
    seen: set[Path] = set()
    todo = [f"{e}.__main__" if (ROOT / Path(*e.split(".")) / "__main__.py").is_file() else e for e in entries]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            module = ".".join(parts[:i])
            path = _module_file(module)
            if path is None or path in seen:
                continue
            seen.add(path)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    todo += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:  # relative import
                        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(anchor + ([base] if base else []))
                    todo += [base, *(f"{base}.{a.name}" for a in node.names)]
            todo = [t for t in todo if t == "pipeline" or t.startswith("pipeline.")]
    return {str(p.relative_to(ROOT)) for p in seen}


def test_import_closure_of_a_module_follows_function_level_imports():
    """The closure helper itself: cli.py imports pipeline.compare inside a function."""
    closure = import_closure(["pipeline.cli"])
    assert {"pipeline/cli.py", "pipeline/compare.py", "pipeline/__init__.py"} <= closure
    assert "pipeline/theory/__main__.py" in import_closure(["pipeline.theory"])


# files a module reads as code at run time (not imports): their edits change numbers like a module's
LOADED_AT_RUN_TIME = {"pipeline/dynamics/native.py": ["pipeline/dynamics/tangent_kernel.c"]}


def test_every_stage_depends_on_its_whole_import_closure():
    """Editing any file a stage can import re-runs that stage: dvc.yaml's deps cover the import closure of
    the stage's commands (a file, or a folder holding it). Before: stages/tables.py and stages/outputs.py,
    which every stage writes through, re-ran nothing, and report imported stages/collect.py undeclared."""
    import yaml

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in dvc.items():
        entries = re.findall(r"python -m (pipeline[\w.]*)", st["cmd"])
        assert entries, (name, st["cmd"])
        closure = import_closure(entries + [f"pipeline.stages.{name}"])  # registry imports the stage by name
        closure |= {f for module, files in LOADED_AT_RUN_TIME.items() if module in closure for f in files}
        deps = [d.rstrip("/") for d in st["deps"]]
        missing = sorted(f for f in closure if not any(f == d or f.startswith(d + "/") for d in deps))
        assert not missing, f"dvc.yaml stage {name}: add to deps {missing}"


def test_report_depends_on_every_table_and_figure_it_reads():
    """A headline table or stage figure the report reads but dvc.yaml does not list would leave the report stale
    after that stage re-runs (field/spectra.csv, added to the headline, was missing at first)."""
    import yaml

    from pipeline.plots.figures import REPORT_FIGURES
    from pipeline.stages.report import HEADLINE_TABLES

    deps = [d.rstrip("/") for d in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["deps"]]
    reads = [f"outputs/{rel}" for rel in [*HEADLINE_TABLES, *(f.source for f in REPORT_FIGURES)]]
    missing = [p for p in reads if not any(p == d or p.startswith(d + "/") for d in deps)]
    assert not missing, f"dvc.yaml stage report: add to deps {missing}"


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
    preset = copy / "experiments" / "mlp_sweep" / "mlp_sweep_default.yaml"
    text = preset.read_text()
    num = re.search(r"sigma_w2: \{start: [\d.]+, stop: [\d.]+, num: (\d+)\}", text)
    assert num, "experiments/mlp_sweep/mlp_sweep_default.yaml: grid.sigma_w2 not found"
    preset.write_text(
        text.replace(num.group(0), num.group(0).replace(f"num: {num.group(1)}", f"num: {int(num.group(1)) - 1}"))
    )
    changed = json.loads(_dvc("status", "--json", cwd=copy).stdout)
    assert set(changed) == {"mlp_sweep"}, changed
    dry = _dvc("repro", "--dry", cwd=copy).stdout
    assert "Running stage 'mlp_sweep'" in dry and "Running stage 'theory'" not in dry
