"""Eager validation: resolve the whole config to dataclasses and enforce declared ranges.

Every failure is a `ConfigError` whose message is one line naming the dotted key and the allowed
range, raised before any computation or tracking starts.
"""

from __future__ import annotations

import dataclasses
import math
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


def _show(value: list) -> str:
    return "[" + ", ".join(getattr(v, "value", str(v)) if not isinstance(v, float) else f"{v:g}" for v in value) + "]"


def to_validated(cfg: DictConfig) -> Any:
    """Resolve every interpolation and missing value now, convert to dataclasses, check ranges."""
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg) from None
    check_ranges(obj)
    return obj
