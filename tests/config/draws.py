"""Config draws shared by the validation property tests (tests/config/test_validation.py, fast, in-process)
and tests/reliability/test_stage_properties.py (slow, real command line): a helper module, not a test module.

Keys come from each stage's own composed config, leaf by leaf; see test_validation's docstring for the scheme.
"""

from __future__ import annotations

import atexit
import copy
import functools
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.errors import ConfigError
from pipeline.config.sources import compose_raw
from pipeline.config.store import register
from pipeline.paths import conf_dir
from pipeline.stages import registry
from pipeline.stages.lifecycle import one_line as _one_line
from pipeline.stages.registry import STAGES, validate_stage

STAGE_NAMES = sorted(STAGES)
BASE = ["experiment=smoke", "tracking.enabled=false"]


# Known bugs outside this file, each shown by a strict xfail test below. Their inputs are left out of the
# random draws until the bug is fixed (the xfail test then passes, fails as strict, and the entry goes).
@dataclass(frozen=True)
class KnownIssue:
    stages: frozenset[str]
    key: str
    values: frozenset[str] | None  # None: any value of the key


KNOWN_ISSUES = ()


def known_issue(stage: str, key: str, value: str | None = None) -> bool:
    """Whether `key` (any value if `value` is None) of `stage` hits a known issue for some or this value."""
    return any(
        stage in i.stages and key == i.key and (i.values is None or (value is not None and value in i.values))
        for i in KNOWN_ISSUES
    )


# values no key of any type should take silently; each is checked against the property, not assumed invalid
GENERIC_INVALID = ("-1", "0", "1e300", "abc", "[]", "[3,1]", "[1,1]", "nan", "inf", "-inf", "null", "''", "[-1]")
GENERIC_INVALID += ("{a: 1}",)


# ---- the keys of a stage, from its composed config -------------------------------------------------------


def fmt(value) -> str:
    """A plain Python value as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _enum_name(v) -> str:
    return str(getattr(v, "name", v))


@dataclass(frozen=True)
class Key:
    """One leaf key of a stage's config: whether the stage reads it, values to draw for it (`valid[0]` is the
    composed value)."""

    name: str
    read: bool  # False: a section the stage does not read, or a key it replaces (registry `unused`)
    valid: tuple[str, ...]  # values of the key's type and range (cross-field checks may still reject them)
    invalid: tuple[str, ...]  # values of the wrong type, out of range, empty, unordered, ...
    null: bool = False  # composed value None (Hydra's `+key=value` then sets it, as `key=value` would)


def _number_values(v, integer: bool, optional: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if v is None:
        valid = ["null", "2" if integer else "1.0"]
    elif integer:
        valid = list(dict.fromkeys([v, v + 1, max(1, v // 2)]))  # the composed value first
    elif v == math.inf:
        valid = [v]
    else:
        valid = [v, v / 2, v * 2] if v else [0.0, 0.1]
    invalid = ["-1", "0", "1.5" if integer else "nan", "abc", "[]", "inf" if integer else "-inf"]
    if not optional:
        invalid.append("null")
    return tuple(x if isinstance(x, str) else fmt(x) for x in valid), tuple(invalid)


def _list_values(plain: list) -> tuple[tuple[str, ...], tuple[str, ...]]:
    valid = [plain] + ([plain[:1]] if len(plain) > 1 else [])
    invalid = [[], [plain[0], plain[0]] if plain else [1]]
    if len(plain) > 1:
        invalid.append(list(reversed(plain)))
    if plain and isinstance(plain[0], dict):
        invalid += [[1], [{"zz_unknown": 1}]]
    else:
        invalid += [[-1], ["abc"]]
    return tuple(fmt(x) for x in valid), tuple(fmt(x) for x in invalid) + ("abc",)


def _leaves(node, plain, prefix: str):
    """(dotted key, node, resolved plain value) of every leaf; a list of dicts is a leaf and so is each entry's
    leaf (`lyapunov.curves.0.sigma_b2`)."""
    if isinstance(node, DictConfig):
        for k in node.keys():
            yield from _leaves(node._get_node(k), plain[k], f"{prefix}{k}.")
    elif isinstance(node, ListConfig) and len(node) and isinstance(node._get_node(0), DictConfig):
        yield prefix[:-1], node, plain
        for i in range(len(node)):
            yield from _leaves(node._get_node(i), plain[i], f"{prefix}{i}.")
    else:
        yield prefix[:-1], node, plain


def _sections(node, prefix: str = ""):
    """Dotted paths of every dict of the config (where a `+key` could be added)."""
    if isinstance(node, DictConfig):
        yield prefix[:-1]
        for k in node.keys():
            yield from _sections(node._get_node(k), f"{prefix}{k}.")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _sections(node._get_node(i), f"{prefix}{i}.")


@functools.cache
def _report_inputs() -> str:
    """A folder with an (empty) file at every path the report reads, so that its config validates here
    whatever `outputs/` holds; removed at exit."""
    from pipeline.plots.figures import REPORT_FIGURES
    from pipeline.stages.report import HEADLINE_TABLES

    root = Path(tempfile.mkdtemp(prefix="ginn-report-inputs-"))
    atexit.register(shutil.rmtree, root, True)
    for rel in [*HEADLINE_TABLES, *(f.source for f in REPORT_FIGURES)]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    return str(root)


def stage_base(stage: str) -> list[str]:
    """The overrides every example of `stage` starts from."""
    return [*BASE, f"report.inputs={_report_inputs()}"] if stage == "report" else list(BASE)


@functools.cache
def base_config(stage: str) -> DictConfig:
    """The stage's config as the command line composes it with `experiment=smoke` (once per stage)."""
    return _compose(stage, stage_base(stage))


