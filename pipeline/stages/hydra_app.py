"""Build a stage's console entry point: Hydra's main with the repo's conf/, run by `lifecycle.main`."""

from __future__ import annotations

from collections.abc import Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from pipeline.config.store import register
from pipeline.paths import conf_dir, repo_root
from pipeline.stages import lifecycle

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(repo_root()))


def hydra_entry(config_name: str, task: Callable[[DictConfig], None]) -> Callable[[], None]:
    """`main()` for `python -m pipeline.<stage>`: never relies on chdir (version_base 1.3); errors, signals and
    the sweep's close-up are handled by `lifecycle.main` (no Hydra internals are patched)."""
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(lifecycle.job(task))

    def main() -> None:
        register(config_name)  # this stage's schema only, when it runs (importing the CLI registers none)
        lifecycle.main(app)

    return main
