"""Build a stage's console entry point: Hydra main with the repo's conf/, plus sweep clean-up."""

from __future__ import annotations

import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from pipeline.config.store import register
from pipeline.paths import conf_dir, repo_root
from pipeline.tracking.sweep import close_open_parents

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(repo_root()))


def hydra_entry(config_name: str, task: Callable[[DictConfig], None]) -> Callable[[], None]:
    """`main()` for `python -m pipeline.<stage>`: never relies on chdir (version_base 1.3)."""
    register()
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(task)

    def main() -> None:
        from pipeline.stages.runner import install_sigterm_handler

        install_sigterm_handler()
        try:
            app()
        except KeyboardInterrupt:
            print(
                "interrupted: runs in flight are marked KILLED; finished jobs keep their runs and outputs. "
                "Re-run the same command with resume=true to run only the rest.",
                file=sys.stderr,
            )
            raise SystemExit(130) from None
        finally:
            close_open_parents()  # Hydra skips on_multirun_end when a job failed

    return main
