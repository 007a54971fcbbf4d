"""Constants, statuses and argument conversion shared by the one-loop modules (docs/science.md §6)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.activations import Activation, get_activation
from pipeline.theory.quadrature import DTYPE

K_LIMIT = 1e-12  # where q* = 0, moments are evaluated here as the K -> 0+ limit (errors O(K_LIMIT))
EXPANSION_LIMIT = 0.3  # flag points with V/(N K^2) above this (docs/science.md §6)

STATUS_OK = "ok"
STATUS_BREAKDOWN = "expansion_breakdown"
STATUS_TRIVIAL = "trivial_fixed_point"
STATUS_NO_FP = "no_fixed_point"
STATUS_CHI_PAR = "chi_par_ge_1"
STATUS_LONGITUDINAL = "longitudinal_mode"
STATUS_NO_CROSSING = "no_crossing"

# Status before number (pipeline.status.mask_invalid): the columns a row's one-loop `status` speaks for, NaN
# where it is not ok. The mean-field columns (q_star, chi_par, chi1, lambda_mf, crossing_mean_field), the exact
# ReLU root and the diagnostic expansion_parameter that explains a breakdown are kept.
# The statuses whose one-loop values stand: "ok", and the trivial fixed point q* = 0, whose values are the exact
# K -> 0+ limit (the linearized network: c1 = -1/2 for tanh/erf at sigma_b2 = 0 below sigma_w2 = 1).
VALID_STATUSES = (STATUS_OK, STATUS_TRIVIAL)
ONE_LOOP_VALUE_COLUMNS = ["V_star", "K1_star", "R_star", "lambda_coeff_1overN", "lambda_coeff_1overN_spec",
                          "gain_coeff_1overN", "lambda_one_loop"]  # fmt: skip
CROSSING_VALUE_COLUMNS = ["crossing_one_loop", "crossing_one_loop_spec", "crossing_annealed"]


def _t(x) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:  # e.g. a pandas column: torch warns on read-only memory
        x = x.copy()
    return torch.as_tensor(x, dtype=DTYPE)


def _act(activation) -> Activation:
    return activation if isinstance(activation, Activation) else get_activation(activation)


def _grid(sigma_w2, sigma_b2) -> tuple[torch.Tensor, torch.Tensor]:
    sw = _t(sigma_w2).reshape(-1)
    sb = _t(sigma_b2).reshape(-1)
    sw, sb = torch.broadcast_tensors(sw, sb)
    return sw.contiguous(), sb.contiguous()
