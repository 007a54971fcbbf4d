"""Mutation-testing gaps of pipeline.theory.one_loop (docs/mutation.md), against references written here.

Reference moments: a fine NumPy trapezoid in z on [-14, 14] (20,001 nodes, weights exp(-z^2/2) normalised;
agrees with scipy quad to 3e-16 for tanh^2 (z^4 - 6 z^2 + 3) and sech^8 at K = 0.3..6). The recursions are
the formulas of docs/science.md §6 written out once more (layer loop, fixed point), q* by Brent's method.
Closed forms: ReLU (chi1 = s/2, c1 = -5/4, K-independent), the linearised tanh network at q* = 0 (c1 = -1/2).
The module's own moments agree with the reference to ~1e-11 relative; checks at 1e-8 relative (1e-10 absolute);
the mutants change values by >= 1e-4 relative or change shapes, statuses, NaNs or column names.
"""

import math

import numpy as np
import pytest
import torch
from scipy import optimize
from scipy.special import erf

from pipeline.theory import one_loop as ol
from pipeline.theory.one_loop import crossing

T = torch.float64
Z = np.linspace(-14.0, 14.0, 20001)
W = np.exp(-0.5 * Z * Z) / np.exp(-0.5 * Z * Z).sum()
PHI = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "swish": (lambda x: x / (1 + np.exp(-x)), lambda x: (1 + np.exp(-x) + x * np.exp(-x)) / (1 + np.exp(-x)) ** 2),
    "gelu": (
        lambda x: x * (1 + erf(x / math.sqrt(2))) / 2,
        lambda x: (1 + erf(x / math.sqrt(2))) / 2 + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    ),
}


def trapezoid(n, half=12.5):
    """The §7 rule written out: n nodes (i - (n - 1)/2) 2 half/n, weights exp(-z^2/2) normalised."""
    z = (np.arange(n) - (n - 1) / 2) * (2 * half / n)
    return z, np.exp(-0.5 * z * z) / np.exp(-0.5 * z * z).sum()


def moments(name, K, rule=(Z, W)):
    """Every moment of LayerMoments at variance K, by the reference trapezoid (or `rule`): dict of floats."""
    z, w = rule
    p1, p2_ = (z * z - 1) / 2, (z**4 - 6 * z * z + 3) / 4
    phi, dphi = PHI[name]
    x = math.sqrt(K) * z
    p2, d2 = phi(x) ** 2, dphi(x) ** 2

    def e(f, poly=1.0):
        return float(np.sum(w * f * poly))

    return dict(
        phi2=e(p2), phi4=e(p2 * p2), dphi2=e(p2, p1) / K, d2phi2=e(p2, p2_) / K**2,
        m2=e(d2), m4=e(d2 * d2), dm2=e(d2, p1) / K, d2m2=e(d2, p2_) / K**2, phi2_dphi2=e(p2 * d2),
    )  # fmt: skip


def c1_parts(m, K, K1, V, R):
    """(sampling, kernel, correlation) of c1, docs/science.md §6: ln chi1 derivatives from m2 and its K-derivatives."""
    dlog = m["dm2"] / m["m2"]
    d2log = m["d2m2"] / m["m2"] - dlog * dlog
    return -(3 * m["m4"] / m["m2"] ** 2 - 1) / 4, dlog * K1 / 2 + d2log * V / 4, K * dlog * R


def ref_layers(name, sw, sb, q0, depth, law="fixed_norm", rule=(Z, W)):
    """The §6 recursions layer by layer with reference moments: dict of per-layer lists (l = 0..depth)."""
    K, V, K1, R = q0, (-2 * q0 * q0 if law == "fixed_norm" else 0.0), 0.0, 0.0
    out = {k: [] for k in ("K", "V", "K1", "R", "chi_par", "chi1", "c1", "c1_spec", "chi1_1overN")}
    for _ in range(depth + 1):
        m = moments(name, K, rule)
        chi_par, chi1 = sw * m["dphi2"], sw * m["m2"]
        s, k, c = c1_parts(m, K, K1, V, R)
        for key, v in zip(
            out, (K, V, K1, R, chi_par, chi1, s + k + c, s + k, sw * (m["dm2"] * K1 + m["d2m2"] * V / 2))
        ):
            out[key].append(v)
        Kn = sw * m["phi2"] + sb
        V, K1, R = (
            sw * sw * (m["phi4"] - m["phi2"] ** 2) + chi_par**2 * V,
            chi_par * K1 + sw * m["d2phi2"] * V / 2,
            (chi_par**2 * K * R + sw * sw * m["phi2_dphi2"]) / (Kn * chi1),
        )
        K = Kn
    return out


