"""A mistyped preset (`experiment=smok`): one line listing the presets and suggesting the nearest one."""

from __future__ import annotations

import difflib
import re

from hydra.errors import MissingConfigException


def missing_preset_line(exc: BaseException) -> str | None:
    """For Hydra's "Could not find 'experiment/<name>'": `experiment=<name>: no such preset; did you mean
    'smoke'? presets: ...` (Hydra's own message puts the list on indented lines, which one-line errors drop).
    None for any other error."""
    if not isinstance(exc, MissingConfigException):
        return None
    found = re.search(r"Could not find '([^/']+)/([^']+)'", str(exc))
    if not found or not exc.options:
        return None
    group, name = found.groups()
    options = sorted(map(str, exc.options))
    near = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"{group}={name}: no such preset; {hint}presets: {', '.join(options)}"
