"""The shared harness (tests/conftest.py) does what the tests that use it assume."""

import sqlite3

from tests.conftest import runs


def test_each_store_is_a_migrated_copy_of_its_own(store, tmp_path, _store_template):
    db = store[len("sqlite:///") :]
    assert db == str(tmp_path / "mlflow.db") and db != str(_store_template)
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "experiments", "alembic_version"} <= tables
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    finally:
        con.close()
    assert runs(store, "theory").empty


def test_fresh_store_is_not_created(fresh_store, tmp_path):
    assert fresh_store == f"sqlite:///{tmp_path / 'mlflow.db'}" and not (tmp_path / "mlflow.db").exists()


def test_inprocess_rejection_prints_what_the_cli_prints(run_inprocess, run_cli, store, tmp_path):
    """The in-process harness against a real process, for a value Hydra cannot compose (an unknown activation). The
    real process is also the one place the exit code and stderr a shell sees are checked for a bad input (the stage
    tests run their rejected inputs in this process: tests/stages/test_theory_stage.py and others)."""
    bad, key = "net.activation=foo", "net.activation"
    args = (bad, f"hydra.run.dir={tmp_path / 'o'}")
    inproc, sub = run_inprocess("theory", *args), run_cli("theory", *args)
    assert inproc.returncode == sub.returncode == 2
    assert inproc.stderr.strip() == sub.stderr.strip() and inproc.error == sub.stderr.strip()
    assert inproc.error.startswith(f"error: {key}") and "Traceback" not in sub.stderr
    assert not (tmp_path / "o").exists()
    assert "RUNNING" not in set(runs(store, "theory").status)


def test_compose_gives_the_config_and_the_validated_object_with_the_overrides(compose):
    assert compose("theory", "net.sigma_w2=2.5").net.sigma_w2 == 2.5
    obj = compose.validated("mlp_sweep", "experiment=smoke", "net.width=24")
    assert obj.stage == "mlp_sweep" and obj.net.width == 24


def test_the_smoke_pipeline_has_every_stage_once_in_its_store(smoke_pipeline):
    for stage in ("theory", "lyapunov", "gauge_scan", "ginn_train", "report"):
        assert (smoke_pipeline[stage] / "metrics.json").is_file(), stage
        assert list(runs(smoke_pipeline.store, stage).status) == ["FINISHED"], stage
    sweep = runs(smoke_pipeline.store, "mlp_sweep")
    assert sorted(sweep.status) == ["FINISHED"] * 3  # the parent and its two jobs
    merged = smoke_pipeline["mlp_sweep"]
    assert (merged / "sweep.csv").is_file() and (merged / "jobs" / "1").is_dir()