def ref_fixed_point(name, sw, sb, hi=50.0):
    """q* by brentq on sw <phi^2>_q + sb - q (bracket up to hi), then V*, K1*, R*, the c1 parts and the gain
    coefficient (§6)."""
    q = optimize.brentq(lambda k: sw * moments(name, k)["phi2"] + sb - k, max(sb, 1e-3), hi, xtol=1e-15, rtol=1e-15)
    m = moments(name, q)
    chi_par, chi1 = sw * m["dphi2"], sw * m["m2"]
    V = sw * sw * (m["phi4"] - m["phi2"] ** 2) / (1 - chi_par**2)
    K1 = sw * m["d2phi2"] * V / (2 * (1 - chi_par))
    R = sw * sw * m["phi2_dphi2"] / (q * (chi1 - chi_par**2))
    s, k, c = c1_parts(m, q, K1, V, R)
    return dict(
        q_star=q, K=q, chi_par=chi_par, chi1=chi1, V_star=V, K1_star=K1, R_star=R, c1_sampling=s, c1_kernel=k,
        c1_correlation=c, c1=s + k + c, c1_spec=s + k, chi1_1overN=sw * (m["dm2"] * K1 + m["d2m2"] * V / 2),
        vk2=V / q**2,
    )  # fmt: skip


def close(got, want, rtol=1e-8, atol=1e-10):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.allclose(got, want, rtol=rtol, atol=atol), (got, want)


@pytest.mark.parametrize("law", ["fixed_norm", "gaussian"])
def test_layer_recursion_and_its_per_layer_predictions_against_the_reference_recursion(law):
    """tanh, s = 1.8, sb = 0.05, q0 = 0.7, three transitions: K, V, K1, R, slopes, c1 (with and without the
    correlation term, which differ by 0.02-0.2 here), the gain coefficient, and what the layer methods make of them."""
    sw, sb, q0, L, N = 1.8, 0.05, 0.7, 3, 64
    rec = ol.layer_recursion("tanh", [sw], sb, depth=L, q0=q0, input_law=law)
    ref = ref_layers("tanh", sw, sb, q0, L, law)
    for key, want in ref.items():
        close(getattr(rec, key)[0], want)
    assert min(abs(a - b) for a, b in zip(ref["c1"][1:], ref["c1_spec"][1:])) > 1e-3
    lam = [0.5 * math.log(x) + c / N for x, c in zip(ref["chi1"], ref["c1"])][:L]
    lam_spec = [0.5 * math.log(x) + c / N for x, c in zip(ref["chi1"], ref["c1_spec"])][:L]
    close(rec.lambda_layers(N)[0], lam)
    close(rec.lambda_layers(N, include_correlation=False)[0], lam_spec)
    close(rec.lambda_average(N, 1)[0], np.mean(lam[1:]))
    close(rec.gain_layers(N)[0], [x + g / N for x, g in zip(ref["chi1"], ref["chi1_1overN"])][:L])
    close(rec.q_hat_mean(N)[0], [k + k1 / N for k, k1 in zip(ref["K"], ref["K1"])])
    close(rec.q_hat_var(N)[0], [(v + 2 * k * k) / N for k, v in zip(ref["K"], ref["V"])])


def test_layer_recursion_defaults_are_bias_free_depth_ten_unit_input():
    """ReLU: K^{l+1} = s K^l / 2 (no bias), K^0 = 1, ten transitions: K^l = 1.5^l at s = 3."""
    rec = ol.layer_recursion("relu", [3.0])
    close(rec.K[0], 1.5 ** np.arange(11), rtol=1e-12)
    with pytest.raises(ValueError, match="input_law='engine'"):
        ol.layer_recursion("relu", [3.0], input_law="engine")


