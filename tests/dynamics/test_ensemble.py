"""The engine (`pipeline.dynamics.ensemble.simulate`) against a plain NumPy forward pass written out here.

Mutation tests (docs/mutation.md, "dynamics.ensemble (session 6)"). The reference draws the same random numbers
(`pipeline.nets.weights.NetworkStreams`, one generator per network and stream, docs/science.md §7) and then
computes every estimator of docs/science.md §2-3 in true units, in float64, with none of the engine's devices
(no unit-RMS carrying of homogeneous signals, no replica renormalisation factor, no tangent rescaling, no
block layout): h^{l+1} = sqrt(sigma_w2 / N) Z phi(h^l) + b, the replica at RMS distance eps * s_l from h^l
(s_l = rms(h^l) for ReLU/linear, max(1, rms(h^l)) otherwise), the tangent t^{l+1} = J t^l, the probe
||J v||^2 for a fresh unit v, and the QR step J Q = Q' R along input 0.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from pipeline.config.validate import format_bytes
from pipeline.dynamics.ensemble import (
    MemoryBudgetError,
    _bytes_per_seed,
    engine_workers,
    seed_chunk,
    seed_groups,
    simulate,
)
from pipeline.nets.weights import (
    STREAM_BIAS,
    STREAM_INPUT,
    STREAM_PROBE,
    STREAM_SPECTRUM,
    STREAM_TANGENT,
    NetworkStreams,
)
from tests.conftest import engine_spec

PHI = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "gelu": (
        lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
        lambda x: 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
    ),
}
HOMOGENEOUS = {"tanh": False, "relu": True, "linear": True, "gelu": False}


def _np(x) -> np.ndarray:
    return x.double().numpy()[0]


def reference(spec, seed_id: int) -> dict:
    """One network (id `seed_id`) of `spec`, all K sigma_w2 values, by a NumPy forward pass in float64."""
    phi, dphi = PHI[spec.activation]
    N, L, P, k = spec.width, spec.depth, spec.n_pairs, spec.n_spectrum
    rand = NetworkStreams(spec.seed, [seed_id], "cpu")
    g = _np(rand.normal(STREAM_INPUT, (N, 2 * P), torch.float64))
    h0 = np.empty((N, 2 * P))
    for p in range(P):
        e, _ = np.linalg.qr(g[:, 2 * p : 2 * p + 2])
        h0[:, 2 * p] = e[:, 0] * math.sqrt(spec.q0 * N)
        h0[:, 2 * p + 1] = (spec.c0 * e[:, 0] + math.sqrt(1 - spec.c0**2) * e[:, 1]) * math.sqrt(spec.q0 * N)
    u = _np(rand.normal(STREAM_TANGENT, (N, 2 * P), torch.float64))
    u = u / np.linalg.norm(u, axis=0)
    Q0 = np.linalg.qr(_np(rand.normal(STREAM_SPECTRUM, (N, k), torch.float64)))[0] if k else None
    Zs, Vs, Bs = [], [], []
    for _ in range(L):
        Zs.append(_np(rand.weights(N, spec.weights, spec.xi, torch.float64)))
        v = _np(rand.normal(STREAM_PROBE, (N, 2 * P), torch.float64))
        Vs.append(v / np.linalg.norm(v, axis=0))
        Bs.append(_np(rand.normal(STREAM_BIAS, (N,), torch.float64)) * math.sqrt(spec.sigma_b2) if spec.sigma_b2 else 0)
    out = {n: [] for n in ("log_q", "c", "chi", "rep", "tan", "spec")}
    for sw in spec.sigma_w2:
        W = [math.sqrt(sw / N) * z for z in Zs]
        h, t, r, Q = h0.copy(), u.copy(), u.copy(), Q0
        log_q, cs, chi, rep, tan, sp = [], [], [], [], [], []
        for layer in range(L + 1):
            log_q.append(np.log((h * h).mean(0)))
            a, b = h[:, 0::2], h[:, 1::2]
            cs.append((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0)))
            if layer == L:
                break
            rms = np.sqrt((h * h).mean(0))
            s = rms if HOMOGENEOUS[spec.activation] else np.maximum(1.0, rms)
            d = r / np.sqrt((r * r).mean(0)) * spec.eps * s  # Benettin: the replica put back at distance eps s
            w, j = W[layer], dphi(h)
            r = w @ (phi(h + d) - phi(h))  # the bias cancels in the difference
            rep.append(np.log(np.sqrt((r * r).mean(0)) / (spec.eps * s)))
            t_new = w @ (j * t)
            tan.append(np.log(np.linalg.norm(t_new, axis=0) / np.linalg.norm(t, axis=0)))
            chi.append((np.linalg.norm(w @ (j * Vs[layer]), axis=0)) ** 2)
            if k:
                Q, R = np.linalg.qr(w @ (j[:, :1] * Q))
                sp.append(np.log(np.abs(np.diag(R))))
            h, t = w @ phi(h) + Bs[layer][:, None] if spec.sigma_b2 else w @ phi(h), t_new
        for name, val in zip(out, (log_q, cs, chi, rep, tan, sp)):
            out[name].append(np.array(val).T if val else None)
    return out


def check_against_reference(spec, m, atol=1e-9, seeds=None):
    names = {"log_q": m.log_q, "c": m.c, "chi": m.chi, "rep": m.log_growth_replica, "tan": m.log_growth_tangent}
    if spec.n_spectrum:
        names["spec"] = m.spectrum_log_r
    for s in seeds if seeds is not None else range(spec.n_seeds):
        ref = reference(spec, s)
        for name, got in names.items():
            for kk in range(len(spec.sigma_w2)):
                np.testing.assert_allclose(
                    got[s, kk].numpy(), ref[name][kk], rtol=0, atol=atol, err_msg=f"{name} seed {s} k {kk}"
                )


CASES = {
    "tanh_bias": dict(activation="tanh", width=12, depth=6, sigma_w2=(0.6, 2.5), sigma_b2=0.3, n_pairs=2, q0=2.5,
                      c0=0.3, eps=1e-4, n_spectrum=2),
    "tanh_small_q0": dict(activation="tanh", width=10, depth=5, sigma_w2=(1.7,), sigma_b2=0.0, n_pairs=1, q0=0.3,
                          c0=-0.4, eps=1e-5, n_spectrum=0),
    "relu_bias": dict(activation="relu", width=12, depth=7, sigma_w2=(1.0, 4.0), sigma_b2=0.2, n_pairs=2, q0=3.0,
                      c0=0.5, eps=1e-5, n_spectrum=3),
    "linear_xi": dict(activation="linear", width=9, depth=5, sigma_w2=(0.5, 3.0), sigma_b2=0.0, n_pairs=1, q0=0.7,
                      c0=0.6, eps=1e-3, n_spectrum=2, xi=0.3),
    "tanh_orth": dict(activation="tanh", width=8, depth=4, sigma_w2=(2.0,), sigma_b2=0.1, n_pairs=1, q0=1.0,
                      c0=0.2, eps=1e-4, n_spectrum=1, weights="orthogonal"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_every_estimator_matches_a_numpy_forward_pass_in_float64(case):
    spec = engine_spec(**CASES[case], n_seeds=3, seed=5, dtype="float64")
    m = simulate(spec)
    S, K, P, L, k = 3, len(spec.sigma_w2), spec.n_pairs, spec.depth, spec.n_spectrum
    assert m.spec is spec
    assert m.log_q.shape == (S, K, 2 * P, L + 1) and m.c.shape == (S, K, P, L + 1)
    for name in ("chi", "log_growth_replica", "log_growth_tangent"):
        assert getattr(m, name).shape == (S, K, 2 * P, L), name
    assert (m.spectrum_log_r is None) if not k else m.spectrum_log_r.shape == (S, K, k, L)
    for f in (m.failed_layer, m.overflow_layer, m.vanish_layer):
        assert f.dtype == torch.int64 and f.shape == (S, K) and (f == -1).all()
    assert m.log_q.dtype == torch.float64
    # layer 0: exact empirical variance q0 and correlation c0
    assert torch.allclose(m.log_q[..., 0], torch.tensor(math.log(spec.q0), dtype=torch.float64), atol=1e-12)
    assert torch.allclose(m.c[..., 0], torch.tensor(spec.c0, dtype=torch.float64), atol=1e-12)
    check_against_reference(spec, m)


def test_tangent_renormalisation_in_deep_linear_and_relu_networks_keeps_every_growth_exact():
    """The carried tangent grows by ~N (linear) or ~N/2 (ReLU) in squared norm per layer without the gain, so it is
    rescaled once its squared norm leaves e^60 (here after ~20 and ~27 layers): the per-layer growths must not see
    it. Also the ReLU bias in units of the carried scale, and log q far from the unit-RMS carried signal."""
    for act, depth in (("linear", 26), ("relu", 34)):
        spec = engine_spec(activation=act, width=16, depth=depth, sigma_w2=(0.3, 6.0), sigma_b2=0.4, n_pairs=1,
                           q0=5.0, c0=0.1, eps=1e-3, n_spectrum=0, n_seeds=1, seed=2, dtype="float64")  # fmt: skip
        m = simulate(spec)
        check_against_reference(spec, m)
        # the two sigma_w2 share Z and a linear network has slope 1: per layer, their tangent growths differ by
        # exactly 0.5 ln(6 / 0.3)
        if act == "linear":
            d = m.log_growth_tangent[0, 1] - m.log_growth_tangent[0, 0]
            assert torch.allclose(d, torch.full_like(d, 0.5 * math.log(20.0)), atol=1e-12)


def test_a_network_that_overflows_mid_way_is_nan_from_its_layer_and_exact_before():
    """float64 gelu (phi ~ x for large x; ReLU and linear are carried at unit RMS and never overflow, tanh is
    bounded): q^l ~ (sigma_w2 / 2)^l, so at sigma_w2 = 1e120 the layer-2 signal (~1e240) is finite and layer 3
    (~1e360) passes the float64 maximum 1.8e308. The flagged network is NaN from layer 3 (per-transition arrays from
    transition 2 -> 3) and equal to the reference before; the other sigma_w2 of the same networks is untouched."""
    spec = engine_spec(activation="gelu", width=8, depth=5, sigma_w2=(1.5, 1e120), sigma_b2=0.0, n_pairs=1, q0=1.0,
                       c0=0.3, eps=1e-4, n_spectrum=1, n_seeds=2, seed=1, dtype="float64")  # fmt: skip
    m = simulate(spec)
    assert m.failed_layer[:, 0].tolist() == [-1, -1] and m.overflow_layer[:, 0].tolist() == [-1, -1]
    f = 3
    assert m.failed_layer[:, 1].tolist() == [f, f] and m.overflow_layer[:, 1].tolist() == [f, f]
    assert m.vanish_layer.tolist() == [[-1, -1], [-1, -1]]
    for s in range(2):
        with np.errstate(all="ignore"):  # the reference overflows at layer 3 too
            ref = reference(spec, s)
        np.testing.assert_allclose(m.log_q[s, 0].numpy(), ref["log_q"][0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(m.chi[s, 0].numpy(), ref["chi"][0], rtol=1e-9, atol=0)
        np.testing.assert_allclose(m.log_growth_tangent[s, 0].numpy(), ref["tan"][0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(m.spectrum_log_r[s, 0].numpy(), ref["spec"][0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(m.log_q[s, 1, :, :f].numpy(), ref["log_q"][1][:, :f], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.c[s, 1, :, :f].numpy(), ref["c"][1][:, :f], rtol=0, atol=1e-9)
        assert torch.isnan(m.log_q[s, 1, :, f:]).all() and torch.isnan(m.c[s, 1, :, f:]).all()
        for name, r in (("chi", "chi"), ("log_growth_replica", "rep"), ("log_growth_tangent", "tan"),
                        ("spectrum_log_r", "spec")):  # fmt: skip
            got = getattr(m, name)[s, 1]
            assert torch.isnan(got[:, f - 1 :]).all(), name
            np.testing.assert_allclose(got[:, : f - 1].numpy(), ref[r][1][:, : f - 1], rtol=1e-9, atol=1e-9)


def test_working_set_seed_chunk_and_groups_by_hand():
    spec = engine_spec(activation="tanh", width=10, depth=3, sigma_w2=(1.0, 2.0, 3.0), n_pairs=2, n_spectrum=3,
                       n_seeds=7, dtype="float32", memory_budget_gb=1.0)  # fmt: skip
    per32 = 4 * (10 * 10 * 2 + 8 * 10 * 3 * (4 * 4 + 3))  # item * (N^2 * 2 + 8 N K (4 I + k))
    assert _bytes_per_seed(spec) == per32 == 19040
    spec64 = engine_spec(**{**spec.__dict__, "dtype": "float64"})
    assert _bytes_per_seed(spec64) == 2 * per32
    gib = 2**30
    at = lambda n_bytes, **kw: engine_spec(**{**spec.__dict__, "memory_budget_gb": n_bytes / gib, **kw})  # noqa: E731
    assert seed_chunk(at(per32)) == 1  # exactly one seed fits
    assert seed_chunk(at(3 * per32 + per32 - 1)) == 3
    assert seed_chunk(at(100 * per32)) == 7  # at most n_seeds
    with pytest.raises(MemoryBudgetError) as e:
        seed_chunk(at(per32 - 1))
    b = (per32 - 1) / gib
    assert str(e.value) == (
        f"memory_budget_gb={b} is too small for net.width=10: one seed with 3 sigma_w2 values needs "
        f"{format_bytes(per32)} (raise the budget or lower the width)"
    )
    with pytest.raises(MemoryBudgetError):
        seed_groups(at(per32 - 1), 1)
    # groups: size = max(1, min(fit // workers, ceil(S / workers)))
    assert seed_groups(at(100 * per32), 1) == [list(range(7))]
    assert seed_groups(at(100 * per32), 2) == [[0, 1, 2, 3], [4, 5, 6]]
    assert seed_groups(at(100 * per32), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert seed_groups(at(5 * per32), 2) == [[0, 1], [2, 3], [4, 5], [6]]  # fit 5: 2 per group
    assert seed_groups(at(per32), 2) == [[i] for i in range(7)]  # fit 1: 1 per group
    assert seed_groups(at(100 * per32, n_seeds=1), 2) == [[0]]


def test_engine_workers_is_one_per_torch_thread_bounded_by_seeds_and_budget():
    before = torch.get_num_threads()
    spec = engine_spec(activation="tanh", width=10, depth=3, sigma_w2=(1.0,), n_seeds=5, memory_budget_gb=1.0)
    per = _bytes_per_seed(spec)
    try:
        torch.set_num_threads(2)
        assert engine_workers(spec) == 2
        assert engine_workers(engine_spec(**{**spec.__dict__, "n_seeds": 1})) == 1
        assert engine_workers(engine_spec(**{**spec.__dict__, "memory_budget_gb": per / 2**30})) == 1
        assert engine_workers(engine_spec(**{**spec.__dict__, "device": "meta"})) == 1  # not the CPU: one
        torch.set_num_threads(1)
        assert engine_workers(spec) == 1
    finally:
        torch.set_num_threads(before)


def test_seed_groups_on_worker_threads_concatenate_in_seed_order_with_the_progress_counts(monkeypatch):
    """5 seeds in groups of one seed (budget for one) on 2 worker threads: every network equals its own
    reference, in id order; the progress bar counts layers x seeds and is closed; torch's thread count is restored."""
    import pipeline.dynamics.ensemble as ens

    calls = {}

    class Bar:
        def __init__(self, total, desc):
            calls.update(total=total, desc=desc, n=0, closed=False)

        def update(self, n):
            calls["n"] += n

        def close(self):
            calls["closed"] = True

    monkeypatch.setattr(ens, "progress", lambda total, desc: Bar(total, desc))
    kw = dict(activation="tanh", width=6, depth=3, sigma_w2=(0.9, 2.2), sigma_b2=0.2, n_pairs=1, q0=1.3, c0=0.4,
              eps=1e-4, n_spectrum=1, n_seeds=5, seed=3, dtype="float64")  # fmt: skip
    one = _bytes_per_seed(engine_spec(**kw)) / 2**30
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        spec = engine_spec(**kw, memory_budget_gb=one)
        assert engine_workers(spec) == 1  # the budget holds one network: one worker
        spec = engine_spec(**kw, memory_budget_gb=2 * one)
        assert engine_workers(spec) == 2 and seed_groups(spec, 2) == [[0], [1], [2], [3], [4]]
        m = simulate(spec)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert calls == dict(total=15, desc="tanh N=6 (layers x seeds)", n=15, closed=True)
    assert m.log_q.shape[0] == 5 and m.failed_layer.shape == (5, 2)
    check_against_reference(spec, m)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_saturated_tanh_network_is_a_vanish_not_an_overflow(dtype):
    """sigma_w2 = 1e10: from layer 1 on |h| ~ 1e5, every tanh slope rounds to exactly 0, so at transition 1 -> 2 the
    tangent and the replica difference are exactly 0. The separation eps = 1e-3 (relative once rms h > 1) is far
    above the float resolution (1.2e-7 / 2.2e-16), so by the rule of `EnsembleMeasurement` this is a vanish at
    layer 2, not an overflow; the other sigma_w2 is untouched."""
    m = simulate(engine_spec(activation="tanh", width=16, depth=4, sigma_w2=(1.5, 1e10), sigma_b2=0.0, n_seeds=3,
                             seed=0, dtype=dtype, eps=1e-3))  # fmt: skip
    assert m.failed_layer.tolist() == [[-1, 2]] * 3 and m.vanish_layer.tolist() == [[-1, 2]] * 3
    assert (m.overflow_layer == -1).all()
    assert torch.isfinite(m.log_q[:, 1, :, :2]).all() and torch.isnan(m.log_q[:, 1, :, 2:]).all()
    assert torch.isfinite(m.log_growth_tangent[:, 1, :, :1]).all() and torch.isnan(m.chi[:, 1, :, 1:]).all()
    assert torch.isfinite(m.log_growth_tangent[:, 0]).all() and torch.isfinite(m.c[:, 0]).all()


