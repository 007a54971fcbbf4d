"""Local harness of the config tests (the shared fixtures are in tests/conftest.py).

The field stage's cross-field check (`pipeline.stages.field.check_config`) computes the length mode of each of
its points (memoised per process by `pipeline.theory.field.length_mode` itself) and the correlation masses; the
config tests validate the field stage a few hundred times at the same few points. Here the masses are memoised
per point for the session: the first validation at a point computes them with the real function, later ones
reuse that result (a point whose computation raises is not memoised: it raises each time), so every check the
stage makes still runs on the real numbers.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _correlation_masses(activation, sigma_w2: tuple, *args, **kwargs):
    from pipeline.theory.field import correlation_masses

    return correlation_masses(activation, list(sigma_w2), *args, **kwargs)


def _memo_correlation_masses(activation, sigma_w2, *args, **kwargs):
    return dict(_correlation_masses(activation, tuple(sigma_w2), *args, **kwargs))


@pytest.fixture(autouse=True)
def _field_theory_memo(monkeypatch):
    """The field stage's check reads its theory through these memoised functions during each config test."""
    import pipeline.stages.field as field

    monkeypatch.setattr(field, "correlation_masses", _memo_correlation_masses)
