"""Copy validated config sections into a run's spec (EnsembleSpec, TrainSpec): the one way."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def spec_from(cls: type[T], *sections: Any, **override: Any) -> T:
    """`cls(...)` with each field of the dataclass `cls` taken from `override`, else from the first of `sections`
    (config dataclasses) that has an attribute of that name (an enum as its value); a field no source has keeps
    its default in `cls` (or fails there: a spec without defaults names what is missing)."""
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in override:
            kw[f.name] = override.pop(f.name)
            continue
        for section in sections:
            if hasattr(section, f.name):
                value = getattr(section, f.name)
                kw[f.name] = value.value if isinstance(value, Enum) else value
                break
    if override:
        raise TypeError(f"{cls.__name__} has no field {', '.join(override)}")
    return cls(**kw)