def _compose(stage: str, overrides=()) -> DictConfig:
    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name=stage, overrides=list(overrides), return_hydra_config=False)
    OmegaConf.update(cfg, "out_dir", "/tmp/unused", force_add=True)
    return cfg


def validate_config(cfg: DictConfig, stage: str, overrides) -> object:
    return validate_stage(cfg, stage, list(overrides), preflight=False)


def is_read(stage: str, key: str) -> bool:
    """Whether `stage` reads `key`: every key of its composed config (its schema holds only the keys it reads)."""
    return True


def foreign_keys(stage: str) -> list[str]:
    """Keys other stages read and `stage` does not (each must be rejected by name)."""
    own = known_names(stage)
    return sorted({k.name for other in STAGE_NAMES for k in stage_keys(other)} - own - {"stage"})


@functools.cache
def stage_keys(stage: str) -> tuple[Key, ...]:
    """Every leaf key of the stage's composed config, with values to draw."""
    cfg = base_config(stage)
    plain_cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    keys = []
    for name, node, plain in _leaves(cfg, plain_cfg, ""):
        optional = node._is_optional()
        if isinstance(node, ListConfig):
            valid, invalid = _list_values(plain)
        elif getattr(node, "enum_type", None) is not None:
            valid = tuple(dict.fromkeys([str(plain), *(_enum_name(m) for m in node.enum_type)]))
            invalid = ("zz_unknown", "1", "[]") + (() if optional else ("null",))
        elif type(node).__name__ == "BooleanNode":
            invalid = ("maybe", "2", "0", "1", "-1", "yes", "off", "[]") + (() if optional else ("null",))
            valid = (fmt(plain), fmt(not plain))
        elif type(node).__name__ in ("IntegerNode", "FloatNode"):
            valid, invalid = _number_values(plain, type(node).__name__ == "IntegerNode", optional)
        else:  # a string (paths, the stage name, the device, ...)
            valid = (fmt(plain),)
            invalid = ("[]", "{a: 1}") + (() if optional else ("null",))
        keys.append(Key(name, is_read(stage, name), valid, invalid, plain is None))
    return tuple(keys)


@functools.cache
def stage_sections(stage: str) -> tuple[str, ...]:
    return tuple(s for s in _sections(base_config(stage)) if s)


def known_names(stage: str) -> frozenset[str]:
    return frozenset(k.name for k in stage_keys(stage)) | frozenset(stage_sections(stage))


# ---- one example: overrides drawn for a stage -----------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    overrides: tuple[str, ...]
    keys: tuple[str, ...]  # the dotted key of each override (no +, ~)
    must_fail: bool  # an unknown, misspelt or unread key is among them


class Chooser:
    """Where the random choices come from: Hypothesis here (shrinking), a seeded `random.Random` in the
    slow end-to-end test (a few examples, each a subprocess)."""

    def __init__(self, draw=None, rnd=None):
        self._draw, self._rnd = draw, rnd

    def choice(self, seq):
        seq = list(seq)
        return self._draw(st.sampled_from(seq)) if self._draw else self._rnd.choice(seq)

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi)) if self._draw else self._rnd.randint(lo, hi)

    def ident(self) -> str:
        if self._draw:
            return self._draw(st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True))
        name = "".join(self._rnd.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(self._rnd.randint(1, 8)))
        return name.lstrip("_") or "x"

    def shuffled(self, items: list) -> list:
        return self._draw(st.permutations(items)) if self._draw else self._rnd.sample(items, len(items))


