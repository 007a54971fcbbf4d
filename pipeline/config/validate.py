"""Eager validation: resolve the whole config to dataclasses and enforce declared ranges.

Every failure is a `ConfigError` whose message is one line naming the dotted key and the allowed
range, raised before any computation or tracking starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.errors import ConfigError

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
        values = value if isinstance(value, list) else [value]
        for v in values:  # before the order checks: nan is neither above nor below anything
            if isinstance(v, float) and not math.isfinite(v) and not (meta.get("inf_ok") and v == math.inf):
                raise ConfigError(f"{key}={v!r}: must be a finite number")
        if meta.get("unique") and len(set(value)) != len(value):
            raise ConfigError(f"{key}={_show(value)}: has duplicate entries")
        if meta.get("ascending") and any(not a < b for a, b in zip(value[:-1], value[1:])):
            fixed, need = sorted(set(value)), meta.get("len", meta.get("min_len", 0))
            fits = len(fixed) >= need and len(fixed) == meta.get("len", len(fixed))
            example = f", e.g. {fixed}" if fits else f" ({need} distinct entries, low to high)"
            raise ConfigError(f"{key}={_show(value)}: must be strictly ascending (no duplicates){example}")
        for v in values:
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


# ---- booleans: true/false only ----------------------------------------------------------------------------

BOOL_ALLOWED = "allowed: true, false; 0/1, yes/no and on/off are rejected"


def _strip_optional(annotation: Any) -> Any:
    """X of Optional[X] / X | None; else the annotation itself."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 else annotation


def _list_item(annotation: Any) -> Any:
    """The item type of List[X], else None."""
    if typing.get_origin(annotation) in (list, typing.List):
        args = typing.get_args(annotation)
        return args[0] if args else None
    return None


def annotation_at(schema: Any, dotted: str) -> Any:
    """The schema's type annotation of a dotted key (`theory.one_loop.enabled`, `lyapunov.curves.0.sigma_b2`),
    Optional stripped; None where the key is not in the schema."""
    ann = schema
    for part in dotted.split("."):
        ann = _strip_optional(ann)
        item = _list_item(ann)
        if item is not None and part.isdigit():
            ann = item
        elif dataclasses.is_dataclass(ann) and isinstance(ann, type):
            ann = typing.get_type_hints(ann).get(part)
            if ann is None:
                return None
        else:
            return None
    return _strip_optional(ann)


def _is_bool_value(v: Any) -> bool:
    """A real boolean; also the text true/false (a quoted 'true') and an interpolation (checked on use)."""
    if isinstance(v, bool):
        return True
    return isinstance(v, str) and (v.strip().lower() in ("true", "false") or v.strip().startswith("${"))


def _show_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return v if v.strip() else repr(v)
    return repr(v)


def check_booleans(value: Any, annotation: Any, key: str) -> None:
    """ConfigError naming the first value in `value` (a plain value, dict or list of them) that sits on a `bool`
    field of `annotation` (the schema type of `key`) and is not true/false.

    OmegaConf would take any integer (2, -1: true; 0: false) and the words yes/no/on/off for a boolean; a typo
    such as `figures=5` would silently mean true. Which fields are boolean comes from their type in the schema,
    so a new boolean field is covered without a list to update. null is left to OmegaConf (Optional or not)."""
    annotation = _strip_optional(annotation)
    if annotation is bool:
        if value is not None and not _is_bool_value(value):
            raise ConfigError(f"{key}={_show_value(value)}: not a boolean ({BOOL_ALLOWED})")
        return
    item = _list_item(annotation)
    if item is not None and isinstance(value, list):
        for i, v in enumerate(value):
            check_booleans(v, item, f"{key}[{i}]")
    elif dataclasses.is_dataclass(annotation) and isinstance(annotation, type) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        for k, v in value.items():
            if k in hints:
                check_booleans(v, hints[k], f"{key}.{k}" if key else str(k))


def _override_values(ov: Any) -> list[Any]:
    """The value(s) an override sets: one, or each of a discrete sweep (`a=true,2`, `choice(...)`, `range(...)`)."""
    if ov.is_sweep_override():
        return list(ov.sweep_iterator()) if ov.is_discrete_sweep() else []  # interval(): floats, Hydra's own check
    return [ov.value()]


def check_override_booleans(parsed: list[Any], schema: Any) -> None:
    """Every value a (parsed) override puts on a boolean field of the stage schema is true or false."""
    for ov in parsed:
        key = ov.key_or_group
        if "/" in key or key.startswith("hydra") or ov.is_delete():
            continue
        annotation = annotation_at(schema, key)
        if annotation is None:
            continue
        for value in _override_values(ov):
            check_booleans(value, annotation, key)


# ---- sizes against this machine's memory ------------------------------------------------------------------


def physical_memory_bytes() -> int:
    """This machine's physical memory in bytes (psutil where installed, else sysconf)."""
    try:
        import psutil  # optional dependency

        return int(psutil.virtual_memory().total)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def format_bytes(n: float) -> str:
    """A size with a unit that keeps 3 significant digits: 512 B, 1.5 KiB, 12.3 MiB, 720 GiB, 1.46 PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def check_fits_memory(keys: str, need_bytes: float, what: str) -> None:
    """ConfigError naming `keys` (the size settings, with values) when `what` needs more than physical memory."""
    phys = physical_memory_bytes()
    if need_bytes > phys:
        raise ConfigError(
            f"{keys}: {what} would take at least {format_bytes(need_bytes)}, more than this machine's physical memory "
            f"({format_bytes(phys)}): lower it"
        )