def test_fixed_point_and_its_predictions_against_the_reference_fixed_point():
    sw, sb, N = [1.5, 2.2], 0.05, 64
    fp = ol.fixed_point("tanh", sw, sb)
    refs = [ref_fixed_point("tanh", s, sb) for s in sw]
    for key in refs[0]:
        close(getattr(fp, key), [r[key] for r in refs])
    assert list(fp.status) == ["ok", "ok"]
    close(fp.expansion_parameter(N), [r["vk2"] / N for r in refs])
    lmf = np.array([0.5 * math.log(r["chi1"]) for r in refs])
    c1, c1s = np.array([r["c1"] for r in refs]), np.array([r["c1_spec"] for r in refs])
    close(ol.lambda_one_loop("tanh", sw, sb, N), lmf + c1 / N)
    close(ol.lambda_one_loop("tanh", sw, sb, N, include_correlation=False), lmf + c1s / N)
    close(ol.lambda_coeff_1overN("tanh", sw, sb), c1)
    close(ol.lambda_coeff_1overN("tanh", sw, sb, include_correlation=False), c1s)
    close(ol.annealed_gain_one_loop("tanh", sw, sb, N), [r["chi1"] + r["chi1_1overN"] / N for r in refs])
    df = ol.one_loop_table("tanh", sw, sb)
    want = {"q_star": "q_star", "chi_par": "chi_par", "chi1": "chi1", "V_star": "V_star", "K1_star": "K1_star",
            "R_star": "R_star", "lambda_coeff_1overN": "c1", "lambda_coeff_1overN_spec": "c1_spec",
            "gain_coeff_1overN": "chi1_1overN", "expansion_parameter": "vk2"}  # fmt: skip
    for col, key in want.items():
        close(df[col].to_numpy(dtype=float), [r[key] for r in refs])
    close(df.lambda_mf.to_numpy(dtype=float), lmf)
    wide = ol.one_loop_table("tanh", sw, sb, widths=[32, 128])
    assert list(wide.index) == [0, 1, 2, 3] and list(wide.width) == [32, 32, 128, 128]
    n = wide.width.to_numpy()
    close(wide.expansion_parameter.to_numpy(dtype=float), np.tile([r["vk2"] for r in refs], 2) / n)
    close(wide.lambda_one_loop.to_numpy(dtype=float), np.tile(lmf, 2) + np.tile(c1, 2) / n)


def test_defaults_are_bias_free_the_linearised_network_below_one():
    """tanh at s = 0.5 without bias: q* = 0, the network is linear with phi'(0) = 1, so chi1 = s, c1 = -1/2 and
    the gain's 1/N term vanishes with K (errors O(K_LIMIT)); a default bias of 1 would give q* ~ 1.2."""
    c1 = ol.lambda_coeff_1overN("tanh", [0.5])
    assert abs(float(c1[0]) + 0.5) < 1e-6
    assert abs(float(ol.lambda_one_loop("tanh", [0.5], width=64)[0]) - (0.5 * math.log(0.5) - 0.5 / 64)) < 1e-7
    assert abs(float(ol.annealed_gain_one_loop("tanh", [0.5], width=64)[0]) - 0.5) < 1e-9


def test_statuses_against_the_reference_moments():
    # swish, sb = 0.5: at s = 1.9 chi_par^2 < chi1, at s = 2.0 chi_par^2 - chi1 = +0.028 (reference): R* diverges
    refs = [ref_fixed_point("swish", s, 0.5, hi=7.0) for s in (1.9, 2.0)]  # q* = 2.2, 5.2 (unstable root ~9.5)
    assert refs[0]["chi_par"] ** 2 < refs[0]["chi1"] - 0.01 and refs[1]["chi_par"] ** 2 > refs[1]["chi1"] + 0.01
    fp = ol.fixed_point("swish", [1.9, 2.0], 0.5)
    assert list(fp.status) == ["ok", "longitudinal_mode"]
    assert math.isfinite(float(fp.R_star[0])) and math.isnan(float(fp.R_star[1]))
    # gelu ~ relu for large |x|: q' ~ s q/2 grows without bound at s = 3 (checked below up to q = 1000)
    for q in (10.0, 100.0, 1000.0):
        assert 3.0 * moments("gelu", q)["phi2"] + 0.05 > 1.2 * q
    fp = ol.fixed_point("gelu", [1.0, 3.0], 0.05)
    assert list(fp.status) == ["ok", "no_fixed_point"]
    for key in ("chi_par", "chi1", "V_star", "K1_star", "R_star", "c1", "c1_spec", "chi1_1overN"):
        assert math.isnan(float(getattr(fp, key)[1])), key
    # ReLU q' = s q/2 + sb: q* = sb/(1 - s/2) below s = 2; above it infinite with a bias, scale free (1) without
    fp = ol.fixed_point("relu", [1.0, 3.0, 3.0], [0.5, 1.0, 0.0])
    close(fp.q_star[:1], [1.0])
    assert math.isinf(float(fp.q_star[1])) and float(fp.q_star[2]) == 1.0


