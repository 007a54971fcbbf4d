"""tracking.sqlite_wal: a local SQLite store runs in WAL mode unless turned off (for shared network filesystems)."""

import sqlite3

import pytest

from pipeline.tracking import store
from pipeline.tracking.run import stage_run


@pytest.mark.parametrize("wal,mode", [(True, "wal"), (False, "delete")])
def test_store_journal_mode_follows_the_setting(tmp_path, wal, mode):
    db = tmp_path / "m.db"
    store.use_sqlite_wal(wal)
    try:
        with stage_run("walcheck", True, f"sqlite:///{db}") as run:
            run.log_metrics({"x": 1.0})
    finally:
        store.use_sqlite_wal(True)
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == mode
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "FINISHED"
    finally:
        con.close()
