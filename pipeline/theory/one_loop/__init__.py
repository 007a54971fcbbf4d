"""Finite width at one loop: 1/N corrections to q, its fluctuations and the Lyapunov exponent.

Derivation, conventions, corrections to the internal spec, checks and statuses: docs/science.md §6. Float64,
vectorized over a sigma_w2 grid; pure functions (activation by name, numbers in, tensors/tables out).
"""

from pipeline.theory.one_loop.common import (
    CROSSING_VALUE_COLUMNS,
    EXPANSION_LIMIT,
    K_LIMIT,
    ONE_LOOP_VALUE_COLUMNS,
    STATUS_BREAKDOWN,
    STATUS_CHI_PAR,
    STATUS_LONGITUDINAL,
    STATUS_NO_CROSSING,
    STATUS_NO_FP,
    STATUS_OK,
    STATUS_TRIVIAL,
    VALID_STATUSES,
)
from pipeline.theory.one_loop.crossing import (
    FiniteDepthCrossing,
    OneLoopCrossing,
    finite_depth_crossing,
    one_loop_crossing,
    relu_exact_crossing,
)
from pipeline.theory.one_loop.deep_layer import (
    OneLoopFixedPoint,
    annealed_gain_one_loop,
    fixed_point,
    lambda_coeff_1overN,
    lambda_one_loop,
)
from pipeline.theory.one_loop.moments import LayerMoments, layer_moments, stein_moments
from pipeline.theory.one_loop.recursion import OneLoopLayers, layer_recursion
from pipeline.theory.one_loop.tables import crossing_table, one_loop_table

__all__ = [
    "CROSSING_VALUE_COLUMNS",
    "EXPANSION_LIMIT",
    "K_LIMIT",
    "ONE_LOOP_VALUE_COLUMNS",
    "STATUS_BREAKDOWN",
    "STATUS_CHI_PAR",
    "STATUS_LONGITUDINAL",
    "STATUS_NO_CROSSING",
    "STATUS_NO_FP",
    "STATUS_OK",
    "STATUS_TRIVIAL",
    "VALID_STATUSES",
    "FiniteDepthCrossing",
    "LayerMoments",
    "OneLoopCrossing",
    "OneLoopFixedPoint",
    "OneLoopLayers",
    "annealed_gain_one_loop",
    "crossing_table",
    "finite_depth_crossing",
    "fixed_point",
    "lambda_coeff_1overN",
    "lambda_one_loop",
    "layer_moments",
    "layer_recursion",
    "one_loop_crossing",
    "one_loop_table",
    "relu_exact_crossing",
    "stein_moments",
]