def test_at_most_engine_workers_seed_groups_run_at_once(monkeypatch):
    """seed_groups' contract: at most `workers` groups are held at once (the memory budget is split among them)."""
    import threading
    import time

    import pipeline.dynamics.ensemble as ens

    real, lock, state = ens._simulate_chunk, threading.Lock(), {"now": 0, "max": 0, "names": set()}

    def chunk(spec, ids, tick):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["names"].add(threading.current_thread().name.split("_")[0])
        time.sleep(0.05)
        try:
            return real(spec, ids, tick)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(ens, "_simulate_chunk", chunk)
    kw = dict(activation="relu", width=4, depth=2, sigma_w2=(2.0,), n_seeds=6, n_spectrum=0, dtype="float64")
    spec = engine_spec(**kw, memory_budget_gb=2 * _bytes_per_seed(engine_spec(**kw)) / 2**30)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert engine_workers(spec) == 2 and len(seed_groups(spec, 2)) == 6
        m = simulate(spec)
    finally:
        torch.set_num_threads(before)
    assert state["max"] == 2 and state["names"] == {"engine"}
    assert m.log_q.shape == (6, 1, 2 * spec.n_pairs, 3)


@pytest.mark.parametrize("q0,cause", [(1e-30, "vanish"), (1e-10, "overflow")])
def test_a_replica_difference_of_zero_is_an_overflow_only_where_eps_is_below_the_signals_resolution(q0, cause):
    """float32 tanh, eps = 1e-21. The replica sits at RMS distance eps (absolute: rms h < 1). At q0 = 1e-30 (rms h
    1e-15, float32 spacing ~1e-22) the separation is resolved, but its sum of squares over the width (~1e-40)
    underflows below the smallest normal float32 (1.2e-38): a vanish. At q0 = 1e-10 (rms h 1e-5, spacing ~1e-12)
    h + d rounds to h, the difference cancels to 0: numerics, an overflow (rule of `EnsembleMeasurement`:
    q feps^2 >= eps^2 max(1, q))."""
    m = simulate(engine_spec(activation="tanh", width=16, depth=3, sigma_w2=(1.0,), sigma_b2=0.0, n_seeds=2, q0=q0,
                             eps=1e-21, dtype="float32"))  # fmt: skip
    assert m.failed_layer.tolist() == [[1], [1]]
    assert m.vanish_layer.tolist() == ([[1], [1]] if cause == "vanish" else [[-1], [-1]])
    assert m.overflow_layer.tolist() == ([[1], [1]] if cause == "overflow" else [[-1], [-1]])


