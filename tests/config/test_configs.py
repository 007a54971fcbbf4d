"""Every primary config and experiment composes and validates; ranges give one-line errors."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipeline.config.store import SCHEMAS, register
from pipeline.config.validate import ConfigError, to_validated
from pipeline.paths import conf_dir, repo_root
from pipeline.stages import hydra_app  # noqa: F401  (registers the repo_root resolver)

EXPERIMENTS = sorted(p.stem for p in (repo_root() / "experiments").glob("*.yaml"))


def _compose(stage: str, overrides=()):
    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name=stage, overrides=list(overrides), return_hydra_config=False)
    OmegaConf.update(cfg, "out_dir", "/tmp/unused", force_add=True)
    return cfg


@pytest.mark.parametrize("stage", sorted(SCHEMAS))
def test_primary_config_composes_and_validates(stage):
    obj = to_validated(_compose(stage))
    assert obj.stage == stage


@pytest.mark.parametrize("stage", sorted(SCHEMAS))
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(stage, experiment):
    to_validated(_compose(stage, [f"experiment={experiment}"]))


@pytest.mark.parametrize(
    "override,key",
    [
        ("net.sigma_w2=-1", "net.sigma_w2"),
        ("net.sigma_w2=0", "net.sigma_w2"),
        ("net.width=0", "net.width"),
        ("net.depth=0", "net.depth"),
        ("net.sigma_b2=-0.1", "net.sigma_b2"),
        ("theory.iterate.c0=1.5", "theory.iterate.c0"),
        ("theory.activations=[]", "theory.activations"),
        ("theory.critical_sigma_b2=[0.1,-2]", "theory.critical_sigma_b2"),
    ],
)
def test_range_errors_name_the_key_in_one_line(override, key):
    with pytest.raises(ConfigError) as err:
        to_validated(_compose("theory", [override]))
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg


def test_unknown_activation_is_rejected_by_the_schema():
    with pytest.raises(Exception, match="net.activation"):
        _compose("theory", ["net.activation=foo"])


def test_every_registered_activation_is_a_config_choice():
    from pipeline.theory.activations import ACTIVATIONS

    for name in ACTIVATIONS:
        assert to_validated(_compose("theory", [f"net.activation={name}"])).net.activation.value == name
