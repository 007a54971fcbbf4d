"""A SIGTERM that lands while the store is creating a run: the run still ends KILLED, not RUNNING (a race seen under
load in test_sigterm_to_a_single_run_exits_143_and_ends_killed: the signal arrived between the run's insert and
the block that closes it)."""

from __future__ import annotations

import os
import signal

import mlflow
import pytest

from pipeline.stages.lifecycle import install_interrupt_handlers, signals_deferred
from pipeline.tracking import run as run_module
from pipeline.tracking.run import stage_run


@pytest.fixture
def sigterm_inside_create_run(monkeypatch):
    """The store's create_run, followed by a real SIGTERM to this process before it returns."""
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    install_interrupt_handlers()
    real = run_module.client

    def client(uri):
        c = real(uri)

        class Raced:
            def __getattr__(self, name):
                return getattr(c, name)

            def create_run(self, *a, **k):
                r = c.create_run(*a, **k)
                os.kill(os.getpid(), signal.SIGTERM)
                return r

        return Raced()

    monkeypatch.setattr(run_module, "client", client)
    yield
    for s, h in old.items():
        signal.signal(s, h)


@pytest.mark.parametrize("guard, status", [(signals_deferred, "KILLED"), (None, "RUNNING")])
def test_a_sigterm_during_run_creation_ends_the_run_killed(store, sigterm_inside_create_run, guard, status):
    """With the stages' guard the run ends KILLED; without one (the old code path) it stays RUNNING: the test's
    own control that the signal really lands inside create_run."""
    kw = {"guard": guard} if guard else {}
    with pytest.raises(KeyboardInterrupt):
        with stage_run("race", uri=store, run_name="r", **kw):
            pytest.fail("the interrupt must stop the run before its body")
    c = mlflow.MlflowClient(store)
    assert [r.info.status for r in c.search_runs([c.get_experiment_by_name("race").experiment_id])] == [status]
