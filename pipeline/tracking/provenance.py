"""What a run records about where it came from: flattened config params and git state."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf
from omegaconf.resolvers import oc

from pipeline.config.validate import ConfigError
from pipeline.paths import repo_root

SECRET_HINTS = ("token", "password", "passwd", "secret", "api_key", "apikey", "credential", "private_key", "access_key")
REDACTED = "<redacted>"
_ENV_INTERP = ("${oc.env:", "${env:", "${oc.decode:${oc.env:")


def is_secret_key(key: str) -> bool:
    """A dotted key any segment of which looks like a secret (token, password, ..., `key`, `*_key`)."""
    for seg in key.lower().lstrip("+~").split("."):
        if any(h in seg for h in SECRET_HINTS) or seg == "key" or seg.endswith("_key"):
            return True
    return False


_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*\\?://)[^/@\s'\"]+@")  # `http\://`: as Hydra escapes ':'
_OVERRIDE = re.compile(r"""(?P<pre>(?:^|(?<=[\s'"\[,]))[+~]{0,2})(?P<key>[\w.@/-]+)=(?P<val>[^\s'",\]]*)""")
_YAML_KEY = re.compile(r"^(?P<pre>[ \t]*-?[ \t]*)(?P<key>[\w.-]+)(?P<sep>[ \t]*:[ \t]+)(?P<val>\S.*)$", re.MULTILINE)


_ENV_REF = re.compile(r"\$\{(?:oc\.env|env):\s*([A-Za-z_][A-Za-z0-9_]*)")
ENV_READ: set[str] = set()  # values this process read from the environment through `${oc.env:NAME}`


def _record_env_reads() -> None:
    """Wrap OmegaConf's `oc.env` resolver so every value it reads from the environment is remembered
    (ENV_READ): `redact_text` then takes it out of every line it prints (an error line quoting a value)."""

    def env(key: str, default: Any = oc._DEFAULT_MARKER_) -> str | None:
        value = oc.env(key, default)
        if key in os.environ and os.environ[key]:
            ENV_READ.add(os.environ[key])
        return value

    OmegaConf.register_new_resolver("oc.env", env, replace=True)  # wraps OmegaConf's own: idempotent


def env_values() -> set[str]:
    """Values read from the environment: those `oc.env` resolved in this process, and those of every
    `${oc.env:NAME}` on the command line (known before anything resolves them)."""
    named = {m.group(1) for arg in sys.argv[1:] for m in _ENV_REF.finditer(arg)}
    return ENV_READ | {os.environ[n] for n in named if os.environ.get(n)}


def _redact_env(text: str) -> str:
    """Every value read from the environment out of `text`: anywhere when 6 characters or longer, else only as
    a whole token (a short value like `1` would otherwise blank every digit of the line)."""
    for value in sorted(env_values(), key=len, reverse=True):
        if value.strip() in ("", REDACTED):
            continue
        if len(value) >= 6:
            text = text.replace(value, REDACTED)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9.]){re.escape(value)}(?![A-Za-z0-9])", REDACTED, text)
    return text


def without_credentials(uri: str) -> str:
    """`uri` without its `user:password@` (for files that outlive the process: MLflow also takes credentials from
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)."""
    return _USERINFO.sub(lambda m: m.group(1), uri)


def redact_text(text: str) -> str:
    """Secrets out of free text (error lines, override lists, saved YAML): values read from the environment
    (`env_values`: whatever `${oc.env:NAME}` the user referenced), values of secret-looking keys, and
    user:password@ in URIs."""
    text = _redact_env(text)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)

    def override(m: re.Match) -> str:
        return m.group(0) if not is_secret_key(m.group("key")) else f"{m.group('pre')}{m.group('key')}={REDACTED}"

    def yaml_line(m: re.Match) -> str:
        if not is_secret_key(m.group("key")):
            return m.group(0)
        return f"{m.group('pre')}{m.group('key')}{m.group('sep')}{REDACTED}"

    return _YAML_KEY.sub(yaml_line, _OVERRIDE.sub(override, text))


_record_env_reads()


def raw_overrides(overrides) -> list[str]:
    """Hydra's task overrides as typed (`${oc.env:X}` kept, not resolved): reading them item by item from the
    config would resolve the interpolation and put the environment's value in the text."""
    if isinstance(overrides, ListConfig):
        return [str(o) for o in OmegaConf.to_container(overrides, resolve=False)]
    return [str(o) for o in overrides]


def redact_overrides(overrides) -> str:
    """The `overrides` tag: Hydra's task overrides as typed (`raw_overrides`) joined by spaces, secrets redacted."""
    return redact_text(" ".join(raw_overrides(overrides)))


