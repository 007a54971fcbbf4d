"""one_loop_crossings.csv's chain columns (docs/science.md §7a): z scores, the N^2 next order, status before number."""

from __future__ import annotations

import math

import pandas as pd

from pipeline.stages.collect import one_loop_crossings


def _crossings(**chain) -> pd.DataFrame:
    base = dict(activation=["relu", "relu"], width=[16, 64], depth=[50, 50], sigma_b2=[0.0, 0.0], xi=[1.0, 1.0],
                crossing_measured=[2.3, 2.08], crossing_measured_se=[0.05, 0.02], crossing_theory=[2.0, 2.0],
                crossing_one_loop=[2.34, 2.08], crossing_one_loop_deep=[2.34, 2.08],
                crossing_mean_field_finite_depth=[2.0, 2.0], crossing_exact=[2.386, 2.082],
                one_loop_expansion_parameter=[0.1, 0.03], one_loop_status=["ok", "ok"],
                one_loop_status_deep=["ok", "ok"])  # fmt: skip
    return pd.DataFrame({**base, **chain})


def test_next_order_and_z_scores_of_the_chain_crossing():
    chain = dict(crossing_chain=[2.39, 2.081], crossing_chain_se=[0.004, 0.001], crossing_chain_status=["ok", "ok"],
                 crossing_chain_networks=[6250, 6250])  # fmt: skip
    loop = one_loop_crossings(_crossings(**chain))
    r = loop.set_index("width")
    assert math.isclose(r.next_order_N2[16], 256 * (2.39 - 2.34))
    assert math.isclose(r.next_order_N2_se[16], 256 * 0.004)
    assert math.isclose(r.z_chain_exact[64], (2.081 - 2.082) / 0.001)
    assert math.isclose(r.z_chain_one_loop[64], (2.081 - 2.08) / 0.001)


def test_a_chain_crossing_without_status_ok_is_nan_and_keeps_its_status():
    loop = one_loop_crossings(_crossings(crossing_chain=[2.39, 2.0], crossing_chain_se=[0.004, 0.3],
                                         crossing_chain_status=["ok", "no_sign_change"],
                                         crossing_chain_networks=[6250, 6250]))  # fmt: skip
    r = loop.set_index("width")
    assert r.chain_status[64] == "no_sign_change"
    assert r[["crossing_chain", "crossing_chain_se", "next_order_N2", "z_chain_one_loop"]].loc[64].isna().all()
    assert not math.isnan(r.crossing_chain[16])


def test_jobs_without_the_chain_study_get_no_chain_columns():
    assert "crossing_chain" not in one_loop_crossings(_crossings()).columns
