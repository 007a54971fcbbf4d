"""Why the engine flags a network (overflow or vanish) and what `summarize` does with each (docs/science.md §7).

An overflowed network is a failure of the float format, dropped whole; a vanished one (a norm it divides by
underflowed: q -> 0, a dead ReLU network) keeps its finite layers.
"""

import math

import numpy as np
import pytest
import torch

from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import summarize
from tests.conftest import engine_spec


def run(**kw):
    kw = {"width": 32, "depth": 10, "sigma_b2": 0.0, "n_seeds": 2, **kw}
    return simulate(engine_spec(**kw))


def _causes(m, k):
    return m.failed_layer[:, k].tolist(), m.overflow_layer[:, k].tolist(), m.vanish_layer[:, k].tolist()


def test_a_huge_weight_scale_is_an_overflow_and_the_other_point_is_untouched():
    m = run(activation="tanh", sigma_w2=(1.0, 1e80), dtype="float32")  # gain = inf in float32
    assert _causes(m, 1) == ([1, 1], [1, 1], [-1, -1])
    assert _causes(m, 0) == ([-1, -1], [-1, -1], [-1, -1])
    assert torch.isfinite(m.log_growth_tangent[:, 0]).all()


def test_a_tiny_weight_scale_is_a_vanish():
    m = run(activation="relu", sigma_w2=(2.0, 1e-70), dtype="float32")  # the carried signal's norm underflows to 0
    assert _causes(m, 1) == ([1, 1], [-1, -1], [1, 1])
    assert _causes(m, 0) == ([-1, -1], [-1, -1], [-1, -1])


def test_a_replica_difference_cancelled_by_a_huge_signal_is_an_overflow_not_a_vanish():
    """gelu sigma_w2=100 in float32: q grows ~50x a layer; once sqrt(q) x machine eps >= eps the replica
    difference rounds to exactly 0 (q ~ 1e10, no non-finite value yet). That is numerics, not q -> 0."""
    m = run(activation="gelu", sigma_w2=(100.0,), depth=12, n_seeds=3, dtype="float32", eps=1e-3)
    f = m.overflow_layer[:, 0]
    assert (f >= 2).all() and (m.vanish_layer == -1).all() and torch.equal(f, m.failed_layer[:, 0])
    for s in range(3):
        q_before = m.log_q[s, 0, :, : int(f[s])]
        assert torch.isfinite(q_before).all() and q_before[:, -1].max() > math.log((1e-3 / 1.2e-7) ** 2)


def test_a_dead_relu_network_vanishes_and_keeps_its_finite_layers_in_the_estimates():
    """Width 4, no bias: a layer whose units are all negative kills the signal (q = 0 exactly, physics)."""
    m = run(activation="relu", width=4, depth=20, sigma_w2=(2.0,), n_seeds=16, dtype="float64", eps=1e-6)
    van = m.vanish_layer[:, 0]
    assert (m.overflow_layer == -1).all() and torch.equal(van, m.failed_layer[:, 0])
    late = int(((van > 3) | (van < 0)).sum())  # a finite transition at or after burn-in 2 (NaN from f - 1 on)
    t = summarize(m, 2)
    assert int(t.n_vanished_networks[0]) == int((van >= 0).sum()) >= 8 and int(t.n_overflowed_networks[0]) == 0
    assert int(t.n_seeds_used[0]) == late > 16 - int(t.n_vanished_networks[0])


def test_flagged_networks_no_longer_make_every_network_of_the_batch_overflow():
    """The default gelu job (N=256, L=50, grid 0.5..4) in one seed group: networks at sigma_w2 >= 3.3 lose their
    replica difference near layer 40. The tangent renormalization used to be skipped in every layer with a flag,
    so every tangent of the group overflowed at layer 47 and all 176 networks, sigma_w2 = 0.5 too, were flagged."""
    sws = tuple(float(x) for x in np.round(np.linspace(0.5, 4.0, 22), 6))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # one worker: all 8 seeds in one group, as in the run that cascaded
        m = simulate(
            engine_spec(activation="gelu", width=256, depth=50, sigma_b2=0.05, n_seeds=8, sigma_w2=sws, dtype="float32")
        )
    finally:
        torch.set_num_threads(before)
    ordered = torch.tensor(sws) < 3.0
    assert (m.failed_layer[:, ordered] == -1).all()
    assert (m.failed_layer[:, -1] >= 0).all() and torch.equal(m.failed_layer, m.overflow_layer)
    assert torch.isfinite(m.log_growth_tangent[:, ordered]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_healthy_run_flags_nothing(dtype):
    m = run(activation="tanh", sigma_w2=(0.5, 1.5, 4.0), sigma_b2=0.05, dtype=dtype)
    for f in (m.failed_layer, m.overflow_layer, m.vanish_layer):
        assert (f == -1).all()