def redact_files(folder) -> None:
    """Redact, in place, every YAML file Hydra saved in `folder` (`.hydra/*.yaml`, `multirun.yaml`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in [*folder.glob("*.yaml"), *folder.glob(".hydra/*.yaml")]:
        try:
            text = path.read_text()
            clean = redact_text(text)
            if clean != text:
                path.write_text(clean)
        except OSError:
            pass


def env_keys(raw: Any, prefix: str = "") -> set[str]:
    """Dotted keys of a raw (unresolved) config whose value is read from the environment."""
    out: set[str] = set()
    if isinstance(raw, dict):
        for k, v in raw.items():
            out |= env_keys(v, f"{prefix}{k}.")
    elif isinstance(raw, list):
        for v in raw:
            if env_keys(v, prefix):
                out.add(prefix.rstrip("."))
    elif isinstance(raw, str) and any(t in raw for t in _ENV_INTERP):
        out.add(prefix.rstrip("."))
    return out


# names MLflow shows and stores verbatim (experiment name, run name): an environment value there is stored as is
NAME_KEYS = ("tracking.experiment", "tracking.run_name")


class SecretName(ConfigError):
    """An experiment or run name read from the environment (rejected: it would be stored verbatim)."""


def env_named(raw: Any) -> None:
    """Reject (SecretName, one line) `tracking.experiment` / `tracking.run_name` taken from the environment
    (`${oc.env:...}`) in a raw, unresolved config. Rejected rather than redacted: a name is the one thing a
    user reads a run by, and every run named `<redacted>` would be one indistinguishable pile."""
    for key in sorted(env_keys(raw) & set(NAME_KEYS)):
        raise SecretName(
            f"{key}: taken from the environment (${{oc.env:...}}), which could be a secret and would be stored "
            "verbatim as a name in MLflow: give a literal name"
        )
    for key in sorted(env_keys(raw) & set(PATH_KEYS)):
        raise SecretName(_path_message(key))


# output paths: the folder's name is written verbatim in MLflow (param out_dir, tag hydra_output_dir), Hydra's
# saved config, the log and every line that names the folder, so an environment value there is refused
PATH_KEYS = ("out_dir", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
_ASSIGN = re.compile(r"^[+~]{0,2}(?P<key>[\w.@/-]+)=(?P<val>.*)$", re.S)
_REF = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


def _path_message(key: str) -> str:
    return (
        f"{key}: taken from the environment (${{oc.env:...}}), which could be a secret and would be written "
        "verbatim (MLflow params and tags, Hydra's saved config, the log, the folder's name): give a literal path"
    )


def env_paths(overrides: list[str]) -> None:
    """Reject (SecretName, one line) an output path (PATH_KEYS) given on the command line that reads the
    environment, directly (`out_dir=/tmp/${oc.env:X}`) or through another override (`out_dir=${a}` with
    `+a=${oc.env:X}`). Checked on the raw arguments, before Hydra creates or writes any folder."""
    values = {m.group("key"): m.group("val") for m in map(_ASSIGN.match, overrides) if m}

    def from_env(value: str, depth: int = 0) -> bool:
        if any(t in value for t in _ENV_INTERP):
            return True
        return depth < 10 and any(from_env(values[r], depth + 1) for r in _REF.findall(value) if r in values)

    for key in PATH_KEYS:
        if key in values and from_env(values[key]):
            raise SecretName(_path_message(key))


def flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted (key, leaf) pairs of a nested dict/list config; lists stay whole as leaves."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), tree.value if isinstance(tree, Enum) else tree


# config keys that are folders, not physics: kept out of MLflow params (they would fill the compare view with
# a different value per run) and logged as tags `path.<key>` instead (`path_tags`)
PATH_PARAMS = ("out_dir", "theory_outputs", "report.inputs")


def config_params(tree: dict, from_env: set[str] = frozenset()) -> dict[str, str]:
    """Params for MLflow: every leaf as text except the folders (PATH_PARAMS, see `path_tags`); secret-looking
    keys dropped, values read from the environment (`from_env`, see env_keys) replaced by a marker, credentials
    in URIs redacted."""
    out = {}
    for k, v in flatten(tree):
        if is_secret_key(k) or k in PATH_PARAMS:
            continue
        if k in from_env:
            out[k] = "<from environment, not logged>"
            continue
        if isinstance(v, list):
            v = [x.value if isinstance(x, Enum) else x for x in v]
        out[k] = redact_text(str(v))[:6000]
    return out


def path_tags(tree: dict, from_env: set[str] = frozenset()) -> dict[str, str]:
    """The folders of a config (PATH_PARAMS) as MLflow tags `path.<key>` (redacted like params)."""
    return {f"path.{k}": redact_text(str(v))[:5000] for k, v in flatten(tree) if k in PATH_PARAMS and k not in from_env}


def numeric_axes(tree: dict, sections: tuple[str, ...] = ("net",)) -> dict[str, float]:
    """Numeric leaves of the sweep axes (`net.*`), mirrored as metrics so the UI sorts them as numbers. `seed` is
    a param only: as a metric it filled the compare view's default axes."""
    out = {}
    for k, v in flatten(tree):
        if k.split(".")[0] in sections and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit sha or 'unknown', dirty?) of the project checkout."""
    root = str(repo_root())
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return sha, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


@lru_cache(maxsize=1)
def code_version() -> str:
    """Short hash of the pipeline package's sources (every .py file, path and bytes): any code change,
    committed or not, gives a new version, so resume never reuses results computed by other code.
    $GINN_LAB_CODE_VERSION replaces it (a deliberate "this edit changes no result"; tests in a checkout
    others edit meanwhile)."""
    if os.environ.get("GINN_LAB_CODE_VERSION"):
        return os.environ["GINN_LAB_CODE_VERSION"]
    pkg = repo_root() / "pipeline"
    h = hashlib.sha256()
    for path in sorted(pkg.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(pkg)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def files_digest(paths) -> str:
    """Short hash of the contents of `paths` (name and bytes; an absent file counts as absent): with the config
    hash it is the key `resume=true` matches, so an edited input file never reuses an old result."""
    h = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        h.update(path.encode() + b"\0")
        try:
            p = Path(path)
            if p.is_file():
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                h.update(b"\0file")
            else:
                h.update(b"\0absent")
        except OSError as exc:
            h.update(f"\0unreadable {exc.errno}".encode())
    return h.hexdigest()[:16]


def config_hash(tree: dict) -> str:
    """Stable short hash of a resolved config and the code version (what a run computes; output dirs and
    tracking excluded): the key `resume` matches."""
    keep = {k: v for k, v in tree.items() if k not in ("out_dir", "tracking", "hydra", "resume")}
    blob = json.dumps({"config": keep, "code_version": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
