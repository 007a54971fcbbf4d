"""The theory package is pure: functions of their arguments, no pipeline plumbing, no files (issue 13)."""

import ast
from pathlib import Path

from tests.conftest import ROOT

THEORY = ROOT / "pipeline" / "theory"
FORBIDDEN_IMPORTS = ("pipeline.stages", "pipeline.tracking", "pipeline.paths", "pipeline.cli", "pipeline.config")
FORBIDDEN_CALLS = {"read_csv", "read_text", "read_bytes", "open", "to_csv", "write_text", "savefig", "load"}
CLI_SHIM = "__main__.py"  # `python -m pipeline.theory` needs this 3-line entry point; it holds no theory


def _modules():
    """Every module of the package, subpackages included (pipeline/theory/one_loop/*.py)."""
    found = [p for p in sorted(THEORY.rglob("*.py")) if p != THEORY / CLI_SHIM]
    assert THEORY / "one_loop" / "recursion.py" in found
    return found


def test_theory_modules_import_no_stage_tracking_or_config_code():
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN_IMPORTS), f"{path.name} imports {name}"


def test_theory_modules_read_and_write_no_files():
    for path in _modules():
        src = path.read_text()
        assert "outputs/" not in src and "Path(" not in src, path.name
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                assert name not in FORBIDDEN_CALLS, f"{path.name} calls {name}"


def test_the_cli_shim_is_only_an_entry_point():
    src = (THEORY / CLI_SHIM).read_text()
    assert len([line for line in src.splitlines() if line.strip() and not line.startswith(('"""', "#"))]) <= 3
    assert Path(THEORY / "__init__.py").read_text().count("import") == 0