def unknown_override(stage: str, c: Chooser) -> tuple[str, str]:
    """An override of a key the stage's schema lacks: a `+`/`++` addition, a misspelling, a child of a leaf,
    `+` on a key that already has a value."""
    known = known_names(stage)
    leaves = [k.name for k in stage_keys(stage)]
    kind = c.choice(["add", "misspelt", "child_of_leaf", "add_existing"])
    if kind == "add":
        where, name = c.choice(("",) + stage_sections(stage)), c.ident()
        key = f"{where}.{name}".lstrip(".")
        if key in known or name in known:
            key += "_zz"
        return f"{c.choice(['+', '++'])}{key}={c.choice(['1', 'abc', '[1]', 'true'])}", key
    if kind == "add_existing":  # `+` on a key that has a value: Hydra refuses it (on a null key it sets it)
        key = c.choice([k.name for k in stage_keys(stage) if not k.null])
        return f"+{key}=1", key
    if kind == "child_of_leaf":
        key = f"{c.choice(leaves)}.{c.ident()}"
        return f"+{key}=1", key
    base = c.choice([k for k in leaves if not re.search(r"\.\d+(\.|$)", k)])
    head, _, leaf = base.rpartition(".")
    i = c.integer(0, len(leaf) - 1)
    typo = c.choice([leaf[:i] + leaf[i + 1 :], leaf[:i] + leaf[i] * 2 + leaf[i + 1 :], leaf + "s"])
    key = f"{head}.{typo}".lstrip(".")
    if not typo or key in known or typo in known:
        key = f"{head}.{leaf}_zz".lstrip(".")
    return f"{c.choice(['', '+'])}{key}={c.choice(['1', '0.5', 'abc'])}", key


def draw_overrides(stage: str, c: Chooser, exclude=frozenset(), max_keys: int = 3) -> Draw:
    """Up to `max_keys` keys the stage reads, each with a valid, a type-specific invalid or a generic bad
    value; sometimes a key the stage does not read; sometimes (always if nothing else) an unknown key."""
    keys = [k for k in stage_keys(stage) if k.name not in exclude and not known_issue(stage, k.name)]
    read, unread = [k for k in keys if k.read], [k for k in keys if not k.read]
    chosen = []
    for _ in range(c.integer(0, max_keys)):
        left = [k for k in read if k not in chosen]
        if left:
            chosen.append(c.choice(left))
    if unread and c.integer(0, 3) == 0:
        chosen.append(c.choice(unread))
    out = []
    for k in chosen:
        pool = c.choice(["valid", "invalid", "generic"])
        values = k.valid if pool == "valid" else k.invalid if pool == "invalid" else GENERIC_INVALID
        values = [v for v in values if not known_issue(stage, k.name, v)] or list(k.valid)
        out.append((f"{k.name}={c.choice(values)}", k.name, not k.read))
    if not out or c.integer(0, 2) == 0:
        ov, key = unknown_override(stage, c)
        out.append((ov, key, True))
    out = c.shuffled(out)
    return Draw(tuple(o for o, _, _ in out), tuple(k for _, k, _ in out), any(f for _, _, f in out))


def draw_valid(stage: str, c: Chooser, exclude=frozenset(), max_keys: int = 3) -> Draw:
    """Up to `max_keys` keys the stage reads, each with a value of its type and range (cross-field checks
    may still reject the combination)."""
    read = [k for k in stage_keys(stage) if k.read and k.name not in exclude and not known_issue(stage, k.name)]
    chosen = []
    for _ in range(c.integer(1, max_keys)):
        left = [k for k in read if k not in chosen]
        chosen.append(c.choice(left))
    ovs = tuple(f"{k.name}={c.choice(k.valid) if k.name != 'stage' else stage}" for k in chosen)
    return Draw(ovs, tuple(k.name for k in chosen), False)


@st.composite
def draws(draw, stage: str) -> Draw:
    return draw_overrides(stage, Chooser(draw=draw))


# ---- the validation path ---------------------------------------------------------------------------------


