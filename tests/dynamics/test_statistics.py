"""Engine statistics against hand computations (docs/science.md §7): no simulation, no shared code.

Every expected value below is computed with plain NumPy loops or written out by hand, never with
`mean_se`, `summarize` or `zero_crossing` themselves.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.dynamics.ensemble import EnsembleMeasurement
from pipeline.dynamics.statistics import (
    Crossing,
    layer_curves,
    mean_se,
    network_crossing,
    network_values,
    summarize,
    zero_crossing,
)

T = torch.float64


def _hand_mean_se(values):
    """Mean, SE = std(ddof=1)/sqrt(n) and count of the finite entries of a 1-D list, by hand."""
    v = [float(a) for a in values if math.isfinite(a)]
    n = len(v)
    if n == 0:
        return math.nan, 0.0, 0
    m = sum(v) / n
    se = math.sqrt(sum((a - m) ** 2 for a in v) / (n - 1) / n) if n > 1 else 0.0
    return m, se, n


def test_mean_se_matches_hand_formula_with_nan_and_small_counts():
    # columns with 4, 3, 2, 1 and 0 finite entries: n - 1 (not n, not n + 1) in the variance, SE 0 at n = 1
    x = torch.tensor(
        [
            [1.0, 2.0, 5.0, 7.0, math.nan],
            [3.0, math.nan, 1.0, math.nan, math.nan],
            [4.0, 6.0, math.nan, math.nan, math.nan],
            [-2.0, 10.0, math.nan, math.nan, math.nan],
        ],
        dtype=T,
    )
    for dim in (0, 1):
        mean, se, n = mean_se(x, dim)
        cols = x.T if dim == 0 else x
        for j, col in enumerate(cols.tolist()):
            m_ref, se_ref, n_ref = _hand_mean_se(col)
            assert n[j] == n_ref
            assert se[j] == pytest.approx(se_ref, abs=1e-14)
            if n_ref:
                assert mean[j] == pytest.approx(m_ref, abs=1e-14)
            else:
                assert math.isnan(mean[j])
    # a concrete case written out: (5, 1) -> mean 3, sample variance 8, SE sqrt(8 / 2) = 2
    mean, se, n = mean_se(torch.tensor([[5.0, 1.0]], dtype=T), 1)
    assert (mean[0], se[0], n[0]) == (3.0, 2.0, 2)


def _measurement(seed=0, S=4, K=2, P=1, L=5, k=2, cause="vanish"):
    """A hand-built EnsembleMeasurement with distinct random values in every layer, seed and input; its two
    flagged networks failed by `cause` ("vanish": they keep their finite layers, "overflow": dropped whole)."""
    g = torch.Generator().manual_seed(seed)
    I = 2 * P
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=T)  # noqa: E731
    log_q = r(S, K, I, L + 1)
    c = 0.5 * torch.tanh(r(S, K, P, L + 1))
    chi = 1 + 0.1 * r(S, K, I, L)
    rep, tan = r(S, K, I, L), r(S, K, I, L)
    spec_r = r(S, K, k, L)
    failed = torch.full((S, K), -1, dtype=torch.long)
    # network (seed 1, K 0) failed at layer 3: NaN from layer 3 (log_q, c), from transition 2 on (others)
    failed[1, 0] = 3
    log_q[1, 0, :, 3:] = math.nan
    c[1, 0, :, 3:] = math.nan
    for a in (chi, rep, tan, spec_r):
        a[1, 0, :, 2:] = math.nan
    # network (seed 2, K 1) failed at layer 1: nothing finite after the input layer
    failed[2, 1] = 1
    log_q[2, 1, :, 1:] = math.nan
    c[2, 1, :, 1:] = math.nan
    for a in (chi, rep, tan, spec_r):
        a[2, 1] = math.nan
    spec = SimpleNamespace(depth=L, sigma_w2=(1.3, 2.1))
    none = torch.full_like(failed, -1)
    over, vanish = (failed, none) if cause == "overflow" else (none, failed)
    return EnsembleMeasurement(spec, log_q, c, chi, rep, tan, spec_r, failed, over.clone(), vanish.clone())


def _seed_values(arr, s, kk, layers):
    """Per-seed value: mean over layers `layers` of each input (NaN-ignoring), then over inputs."""
    per_input = []
    for i in range(arr.shape[2]):
        v = [float(arr[s, kk, i, l]) for l in layers if math.isfinite(float(arr[s, kk, i, l]))]
        per_input.append(sum(v) / len(v) if v else math.nan)
    fin = [v for v in per_input if math.isfinite(v)]
    return sum(fin) / len(fin) if fin else math.nan


@pytest.mark.parametrize("burn_in,b", [(0, 0), (-3, 0), (2, 2), (99, 4)])
def test_summarize_matches_a_hand_computation_per_column(burn_in, b):
    m = _measurement()
    S, K, L = m.log_q.shape[0], m.log_q.shape[1], m.spec.depth
    t = summarize(m, burn_in)
    expected_cols = {"sigma_w2", "q_L", "log_q_L", "c_L", "log_q_growth", "chi", "lambda_replica", "lambda_tangent"}
    expected_cols |= {f"{c}_se" for c in expected_cols - {"sigma_w2"}}
    expected_cols |= {"n_seeds_used", "n_failed_networks", "n_overflowed_networks", "n_vanished_networks"}
    expected_cols |= {"lambda_1", "lambda_1_se", "lambda_2", "lambda_2_se"}
    assert set(t.columns) == expected_cols
    assert t.sigma_w2.tolist() == [1.3, 2.1]
    growth = m.log_q[..., 1:] - m.log_q[..., :-1]
    after = range(b, L)
    per_col = {
        "q_L": lambda s, kk: _seed_values(torch.exp(m.log_q), s, kk, [L]),
        "log_q_L": lambda s, kk: _seed_values(m.log_q, s, kk, [L]),
        "c_L": lambda s, kk: _seed_values(m.c, s, kk, [L]),
        "log_q_growth": lambda s, kk: _seed_values(growth, s, kk, after),
        "chi": lambda s, kk: _seed_values(m.chi, s, kk, after),
        "lambda_replica": lambda s, kk: _seed_values(m.log_growth_replica, s, kk, after),
        "lambda_tangent": lambda s, kk: _seed_values(m.log_growth_tangent, s, kk, after),
    }
    for kk in range(K):
        for name, fn in per_col.items():
            ref_mean, ref_se, ref_n = _hand_mean_se([fn(s, kk) for s in range(S)])
            assert t[name][kk] == pytest.approx(ref_mean, abs=1e-12), (name, kk)
            assert t[f"{name}_se"][kk] == pytest.approx(ref_se, abs=1e-12), (name, kk)
            if name == "lambda_tangent":
                assert t.n_seeds_used[kk] == ref_n
        for j in range(2):  # QR spectrum: layer mean per seed, then mean and SE over seeds
            vals = []
            for s in range(S):
                v = [float(m.spectrum_log_r[s, kk, j, l]) for l in after]
                v = [a for a in v if math.isfinite(a)]
                vals.append(sum(v) / len(v) if v else math.nan)
            ref_mean, ref_se, _ = _hand_mean_se(vals)
            assert t[f"lambda_{j + 1}"][kk] == pytest.approx(ref_mean, abs=1e-12)
            assert t[f"lambda_{j + 1}_se"][kk] == pytest.approx(ref_se, abs=1e-12)
    assert t.n_failed_networks.tolist() == [1, 1] and t.n_vanished_networks.tolist() == [1, 1]
    assert t.n_overflowed_networks.tolist() == [0, 0]
    # with burn_in >= 2 network (1, 0) has no finite transition and drops out: 3 seeds left
    assert t.n_seeds_used.tolist() == ([3, 3] if b >= 2 else [4, 3])


@pytest.mark.parametrize("burn_in", [0, 2])
def test_an_overflowed_network_is_dropped_whole_from_every_column_by_hand(burn_in):
    """Networks (1, 0) and (2, 1) overflowed: none of their layers, not even those before the overflow,
    enters a column, and n_seeds_used counts the 3 networks left at each sigma_w2."""
    m = _measurement(cause="overflow")
    t = summarize(m, burn_in)
    L = m.spec.depth
    dropped = {(1, 0), (2, 1)}
    after = range(burn_in, L)
    for kk in range(2):
        keep = [s for s in range(4) if (s, kk) not in dropped]
        for name, arr, layers in (("lambda_replica", m.log_growth_replica, after), ("chi", m.chi, after),
                                  ("log_q_L", m.log_q, [L]), ("c_L", m.c, [L])):  # fmt: skip
            ref_mean, ref_se, _ = _hand_mean_se([_seed_values(arr, s, kk, layers) for s in keep])
            assert t[name][kk] == pytest.approx(ref_mean, abs=1e-12), (name, kk)
            assert t[f"{name}_se"][kk] == pytest.approx(ref_se, abs=1e-12), (name, kk)
        vals = [sum(float(m.spectrum_log_r[s, kk, 0, l]) for l in after) / len(after) for s in keep]
        assert t.lambda_1[kk] == pytest.approx(sum(vals) / 3, abs=1e-12)
    assert t.n_seeds_used.tolist() == [3, 3] and t.n_failed_networks.tolist() == [1, 1]
    assert t.n_overflowed_networks.tolist() == [1, 1] and t.n_vanished_networks.tolist() == [0, 0]
    # the per-layer curves leave it out too: layer 1 of sigma_w2 index 0 averages the other 3 networks
    curves = layer_curves(m)
    q1 = curves[(curves.sigma_w2 == 1.3) & (curves.layer == 1)].q.item()
    ref = [math.exp(float(m.log_q[s, 0, i, 1])) for s in (0, 2, 3) for i in range(2)]
    assert q1 == pytest.approx(sum(ref) / len(ref), rel=1e-12)


def test_zero_crossing_interpolates_and_propagates_se_by_hand():
    # unsorted, non-uniform grid; the crossing is between x = 1 (y = -0.2) and x = 3 (y = 0.3)
    x = np.array([3.0, 0.0, 1.0, 4.0])
    y = np.array([0.3, -0.5, -0.2, 0.9])
    se = np.array([0.02, 0.05, 0.01, 0.03])
    x0, err = zero_crossing(x, y, se)
    w = 0.2 / 0.5  # fraction of the interval [1, 3]
    assert x0 == pytest.approx(1 + w * 2, abs=1e-14)
    slope = 0.5 / 2
    assert err == pytest.approx(math.sqrt(((1 - w) * 0.01) ** 2 + (w * 0.02) ** 2) / slope, abs=1e-14)


def test_zero_crossing_edge_cases_written_out():
    se = np.full(4, 0.1)
    # the crossing in the last interval is found
    assert zero_crossing(np.arange(4.0), np.array([-3.0, -2.0, -1.0, 1.0]), se)[0] == pytest.approx(2.5)
    # landing exactly on 0 counts as crossing (y_i < 0 <= y_i+1); starting at 0 does not
    assert zero_crossing(np.arange(3.0), np.array([-1.0, 0.0, 1.0]), se[:3])[0] == pytest.approx(1.0)
    x0, e = zero_crossing(np.arange(3.0), np.array([0.0, 1.0, 2.0]), se[:3])
    assert math.isnan(x0) and math.isnan(e)
    # a NaN beyond the crossing pair does not hide it; a NaN inside the pair does
    assert zero_crossing(np.arange(4.0), np.array([-1.0, 1.0, math.nan, 2.0]), se)[0] == pytest.approx(0.5)
    assert zero_crossing(np.arange(3.0), np.array([-1.0, 1.0, math.nan]), se[:3])[0] == pytest.approx(0.5)
    x0, e = zero_crossing(np.arange(4.0), np.array([-1.0, math.nan, 1.0, 2.0]), se)
    assert math.isnan(x0) and math.isnan(e)
    # no upward crossing (only downward) -> (nan, nan)
    x0, e = zero_crossing(np.arange(4.0), np.array([1.0, -1.0, -2.0, -3.0]), se)
    assert math.isnan(x0) and math.isnan(e)


# ---------------------------------------------------------------- crossings from per-network curves (issue 21)


def _hand_jackknife_crossing(x, y):
    """Mean-curve crossing in the first upward interval and the delete-one jackknife SE, with plain loops."""
    K, S = len(x), len(y[0])
    mean = [sum(row) / S for row in y]
    i = next(k for k in range(K - 1) if mean[k] < 0 <= mean[k + 1])
    line = lambda a, b: x[i] - a * (x[i + 1] - x[i]) / (b - a)  # noqa: E731
    loo = [line((S * mean[i] - y[i][s]) / (S - 1), (S * mean[i + 1] - y[i + 1][s]) / (S - 1)) for s in range(S)]
    m = sum(loo) / S
    return line(mean[i], mean[i + 1]), math.sqrt((S - 1) / S * sum((v - m) ** 2 for v in loo))


def test_network_crossing_is_the_mean_curve_crossing_with_a_jackknife_se_by_hand():
    x = [0.5, 1.0, 1.5, 2.0]
    rng = np.random.default_rng(3)
    y = (np.array(x)[:, None] - 1.2) * (0.8 + 0.1 * rng.standard_normal(7)) + 0.05 * rng.standard_normal((4, 7))
    c = network_crossing(np.array(x), y)
    x0, se = _hand_jackknife_crossing(x, y.tolist())
    assert c.status == "ok" and c.reason == ""
    assert c.x == pytest.approx(x0, abs=1e-13) and c.se == pytest.approx(se, rel=1e-12)
    # the point estimate is today's: the crossing of the mean curve (zero_crossing of the means)
    assert c.x == pytest.approx(zero_crossing(np.array(x), y.mean(1), np.ones(4))[0], abs=1e-13)
    # grid order does not matter
    perm = [2, 0, 3, 1]
    assert network_crossing(np.array(x)[perm], y[perm]) == c


def test_a_crossing_inside_three_tied_grid_points_is_that_point_with_the_window_on():
    """sigma_w2 = 2 listed three times, the mean jumping from below to above 0 there: the crossing is x = 2 with SE
    0, with the window on as without it (the tied bracket's rule, test_tied_grid_points_keep_their_given_order).
    Before: ZeroDivisionError in the window's line fit (no spread in x)."""
    x = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    y = np.array([-1.0, -0.1, 0.1, 0.2, 1.0])[:, None] + 0.01 * np.arange(4)[None, :]
    for window in (0.0, 0.5):
        assert network_crossing(x, y, window=window) == network_crossing(x, y) == (2.0, 0.0, "ok", "")


def test_parallel_curves_have_the_se_of_their_common_offset_not_of_two_independent_points():
    """Common random numbers: each network's curve is the mean curve shifted by its own offset a_s (exactly so for
    bias-free ReLU, docs/science.md §2). Then x0 moves by -mean(a)/slope and SE(x0) = std(a)/sqrt(S)/slope, at
    any position in the interval. The two-point formula gives sqrt((1-w)^2 + w^2) of that: 0.71 at mid-interval."""
    a = np.array([0.03, -0.05, 0.02, 0.04, -0.01, -0.03])
    x = np.array([1.0, 2.0, 3.0])
    y = 0.5 * (x[:, None] - 1.5) + a[None, :]  # slope 0.5, mean(a) = 0: crossing at 1.5, mid-interval
    c = network_crossing(x, y)
    assert c.x == pytest.approx(1.5, abs=1e-12)
    want = a.std(ddof=1) / math.sqrt(len(a)) / 0.5
    assert c.se == pytest.approx(want, rel=1e-10)
    mean, se, _ = mean_se(torch.from_numpy(y), 1)
    assert zero_crossing(x, mean, se)[1] == pytest.approx(want / math.sqrt(2), rel=1e-10)  # the old, too small SE


def _coverage(x, exact, curves, reps, window=0.0):
    """Fraction of replications with |x0 - exact| <= 2 SE, and the crossings' z-scores."""
    z = []
    for y in curves:
        c = network_crossing(x, y, window=window)
        z.append((c.x - exact) / c.se)
    z = np.array(z)
    return float(np.mean(np.abs(z) <= 2)), z


def test_crossing_se_covers_the_known_crossing_95_percent_of_the_time_fast():
    """Coverage of |x0 - exact| <= 2 SE over 400 replications of synthetic correlated curves (fixed seed): each
    network has an offset and a slope error of its own (shared across sigma_w2) plus independent point noise; the
    mean curve is linear, so the exact crossing 1.25 lies mid-interval and interpolation adds no bias.
    Nominal 95.4%, measured 95.25% (seeds 1-3: 95.3-96.8%); the two-point SE of `zero_crossing` covers 87%."""
    rng = np.random.default_rng(2024)
    x, S, reps = np.array([0.5, 1.0, 1.5, 2.0]), 64, 400
    curves = [
        0.6 * (x[:, None] - 1.25)
        + 0.10 * rng.standard_normal(S)
        + 0.15 * (x[:, None] - 1.25) * rng.standard_normal(S)
        + 0.02 * rng.standard_normal((len(x), S))
        for _ in range(reps)
    ]
    cover, z = _coverage(x, 1.25, curves, reps)
    assert abs(cover - 0.95) <= 0.03, cover
    assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1


def test_on_a_refined_grid_the_window_fit_covers_95_percent_where_the_bracket_slope_is_noise():
    """A grid refined around the crossing (spacing 0.03, as grid.refine gives): each step moves the mean curve by
    0.018 while independent point noise is 0.05 per network (0.009 on a mean of 32), so the slope between the two
    bracketing means is noisy and the bracket's crossing is a ratio with heavy tails (erf sigma_b2 = 0.05 N = 16
    in the default sweep: SE 6.75). The least-squares line over the points within `window` = 0.12 covers the exact
    crossing in 95% +- 3% of 1000 replications (measured 94.8%, 2000 replications); the bracket alone: 82%."""
    rng = np.random.default_rng(11)
    x, S, reps = 1.25 + 0.03 * np.arange(-6, 7) + 0.011, 32, 1000  # the crossing sits off-grid
    curves = [
        0.6 * (x[:, None] - 1.25)
        + 0.01 * rng.standard_normal(S)
        + 0.05 * (x[:, None] - 1.25) * rng.standard_normal(S)
        + 0.05 * rng.standard_normal((len(x), S))
        for _ in range(reps)
    ]
    cover, z = _coverage(x, 1.25, curves, reps, window=0.12)
    assert abs(cover - 0.95) <= 0.03, cover
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1
    assert _coverage(x, 1.25, curves, reps)[0] < 0.88  # the bracket alone (window 0): the effect guarded


def test_a_window_with_only_the_bracket_is_the_two_point_crossing():
    x = np.array([0.5, 1.0, 1.5, 2.0])
    rng = np.random.default_rng(5)
    y = (x[:, None] - 1.2) * 0.8 + 0.05 * rng.standard_normal((4, 9))
    assert network_crossing(x, y, window=0.1) == network_crossing(x, y)


@pytest.mark.slow
def test_crossing_se_covers_the_exact_relu_crossing_95_percent_of_the_time():
    """Coverage against the exact finite-width bias-free ReLU crossing (docs/science.md §2: lambda_N(sigma_w2) =
    0.5 ln sigma_w2 + lambda_N(1), so sigma_w2* = exp(-2 lambda_N(1)) = 2.3858 at N = 16): 300 independent
    replications of 64 networks (N = 16, L = 10, burn-in 2, float64, seed 0) on a 4-point grid of spacing 0.3 with
    sigma_w2* mid-interval; |x0 - sigma_w2*| <= 2 SE must hold in 95% +- 3% of them. Measured: 95.0% (the old
    two-point SE: 89.3%). About 8 s."""
    from pipeline.dynamics.ensemble import EnsembleSpec, simulate
    from pipeline.theory.finite_width import relu_lyapunov_exact

    N, S, reps = 16, 64, 300
    exact = math.exp(-2 * relu_lyapunov_exact(N, 1.0))
    x = exact + 0.3 * np.array([-1.5, -0.5, 0.5, 1.5])
    spec = EnsembleSpec(activation="relu", width=N, depth=10, sigma_w2=tuple(x), sigma_b2=0.0, xi=1.0,
                        weights="gaussian", n_seeds=S * reps, n_pairs=1, q0=1.0, c0=0.5, eps=1e-3, n_spectrum=0,
                        seed=0, dtype="float64", device="cpu", memory_budget_gb=1.0)  # fmt: skip
    v = network_values(simulate(spec), 2, "lambda_replica")
    cover, z = _coverage(x, exact, [v[:, r * S : (r + 1) * S] for r in range(reps)], reps)
    assert abs(cover - 0.95) <= 0.03, cover
    assert abs(z.mean()) < 0.2 and abs(z.std() - 1) < 0.1


def test_no_crossing_says_why():
    x = np.array([1.0, 2.0, 3.0])
    neg = -np.ones((3, 4))
    c = network_crossing(x, neg)
    assert math.isnan(c.x) and math.isnan(c.se)
    assert c.status == "no_sign_change" and c.reason == "lambda < 0 at every sigma_w2 in [1, 3]"
    assert network_crossing(x, -neg).reason == "lambda >= 0 at every sigma_w2 in [1, 3]"
    one = network_crossing(np.array([2.0]), np.array([[0.1, -0.2, 0.3]]))
    assert one.status == "too_few_points" and "1 grid point" in one.reason and math.isnan(one.x)
    down = network_crossing(x, np.array([[1.0] * 4, [-1.0] * 4, [-2.0] * 4]))
    assert down.status == "no_upward_crossing"
    # one network at the bracket: a mean but no standard error
    single = network_crossing(x, np.array([[-1.0], [1.0], [2.0]]))
    assert single.status == "too_few_networks" and math.isnan(single.x) and math.isnan(single.se)


# ---------------------------------------------------------------- every field and branch of network_crossing


def _nan_crossing(c, status, reason):
    """c is (nan, nan, status, reason) exactly."""
    assert math.isnan(c.x) and math.isnan(c.se), c
    assert (c.status, c.reason) == (status, reason)


def _hand_crossing_with_missing(x, y, window, expect_pts):
    """Mean-curve crossing with NaN (missing) entries, by plain loops: means over the finite networks, the first
    upward bracket, every point within `window` of its interpolated zero with >= 2 finite networks (and the
    bracket), the least-squares line through those means (the interpolation line for 2 points), and the
    delete-one jackknife over the networks finite at any of them (leaving out a network missing at a point
    leaves that mean unchanged)."""
    K, S = len(x), len(y[0])
    fin = lambda k, s: math.isfinite(y[k][s])  # noqa: E731

    def means(skip):
        out = []
        for k in range(K):
            v = [y[k][s] for s in range(S) if fin(k, s) and s != skip]
            out.append(sum(v) / len(v) if v else math.nan)
        return out

    m = means(None)
    i = next(k for k in range(K - 1) if m[k] < 0 <= m[k + 1])
    x2 = x[i] + (-m[i] / (m[i + 1] - m[i])) * (x[i + 1] - x[i])
    n_fin = [sum(fin(k, s) for s in range(S)) for k in range(K)]
    pts = [k for k in range(K) if k in (i, i + 1) or (abs(x[k] - x2) <= window and n_fin[k] >= 2)]
    assert pts == expect_pts  # the branch the test means to exercise

    def fit(mm):
        xb = sum(x[k] for k in pts) / len(pts)
        yb = sum(mm[k] for k in pts) / len(pts)
        slope = sum((x[k] - xb) * (mm[k] - yb) for k in pts) / sum((x[k] - xb) ** 2 for k in pts)
        return xb - yb / slope

    members = [s for s in range(S) if any(fin(k, s) for k in pts)]
    loo = [fit(means(s)) for s in members]
    n, mu = len(loo), sum(loo) / len(loo)
    return fit(m), math.sqrt((n - 1) / n * sum((v - mu) ** 2 for v in loo))


def test_window_fit_with_missing_networks_matches_a_hand_jackknife():
    """x2 = 2.5 exactly (bracket means -0.5, 0.5): the points at distance exactly `window` = 1.5 enter the fit,
    the one at x = 1 with exactly 2 finite networks too; a network missing at x = 4 leaves that mean as it is."""
    nan = math.nan
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    y = [
        [-3.0, -2.5, -3.5, -2.0, -4.0],
        [-1.7, -1.1, nan, nan, nan],  # 2 finite networks: in the fit
        [-0.5, -0.25, -0.75, -0.625, -0.375],  # mean -0.5
        [0.5, 0.75, 0.25, 0.375, 0.625],  # mean 0.5
        [1.9, nan, 1.2, 1.6, 1.3],
        [2.0, 3.5, 4.0, 2.5, 3.0],
    ]
    x0, se = _hand_crossing_with_missing(x, y, 1.5, [1, 2, 3, 4])
    perm = [3, 0, 5, 1, 4, 2]
    c = network_crossing(np.array(x)[perm], np.array(y)[perm], what="chi", window=1.5)
    assert c.status == "ok" and c.reason == ""
    assert c.x == pytest.approx(x0, abs=1e-12) and c.se == pytest.approx(se, rel=1e-10)
    assert abs(c.x - 2.5) > 1e-3  # the fit moved it off the bracket's crossing
    # three points (the bracket and x = 1; x = 4 left out): the least-squares line through them
    x3, y3 = [v for k, v in enumerate(x) if k != 4], [v for k, v in enumerate(y) if k != 4]
    x0, se = _hand_crossing_with_missing(x3, y3, 1.5, [1, 2, 3])
    c = network_crossing(np.array(x3), np.array(y3), window=1.5)
    assert c.x == pytest.approx(x0, abs=1e-12) and c.se == pytest.approx(se, rel=1e-10)
    # two networks at the bracket are enough for a standard error
    y2 = [[-1.0, -0.5], [0.5, 1.5], [2.0, 2.5]]
    x0, se = _hand_crossing_with_missing([1.0, 2.0, 3.0], y2, 0.0, [0, 1])
    c = network_crossing(np.array([1.0, 2.0, 3.0]), np.array(y2))
    assert c.status == "ok" and c.x == pytest.approx(x0, abs=1e-13) and c.se == pytest.approx(se, rel=1e-12)


def test_network_crossing_computes_in_float64_from_float32_input():
    """A float32 grid and float32 values are converted once; everything after is float64 (no 1e-7 rounding)."""
    x = np.array([0.1, 1.3, 2.9], dtype=np.float32)
    rng = np.random.default_rng(8)
    y = (x[:, None] - 0.77) * (1 + 0.1 * rng.standard_normal(6)) + 0.03 * rng.standard_normal((3, 6))
    y = y.astype(np.float32)
    x0, se = _hand_jackknife_crossing(x.astype(np.float64).tolist(), y.astype(np.float64).tolist())
    c = network_crossing(x, y)
    assert c.x == pytest.approx(x0, abs=1e-13) and c.se == pytest.approx(se, rel=1e-12)


def test_tied_grid_points_keep_their_given_order():
    """Equal sigma_w2 values keep their input order (a stable sort): with 20 tied pairs the first upward bracket
    is inside the pair at x = 10, negative first as given, so the crossing is x = 10 with SE 0."""
    x = np.random.default_rng(1).permutation(np.repeat(np.arange(20.0), 2))
    first = np.array([j == np.flatnonzero(x == x[j])[0] for j in range(len(x))])  # first of its pair as given
    base = np.where(x < 10, -1.0, 1.0)
    base[(x == 10) & first] = -1.0
    y = base[:, None] * np.array([[1.0, 1.2]])
    c = network_crossing(x, y)
    assert (c.x, c.se, c.status) == (10.0, 0.0, "ok")


def test_no_crossing_and_too_few_networks_return_every_field():
    x = np.array([1.0, 2.0, 3.0])
    nan = math.nan
    # exactly 2 finite grid points, both < 0: no sign change (not too few points)
    _nan_crossing(network_crossing(x, np.array([[-1.0, -2.0], [nan, nan], [-0.5, -0.5]])), "no_sign_change",
                  "lambda < 0 at every sigma_w2 in [1, 3]")  # fmt: skip
    # a zero counts as >= 0: a curve in [0, 1) never negative has no sign change
    _nan_crossing(network_crossing(x, np.array([[0.0] * 2, [0.5] * 2, [0.25] * 2]), what="chi"), "no_sign_change",
                  "chi >= 0 at every sigma_w2 in [1, 3]")  # fmt: skip
    # 0 then negative: only downward
    _nan_crossing(network_crossing(x, np.array([[0.0] * 2, [-0.5] * 2, [-1.0] * 2])), "no_upward_crossing",
                  "lambda changes sign on [1, 3] only downward or across a missing point")  # fmt: skip
    _nan_crossing(network_crossing(x[:1], np.array([[0.1, -0.2]])), "too_few_points",
                  "1 grid point(s) with a finite lambda: needs >= 2")  # fmt: skip
    # one network finite at both ends of the bracket (x = 2, 3), two at either
    y = np.array([[-2.0, -2.0], [-1.0, -1.0], [1.0, nan], [2.0, 2.0]])
    _nan_crossing(network_crossing(np.arange(1.0, 5.0), y), "too_few_networks",
                  "1 network(s) finite at both sigma_w2 = 2 and 3: needs >= 2 for a standard error")  # fmt: skip
    # a fitted line with slope exactly 0 does not rise
    flat = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    _nan_crossing(network_crossing(x, flat, what="chi", window=1.5), "no_upward_crossing",
                  "the line fitted to chi over sigma_w2 in [1, 3] does not rise")  # fmt: skip


def test_a_leave_one_out_curve_without_slope_is_a_status_not_a_warning():
    """Leaving out network 0 makes both bracket means 0 (0/0), leaving out network 1 makes them equal (1/0):
    no standard error, said in the status, with no RuntimeWarning."""
    import warnings

    y = np.array([[-3.0, -4.0, 4.0], [3.0, 2.0, -2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = network_crossing(np.array([1.0, 2.0]), y)
    _nan_crossing(c, "too_few_networks", "a leave-one-network-out curve has no slope at the bracket")


def test_layer_curves_every_column_by_hand():
    """Each column of `layer_curves`: NaN-ignoring mean over the networks kept and their inputs (pairs for c) of
    layer l; the per-transition columns hold transition l - 1 at layer l (NaN at layer 0)."""
    m = _measurement(cause="overflow")
    S, K, L = m.log_q.shape[0], m.log_q.shape[1], m.spec.depth
    dropped = {(1, 0), (2, 1)}
    t = layer_curves(m)
    assert list(t.columns) == ["sigma_w2", "layer", "q", "c", "chi", "lambda_replica", "lambda_tangent"]

    def hand(arr, kk, l):
        v = [float(a) for s in range(S) if (s, kk) not in dropped for a in arr[s, kk, :, l].tolist()]
        v = [a for a in v if math.isfinite(a)]
        return sum(v) / len(v)

    for kk in range(K):
        for l in range(L + 1):
            row = t[(t.sigma_w2 == m.spec.sigma_w2[kk]) & (t.layer == l)]
            assert row.c.item() == pytest.approx(hand(m.c, kk, l), rel=1e-12)
            for name, arr in (("chi", m.chi), ("lambda_replica", m.log_growth_replica),
                              ("lambda_tangent", m.log_growth_tangent)):  # fmt: skip
                if l == 0:
                    assert math.isnan(row[name].item())
                else:
                    assert row[name].item() == pytest.approx(hand(arr, kk, l - 1), rel=1e-12), (name, kk, l)


def test_crossing_text_for_log_lines():
    assert Crossing(1.234567, 0.0123, "ok", "").text() == "1.2346 +- 0.0123"
    assert Crossing(1.234567, 0.0123, "ok", "").text(2) == "1.23 +- 0.01"
    c = Crossing(math.nan, math.nan, "too_few_points", "1 grid point(s) with a finite lambda: needs >= 2")
    assert c.text() == "nan (too_few_points: 1 grid point(s) with a finite lambda: needs >= 2)"


def test_network_values_average_layers_then_inputs_and_name_the_allowed_quantities():
    """Per input over transitions burn_in..L-1 first, then over inputs: with a NaN in one input's layer the two
    orders differ."""
    m = _measurement(P=2)
    m.log_growth_replica[0, 1, 2, 3] = math.nan  # one input, one transition
    v = network_values(m, 1, "lambda_replica")
    S, K, L = m.log_q.shape[0], m.log_q.shape[1], m.spec.depth
    for kk in range(K):
        for s in range(S):
            want = _seed_values(m.log_growth_replica, s, kk, range(1, L))
            assert v[kk, s] == pytest.approx(want, rel=1e-12) or (math.isnan(want) and math.isnan(v[kk, s]))
    allowed = "log_q_growth, chi, lambda_replica, lambda_tangent"
    with pytest.raises(ValueError, match=f"^name='q': allowed {allowed}$"):
        network_values(m, 0, "q")
