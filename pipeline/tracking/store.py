"""MLflow store resolution and one-time, lock-protected experiment creation.

Concurrent first use of a fresh SQLite store breaks it (pitfalls.md), so creation of the store and
of each experiment happens under an exclusive file lock, normally in the sweep's parent process.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path

from pipeline.paths import artifact_root, default_tracking_uri, repo_root

# No usage telemetry leaves a research machine unless the user asks for it (and it costs ms per call).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def resolve_uri(uri: str | None = None) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else the repo's SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


@contextmanager
def store_lock() -> Iterator[None]:
    """Exclusive lock across processes on this machine (file lock next to the store)."""
    path = repo_root() / ".mlflow.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_SQLITE = {"wal": True}


def use_sqlite_wal(enabled: bool) -> None:
    """tracking.sqlite_wal: SQLite stores in WAL mode with synchronous=NORMAL, so a commit needs no
    fsync (tracking cost per job ~2x lower, benchmarks/RESULTS.md) and readers never block writers.
    A crash can lose the last commits, never corrupt the store. WAL needs shared memory between the
    processes that open the file: turn it off for a store on a network filesystem used by several
    hosts (better: an `mlflow server` there)."""
    _SQLITE["wal"] = enabled


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if not (_SQLITE["wal"] and isinstance(dbapi_connection, sqlite3.Connection)):
        return
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")  # persistent in the file; a no-op once set
        cur.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError:  # another process holds the file right now: stay in its mode
        pass
    finally:
        cur.close()


@lru_cache(maxsize=1)
def _install_sqlite_hook() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _sqlite_pragmas)


@cache
def client(uri: str):
    """An MlflowClient bound to `uri` (imported lazily: `import mlflow` costs ~1 s)."""
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:"):
        _install_sqlite_hook()
    return MlflowClient(tracking_uri=uri)


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


def ensure_experiment(name: str, uri: str) -> str:
    """Experiment id for `name` (cached per process), created once with a local artifact location for local stores."""
    if (uri, name) not in _EXPERIMENT_IDS:
        _EXPERIMENT_IDS[(uri, name)] = _ensure_experiment(name, uri)
    return _EXPERIMENT_IDS[(uri, name)]


def _ensure_experiment(name: str, uri: str) -> str:
    c = client(uri)
    exp = c.get_experiment_by_name(name) if _store_exists(uri) else None
    if exp is not None:
        return exp.experiment_id
    with store_lock():
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            location = (artifact_root() / name).as_uri()
        return c.create_experiment(name, artifact_location=location)


def _store_exists(uri: str) -> bool:
    """False for a SQLite store whose file does not exist yet (its creation needs the lock)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).exists()
    return True


def check_reachable(uri: str) -> None:
    """Fail fast, before any compute, when the tracking server cannot be reached."""
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable
            raise RuntimeError(f"tracking.uri={uri}: MLflow server unreachable ({exc})") from None
