"""pipeline.theory.tables: grid and critical tables flattened from hand-built inputs."""

import math

import numpy as np
import pandas as pd
import torch

from pipeline.theory.critical import CriticalLine
from pipeline.theory.mean_field import (
    MeanFieldGrid,
)
from pipeline.theory.tables import critical_table, finite_or_none, grid_table

T = torch.float64


def test_grid_and_critical_tables_flatten_by_hand_built_inputs():
    t = lambda *v: torch.tensor(v, dtype=T)  # noqa: E731
    grid = MeanFieldGrid(
        sigma_w2=t(1.0, 2.0),
        sigma_b2=t(0.1, 0.2),
        xi=t(1.0, 0.5),
        q_star=t(0.3, math.inf),
        q_status=torch.tensor([0, 1]),
        c_star=t(1.0, math.nan),
        c_status=torch.tensor([3, 4]),
        chi1=t(0.7, 1.1),
        a_q=t(0.6, 1.2),
        chi_c=t(0.5, 0.9),
        depth_scale_q=t(2.0, math.inf),
        depth_scale_c=t(1.5, 9.0),
        lambda_mf=t(-0.2, 0.05),
    )
    df = grid_table("tanh", grid)
    expected = pd.DataFrame(
        {
            "activation": ["tanh", "tanh"],
            "sigma_w2": [1.0, 2.0],
            "sigma_b2": [0.1, 0.2],
            "xi": [1.0, 0.5],
            "q_star": [0.3, math.inf],
            "c_star": [1.0, math.nan],
            "chi1": [0.7, 1.1],
            "a_q": [0.6, 1.2],
            "chi_c": [0.5, 0.9],
            "depth_scale_q": [2.0, math.inf],
            "depth_scale_c": [1.5, 9.0],
            "lambda_mf": [-0.2, 0.05],
            "q_status": ["converged", "diverged"],
            "c_status": ["unstable", "degenerate"],
        }
    )
    pd.testing.assert_frame_equal(df, expected)
    cl = CriticalLine(
        sigma_b2=t(0.0, 0.5),
        sigma_w2_crit=t(1.0, math.nan),
        q_star=t(0.0, 2.0),
        q_status=torch.tensor([0, 2]),
        found=torch.tensor([True, False]),
    )
    expected = pd.DataFrame(
        {
            "activation": ["erf", "erf"],
            "sigma_b2": [0.0, 0.5],
            "sigma_w2_crit": [1.0, math.nan],
            "q_star": [0.0, 2.0],
            "q_status": ["converged", "max_iter"],
            "found": [True, False],
        }
    )
    pd.testing.assert_frame_equal(critical_table("erf", cl), expected)
    assert finite_or_none(2.5) == 2.5 and isinstance(finite_or_none(np.float64(1.0)), float)
    assert finite_or_none(math.nan) is None and finite_or_none(math.inf) is None and finite_or_none(-math.inf) is None
