"""pipeline.dynamics.engine_spec: the config -> EnsembleSpec
adapter, checked field by field against values written out by hand (every value differs from its default
and from every other field, so a swapped, dropped or defaulted field shows)."""

from pipeline.config.schema import ActivationName, EngineConfig, MlpSweepNet, Precision, WeightDist
from pipeline.dynamics.engine_spec import ensemble_spec, spec_with_defaults

NET = MlpSweepNet(
    activation=ActivationName.relu,
    sigma_b2=0.125,
    width=17,
    depth=23,
    xi=0.375,
    weights=WeightDist.orthogonal,
)
ENGINE = EngineConfig(
    n_seeds=5,
    n_pairs=3,
    q0=1.75,
    c0=-0.25,
    eps=2e-4,
    burn_in=4,
    n_spectrum=6,
    dtype=Precision.float64,
    device="cpu:0",
    memory_budget_gb=0.625,
)
BY_HAND = dict(
    activation="relu",
    width=17,
    depth=23,
    sigma_w2=(0.5, 1.5),
    sigma_b2=0.125,
    xi=0.375,
    weights="orthogonal",
    n_seeds=5,
    n_pairs=3,
    q0=1.75,
    c0=-0.25,
    eps=2e-4,
    n_spectrum=6,
    seed=41,
    dtype="float64",
    device="cpu:0",
    memory_budget_gb=0.625,
)


def test_every_config_field_lands_in_its_spec_field():
    spec = ensemble_spec(NET, ENGINE, [0.5, 1.5], 41)
    assert {k: getattr(spec, k) for k in BY_HAND} == BY_HAND
    assert isinstance(spec.sigma_w2, tuple)


def test_overrides_replace_fields_and_leave_the_rest():
    spec = ensemble_spec(NET, ENGINE, [0.5, 1.5], 41, width=8, dtype="float32")
    assert spec.width == 8 and spec.dtype == "float32"
    assert {k: getattr(spec, k) for k in BY_HAND if k not in ("width", "dtype")} == {
        k: v for k, v in BY_HAND.items() if k not in ("width", "dtype")
    }


def test_spec_with_defaults_takes_the_schema_defaults_seed_zero_and_a_tuple_grid():
    spec = spec_with_defaults(sigma_w2=[1.0, 2.0], n_seeds=3)
    assert spec.sigma_w2 == (1.0, 2.0) and spec.seed == 0 and spec.n_seeds == 3
    net, eng = MlpSweepNet(), EngineConfig()  # the schema's defaults, read field by field
    assert (spec.width, spec.depth, spec.sigma_b2, spec.xi) == (net.width, net.depth, net.sigma_b2, net.xi)
    assert (spec.activation, spec.weights, spec.dtype) == (net.activation.value, net.weights.value, eng.dtype.value)
    assert (spec.n_pairs, spec.q0, spec.c0, spec.eps) == (eng.n_pairs, eng.q0, eng.c0, eng.eps)
    assert (spec.n_spectrum, spec.device, spec.memory_budget_gb) == (eng.n_spectrum, eng.device, eng.memory_budget_gb)
    assert spec_with_defaults(sigma_w2=(1.0,), seed=9).seed == 9
