"""MLflow store resolution and one-time, lock-protected experiment creation.

Concurrent first use of a fresh SQLite store breaks it (pitfalls.md), so creation of the store and
of each experiment happens under an exclusive file lock, normally in the sweep's parent process.
"""

from __future__ import annotations

import base64
import fcntl
import os
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from pipeline.paths import artifact_root, default_tracking_uri, repo_root

from .provenance import redact_text

# No usage telemetry leaves a research machine unless the user asks for it (and it costs ms per call).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's HTTP client retries a failing request for minutes by default (7 retries, backoff factor 2,
# 120 s timeout): a server that goes away mid-sweep would cost minutes per job. Fail within seconds
# instead (each can still be raised by setting the variable).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# MLflow prints "View run ... at: <tracking URI>" for a server store, credentials of the URI included; the stage
# prints its own link, redacted (`run_link`).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class StoreError(RuntimeError):
    """The tracking store cannot be used (unreachable, read-only, corrupt, mistyped path): one line, with any
    credentials of the URI (`http://user:pw@host`) redacted (`provenance.redact_text`)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


def resolve_uri(uri: str | None = None) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else the repo's SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///<path>` store, else None."""
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        return Path(uri[len("sqlite:///") :].split("?")[0])
    return None


@contextmanager
def store_lock(uri: str | None = None) -> Iterator[None]:
    """Exclusive lock across processes on this machine: `<store>.lock` next to a SQLite store, else one
    file at the repo root. flock is per host: processes on several hosts sharing a store on a network
    filesystem are not serialised (use an `mlflow server` there)."""
    db = sqlite_path(uri) if uri else None
    path = db.with_name(db.name + ".lock") if db is not None else repo_root() / ".mlflow.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class _Stores:
    """What this process knows about the stores it used (the one module-level state of tracking/): the
    tracking.sqlite_wal setting, stores already checked and migrated, experiment ids. Caches of the stores
    themselves, not of a run's life (that is `stages.lifecycle.STATE`)."""

    sqlite_wal: bool = True
    ready: set[str] = field(default_factory=set)  # URIs checked and migrated (`prepare_store`)
    experiment_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (uri, name) -> id


STORES = _Stores()


def use_sqlite_wal(enabled: bool) -> None:
    """tracking.sqlite_wal: SQLite stores in WAL mode with synchronous=NORMAL, so a commit needs no
    fsync (tracking cost per job ~2x lower, benchmarks/RESULTS.md) and readers never block writers.
    A crash can lose the last commits, never corrupt the store. WAL needs shared memory between the
    processes that open the file: turn it off for a store on a network filesystem used by several
    hosts (better: an `mlflow server` there)."""
    STORES.sqlite_wal = enabled


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if not (STORES.sqlite_wal and isinstance(dbapi_connection, sqlite3.Connection)):
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
def _install_sqlite_hook() -> None:  # lazy imports here and below: mlflow (and SQLAlchemy) cost ~1 s
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


def ensure_experiment(name: str, uri: str) -> str:
    """Experiment id for `name` (cached per process), created once with a local artifact location for local stores."""
    if (uri, name) not in STORES.experiment_ids:
        STORES.experiment_ids[(uri, name)] = _ensure_experiment(name, uri)
    return STORES.experiment_ids[(uri, name)]


def artifact_dir_for(uri: str) -> Path:
    """Artifacts live beside the store the run used: <folder of mlflow.db>/mlartifacts (the repo's own
    mlartifacts/ only for the repo's own store), so a store elsewhere never writes into the repo."""
    path = sqlite_path(uri)
    return path.resolve().parent / "mlartifacts" if path else artifact_root()


# MLflow 3's UI opens in GenAI mode (traces, judges, prompts). An experiment declares itself a model-training one
# with the tag its own "experiment type" selector writes (mlflow.experimentKind = custom_model_development), set at
# creation and on an experiment of ours that lacks it, never over a kind someone chose. MLflow 3.17's UI (checked in
# chromium) no longer lets that tag pick the page: its GenAI | Model training switch is one setting per browser
# (localStorage `mlflow.workflowType`, default GenAI), overridden by the URL parameter `workflowType`, which every
# link we print carries (ML_MODE). README ("Compare in MLflow") says so.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
ML_MODE = "?workflowType=machine_learning"


