"""Eager validation: resolve the whole config to dataclasses and enforce declared ranges.

Every failure is a `ConfigError` whose message is one line naming the dotted key and the allowed
range, raised before any computation or tracking starts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value outside its allowed range (message: one line, names the key)."""


_OPS = {
    "gt": (lambda v, b: v > b, "> {}"),
    "ge": (lambda v, b: v >= b, ">= {}"),
    "lt": (lambda v, b: v < b, "< {}"),
    "le": (lambda v, b: v <= b, "<= {}"),
}


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Walk a dataclass tree and raise ConfigError at the first value outside its metadata bounds."""
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
            if callable(getattr(value, "check", None)):  # cross-field rule of a small value type (GridSpec)
                value.check(key)
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                check_ranges(item, f"{key}[{i}].")
            continue
        meta = f.metadata
        if value is None:
            continue
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise ConfigError(f"{key}={value!r}: needs at least {meta['min_len']} entries")
        if "len" in meta and len(value) != meta["len"]:
            raise ConfigError(f"{key}={value!r}: needs exactly {meta['len']} entries")
        if meta.get("unique") and len(set(value)) != len(value):
            raise ConfigError(f"{key}={_show(value)}: has duplicate entries")
        if meta.get("ascending") and any(not a < b for a, b in zip(value[:-1], value[1:])):
            raise ConfigError(
                f"{key}={_show(value)}: must be strictly ascending (no duplicates), e.g. {sorted(set(value))}"
            )
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v) and not (meta.get("inf_ok") and v == math.inf):
                raise ConfigError(f"{key}={v!r}: must be a finite number")
            for op, (ok, text) in _OPS.items():
                if op in meta and isinstance(v, (int, float)) and not ok(v, meta[op]):
                    raise ConfigError(f"{key}={v!r} is out of range: allowed {text.format(meta[op])}")
            if meta.get("even") and isinstance(v, int) and v % 2:
                raise ConfigError(f"{key}={v!r}: must be even (allowed: an even integer, e.g. {v + 1})")


def _show(value: list) -> str:
    return "[" + ", ".join(getattr(v, "value", str(v)) if not isinstance(v, float) else f"{v:g}" for v in value) + "]"


def _schema_of(annotation: Any) -> Any:
    """The dataclass type of a field annotation (also the item type of List[dataclass]), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (list, typing.List) and args and dataclasses.is_dataclass(args[0]):
        return args[0]
    if len(args) == 1 and dataclasses.is_dataclass(args[0]):  # Optional[dataclass]
        return args[0]
    return None


def check_known_keys(tree: Any, schema: type, prefix: str = "") -> None:
    """Raise ConfigError naming the first key of `tree` (a plain dict/list config) not in `schema`.

    Hydra's `+key=value` adds keys even to a structured config; every such key would be ignored
    while its value is logged as if used, so it is rejected (the schema has no free-form section).
    """
    if not isinstance(tree, dict):
        return
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{dotted}: unknown config key (not in the schema: allowed {', '.join(sorted(names))})")
        sub = _schema_of(hints.get(key))
        if sub is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_known_keys(item, sub, f"{dotted}[{i}].")
        else:
            check_known_keys(value, sub, dotted + ".")


def check_schema_keys(cfg: DictConfig) -> None:
    """Every key of a structured config is in its schema (see check_known_keys)."""
    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema):
        check_known_keys(OmegaConf.to_container(cfg, resolve=False), schema)


def to_validated(cfg: DictConfig) -> Any:
    """Reject unknown keys, resolve every interpolation and missing value now, convert to dataclasses,
    check ranges."""
    check_schema_keys(cfg)
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg) from None
    check_ranges(obj)
    return obj


# Top-level keys every stage reads (or that only steer the run), and renamed sections still accepted.
COMMON_KEYS = frozenset({"stage", "seed", "out_dir", "theory_outputs", "resume", "tracking"})
ALIASES = {"sweep": "grid"}


def check_overrides_read(
    overrides: list[str], stage: str, sections: tuple[str, ...], unused: tuple[str, ...] = ()
) -> None:
    """A command-line override of a config section the stage never reads would be silently ignored
    (and logged as if used): ConfigError naming the key. Group choices (`experiment=...`) and
    `hydra.*` settings are not config values and pass."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra itself reports grammar errors before the task runs
        return
    allowed = COMMON_KEYS | set(sections)
    for ov in parsed:
        key = ov.key_or_group
        if "/" in key or key.startswith("hydra") or key == "experiment" or (ov.is_delete()):
            continue
        root = key.split(".")[0]
        if root in ("net", "engine", "tracking") and "." not in key and not ov.is_add():
            continue  # a config-group choice (net=default), not a value
        if ALIASES.get(root, root) not in allowed:
            raise ConfigError(
                f"{key}: not read by stage {stage!r} (it reads {', '.join(sorted(allowed))}): "
                "the value would be ignored"
            )
        if key in unused:
            raise ConfigError(
                f"{key}: not used by stage {stage!r} (its own settings replace it): the value would be ignored"
            )
