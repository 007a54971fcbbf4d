"""Pointwise activation work of the engine: phi into a given buffer (a block of the next product's
operand), and phi' alongside, with as few passes over memory as the activation allows."""

from __future__ import annotations

import torch

from pipeline.theory.activations import Activation, tanh_into


def phi_into(act: Activation, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = phi(x); x and out may be the same tensor. Returns out."""
    if act.name == "tanh":
        tanh_into(x, out)
    elif act.name == "relu":
        torch.clamp(x, min=0, out=out)
    else:
        out.copy_(act.phi(x))
    return out


def phi_and_slope(act: Activation, x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """out = phi(x) and slope = phi'(x), both into given buffers, in as few passes as the activation
    allows (tanh' = 1 - phi^2 and relu' = sign(phi), from the value). Returns slope."""
    if act.name == "relu":
        torch.clamp(x, min=0, out=out)
        return torch.sign(out, out=slope)
    if act.name == "tanh":
        tanh_into(x, out)
        return torch.addcmul(torch.ones((), dtype=x.dtype, device=x.device), out, out, value=-1, out=slope)
    phi, dphi = act.joint(x)[:2] if act.joint is not None else (act.phi(x), act.dphi(x))
    out.copy_(phi)
    return slope.copy_(dphi)
