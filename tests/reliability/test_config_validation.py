"""Guarantee 6 (bad input): every value is checked before compute; rejected input is one line, exit 2,
no output folder. The property test drives the validation path in-process with combinations of
valid and invalid values, unknown `+` keys and keys of sections a stage does not read."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config.validate import ConfigError
from pipeline.stages.hydra_app import _one_line
from pipeline.stages.runner import validate_config
from tests.config.test_configs import _compose

VALID = {
    "net.sigma_w2": ["0.5", "2", "1e-3"],
    "net.sigma_b2": ["0", "0.3"],
    "net.width": ["8", "32"],
    "net.depth": ["3", "12"],
    "net.activation": ["tanh", "relu", "gelu"],
    "net.weights": ["gaussian", "orthogonal"],
    "net.xi": ["1.0", "0.5"],
    "engine.n_seeds": ["2", "4"],
    "engine.burn_in": ["0", "2"],
    "engine.eps": ["1e-3"],
    "engine.dtype": ["float32", "float64"],
    "engine.n_spectrum": ["0", "2"],
    "grid.sigma_w2.start": ["0.5", "1"],
    "grid.sigma_w2.stop": ["2", "3"],
    "grid.sigma_w2.num": ["1", "3"],
    "theory.activations": ["[tanh]", "[tanh,relu]"],
    "theory.sigma_w2.num": ["3", "5"],
    "theory.critical_sigma_b2": ["[0.0]", "[0.0,0.1]"],
    "theory.sigma_w2_search": ["[0.1,5]"],
    "theory.iterate.c0": ["0.5", "1"],
    "seed": ["0", "7"],
}
INVALID = st.sampled_from(
    ["0", "-1", "1e300", "abc", "[]", "[3,1]", "[1,1]", "nan", "inf", "-inf", "null", "float16", "''", "[-1]", "{a: 1}"]
)
EXTRA = [  # keys no stage may set: misspelt `+` additions, secrets, sections the stage does not read
    "+net.widht",
    "+foo",
    "+tracking.token",
    "+theory.iterate.q33",
    "ginn.width",
    "gauge.xi",
    "lyapunov.relu_finite_width.depth",
]
KEYS = sorted(VALID) + EXTRA


@st.composite
def overrides(draw):
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    out = []
    for k in keys:
        if k in EXTRA or draw(st.booleans()):
            value = draw(INVALID) if draw(st.booleans()) or k not in VALID else None
        else:
            value = None
        out.append(f"{k}={value if value is not None else draw(st.sampled_from(VALID.get(k, ['1'])))}")
    return out


def _validate(stage: str, ovs: list[str]):
    """What `python -m pipeline.<stage> ...` checks before compute, as a ConfigError (composition included)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = _compose(stage, ["experiment=smoke", "tracking.enabled=false", *ovs])
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    return validate_config(cfg, stage, ovs)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stage=st.sampled_from(["theory", "mlp_sweep"]), ovs=overrides())
def test_random_overrides_pass_or_fail_with_one_line_naming_a_key(stage, ovs):
    keys = [o.split("=", 1)[0].lstrip("+") for o in ovs]
    try:
        _validate(stage, ovs)
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.strip(), (ovs, msg)
        named = [
            k for k in keys if k in msg or k.rsplit(".", 1)[0] + ":" in msg
        ]  # a grid's check names the grid + (["memory"] if "memory_budget_gb" in msg else [])
        assert named, (ovs, msg)
    else:
        assert not any(k in EXTRA for k in (o.split("=", 1)[0] for o in ovs)), ovs  # unknown keys never pass


@pytest.mark.parametrize(
    "stage,override,expected",
    [
        ("theory", "+net.foo=1", "net.foo: unknown config key"),
        ("mlp_sweep", "+tracking.token=s3cret", "tracking.token: unknown config key"),
        ("theory", "+lyapunov.curves.0.bad=1", "unknown config key"),
        ("theory", "ginn.width=3", "ginn.width: not read by stage 'theory'"),
        ("mlp_sweep", "theory.activations=[tanh]", "theory.activations: not read by stage 'mlp_sweep'"),
    ],
)
def test_unknown_or_unread_keys_are_rejected_by_name(stage, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        _validate(stage, [override])


def test_deprecated_alias_and_group_choices_still_pass():
    validate_config(_compose("mlp_sweep", ["sweep.sigma_w2.num=3"]), "mlp_sweep", ["sweep.sigma_w2.num=3"])
    _validate("theory", ["net=default"])


@pytest.mark.parametrize("override", ["+net.foo=1", "net.width=abc"])  # (the rest in-process, above)
def test_rejected_input_exits_2_with_one_line_and_leaves_no_output_folder(run_cli, tmp_path, override):
    out = tmp_path / "runs" / "o"
    p = run_cli("theory", "experiment=smoke", "tracking.enabled=false", override, f"hydra.run.dir={out}")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and override.split("=")[0].lstrip("+") in lines[0]
    assert not out.exists()