@functools.cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def validate_fast(stage: str, overrides) -> object:
    """What `python -m pipeline.<stage> experiment=smoke tracking.enabled=false <overrides>` checks before
    compute: Hydra's override step on the composed config, then the stage's validation; any rejection as a
    ConfigError with the one-line message the command line prints."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    cfg = copy.deepcopy(base_config(stage))
    try:
        ConfigLoaderImpl._apply_overrides_to_config(_parser().parse_overrides(list(overrides)), cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    return validate_config(cfg, stage, [*stage_base(stage), *overrides])


def validate_full(stage: str, overrides) -> object:
    """The same through a full Hydra compose (slow: ~0.2 s)."""
    try:
        cfg = _compose(stage, [*stage_base(stage), *overrides])
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    return validate_config(cfg, stage, [*stage_base(stage), *overrides])


# ---- the same with every source checked (the command line and the config files) ------------------------


def _is_choice(override: str) -> bool:
    """An override that chooses which files compose (`experiment=smoke`), not a value."""
    return str(override).split("=", 1)[0].lstrip("+") == "experiment"


@functools.cache
def _composed(stage: str, choices: tuple[str, ...], schema: type) -> DictConfig:
    """conf/<stage>.yaml composed with the group `choices` (once per stage, choices and schema class: a test
    that swaps a stage's schema gets its own)."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(stage, overrides=[*choices, "out_dir=/tmp/unused"])


@functools.cache
def _raw_files(config_name: str, choices: tuple[str, ...]) -> dict:
    """`compose_raw`, the values conf/'s files set, once per config and group choices: it composes the files
    only, so the value overrides of a call do not change it."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose_raw(config_name, list(choices))


def _compose_raw_cached(config_name: str, overrides) -> dict:
    return copy.deepcopy(_raw_files(config_name, tuple(o for o in map(str, overrides) if _is_choice(o))))


def compose_fast(stage: str, overrides=()) -> DictConfig:
    """conf/<stage>.yaml composed with `overrides` as `compose` gives it, without a compose per call (~0.2 s):
    the config composed with the overrides' group choices (once), then Hydra's own override step for the
    values on a copy of it (what `compose` runs after loading the files; `validate_fast`'s shortcut).
    Hydra's and OmegaConf's errors are raised as they are."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    overrides = list(overrides)
    cfg = copy.deepcopy(_composed(stage, tuple(o for o in overrides if _is_choice(o)), STAGES[stage].schema))
    values = [o for o in overrides if not _is_choice(o)]
    ConfigLoaderImpl._apply_overrides_to_config(_parser().parse_overrides(values), cfg)
    return cfg


def validate_sourced(stage: str, overrides) -> object:
    """What `python -m pipeline.<stage> <overrides>` checks before compute with conf/ as the config dir, every
    source included (the command line's values, and the config files' values as `check_config_sources` sees
    them), without the two composes per call of doing it by hand (~0.5 s): the stage's config composed with
    the overrides' group choices (once) and Hydra's own override step for the values on a copy of it
    (`compose_fast`), and the files' raw values composed once per choice. A rejection is a ConfigError with
    the one-line message the command line prints."""
    overrides = list(overrides)
    saved = registry.compose_raw
    registry.compose_raw = _compose_raw_cached
    try:
        cfg = compose_fast(stage, overrides)
        return validate_stage(cfg, stage, overrides, preflight=False, sources=(stage, overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    finally:
        registry.compose_raw = saved


def names_a_key(msg: str, keys) -> bool:
    """The message names one of `keys`, or a section of it below the top level (`grid.sigma_w2` for
    `grid.sigma_w2.start`: a grid's start/stop check names the grid), as a whole path (`theory.one_loop` in
    `theory.one_loop.widths` does not count). `[i]` counts as `.i`."""
    text = re.sub(r"\[(\d+)\]", r".\1", msg)
    for key in keys:
        parts = key.split(".")
        for n in range(len(parts), 1 if len(parts) > 1 else 0, -1):
            if re.search(rf"(?<![\w.]){re.escape('.'.join(parts[:n]))}(?![\w.])", text):
                return True
    return False


def check_outcome(stage: str, d: Draw, validate=validate_fast) -> str | None:
    """Run the validation; assert the property; return the error message (None when accepted)."""
    try:
        obj = validate(stage, d.overrides)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg, (stage, d.overrides, msg)
        assert names_a_key(msg, d.keys), (stage, d.overrides, msg)
        return msg
    assert not d.must_fail, (stage, d.overrides, "an unknown or unread key was accepted")
    assert_values_taken(obj, d.overrides)
    return None


def _same(got, want) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and all(_same(got.get(k), v) for k, v in want.items())
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(got, (int, float)):
        return got == want or (math.isnan(got) and math.isnan(want))
    return str(got) == str(want) or (got is None and want is None)


def assert_values_taken(obj, overrides) -> None:
    """An accepted override's key holds exactly the override's value in the validated config (the last one
    wins, and a later override of a parent, e.g. a whole list, replaces an element's; additions, deletions and
    interpolations aside)."""
    tree = OmegaConf.to_container(OmegaConf.structured(obj), enum_to_str=True)
    last = {}
    for ov in _parser().parse_overrides(list(overrides)):
        if ov.is_delete() or ov.is_add() or ov.is_sweep_override() or "${" in ov.input_line:
            continue
        key = ov.key_or_group
        last = {k: v for k, v in last.items() if not k.startswith(key + ".")}  # a later parent replaces it whole
        last[key] = ov.value()
    for key, want in last.items():
        got = tree
        for part in key.split("."):
            got = got[int(part)] if isinstance(got, list) else got[part]
        assert _same(got, want), (key, got, want)