def test_first_upward_sign_change_is_strict_below_zero():
    """_first_up: the first i with y[i] < 0 <= y[i+1]; a touch of zero from above is not an upward crossing."""
    y = torch.tensor([[1.0, 0.0, 1.0, 2.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0]], dtype=T)
    found, i = crossing._first_up(y)
    assert found.tolist() == [False, True, False] and int(i[1]) == 1


def test_relu_crossing_table_annealed_root_and_forwarded_scan_range():
    """ReLU: chi1 = s/2 with no 1/N term in the annealed gain (homogeneous), so its root is 2 at any N; lambda
    with or without the (vanishing) correlation term crosses at 2 exp(5/(2N)). Scanning only [0.2, 1.9] finds
    none of them."""
    df = ol.crossing_table("relu", [0.0], [32, 128])
    close(df.crossing_annealed, [2.0, 2.0], rtol=0, atol=1e-8)
    close(df.crossing_one_loop_spec, [2 * math.exp(5 / 64), 2 * math.exp(5 / 256)], rtol=0, atol=1e-8)
    df = ol.crossing_table("relu", [0.0], [32], sigma_w2_range=(0.2, 1.9))
    assert df.crossing_mean_field.isna().all() and df.crossing_one_loop.isna().all()
    assert list(df.status) == ["no_crossing"]


def _ref_finite_depth_roots(sb, N, depth, burn_in, q0, rule=(Z, W)):
    def avg(s, one_loop):
        r = ref_layers("tanh", s, sb, q0, depth, rule=rule)
        c = r["c1"] if one_loop else [0.0] * (depth + 1)
        return np.mean([0.5 * math.log(x) + cc / N for x, cc in zip(r["chi1"], c)][burn_in:depth])

    return [optimize.brentq(avg, 1.2, 3.0, args=(o,), xtol=1e-12) for o in (False, True)]


def test_finite_depth_crossing_against_the_reference_layer_average():
    """tanh, sb = 0.05, N = 64, depth 6, burn-in 2, q0 = 0.6: roots of the layer-averaged exponent. The scan
    interpolates linearly between points 0.025 apart: error O(spacing^2) < 1e-4 (measured 5e-5, 6e-5); the
    mutants (other layers, q0 = 1, no 1/N term) move the roots by > 1e-3."""
    sb, N, L, b, q0 = 0.05, 64, 6, 2, 0.6
    mf, one = _ref_finite_depth_roots(sb, N, L, b, q0)
    assert one - mf > 0.02
    got = ol.finite_depth_crossing("tanh", sb, N, L, b, q0=q0)
    assert abs(got.mean_field - mf) < 1e-4 and abs(got.one_loop - one) < 1e-4, (got, mf, one)
    relu = ol.finite_depth_crossing("relu", 0.0, 32, 4, 1)  # lambda = 0.5 ln(s/2) - 5/(4N) at every layer
    assert abs(relu.mean_field - 2.0) < 1e-4 and abs(relu.one_loop - 2 * math.exp(5 / 64)) < 1e-4


def test_finite_depth_crossing_uses_the_given_quadrature():
    """With a coarse 24-node rule (spacing 1.04) the moments are off by percents and both roots move by 0.07-0.12
    from the converged ones; the hand-written rule reproduces them (its Gaussian moments z^2, z^4 are exact to
    ~1e-8, so the module's centring constant does not matter). Scan interpolation error measured 1.1e-4:
    tolerance 3e-4."""
    sb, N, L, b, q0 = 0.05, 64, 6, 2, 0.6
    mf, one = _ref_finite_depth_roots(sb, N, L, b, q0, rule=trapezoid(24))
    got = ol.finite_depth_crossing("tanh", sb, N, L, b, q0=q0, n_nodes=24)
    assert abs(got.mean_field - mf) < 3e-4 and abs(got.one_loop - one) < 3e-4, (got, mf, one)
    assert abs(mf - _ref_finite_depth_roots(sb, N, L, b, q0)[0]) > 0.05
