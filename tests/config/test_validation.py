"""Guarantee 6 (bad input): every value is checked before compute; rejected input is one line, exit 2,
no output folder.

The property tests drive the validation path of *every* stage in-process. The keys come from the stage's
own composed config (`experiment=smoke`), enumerated leaf by leaf, so a key added to the schema or to a
stage's config is covered without editing this file; each is drawn with valid and invalid values, mixed
with unknown `+`/`++` additions, misspelt keys and keys of sections the stage does not read. The outcome
is: validation passes, or raises a ConfigError whose message is one line naming one of the keys; an
unknown or unread key never passes. `test_stage_properties.py` runs the same draws through the real
command line (slow).

Speed: the stage's config is composed once; each example applies its overrides to a copy with Hydra's
own override step (`ConfigLoaderImpl._apply_overrides_to_config`, what `compose` runs after loading:
types, `+` additions, deletions), ~10 ms instead of ~200 ms for a full compose.
`test_fast_path_agrees_with_a_full_compose` checks that shortcut against `compose` itself.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from pipeline.config.errors import ConfigError
from tests.config.draws import (
    STAGE_NAMES,
    Draw,
    check_outcome,
    draws,
    foreign_keys,
    known_names,
    names_a_key,
    stage_keys,
    stage_sections,
    validate_fast,
    validate_full,
)

# ---- tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_overrides_of_every_stage_pass_or_fail_with_one_line_naming_the_key(stage, data):
    check_outcome(stage, data.draw(draws(stage)))


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_key_a_stage_reads_takes_its_own_value_and_every_other_key_is_rejected(stage):
    """Exhaustive, one key at a time: each read key set to its composed value passes (or, where the rest of
    the config makes it inert, is rejected by name); each key of a section the stage does not read (or
    replaces) is rejected by name; a `+` addition in every section is rejected."""
    keys = stage_keys(stage)
    assert len(keys) >= 8 and all(k.read for k in keys)
    for k in keys:
        d = Draw((f"{k.name}={k.valid[0] if k.name != 'stage' else stage}",), (k.name,), not k.read)
        msg = check_outcome(stage, d)
        assert msg is None or "not " in msg, d  # "not read by" / "not used by|with"
    for section in ("",) + stage_sections(stage):
        key = f"{section}.zz_unknown".lstrip(".")
        msg = check_outcome(stage, Draw((f"+{key}=1",), (key,), True))
        assert "unknown config key" in msg or "Could not" in msg, msg
    for key in _foreign_sample(stage):  # a key of another stage's schema: not in this one
        other = next(k for s in STAGE_NAMES for k in stage_keys(s) if k.name == key)
        msg = check_outcome(stage, Draw((f"{key}={other.valid[0]}",), (key,), True))
        assert "unknown config key" in msg, msg


def _foreign_sample(stage: str) -> list[str]:
    """The keys of other stages' schemas this stage must reject: every one inside a section the stage has
    (`net.width` where its net has no width: the schemas differ key by key), and of a section it does not have
    at all (`ginn.*` for theory: rejected by the section's name, whatever the key below it) the shallowest and
    the deepest key."""
    own = known_names(stage)
    keys = [k for k in foreign_keys(stage) if k.split(".")[0] in own]
    by_top: dict[str, list[str]] = {}
    for k in foreign_keys(stage):
        if k.split(".")[0] not in own:
            by_top.setdefault(k.split(".")[0], []).append(k)
    for group in by_top.values():
        keys += sorted({min(group, key=lambda k: k.count(".")), max(group, key=lambda k: k.count("."))})
    return keys


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_fast_path_agrees_with_a_full_compose(stage):
    """The shortcut of the property test gives the command line's outcome: same message or same object."""
    read = [k for k in stage_keys(stage) if k.read]
    unread = [k for k in stage_keys(stage) if not k.read][:1]
    samples = [
        Draw((), (), False),
        Draw(("+zz_unknown=1",), ("zz_unknown",), True),
        *[Draw((f"{k.name}={k.invalid[0]}",), (k.name,), False) for k in read[len(read) // 2 :: 1000]],
        *[Draw((f"{k.name}={k.valid[-1]}",), (k.name,), True) for k in unread],
    ]
    for sample in samples:
        outcomes = []
        for validate in (validate_fast, validate_full):
            try:
                outcomes.append(OmegaConf.to_yaml(OmegaConf.structured(validate(stage, sample.overrides))))
            except ConfigError as exc:
                outcomes.append(f"error: {exc}")
        assert outcomes[0] == outcomes[1], (stage, sample.overrides)


@pytest.mark.parametrize(
    "stage,override,expected",
    [
        ("theory", "+net.foo=1", "net.foo: unknown config key"),
        ("mlp_sweep", "+tracking.token=s3cret", "tracking.token: unknown config key"),
        ("theory", "+lyapunov.curves.0.bad=1", "unknown config key"),
        ("theory", "ginn.width=3", "ginn: unknown config key"),
        ("mlp_sweep", "theory.activations=[tanh]", "theory: unknown config key"),
        ("theory", "net.width=3", "net.width: unknown config key"),
        ("theory", "sweep.refine=1", "sweep: unknown config key"),  # the retired alias of grid
    ],
)
def test_unknown_or_unread_keys_are_rejected_by_name(stage, override, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate_full(stage, [override])


@pytest.mark.parametrize("stage", ["mlp_sweep", "lyapunov", "gauge_scan"])
def test_huge_memory_budget_is_rejected_with_one_line(stage):
    """A budget of 1e300 GB used to overflow in seed_chunk (ValueError, a traceback, exit 1)."""
    with pytest.raises(ConfigError) as err:
        validate_full(stage, ["engine.memory_budget_gb=1e300"])
    assert names_a_key(str(err.value), ["engine.memory_budget_gb"])


@pytest.mark.parametrize("override", ["+net.foo=1", "net.width=abc"])  # (the rest in-process, above)
def test_rejected_input_exits_2_with_one_line_and_leaves_no_output_folder(run_inprocess, tmp_path, override):
    """The entry point in-process (exit code, stderr); the same through a real process: the test below."""
    out = tmp_path / "runs" / "o"
    p = run_inprocess("theory", "experiment=smoke", "tracking.enabled=false", override, f"hydra.run.dir={out}")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and override.split("=")[0].lstrip("+") in lines[0]
    assert not out.exists()


def test_a_rejected_type_exits_2_with_one_line_from_a_real_process(run_cli, tmp_path):
    out = tmp_path / "runs" / "o"
    p = run_cli("theory", "experiment=smoke", "tracking.enabled=false", "net.width=abc", f"hydra.run.dir={out}")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "net.width" in lines[0]
    assert not out.exists()