def _ensure_experiment(name: str, uri: str) -> str:
    prepare_store(uri)
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        with store_lock(uri):
            exp = c.get_experiment_by_name(name)
            if exp is None:
                location = None
                if uri.startswith("sqlite:") or uri.startswith("file:"):
                    location = (artifact_dir_for(uri) / name).as_uri()
                return c.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if key not in exp.tags:
            c.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _check_sqlite(uri: str, db: Path) -> None:
    """Fail fast for a SQLite store MLflow could not use (it would retry, then print a long traceback)."""
    parent = db.parent
    if not parent.is_dir():
        raise StoreError(
            f"tracking.uri={uri}: directory {parent} does not exist (a mistyped path? a new store is only "
            "created in an existing directory)"
        )
    if db.exists() and not db.is_file():
        raise StoreError(f"tracking.uri={uri}: {db} is not a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"tracking.uri={uri}: directory {parent} is read-only (SQLite writes its journal there)")
    if not db.exists():
        return  # created (under the lock) by prepare_store
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"tracking.uri={uri}: cannot open the store for writing ({_first_line(exc)})") from None
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        con.execute("BEGIN IMMEDIATE")  # waits up to 10 s for another writer
        try:
            con.execute(f"PRAGMA user_version = {version}")  # a real write (rolled back): read-only fails here
        finally:
            con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise StoreError(f"tracking.uri={uri}: the store is read-only ({_first_line(exc)})") from None
        raise StoreError(f"tracking.uri={uri}: store unusable ({_first_line(exc)})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"tracking.uri={uri}: not a valid SQLite store, corrupt? ({_first_line(exc)})") from None
    finally:
        con.close()


def urlopen_health(uri: str, timeout: float = 5) -> bytes:
    """GET `<uri>/health`. Credentials in the URI (`http://user:pw@host`) go as HTTP basic auth, as MLflow's
    client sends them: urllib would take `user:pw@host` for the host name and never reach the server."""
    parts = urllib.parse.urlsplit(uri.rstrip("/") + "/health")
    headers = {}
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
        parts = parts._replace(netloc=netloc)
    request = urllib.request.Request(urllib.parse.urlunsplit(parts), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def check_reachable(uri: str) -> None:
    """Fail fast (StoreError, one line), before any compute, when the store cannot be used: server
    unreachable, SQLite file read-only / corrupt / in a directory that does not exist."""
    if uri.startswith(("http://", "https://")):
        try:
            urlopen_health(uri)
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable
            raise StoreError(f"tracking.uri={uri}: MLflow server unreachable ({_first_line(exc)})") from None
        return
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(uri, db)
    elif uri.startswith("file:") or "://" not in uri:
        path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
        if not path.parent.is_dir():
            raise StoreError(f"tracking.uri={uri}: directory {path.parent} does not exist (a mistyped path?)")


def prepare_store(uri: str) -> None:
    """Check the store, then create and migrate its schema once per process under the store's file lock
    (whatever the file's state: absent, empty, half-created by another process), so any number of
    concurrent first users is safe. Raises StoreError with one line."""
    if uri in STORES.ready:
        return
    check_reachable(uri)
    try:
        with store_lock(uri):
            client(uri).search_experiments(max_results=1)  # MLflow creates/verifies the schema on first use
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - any MLflow/SQLAlchemy failure here is a store fault
        raise StoreError(f"tracking.uri={uri}: store set-up failed ({_first_line(exc)})") from None
    STORES.ready.add(uri)


def run_link(uri: str | None, run_id: str, experiment: str | None = None) -> str:
    """Where to look at a run: its UI address (a server store), or the `mlflow ui` command plus the address."""
    resolved = redact_text(resolve_uri(uri))  # a link is printed: never with the URI's credentials
    exp_id = STORES.experiment_ids.get((resolved, experiment)) if experiment else None
    path = (f"#/experiments/{exp_id}/runs/{run_id}" if exp_id else f"#/runs/{run_id}") + ML_MODE
    if resolved.startswith(("http://", "https://")):
        return f"{resolved.rstrip('/')}/{path}"
    return f"mlflow ui --backend-store-uri {resolved}  ->  http://127.0.0.1:5000/{path}"
