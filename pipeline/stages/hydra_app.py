"""Build a stage's console entry point: Hydra main with the repo's conf/, plus sweep clean-up."""

from __future__ import annotations

import errno
import re
import signal
import sys
from collections.abc import Callable

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from pipeline.config.store import register
from pipeline.config.validate import ConfigError
from pipeline.paths import conf_dir, repo_root
from pipeline.stages.outputs import remove_dead_staging, signals_deferred, unblock_signals
from pipeline.tracking.provenance import SecretName, env_paths, redact_files, redact_text
from pipeline.tracking.sweep import SWEEP_DIRS, close_open_parents


def _one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line naming the key."""
    if isinstance(exc, ConfigError):
        return str(exc)
    added = re.fullmatch(r"Error merging override \+([^+=][^=]*)=(.*)", str(exc).splitlines()[0] if str(exc) else "")
    if added and isinstance(exc.__cause__, InterpolationResolutionError):  # `+key` on an interpolated key (out_dir):
        k, v = added.groups()  # Hydra resolves it to check it exists, before HydraConfig is set; say what it means
        return (f"Could not append to config. An item is already at '{k}'. Either remove + prefix: '{k}={v}' "
                f"Or add a second + to add or override '{k}': '++{k}={v}'")  # fmt: skip
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if not key:  # a value of a preset file: Hydra names the key only on an indented `full_key:` line
        found = re.search(r"^\s*full_key: (\S+)", str(exc), re.M)
        key = found.group(1) if found else None
    lines = [
        ln.strip()
        for ln in str(exc).splitlines()
        if ln.strip() and not ln.startswith((" ", "\t")) and not ln.startswith("To append")
    ]
    if cause is not exc:
        lines += [ln.strip() for ln in str(cause).splitlines()[:1] if ln.strip() not in lines]
    text = " ".join(lines) or type(exc).__name__
    if "not in '" in text and "Could not override" in text:
        text = "unknown config key (" + text + ")"
    return f"{key}: {text}" if key and not text.startswith(str(key)) else text


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind `exc` (itself, its cause or the error being handled when it was
    raised: a PNG writer that fails while flushing raises another error on top of it), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_line(err: OSError) -> str:
    """One line for a full disk (or quota): where, and that nothing was half-written."""
    where = f" writing {err.filename}" if err.filename else ""
    return (
        f"error: no space left on the device{where} ({errno.errorcode.get(err.errno, err.errno)}): free space or "
        "choose another out_dir; the run is FAILED and the output folder was left as it was"
    )


def _install_one_line_errors() -> None:
    """Bad input found by Hydra (composition, types, unknown keys) or by our validation exits 2 with one
    line `error: <key>: ...`; any other exception keeps Hydra's report. HYDRA_FULL_ERROR=1 keeps Hydra's."""
    import os

    import hydra._internal.utils as hu

    if getattr(hu.run_and_report, "_ginn", False):
        return
    original = hu.run_and_report

    def run_and_report(func):
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return original(func)
        try:
            return func()
        except (ConfigError, HydraException, OmegaConfBaseException) as exc:
            print(f"error: {redact_text(_one_line(exc))}", file=sys.stderr)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001 - Hydra's own report for everything else
            from pipeline.stages.runner import RECEIVED, NumericalError, interrupted

            if RECEIVED:  # a consequence of Ctrl-C/SIGTERM (e.g. joblib's pool broken by a killed worker)
                raise interrupted(RECEIVED[0]) from exc
            full = disk_full(exc)
            if full is not None:  # staged outputs: nothing half-written; stage_run closed the run FAILED
                print(redact_text(disk_full_line(full)), file=sys.stderr)
                sys.exit(1)
            if isinstance(exc, NumericalError):  # a known failure class: the run is FAILED with its reason
                first = str(exc).splitlines()[0] if str(exc) else ""
                print(f"error: numerical failure: {redact_text(first)}", file=sys.stderr)
                sys.exit(1)
            err = exc

            def again():
                raise err

            return original(again)

    run_and_report._ginn = True
    hu.run_and_report = run_and_report
    _quiet_job_errors()


def _quiet_job_errors() -> None:
    """Hydra writes `Error executing job with overrides: [...]` before re-raising a job's exception: redact it
    (the overrides may carry credentials) and leave it out for a full disk (reported in one line above)."""
    import os

    from hydra.core.utils import JobReturn, JobStatus

    if getattr(JobReturn.return_value.fget, "_ginn", False):
        return

    def return_value(self):
        assert self.status != JobStatus.UNKNOWN, "return_value not yet available"
        if self.status == JobStatus.COMPLETED:
            return self._return_value
        if disk_full(self._return_value) is None:
            sys.stderr.write(redact_text(f"Error executing job with overrides: {self.overrides}") + os.linesep)
        raise self._return_value

    prop = property(return_value, JobReturn.return_value.fset)
    prop.fget._ginn = True
    JobReturn.return_value = prop


if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(repo_root()))


def hydra_entry(config_name: str, task: Callable[[DictConfig], None]) -> Callable[[], None]:
    """`main()` for `python -m pipeline.<stage>`: never relies on chdir (version_base 1.3)."""
    register()
    _install_one_line_errors()
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(task)

    def main() -> None:
        from pipeline.stages.runner import install_interrupt_handlers

        try:  # before Hydra creates the run or sweep folder and writes its config and log there
            env_paths([a for a in sys.argv[1:] if not a.startswith("-")])
        except SecretName as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

        unblock_signals()  # a blocked SIGINT/SIGTERM inherited from whatever started us would make both vanish
        install_interrupt_handlers()
        signum = None
        failed = True  # until app() returns: a launcher that raises before or between jobs fails the sweep
        try:
            app()
            failed = False
        except SystemExit as exc:
            failed = exc.code not in (None, 0)
            raise
        except KeyboardInterrupt as exc:
            signum = int(getattr(exc, "signum", signal.SIGINT))
            print(
                "interrupted: runs in flight are marked KILLED; finished jobs keep their runs and outputs. "
                "Re-run the same command with resume=true to run only the rest.",
                file=sys.stderr,
            )
        finally:
            from pipeline.stages.runner import RECEIVED

            if signum is None and RECEIVED:  # Ctrl-C raised inside a callback that swallows exceptions (a GC hook)
                signum = RECEIVED[0]
            late = _clean_up(interrupted=signum is not None, failed=failed)
        if signum is None:
            signum = late
        if signum is not None:  # the shell convention 128 + signal number: 143 for SIGTERM, 130 for Ctrl-C
            raise SystemExit(128 + signum)

    return main


def _clean_up(interrupted: bool, failed: bool = False) -> int | None:
    """Close the sweep's parent run (Hydra skips on_multirun_end when a job failed; KILLED when interrupted)
    and the runs of killed workers, remove dead staging folders, redact the sweep's saved config. A second
    Ctrl-C/SIGTERM does not cut this short: it is acted on afterwards (its signal number is returned)."""
    try:
        with signals_deferred():
            close_open_parents(interrupted=interrupted, failed=failed)
            while SWEEP_DIRS:
                sweep_dir = SWEEP_DIRS.pop()
                remove_dead_staging(sweep_dir)
                redact_files(sweep_dir)  # Hydra's multirun.yaml lists the overrides
    except KeyboardInterrupt as exc:
        return int(getattr(exc, "signum", signal.SIGINT))
    return None