@pytest.mark.parametrize("weights,xi", [("orthogonal", 1.0), ("gaussian", 0.3)])
def test_float32_engine_matches_the_float64_reference_to_float32_accuracy(weights, xi):
    """The float32 engine sees the same networks (draws are made in float32 and cast) and computes in float32:
    within 1e-4 of the float64 reference (replica growth 1e-3: its difference of two forward passes loses
    feps / eps ~ 1e-4 relative), but not bit-equal to it (it really is float32 arithmetic)."""
    kw = dict(activation="tanh", width=12, depth=5, sigma_w2=(0.8, 2.5), sigma_b2=0.1, n_pairs=1, q0=1.5, c0=0.2,
              eps=1e-3, n_spectrum=2, n_seeds=2, seed=4, weights=weights, xi=xi)  # fmt: skip
    spec = engine_spec(**kw, dtype="float32")
    m = simulate(spec)
    check_against_reference(spec, m, atol=1e-3)
    names = ("log_q", "c", "chi", "log_growth_tangent", "spectrum_log_r")
    ref = [reference(spec, s) for s in range(2)]
    for name, r in zip(names, ("log_q", "c", "chi", "tan", "spec")):
        want = np.stack([np.stack(ref[s][r]) for s in range(2)])
        err = np.abs(getattr(m, name).numpy() - want).max()
        assert 1e-12 < err < 1e-4, (name, err)
