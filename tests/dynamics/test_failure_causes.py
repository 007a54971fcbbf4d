"""Why the engine flags a network (overflow or vanish) and what `summarize` does with each (docs/science.md §7).

An overflowed network is a failure of the float format, dropped whole; a vanished one (a norm it divides by
underflowed: q -> 0, a dead ReLU network) keeps its finite layers.
"""

import math

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


def test_a_replica_separation_below_float_resolution_is_an_overflow_not_a_vanish():
    """eps=1e-8 in float32 (below its resolution 1.2e-7 even relative to the signal): the replica difference
    rounds to exactly 0 once the gelu signal grows past unit RMS. That is numerics, not q -> 0."""
    m = run(activation="gelu", sigma_w2=(100.0,), depth=12, n_seeds=3, dtype="float32", eps=1e-8)
    f = m.overflow_layer[:, 0]
    assert (f >= 1).all() and (m.vanish_layer == -1).all() and torch.equal(f, m.failed_layer[:, 0])


def test_a_growing_gelu_signal_keeps_its_replica_resolved_in_float32():
    """The separation is eps * max(1, rms(h)): relative once an unbounded signal grows (docs/science.md §3).
    With an absolute eps = 1e-3, gelu at sigma_w2 = 3 (q ~ 1e9 by layer 50) measured lambda_replica 0.297 +- 0.022
    against lambda_tangent 0.200 +- 0.003 (float rounding of h + eps inflated the difference), and every
    network at sigma_w2 >= 3.5 was flagged as overflowed. The tangent (a different code path: no difference of
    two forward passes) is the reference; the effect was 0.1 per layer, the tolerance 1e-3 on the network mean."""
    m = run(activation="gelu", sigma_w2=(3.0, 4.0), width=64, depth=50, sigma_b2=0.05, n_seeds=4, dtype="float32")
    assert (m.failed_layer == -1).all()
    rep, tan = m.log_growth_replica[..., 10:].mean(-1), m.log_growth_tangent[..., 10:].mean(-1)
    # finite-eps scatter per network (a unit crossing gelu's bend) is <= 3e-3 at width 64; it averages out
    assert (rep - tan).abs().max() < 1e-2 and (rep - tan).mean((0, 2)).abs().max() < 1e-3, rep - tan
    # sigma_w2 = 100: q ~ 50^l reaches 1e20 by layer 12 (float32 overflows near 1e38, layer ~22)
    m = run(activation="gelu", sigma_w2=(100.0,), width=64, depth=12, n_seeds=4, dtype="float32")
    assert (m.failed_layer == -1).all() and m.log_q[..., -1].min() > math.log(1e18)
    diff = (m.log_growth_replica - m.log_growth_tangent).mean(-1)  # per network and input, over 12 layers (~1.9 each)
    assert diff.abs().max() < 1e-2 and diff.mean().abs() < 1e-3, diff


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
    """A network flagged in every layer (gain = inf in float32) beside healthy ReLU networks. Tangents are
    carried without the gain, so their squared norm grows by ~N/2 = 64 a layer and leaves float32 (e^88) within
    ~21 layers unless renormalized. The
    tangent renormalization used to be skipped in every layer with a flag, so the healthy tangents overflowed
    and were flagged too (the default gelu job at N=256 once lost all 176 networks of a seed group this way)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # one worker: all seeds in one group, as in the run that cascaded
        m = run(activation="relu", sigma_w2=(2.0, 1e4, 1e80), width=128, depth=40, n_seeds=4, dtype="float32")
    finally:
        torch.set_num_threads(before)
    assert (m.failed_layer[:, :2] == -1).all() and (m.overflow_layer[:, 2] == 1).all()
    lam = m.log_growth_tangent[:, 1].mean().item()  # 0.5 ln(sigma_w2/2) = 4.26 up to O(1/N) (docs/science.md §2)
    assert torch.isfinite(m.log_growth_tangent[:, :2]).all() and abs(lam - 0.5 * math.log(5e3)) < 0.2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_healthy_run_flags_nothing(dtype):
    m = run(activation="tanh", sigma_w2=(0.5, 1.5, 4.0), sigma_b2=0.05, dtype=dtype)
    for f in (m.failed_layer, m.overflow_layer, m.vanish_layer):
        assert (f == -1).all()
