"""pipeline.theory.predictions: per-row theory of a sweep grid in any grid order, with its xi and key, against
scipy quadrature of hand-written activations (tests/theory/reference.py), never the function under test."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.theory.predictions import predictions
from tests.theory.reference import (
    PHI,
    chi1_quad,
    gauss_mean,
    q_star_quad,
    q_star_quad_xi,
    variance_map_quad,
)

T = torch.float64


ORDERS = {
    "reversed": lambda n: np.arange(n)[::-1].copy(),
    "random": lambda n: np.random.default_rng(7).permutation(n),
    "interleaved": lambda n: np.r_[np.arange(0, n, 2), np.arange(1, n, 2)[::-1]],
}


@pytest.mark.parametrize("order", sorted(ORDERS))
@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_prediction_rows_carry_the_theory_of_their_own_sigma_w2_in_any_grid_order(name, order):
    """Every row of the joined prediction table against the theory recomputed for that row's key alone.

    Effect guarded: theory columns joined in the wrong order (chi1 of a neighbouring sigma_w2: >= 0.03 apart
    on this grid, 0.45 end to end). Tolerances 1e-9 (same code on a one-point grid; only the node count may
    differ) and 1e-8 relative against scipy quad.
    """
    grid = np.round(np.linspace(1.0, 2.6, 7), 4)
    sw = grid[ORDERS[order](len(grid))]
    sb, depth = 0.05, 6
    table, iterates = predictions(name, torch.tensor(sw, dtype=T), sb, depth)
    assert sorted(table.sigma_w2.tolist()) == sorted(sw.tolist())
    assert len(iterates) == len(sw) * (depth + 1)
    for _, row in table.iterrows():
        alone, alone_it = predictions(name, [float(row.sigma_w2)], sb, depth)
        for col in ("q_L_theory", "c_L_theory", "q_star", "c_star", "chi1", "lambda_mf"):
            assert row[col] == pytest.approx(float(alone[col].iloc[0]), rel=1e-9, abs=1e-12), (col, row.sigma_w2)
        q = q_star_quad(name, float(row.sigma_w2), sb)
        assert row.q_star == pytest.approx(q, rel=1e-8)
        assert row.chi1 == pytest.approx(chi1_quad(name, float(row.sigma_w2), q), rel=1e-8)
        mine = iterates[iterates.sigma_w2 == row.sigma_w2].sort_values("layer")
        assert mine.layer.tolist() == list(range(depth + 1))
        assert np.allclose(mine.q11.to_numpy(), alone_it.q11.to_numpy(), rtol=1e-9, atol=0)
        # layer-by-layer variance by hand: q^{l+1} = sigma_w2 E phi(sqrt(q^l) z)^2 + sigma_b2 from q^0 = 1
        q_l = 1.0
        phi = PHI[name][0]

        for _ in range(depth):
            q_l = float(row.sigma_w2) * gauss_mean(lambda x: phi(x) ** 2, q_l) + sb
        assert row.q_L_theory == pytest.approx(q_l, rel=1e-9)


@pytest.mark.parametrize("xi", [None, 0.4])
def test_gelu_prediction_rows_use_their_xi_and_key(xi):
    """predictions() at xi (default 1) for GELU, whose q* depends on xi: each row against quad for its key.

    Effect guarded: a dropped or wrong xi shifts q* by 0.02-0.1 here. Tolerance 1e-8 relative.
    """
    sw, sb, depth = np.array([1.5, 0.9, 1.2]), 0.1, 4
    kw = {} if xi is None else {"xi": xi}
    x = 1.0 if xi is None else xi
    table, _ = predictions("gelu", torch.tensor(sw, dtype=T), sb, depth, **kw)
    for _, row in table.iterrows():
        s = float(row.sigma_w2)
        q = q_star_quad_xi("gelu", s, sb, x)
        assert row.q_star == pytest.approx(q, rel=1e-8)
        assert row.chi1 == pytest.approx(chi1_quad("gelu", s, q), rel=1e-8)
        q_l = 1.0
        for _ in range(depth):
            q_l = variance_map_quad("gelu", q_l, s, sb, x)
        assert row.q_L_theory == pytest.approx(q_l, rel=1e-9)


def test_predictions_refuse_a_grid_with_a_repeated_key():
    """A repeated sigma_w2 would make the key join ambiguous (a 2 x 2 cross product of rows): refused."""
    with pytest.raises(pd.errors.MergeError):
        predictions("tanh", [1.5, 2.0, 1.5], 0.05, 3)
