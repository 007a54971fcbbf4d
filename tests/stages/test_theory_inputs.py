"""theory_inputs looks critical_line.csv rows up by their full key (activation, sigma_b2, xi), never another's.

Red-team finding: a theory run at net.xi=0.3 wrote critical_line.csv without an xi column, and an xi = 1
mlp_sweep job read its gelu row (2.5709) as its own, with source=theory_stage (the xi = 1 value is 2.2341).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline.stages.theory_inputs import theory_crossing
from tests.conftest import TANH_SB005

TANH_005 = 1.760955  # tanh, sigma_b2 = 0.05, xi = 1 (docs/science.md §1; scipy check in tests/theory)


def _table(folder, rows):
    pd.DataFrame(rows).to_csv(folder / "critical_line.csv", index=False)


def test_a_row_of_another_xi_is_never_returned(tmp_path):
    _table(tmp_path, [{"activation": "tanh", "sigma_b2": 0.05, "xi": 0.3, "sigma_w2_crit": 9.99}])
    value, source = theory_crossing(tmp_path, "tanh", 0.05, 1.0)
    assert source == "computed" and abs(value - TANH_005) < 1e-5


def test_a_table_without_an_xi_column_is_not_trusted(tmp_path):
    _table(tmp_path, [{"activation": "tanh", "sigma_b2": 0.05, "sigma_w2_crit": 9.99}])
    value, source = theory_crossing(tmp_path, "tanh", 0.05, 1.0)
    assert source == "computed" and abs(value - TANH_005) < 1e-5


def test_the_row_of_the_same_key_is_read(tmp_path):
    _table(
        tmp_path,
        [
            {"activation": "tanh", "sigma_b2": 0.05, "xi": 0.3, "sigma_w2_crit": 9.99},
            {"activation": "tanh", "sigma_b2": 0.05, "xi": 1.0, "sigma_w2_crit": 1.5},
        ],
    )
    assert theory_crossing(tmp_path, "tanh", 0.05, 1.0) == (1.5, "theory_stage")
    assert theory_crossing(tmp_path, "tanh", 0.05, 0.3) == (9.99, "theory_stage")


def test_a_jump_row_is_returned_as_nan_not_replaced(tmp_path):
    """gelu at sigma_b2 = 0.05 has no chi_1 = 1 crossing (a jump): NaN from the table, as computed."""
    _table(tmp_path, [{"activation": "gelu", "sigma_b2": 0.05, "xi": 1.0, "sigma_w2_crit": float("nan")}])
    value, source = theory_crossing(tmp_path, "gelu", 0.05, 1.0)
    assert source == "theory_stage" and math.isnan(value)


def test_relu_never_takes_the_chi1_only_root_of_the_table(tmp_path):
    """issue 21: critical_line.csv holds the chi_1 = 1 root (2.0 for ReLU); at xi = 2 the threshold is the length
    root 2 pi/(pi + 1) = 1.517 (docs/science.md §4), computed by the one rule, with its status."""
    from pipeline.stages.theory_inputs import theory_threshold

    _table(tmp_path, [{"activation": "relu", "sigma_b2": 0.0, "xi": 2.0, "sigma_w2_crit": 2.0}])
    t = theory_threshold(tmp_path, "relu", 0.0, 2.0)
    assert t.status == "ok" and t.source == "computed" and abs(t.value - 2 * math.pi / (math.pi + 1)) < 1e-8


def test_a_row_whose_status_is_not_ok_is_nan_with_that_status(tmp_path):
    from pipeline.stages.theory_inputs import theory_threshold

    _table(tmp_path, [
        {"activation": "tanh", "sigma_b2": 0.05, "xi": 1.0, "sigma_w2_crit": 1.76, "crossing_status": "crossing",
         "quad_status": "inaccurate"},
        {"activation": "gelu", "sigma_b2": 0.05, "xi": 1.0, "sigma_w2_crit": float("nan"), "crossing_status": "jump",
         "quad_status": "ok"},
    ])  # fmt: skip
    t = theory_threshold(tmp_path, "tanh", 0.05, 1.0)
    assert math.isnan(t.value) and t.status == "inaccurate" and t.source == "theory_stage"
    t = theory_threshold(tmp_path, "gelu", 0.05, 1.0)
    assert math.isnan(t.value) and t.status == "jump"


def test_theory_crossing_never_takes_a_neighbouring_bias_row(tmp_path):
    """Guards theory_crossing: the sigma_b2 tolerance widened (atol 1e-12 -> 0.1), which returns the
    0.05 row for a sigma_b2 = 0 query. Reference: tanh's closed form 1 at sigma_b2 = 0, computed instead."""
    pd.DataFrame({"activation": ["tanh"], "sigma_b2": [0.05], "xi": [1.0], "sigma_w2_crit": [TANH_SB005]}).to_csv(
        tmp_path / "critical_line.csv", index=False
    )
    x, src = theory_crossing(tmp_path, "tanh", 0.0, 1.0)
    assert src == "computed" and x == pytest.approx(1.0, abs=1e-4)
    x, src = theory_crossing(tmp_path, "tanh", 0.05, 1.0)
    assert src == "theory_stage" and x == TANH_SB005
