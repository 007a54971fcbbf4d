"""pipeline.theory.fixed_point (the mutation-testing gaps of docs/mutation.md): the solver on maps whose fixed
points, slopes and iteration counts are known by hand (affine, square-root and cubic maps), so no other theory
code is involved. Tolerances: the solver's own 1e-13 relative criterion, checked at 1e-12."""

import math

import torch

from pipeline.theory.fixed_point import STATUS_NAMES, Status, solve_fixed_point


def _affine(a, b):
    """f(x) = a x + b, f'(x) = a (per point: a, b tensors indexed by idx)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return lambda x, idx: (a[idx] * x + b[idx], a[idx].clone())


def test_affine_contractions_converge_to_b_over_one_minus_a_in_six_sweeps():
    """Four plain steps, then one Newton step lands on b/(1 - a) (exact for an affine map), and the sixth
    sweep sees a zero residual: 6 sweeps with the default n_plain = 4."""
    a, b = [0.5, 0.9, 0.2], [1.0, 3.0, 0.7]
    fp = solve_fixed_point(_affine(a, b), torch.zeros(3, dtype=torch.float64))
    want = torch.tensor([bi / (1 - ai) for ai, bi in zip(a, b)], dtype=torch.float64)
    assert torch.allclose(fp.x, want, rtol=1e-12, atol=0)
    assert fp.status.tolist() == [int(Status.CONVERGED)] * 3
    assert fp.slope.tolist() == a
    assert fp.iterations == 6
    # n_plain is honoured: more plain steps first, one more sweep per extra step (no point converges earlier:
    # a plain step reduces the error only by the factor a)
    assert solve_fixed_point(_affine(a, b), torch.zeros(3, dtype=torch.float64), n_plain=6).iterations == 8


def test_a_nonlinear_map_converges_to_its_closed_form_root():
    """f(x) = sqrt(x) + 1 has x* = ((1 + sqrt 5) / 2)^2 and f'(x*) = 1 / (2 sqrt x*) = 1 / (1 + sqrt 5)."""
    fp = solve_fixed_point(lambda x, idx: (x.sqrt() + 1, 0.5 / x.sqrt()), torch.tensor([1.0, 9.0], dtype=torch.float64))
    g = (1 + math.sqrt(5)) / 2
    assert torch.allclose(fp.x, torch.full((2,), g * g, dtype=torch.float64), rtol=1e-12, atol=0)
    assert torch.allclose(fp.slope, torch.full((2,), 1 / (1 + math.sqrt(5)), dtype=torch.float64), rtol=1e-9)
    assert fp.status.tolist() == [0, 0]


def test_expanding_map_diverges_to_inf_above_upper_and_below_lower():
    up = solve_fixed_point(_affine([2.0], [1.0]), torch.ones(1, dtype=torch.float64))
    assert up.status.tolist() == [int(Status.DIVERGED)] and math.isinf(float(up.x))
    # x -> 2x + 1 from 1: sweep k steps to 2^(k+1) - 1, above the default upper = 1e8 first at k = 26
    assert up.iterations == 26
    # the bound itself is allowed: a step to 1e8 + 0.5 (above the default 1e8) diverges in sweep 2
    edge = solve_fixed_point(_affine([1.0], [5e7 + 0.25]), torch.zeros(1, dtype=torch.float64), n_plain=100)
    assert edge.status.tolist() == [int(Status.DIVERGED)] and edge.iterations == 2
    # a step onto upper itself is allowed: 50, 100 (= upper), then 150 diverges in sweep 3
    onto = solve_fixed_point(_affine([1.0], [50.0]), torch.zeros(1, dtype=torch.float64), upper=100.0, n_plain=100)
    assert onto.status.tolist() == [int(Status.DIVERGED)] and onto.iterations == 3
    # and onto lower: 50, 0 (= lower), then -50 diverges in sweep 3
    floor_hit = solve_fixed_point(_affine([1.0], [-50.0]), torch.full((1,), 100.0, dtype=torch.float64), n_plain=100)
    assert floor_hit.status.tolist() == [int(Status.DIVERGED)] and floor_hit.iterations == 3
    capped = solve_fixed_point(_affine([2.0], [1.0]), torch.ones(1, dtype=torch.float64), upper=100.0)
    assert capped.status.tolist() == [int(Status.DIVERGED)] and capped.iterations == 6  # 2^7 - 1 > 100
    # a finite upper closes the bracket from the start: x -> x + 1 (slope 1, no Newton step) takes 4 plain
    # steps to 4, then bisects [f(x), upper = 1000]: 502.5, 751.75, ... (8 bisections: 997.1); once f(x) > 1000
    # (sweep 14) the midpoint leaves the range: diverged
    shut = solve_fixed_point(_affine([1.0], [1.0]), torch.zeros(1, dtype=torch.float64), upper=1000.0, max_iter=12)
    assert shut.status.tolist() == [int(Status.MAX_ITER)] and abs(float(shut.x) - 997.10546875) < 1e-9
    gone = solve_fixed_point(_affine([1.0], [1.0]), torch.zeros(1, dtype=torch.float64), upper=1000.0)
    # the mirror image: a finite lower closes the bracket [lower, f(x)] while x -> x - 1 falls: 4 plain steps to
    # -4, then bisections (-1000 - 5)/2 = -502.5, (-1000 - 503.5)/2 = -751.75
    fall = solve_fixed_point(_affine([1.0], [-1.0]), torch.zeros(1, dtype=torch.float64), lower=-1000.0, max_iter=6)
    assert fall.status.tolist() == [int(Status.MAX_ITER)] and float(fall.x) == -751.75
    assert gone.status.tolist() == [int(Status.DIVERGED)] and gone.iterations == 14
    down = solve_fixed_point(_affine([1.0], [-1.0]), torch.full((1,), 2.5, dtype=torch.float64))
    assert down.status.tolist() == [int(Status.DIVERGED)] and down.iterations == 3  # 2.5, 1.5, 0.5 -> -0.5
    floor = solve_fixed_point(
        _affine([1.0], [-1.0]), torch.full((1,), 2.5, dtype=torch.float64), lower=-10.0, n_plain=100
    )
    assert floor.iterations == 13  # plain steps only: 2.5 - 13 = -10.5 is the first step below -10


