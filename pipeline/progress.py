"""Progress that reaches people and logs alike: a tqdm bar on a terminal, periodic one-line log records elsewhere.

tqdm hides its bar when stderr is not a terminal (CI, nohup, SLURM logs), which leaves a long job silent
until its last line. `progress(...)` keeps the bar on a terminal and otherwise logs
`<desc>: 40/120 (33%), 12 s elapsed, ~24 s left` at most every `GINN_PROGRESS_SECONDS` (default 30 s),
plus a final line. `TQDM_DISABLE=1` silences both.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("ginn.progress")


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("GINN_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _silenced() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


class LogProgress:
    """tqdm's small API (update, set_postfix, close, iteration) writing periodic log lines instead of a bar."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", **_: Any):
        self.iterable, self.desc, self.n = iterable, desc, 0
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.interval = _interval()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval and (self.total is None or self.n < self.total):
            self.last = now
            log.info("%s", self.line(now))

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def line(self, now: float) -> str:
        """`desc: n/total (p%), elapsed, ~left[, postfix]`."""
        el = now - self.start
        if self.total:
            left = el / self.n * (self.total - self.n) if self.n else float("nan")
            text = f"{self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), {el:.0f} s elapsed"
            text += f", ~{left:.0f} s left" if self.n and self.n < self.total else ""
        else:
            text = f"{self.desc}: {self.n} done, {el:.0f} s elapsed"
        return text + (f", {self.postfix}" if self.postfix else "")

    def close(self) -> None:
        if self.n and time.monotonic() - self.start >= self.interval:
            log.info("%s (done)", self.line(time.monotonic()))
        self.n = self.n if self.total is None else self.n

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None, leave: bool = False,
             **kw: Any):  # fmt: skip
    """A tqdm bar on a terminal; periodic log lines when stderr is not a terminal; nothing under TQDM_DISABLE=1."""
    if _silenced():
        return tqdm(iterable, desc=desc, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, leave=leave, **kw)
    return LogProgress(iterable, total=total, desc=desc)
