"""Pointwise activation work of the engine: phi into a given buffer, and phi' alongside.

Why not just `torch.tanh`: on the CPU, torch's tanh runs at ~2.5 ns per float32 element and
thread, NumPy's SIMD loop (AVX2/AVX-512) at ~0.4 ns. On CPU tensors tanh therefore goes through
NumPy on zero-copy views; on any other device torch's kernel is used. Both are accurate to a few ulp, so measurements
agree to float precision; a given device always takes the same path, so runs stay reproducible.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.theory.activations import Activation


def _numpy_tanh(x: torch.Tensor, out: torch.Tensor) -> None:
    """out = tanh(x) through NumPy's vectorized loop on zero-copy views (one thread: handing
    slices to helper threads measured slower, as torch's OpenMP workers still hold the cores)."""
    np.tanh(x.numpy(), out=out.numpy())


def phi_into(act: Activation, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = phi(x); x and out may be the same tensor. Returns out."""
    if act.name == "tanh" and x.device.type == "cpu" and not x.requires_grad:
        _numpy_tanh(x, out)
    elif act.name == "relu":
        torch.clamp(x, min=0, out=out)
    else:
        out.copy_(act.phi(x))
    return out


def phi_and_slope(act: Activation, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = phi(x), and return phi'(x) (tanh' = 1 - phi^2 from the value, one pass)."""
    if act.name == "relu":
        slope = (x > 0).to(x.dtype)
        torch.clamp(x, min=0, out=out)
        return slope
    if act.name == "tanh":
        phi_into(act, x, out)
        return torch.addcmul(torch.ones((), dtype=x.dtype, device=x.device), out, out, value=-1)
    phi, slope = (act.joint(x)[:2] if act.joint is not None else (act.phi(x), act.dphi(x)))
    out.copy_(phi)
    return slope