def test_max_iter_and_unstable_statuses():
    slow = solve_fixed_point(_affine([1.0], [1e-3]), torch.zeros(1, dtype=torch.float64), max_iter=7)
    assert slow.status.tolist() == [int(Status.MAX_ITER)] and slow.iterations == 7
    assert abs(float(slow.x) - 7e-3) < 1e-15  # 7 plain steps of +1e-3
    # the default cap is 500 sweeps: x -> x + 1 from 0 reaches neither tolerance nor the upper bound
    cap = solve_fixed_point(_affine([1.0], [1.0]), torch.zeros(1, dtype=torch.float64))
    assert cap.iterations == 500 and float(cap.x) == 500.0 and cap.status.tolist() == [int(Status.MAX_ITER)]
    # x* = 1 of x^2 is a fixed point with slope 2: converged but unstable
    fp = solve_fixed_point(lambda x, idx: (x * x, 2 * x), torch.ones(1, dtype=torch.float64))
    assert fp.status.tolist() == [int(Status.UNSTABLE)] and float(fp.x) == 1.0 and float(fp.slope) == 2.0
    # slope exactly 1 (identity map) is not unstable, nor is the margin 1 + 1e-9 itself; slope 1 + 2e-9 is
    ident = solve_fixed_point(lambda x, idx: (x.clone(), torch.ones_like(x)), torch.ones(1, dtype=torch.float64))
    assert ident.status.tolist() == [int(Status.CONVERGED)]
    edge = solve_fixed_point(
        lambda x, idx: (x.clone(), torch.full_like(x, 1 + 1e-9)), torch.ones(1, dtype=torch.float64)
    )
    assert edge.status.tolist() == [int(Status.CONVERGED)]
    tip = solve_fixed_point(
        lambda x, idx: (x.clone(), torch.full_like(x, 1 + 2e-9)), torch.ones(1, dtype=torch.float64)
    )
    assert tip.status.tolist() == [int(Status.UNSTABLE)]
    # the criterion is on |f'|: x -> 3 - 2x has x* = 1 with slope -2
    flip = solve_fixed_point(_affine([-2.0], [3.0]), torch.ones(1, dtype=torch.float64))
    assert flip.status.tolist() == [int(Status.UNSTABLE)] and float(flip.slope) == -2.0
    assert STATUS_NAMES == {0: "converged", 1: "diverged", 2: "max_iter", 3: "unstable", 4: "degenerate"}


def test_slope_is_nan_only_where_the_map_was_never_evaluated_and_tolerances_are_honoured():
    fp = solve_fixed_point(_affine([0.5], [1.0]), torch.zeros(1, dtype=torch.float64), max_iter=0)
    assert math.isnan(float(fp.slope)) and fp.status.tolist() == [int(Status.MAX_ITER)] and fp.iterations == 0
    # a loose relative tolerance stops early: iterates 0, 1, 1.5, 1.75; |f(x) - x| = |1 - x/2| <= 0.1 |x|
    # first holds at x = 1.75, in sweep 4
    loose = solve_fixed_point(_affine([0.5], [1.0]), torch.zeros(1, dtype=torch.float64), tol=0.1)
    assert float(loose.x) == 1.75 and loose.iterations == 4
    # the fixed point 0 of x/2 is reached only through atol (the relative criterion alone never holds)
    zero = solve_fixed_point(lambda x, idx: (0.5 * x, torch.full_like(x, 0.5)), torch.ones(1, dtype=torch.float64))
    assert zero.status.tolist() == [0] and 0 <= float(zero.x) < 1e-29
    coarse = solve_fixed_point(
        lambda x, idx: (0.5 * x, torch.full_like(x, 0.5)), torch.ones(1, dtype=torch.float64), atol=1e-3
    )
    assert 5e-4 < float(coarse.x) <= 2e-3


