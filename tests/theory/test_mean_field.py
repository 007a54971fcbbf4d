"""pipeline.theory.mean_field: fixed points satisfy their maps, depth scales peak at the edge of chaos, q* stays
finite for bounded activations at any bias."""

import pytest
import torch

from pipeline.activations import ACTIVATIONS, get_activation
from pipeline.theory.critical import critical_line
from pipeline.theory.fixed_point import Status
from pipeline.theory.gaussian import GaussianIntegrator
from pipeline.theory.mean_field import correlation_map, mean_field_grid, q_star, variance_map
from tests.theory.reference import q_star_quad

T = torch.float64


def test_fixed_points_satisfy_both_maps():
    # unbounded activations have a finite q* only below sigma_w2 ~ 2 (q* -> inf above: tested below)
    for name, top in (("tanh", 4.0), ("erf", 4.0), ("gelu", 1.9), ("swish", 1.9), ("relu", 1.9)):
        g = GaussianIntegrator(ACTIVATIONS[name])
        sw = torch.linspace(0.3, top, 25, dtype=T)[:, None]
        sb = torch.linspace(0.05, 1.0, 9, dtype=T)[None, :]
        r = mean_field_grid(g, sw, sb)
        swe, sbe = sw.expand_as(r.q_star), sb.expand_as(r.q_star)
        # every point of this grid has a finite, stable q* and c*: a single failed solve is a bug, not noise
        bad = (r.q_status != 0) | (r.c_status != 0)
        assert not bool(bad.any()), (name, swe[bad].tolist(), sbe[bad].tolist(), r.q_status[bad], r.c_status[bad])
        q, c = r.q_star, r.c_star
        assert (variance_map(g, q, swe, sbe) - q).abs().max() < 1e-10, name
        assert (correlation_map(g, q, q, c * q, swe, sbe) / q - c).abs().max() < 1e-10, name
        # independent check at three points: q* is the root of sigma_w2 E phi^2 + sigma_b2 - q by scipy quad
        for i, j in ((0, 0), (12, 4), (24, 8)):
            ref = q_star_quad(name, float(sw[i, 0]), float(sb[0, j]))
            assert abs(float(r.q_star[i, j]) - ref) < 1e-9 * ref, (name, i, j)


def test_correlation_depth_scale_grows_toward_the_critical_line_from_both_sides():
    g = GaussianIntegrator(ACTIVATIONS["tanh"])
    sb2 = 0.05
    crit = float(critical_line(g, [sb2]).sigma_w2_crit[0])
    left = torch.linspace(crit - 0.8, crit - 0.01, 12, dtype=T)
    right = torch.linspace(crit + 0.01, crit + 1.5, 12, dtype=T)
    xl = mean_field_grid(g, left, sb2).depth_scale_c
    xr = mean_field_grid(g, right, sb2).depth_scale_c
    assert torch.all(xl[1:] > xl[:-1]), xl
    assert torch.all(xr[1:] < xr[:-1]), xr
    assert xl[-1] > 50 and xr[0] > 50


def test_ordered_phase_correlation_goes_to_one_and_chaotic_below_one():
    g = GaussianIntegrator(ACTIVATIONS["tanh"])
    r = mean_field_grid(g, torch.tensor([1.2, 3.0], dtype=T), 0.05)
    assert abs(float(r.c_star[0]) - 1) < 1e-10
    assert float(r.c_star[1]) < 0.95


def test_diverging_relu_variance_is_reported_not_silent():
    g = GaussianIntegrator(ACTIVATIONS["relu"])
    r = mean_field_grid(g, torch.tensor([1.5, 3.0], dtype=T), 0.1)
    assert int(r.q_status[0]) == 0 and abs(float(r.q_star[0]) - 0.1 / (1 - 0.75)) < 1e-10
    assert int(r.q_status[1]) == 1 and torch.isinf(r.q_star[1])


def test_relu_and_linear_with_a_bias_at_or_past_a_q_1_diverge_not_max_iter():
    """Affine variance map q' = A_q q + sigma_b2: at A_q >= 1 with a bias there is no finite q* (exact). The
    iteration creeps toward the search bound (~700 steps at A_q = 1.025) and stopped at max_iter with q ~ 1e6,
    which the theory stage then masked as unconverged: the relu cells next to the critical line were blank."""
    fp = q_star(GaussianIntegrator(ACTIVATIONS["relu"]), torch.tensor([1.9, 2.0, 2.05], dtype=T), 0.5)
    assert abs(fp.x[0].item() - 0.5 / (1 - 0.95)) < 1e-8  # sigma_b2 / (1 - A_q)
    assert torch.isinf(fp.x[1:]).all() and fp.status[1:].tolist() == [int(Status.DIVERGED)] * 2
    lin = q_star(GaussianIntegrator(ACTIVATIONS["linear"]), torch.tensor([1.0, 1.05], dtype=T), 0.3)
    assert torch.isinf(lin.x).all() and lin.status.tolist() == [int(Status.DIVERGED)] * 2


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_bounded_activation_at_huge_bias_has_a_finite_fixed_point(name):
    """Effect guarded: q* = inf, status diverged, from a hard-coded solver bound of 1e8."""
    g = GaussianIntegrator(get_activation(name), q_max=20.0)
    fp = q_star(g, torch.tensor([1.0, 1.0], dtype=T), torch.tensor([1e8, 1e9], dtype=T))
    assert (fp.status == 0).all(), fp.status
    # q* = sigma_b2 + sigma_w2 E phi^2, 0 < E phi^2 < 1
    assert ((fp.x > torch.tensor([1e8, 1e9], dtype=T)) & (fp.x <= torch.tensor([1e8, 1e9], dtype=T) + 1)).all()
