"""The fused tangent-chain kernel (tangent_kernel.c): compiled once per machine with the system C compiler and
loaded through ctypes, so no build step and no extra dependency. Without a compiler the torch path stays (a
one-line error says so when the fused kernel was asked for).

The shared object is cached under $GINN_LAB_CACHE (default ~/.cache/ginn-lab), keyed by the source, the compiler
and the CPU model and flags: a home directory shared by a cluster's different nodes gets one build per node type
(-march=native code must not run on an older CPU).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("tangent_kernel.c")
ACTIVATIONS = {"tanh": 0, "relu": 1, "linear": 2, "erf": 3}  # the kernel's activation codes (enum in tangent_kernel.c)
FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp-simd", "-std=c99", "-ffp-contract=off")  # no FMA: the same bits anywhere


class NativeUnavailable(RuntimeError):
    """The fused kernel cannot be built or loaded here (no C compiler, or the build failed)."""


def _compiler() -> str:
    """The C compiler: $CC if set (it must exist), else the first of cc, gcc, clang on PATH."""
    if os.environ.get("CC"):
        cc = shutil.which(os.environ["CC"])
        if not cc:
            raise NativeUnavailable(f"the fused chain kernel needs a C compiler: CC={os.environ['CC']!r} not found")
        return cc
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise NativeUnavailable("the fused chain kernel needs a C compiler (cc, gcc or clang on PATH, or CC): none")
    return cc


def _cpu_key() -> str:
    """The CPU model and feature flags (Linux), else the platform's processor string."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [line for line in info if line.startswith(("model name", "flags", "Features", "CPU part"))]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _cache_dir() -> Path:
    """Absolute (dlopen searches the library path for a name without a slash): $GINN_LAB_CACHE if set and
    non-empty, else ~/.cache/ginn-lab."""
    return Path(os.environ.get("GINN_LAB_CACHE") or Path.home() / ".cache" / "ginn-lab").resolve()


ARCHES = (("-march=native",), ())  # tried in order: -march=native is not known to every compiler


def _build(cc: str, target: Path, arches: tuple[tuple[str, ...], ...] = ARCHES) -> None:
    """Compile SOURCE into target atomically (a concurrent build of the same key writes the same bytes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        errors = []
        for arch in arches:
            r = subprocess.run([cc, *FLAGS, *arch, str(SOURCE), "-o", str(out), "-lm"], capture_output=True, text=True)
            if r.returncode == 0:
                os.replace(out, target)
                return
            lines = [line.strip() for line in r.stderr.splitlines() if line.strip()]
            errors.append(
                next((line for line in lines if "error" in line), lines[0] if lines else f"exit {r.returncode}")
            )
        raise NativeUnavailable(f"building the fused chain kernel ({SOURCE.name}) with {cc} failed: {errors[-1]}")


_LOADED: dict[str, object] = {}  # "lib": the loaded kernel, or "error": why it cannot load (once per process)


def library() -> ctypes.CDLL:
    """The loaded kernel, built on first use; raises NativeUnavailable with the reason (a failed build is
    remembered: a broken compiler is tried once per process, not at every job)."""
    if "lib" not in _LOADED and "error" not in _LOADED:
        try:
            _LOADED["lib"] = _load()
        except NativeUnavailable as e:
            _LOADED["error"] = str(e)
    if "error" in _LOADED:
        raise NativeUnavailable(_LOADED["error"])
    return _LOADED["lib"]


def reset() -> None:
    """Forget the loaded kernel or the failure (tests that change CC or GINN_LAB_CACHE)."""
    _LOADED.clear()


def available() -> str | None:
    """None when the fused kernel loads here, else the reason it does not."""
    try:
        library()
    except NativeUnavailable as e:
        return str(e)
    return None


def _load(arches: tuple[tuple[str, ...], ...] = ARCHES) -> ctypes.CDLL:
    """Build (if not cached) and load the kernel; `arches` the architecture flags to try (tests build a portable
    one to check that the bits do not depend on the SIMD width)."""
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    parts = [SOURCE.read_text(), cc, version, " ".join(FLAGS), repr(arches), _cpu_key()]
    target = _cache_dir() / f"tangent_kernel-{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}.so"
    try:
        if not target.exists():
            _build(cc, target, arches)
        lib = ctypes.CDLL(str(target))
    except OSError as e:  # a read-only or full cache folder, a library this system cannot load
        raise NativeUnavailable(f"the fused chain kernel: {e} (set GINN_LAB_CACHE to a writable folder)") from None
    i64, dbl, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    lib.tangent_block.argtypes = [ctypes.c_int, i64, i64, i64, i64, i64, i64, i64, ptr, dbl, dbl, ptr, ptr, ptr, ptr,
                                  ptr, ptr]  # fmt: skip
    lib.tangent_block.restype = None
    lib.activation_values.argtypes = [ctypes.c_int, i64, ptr, ptr, ptr]
    lib.activation_values.restype = None
    return lib


def activation_values(activation: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(phi(x), phi'(x)) as the fused kernel computes them (float32, CPU): its tanh, erf and exp approximations,
    for tests against libm."""
    x = x.to(torch.float32).contiguous()
    a, d = torch.empty_like(x), torch.empty_like(x)
    library().activation_values(ACTIVATIONS[activation], x.numel(), x.data_ptr(), a.data_ptr(), d.data_ptr())
    return a, d
