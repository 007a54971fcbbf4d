"""Tidy one-loop tables (one_loop.csv, one_loop_crossings.csv rows) with status before number (docs/science.md §6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.status import mask_invalid
from pipeline.theory.one_loop.common import (
    CROSSING_VALUE_COLUMNS,
    ONE_LOOP_VALUE_COLUMNS,
    STATUS_OK,
    VALID_STATUSES,
)
from pipeline.theory.one_loop.crossing import one_loop_crossing, relu_exact_crossing
from pipeline.theory.one_loop.deep_layer import fixed_point


def one_loop_table(activation: str, sigma_w2, sigma_b2=0.0, widths=None, n_nodes: int | None = None) -> pd.DataFrame:
    """One row per sigma_w2 (x width if given): q*, chi_par, V*, K1*, c1, expansion parameter, status.

    Args:
        activation: name; sigma_w2: (M,) grid; sigma_b2: scalar or (M,); widths: optional list of N.
    Returns:
        DataFrame with columns activation, sigma_w2, sigma_b2, q_star, chi_par, chi1, V_star,
        K1_star, R_star, lambda_mf, lambda_coeff_1overN, lambda_coeff_1overN_spec, gain_coeff_1overN,
        status; with widths also width, lambda_one_loop, expansion_parameter (V*/(N K^2)), and
        status per width. Without widths, expansion_parameter is V*/K^2 (per unit 1/N).
        Status before number: on a row whose status is not "ok" the one-loop columns (ONE_LOOP_VALUE_COLUMNS)
        are NaN; the mean-field columns and expansion_parameter (which explains a breakdown) are kept.
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2, n_nodes)
    base = pd.DataFrame(
        {
            "activation": activation,
            "sigma_w2": fp.sigma_w2.numpy(),
            "sigma_b2": fp.sigma_b2.numpy(),
            "q_star": fp.q_star.numpy(),
            "chi_par": fp.chi_par.numpy(),
            "chi1": fp.chi1.numpy(),
            "V_star": fp.V_star.numpy(),
            "K1_star": fp.K1_star.numpy(),
            "R_star": fp.R_star.numpy(),
            "lambda_mf": (0.5 * torch.log(fp.chi1)).numpy(),
            "lambda_coeff_1overN": fp.c1.numpy(),
            "lambda_coeff_1overN_spec": fp.c1_spec.numpy(),
            "gain_coeff_1overN": fp.chi1_1overN.numpy(),
        }
    )
    if widths is None:
        base["expansion_parameter"] = fp.vk2.numpy()
        base["status"] = fp.status
        return mask_invalid(base, ONE_LOOP_VALUE_COLUMNS, "status", VALID_STATUSES)
    parts = []
    for n in widths:
        df = base.copy()
        df.insert(3, "width", int(n))
        df["lambda_one_loop"] = df["lambda_mf"] + df["lambda_coeff_1overN"] / n
        df["expansion_parameter"] = fp.expansion_parameter(n).numpy()
        df["status"] = fp.status_at(float(n))
        parts.append(df)
    return mask_invalid(pd.concat(parts, ignore_index=True), ONE_LOOP_VALUE_COLUMNS, "status", VALID_STATUSES)


def crossing_table(activation: str, sigma_b2, widths, **kw) -> pd.DataFrame:
    """One row per (sigma_b2, width): mean-field, one-loop (and spec, annealed) and exact crossings.

    Returns:
        DataFrame with columns activation, sigma_b2, width, crossing_mean_field, crossing_one_loop,
        crossing_one_loop_spec (no correlation term), crossing_annealed, crossing_exact (ReLU at
        sigma_b2 = 0 only: root of relu_lyapunov_exact, else NaN), expansion_parameter, status.
        Status before number: on a row whose status is not "ok" the one-loop roots (CROSSING_VALUE_COLUMNS) are
        NaN; crossing_mean_field, crossing_exact and expansion_parameter are kept.
    """
    cr = one_loop_crossing(activation, sigma_b2, widths, **kw)
    B, W = cr.one_loop.shape
    sb = cr.sigma_b2.repeat_interleave(W).numpy()
    n = cr.width.repeat(B).numpy().astype(int)
    exact = np.array(
        [relu_exact_crossing(int(w)) if activation == "relu" and b == 0 else np.nan for b, w in zip(sb, n)]
    )
    table = pd.DataFrame(
        {
            "activation": activation,
            "sigma_b2": sb,
            "width": n,
            "crossing_mean_field": cr.mean_field.repeat_interleave(W).numpy(),
            "crossing_one_loop": cr.one_loop.reshape(-1).numpy(),
            "crossing_one_loop_spec": cr.one_loop_spec.reshape(-1).numpy(),
            "crossing_annealed": cr.annealed.reshape(-1).numpy(),
            "crossing_exact": exact,
            "expansion_parameter": cr.expansion_parameter.reshape(-1).numpy(),
            "status": cr.status.reshape(-1),
        }
    )
    return mask_invalid(table, CROSSING_VALUE_COLUMNS, "status", STATUS_OK)