def test_the_tolerance_test_includes_equality():
    """x -> x/2 + 1 from 1 with tol = 0.5: |f(x) - x| = 0.5 equals tol |x| + atol (1e-30 is lost in rounding),
    which counts as converged in the first sweep."""
    fp = solve_fixed_point(_affine([0.5], [1.0]), torch.ones(1, dtype=torch.float64), tol=0.5)
    assert fp.iterations == 1 and float(fp.x) == 1.0 and fp.status.tolist() == [int(Status.CONVERGED)]


def test_an_expanding_affine_map_diverges_rather_than_landing_on_its_unstable_fixed_point():
    """x -> 1.5 x - 1 has one fixed point, 2, with slope 1.5: plain iteration moves away from it (x_k - 2 =
    1.5^k (x0 - 2)), so from 3 it diverges above 1e8 in sweep 46 (1.5^46 > 1e8 - 2 > 1.5^45) and from 1 below
    0 in sweep 2 (1, 0.5, -0.25). The Newton step from any iterate is exactly 2, the wrong side of the bracket:
    taking it would report 2 as an unstable fixed point. Started on 2 itself, the solver reports it unstable."""
    fmap = _affine([1.5, 1.5, 1.5], [-1.0, -1.0, -1.0])
    fp = solve_fixed_point(fmap, torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    assert fp.status.tolist() == [int(Status.DIVERGED), int(Status.DIVERGED), int(Status.UNSTABLE)]
    assert math.isinf(float(fp.x[0])) and math.isinf(float(fp.x[1])) and float(fp.x[2]) == 2.0
    assert fp.iterations == 46 and float(fp.slope[2]) == 1.5
    assert solve_fixed_point(fmap, torch.tensor([1.0, 2.0], dtype=torch.float64)).iterations == 2


def test_three_fixed_points_the_one_plain_iteration_reaches_is_returned():
    """f(x) = x - (x - 1)(x - 2)(x - 3)/16 is increasing on [0, 4] (f' = 1 - (3x^2 - 12x + 11)/16 >= 5/16) and
    maps it into itself; its fixed points 1 and 3 attract (f' = 7/8), 2 repels (f' = 17/16). Plain iteration
    from below 2 reaches 1, from above 2 reaches 3; near 2 the slope exceeds 1 and a Newton step would point
    back to 2. Started on 2 exactly (f(2) = 2 in floating point), the point is reported unstable. upper = 4
    closes the bracket on the interval where f increases (the solver's premise): left open, a Newton step
    where f' is just below 1 jumps far beyond 4, where the cubic turns down."""

    def fmap(x, idx):
        return x - (x - 1) * (x - 2) * (x - 3) / 16, 1 - (3 * x * x - 12 * x + 11) / 16

    x0 = torch.tensor([0.0, 1.9, 2.1, 4.0, 2.0], dtype=torch.float64)
    fp = solve_fixed_point(fmap, x0, upper=4.0)
    assert torch.allclose(fp.x, torch.tensor([1.0, 1.0, 3.0, 3.0, 2.0], dtype=torch.float64), rtol=1e-12, atol=0)
    assert fp.status.tolist() == [int(Status.CONVERGED)] * 4 + [int(Status.UNSTABLE)]
    assert torch.allclose(fp.slope, torch.tensor([7 / 8] * 4 + [17 / 16], dtype=torch.float64), rtol=1e-9)


def test_a_newton_step_onto_the_bracket_end_is_refused():
    """Newton steps are taken only strictly inside the bracket. x -> x/2 + 1 with upper = 2 = x*: four plain
    steps reach 2 - 2^-3, then every Newton step lands exactly on the end hi = 2 and is refused; the midpoint of
    [f(x), 2] quarters the gap per sweep, so the residual 2^-(2k-6) of sweep k first meets 1e-13 x* in sweep 25,
    at x = 2 - 2^-43. With upper = 2.5 the same Newton step is inside: converged in sweep 6, as without bound."""
    fp = solve_fixed_point(_affine([0.5], [1.0]), torch.zeros(1, dtype=torch.float64), upper=2.0)
    assert fp.status.tolist() == [int(Status.CONVERGED)] and fp.iterations == 25 and float(fp.x) == 2 - 2**-43
    wide = solve_fixed_point(_affine([0.5], [1.0]), torch.zeros(1, dtype=torch.float64), upper=2.5)
    assert wide.status.tolist() == [int(Status.CONVERGED)] and wide.iterations == 6 and float(wide.x) == 2.0
