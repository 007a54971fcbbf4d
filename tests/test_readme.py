"""Every command the README shows is accepted as written (issue 16): stage commands compose and pass every
check a real run makes before compute (schema, ranges, cross-field and override checks), helper commands answer
--help, and the python one-liners run. The runs themselves are exercised at smoke size by the stage tests and,
at full size, by `make reproduce` in CI; this test keeps the README from drifting away from the code."""

import re
import shlex
import subprocess
import sys

import pytest

from pipeline.stages.registry import STAGES
from tests.conftest import ROOT, compose_config, inprocess, validate_composed

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
LINES = [ln.split("  #")[0].strip() for b in BLOCKS for ln in b.splitlines() if ln.strip() and not ln.startswith("#")]
STAGE_CMDS = [ln for ln in LINES if re.match(r"(python -m pipeline\.(\w+)|ginn-[\w-]+)( |$)", ln)]


def _stage_and_args(line: str):
    words = shlex.split(line)
    if words[0] == "python":
        name, args = words[2].split(".", 1)[1], words[3:]
    else:
        name, args = words[0][len("ginn-") :].replace("-", "_"), words[1:]
    return name, args


def test_the_readme_shows_stage_commands():
    assert len(STAGE_CMDS) >= 8


@pytest.mark.parametrize("line", STAGE_CMDS)
def test_every_readme_command_is_accepted_as_written(line, tmp_path):
    name, args = _stage_and_args(line)
    if name not in STAGES:  # collect, compare: the CLI answers and knows every option the README uses
        p = inprocess(name, "--help")
        assert p.returncode == 0, p.stderr
        for opt in [a for a in args if a.startswith("--")]:
            assert opt in p.stdout, (line, opt)
        return
    args = [a for a in args if a not in ("-m", "--multirun", "--cfg", "job")]
    overrides = []
    for a in args:  # a sweep validates at the first value of each swept axis (every value is checked below)
        key, _, value = a.partition("=")
        if key.startswith("hydra") or key.startswith("hydra/"):
            continue
        overrides.append(f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else a)
    validate_composed(compose_config(name, overrides), name, overrides)  # every check a run makes before compute
    for a in args:  # every value of every swept axis passes the checks too
        key, _, value = a.partition("=")
        if "," in value and "[" not in value and not key.startswith("hydra"):
            for v in value.split(","):
                one = [o for o in overrides if not o.startswith(key + "=")] + [f"{key}={v}"]
                validate_composed(compose_config(name, one), name, one)


def test_python_one_liners_in_the_readme_run():
    for line in [ln for ln in LINES if ln.startswith('python -c "')]:
        code = shlex.split(line)[2]
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (line, p.stderr[-2000:])
