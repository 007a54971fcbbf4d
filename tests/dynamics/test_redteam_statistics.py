"""Red-team findings on the ensemble statistics: a flagged (overflowed) network enters no estimate, a point
with fewer than 2 surviving networks is excluded with its reason, and one network gives no standard error.

Hand-built measurements only (no simulation); expected values written out by hand.
"""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.dynamics.ensemble import EnsembleMeasurement
from pipeline.dynamics.statistics import layer_curves, mean_se, summarize

T = torch.float64
NAN = math.nan


def _overflowing(S=3, L=6, fail_at=(3, 3, 3)):
    """K = 2 sigma_w2 values: K 0 healthy (every value 1.0 for seed s... s + 1), K 1 with network s flagged at
    layer fail_at[s] (-1: not flagged); values before the overflow finite (as the engine leaves them)."""
    K, I, P = 2, 2, 1
    val = torch.arange(1, S + 1, dtype=T).view(S, 1, 1, 1)
    log_q = val.expand(S, K, I, L + 1).clone()
    c = (0.1 * val).expand(S, K, P, L + 1).clone()
    chi = val.expand(S, K, I, L).clone()
    rep, tan = chi.clone(), chi.clone()
    failed = torch.full((S, K), -1, dtype=torch.long)
    for s, f in enumerate(fail_at):
        if f < 0:
            continue
        failed[s, 1] = f
        log_q[s, 1, :, f:] = NAN
        c[s, 1, :, f:] = NAN
        for a in (chi, rep, tan):
            a[s, 1, :, f - 1 :] = NAN
    spec = SimpleNamespace(depth=L, sigma_w2=(1.0, 50.0))
    return EnsembleMeasurement(spec, log_q, c, chi, rep, tan, None, failed)


def test_mean_se_of_one_network_is_not_a_zero_standard_error():
    mean, se, n = mean_se(torch.tensor([[3.0, NAN, NAN], [NAN, NAN, NAN]], dtype=T), 1)
    assert n.tolist() == [1, 0] and mean[0] == 3.0
    assert math.isnan(se[0]) and math.isnan(se[1])  # before: SE 0.0, read as an exact estimate


def test_a_point_where_every_network_overflowed_has_no_estimate_and_no_used_seeds():
    t = summarize(_overflowing(), burn_in=0)
    assert t.n_failed_networks.tolist() == [0, 3]
    # before: n_seeds_used 3 and lambda 2.0 = the mean over the layers before the overflow
    assert t.n_seeds_used.tolist() == [3, 0]
    for col in ("q_L", "log_q_L", "c_L", "chi", "lambda_replica", "lambda_tangent", "log_q_growth"):
        assert math.isnan(t[col][1]), col
        assert math.isnan(t[f"{col}_se"][1]), col
    assert t.lambda_replica[0] == pytest.approx(2.0)  # mean of 1, 2, 3 over the healthy point
    assert t.lambda_replica_se[0] == pytest.approx(math.sqrt(1.0 / 3))


def test_a_partly_failed_point_averages_only_the_networks_that_survived():
    t = summarize(_overflowing(fail_at=(-1, 4, -1)), burn_in=0)  # seed 1 (value 2) overflows at layer 4
    assert t.n_seeds_used.tolist() == [3, 2] and t.n_failed_networks.tolist() == [0, 1]
    assert t.lambda_replica[1] == pytest.approx(2.0)  # (1 + 3) / 2: the failed network's early layers are out
    assert t.lambda_replica_se[1] == pytest.approx(1.0)  # std(ddof=1) of (1, 3) = sqrt(2), / sqrt(2)
    assert t.q_L[1] == pytest.approx((math.e + math.e**3) / 2)


def test_layer_curves_average_the_same_surviving_networks_at_every_layer():
    lc = layer_curves(_overflowing(fail_at=(-1, 4, -1)))
    bad = lc[lc.sigma_w2 == 50.0]
    # before: layers 0..3 averaged seeds {1, 2, 3}, layers 4.. seeds {1, 3}: a jump made by survivorship
    assert np.allclose(bad.q, (math.e + math.e**3) / 2)
    assert np.allclose(bad.lambda_replica.iloc[1:], 2.0)


def test_exclude_points_flags_fewer_than_two_survivors_with_the_reason_and_blanks_the_estimates():
    from pipeline.stages.mlp_sweep import exclude_points

    t = pd.DataFrame({
        "sigma_w2": [1.0, 2.0, 3.0], "q_L": [1.0, 2.0, NAN], "q_L_se": [0.1, NAN, NAN],
        "lambda_replica": [-0.1, 0.2, NAN], "lambda_replica_se": [0.01, NAN, NAN], "chi": [0.9, 1.1, NAN],
        "n_seeds_used": [3, 1, 0], "n_failed_networks": [0, 2, 3],
    })  # fmt: skip
    out = exclude_points(t, n_seeds=3)
    assert out.excluded.tolist() == [False, True, True]
    assert out.exclusion_reason[0] == ""
    assert "1 of 3" in out.exclusion_reason[1] and "n_failed_networks=2" in out.exclusion_reason[1]
    assert "0 of 3" in out.exclusion_reason[2]
    assert out.q_L.isna().tolist() == [False, True, True]  # one network's mean is not passed on as a measurement
    assert out.lambda_replica.isna().tolist() == [False, True, True]
    assert out.n_seeds_used.tolist() == [3, 1, 0]  # the counts stay


def test_refinement_center_falls_back_to_mean_field_when_there_is_no_one_loop_prediction():
    from pipeline.stages.mlp_sweep import refine_center

    # xi != 1 or orthogonal weights: no one-loop table at all (before: the refinement was silently skipped)
    assert refine_center({}, 2.5) == (2.5, "mean_field")
    assert refine_center({"crossing_one_loop": NAN, "crossing_mean_field": 1.9}, 2.5) == (1.9, "mean_field")
    assert refine_center({"crossing_one_loop": 1.7}, 2.5) == (1.7, "one_loop")
    c, src = refine_center({}, NAN)
    assert math.isnan(c) and src == "none"
