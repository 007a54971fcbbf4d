"""Every activation in one place: definition, derivatives, Gaussian closed forms and fast kernels.

An elementwise `Activation` carries phi, phi', phi'' (what the mean-field theory integrates), any
closed-form Gaussian expectations (docs/science.md §1), and the in-place kernels the finite-width
engine calls (`phi_into`, `phi_and_slope`): theory and engine read the same object and never ask
for a name. A `ModulusActivation` g(r) of the GINN (docs/science.md §5) carries g and g', read by
both the network (`pipeline.nets.ginn`) and its Rayleigh mean field (`pipeline.theory.ginn`).

To add an activation, add one `Activation(...)` to `ACTIVATIONS` below (or call `register` from
your own code): the config schema, the theory, the engine and the tests pick it up from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Fn = Callable[[torch.Tensor], torch.Tensor]
# Closed-form kernel E[phi(u1) phi(u2)] for u ~ N(0, [[q1, q12], [q12, q2]]), given (q1, q2, c).
KernelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Closed-form E[phi(sqrt(q) z)] and its q-derivative, given q.
MomentFn = Callable[[torch.Tensor], torch.Tensor]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity with its derivatives and optional Gaussian closed forms."""

    name: str
    phi: Fn
    dphi: Fn
    d2phi: Fn
    kernel: KernelFn | None = None  # E[phi(u1) phi(u2)]
    grad_kernel: KernelFn | None = None  # E[phi'(u1) phi'(u2)]
    mean: MomentFn | None = None  # E[phi(sqrt(q) z)]
    dmean_dq: MomentFn | None = None  # d/dq E[phi(sqrt(q) z)] = E[phi''] / 2
    smooth: bool = True  # False where phi' jumps (quadrature of phi' moments converges slowly)
    sup_phi2: float | None = None  # sup phi^2 for bounded activations: bounds q* <= sigma_w2 sup + sigma_b2
    homogeneous: bool = False  # phi(a x) = a phi(x) for a > 0: the correlation map is q-independent
    joint: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    # Engine fast paths (optional): phi into a buffer, and (phi, phi') into two buffers in one pass.
    fast_phi_into: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    fast_phi_and_slope: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def derivs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(phi, phi', phi'') at x in one pass where the activation shares work between them."""
        if self.joint is not None:
            return self.joint(x)
        return self.phi(x), self.dphi(x), self.d2phi(x)

    def phi_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out = phi(x) (out may be x), through the activation's in-place kernel where it has one."""
        if self.fast_phi_into is not None:
            return self.fast_phi_into(x, out)
        return out.copy_(self.phi(x))

    def phi_and_slope(self, x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        """out = phi(x) and slope = phi'(x) into given buffers (one pass where possible); returns slope."""
        if self.fast_phi_and_slope is not None:
            return self.fast_phi_and_slope(x, out, slope)
        phi, dphi = self.joint(x)[:2] if self.joint is not None else (self.phi(x), self.dphi(x))
        out.copy_(phi)
        return slope.copy_(dphi)


def _relu_kernel(q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Arc-cosine kernel of degree 1 (Cho & Saul 2009)."""
    c = c.clamp(-1.0, 1.0)
    theta = torch.arccos(c)
    return torch.sqrt(q1 * q2) / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * c)


def _erf_kernel(q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Williams' arcsine kernel for erf: (2/pi) asin(2 q12 / sqrt((1 + 2 q1)(1 + 2 q2)))."""
    q12 = c * torch.sqrt(q1 * q2)
    return (2 / math.pi) * torch.arcsin(2 * q12 / torch.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


def _relu_grad_kernel(q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Arc-cosine kernel of degree 0: P(u1 > 0, u2 > 0) = (pi - arccos c) / (2 pi)."""
    return (math.pi - torch.arccos(c.clamp(-1.0, 1.0))) / (2 * math.pi)


def _erf_grad_kernel(q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """d/dq12 of the arcsine kernel: (4/pi) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 q12^2)."""
    q12 = c * torch.sqrt(q1 * q2)
    return (4 / math.pi) / torch.sqrt((1 + 2 * q1) * (1 + 2 * q2) - 4 * q12 * q12)


def _linear_kernel(q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return c * torch.sqrt(q1 * q2)


def _zero(q: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(q)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1 + torch.erf(x / _SQRT2))


def _gelu_d(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / _SQRT2)) + x * _INV_SQRT_2PI * torch.exp(-0.5 * x * x)


def _gelu_d2(x: torch.Tensor) -> torch.Tensor:
    return _INV_SQRT_2PI * torch.exp(-0.5 * x * x) * (2 - x * x)


def _swish_d(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _swish_d2(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


# torch.func's transforms (jacfwd, vmap) pass wrapper tensors with no storage of their own: torch's path for them.
_functorch_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda x: False)


def _numpy_ok(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad
            and not _functorch_wrapped(x))  # fmt: skip


def tanh_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = tanh(x) (out may be x). On CPU tensors outside autograd through NumPy's SIMD loop:
    torch's CPU tanh runs at ~2.5 ns per element and core, NumPy's at ~0.4 ns; both within a few ulp."""
    if _numpy_ok(x) and not out.requires_grad:
        np.tanh(x.numpy(), out=out.numpy())
        return out
    return torch.tanh(x, out=out)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh, through NumPy on the CPU outside autograd (see tanh_into)."""
    return tanh_into(x, torch.empty_like(x, memory_format=torch.contiguous_format)) if _numpy_ok(x) else torch.tanh(x)


def _tanh_joint(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = _tanh(x)
    d = 1 - t * t
    return t, d, -2 * t * d


def _tanh_phi_and_slope(x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """tanh into out and tanh' = 1 - tanh^2 from the value (one transcendental pass)."""
    tanh_into(x, out)
    return torch.addcmul(torch.ones((), dtype=x.dtype, device=x.device), out, out, value=-1, out=slope)


def _relu_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, min=0, out=out)


def _relu_phi_and_slope(x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """relu into out and relu' = sign(relu(x)) from the value."""
    torch.clamp(x, min=0, out=out)
    return torch.sign(out, out=slope)


def _tanh_d(x: torch.Tensor) -> torch.Tensor:
    return 1 - _tanh(x) ** 2


def _tanh_d2(x: torch.Tensor) -> torch.Tensor:
    t = _tanh(x)
    return -2 * t * (1 - t * t)


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "tanh",
            _tanh,
            _tanh_d,
            _tanh_d2,
            mean=_zero,
            dmean_dq=_zero,
            joint=_tanh_joint,
            sup_phi2=1.0,
            fast_phi_into=tanh_into,
            fast_phi_and_slope=_tanh_phi_and_slope,
        ),
        Activation(
            "relu",
            torch.relu,
            lambda x: (x > 0).to(x.dtype),
            torch.zeros_like,
            kernel=_relu_kernel,
            grad_kernel=_relu_grad_kernel,
            mean=lambda q: torch.sqrt(q) * _INV_SQRT_2PI,
            dmean_dq=lambda q: 0.5 * _INV_SQRT_2PI / torch.sqrt(q),
            smooth=False,
            homogeneous=True,
            fast_phi_into=_relu_into,
            fast_phi_and_slope=_relu_phi_and_slope,
        ),
        Activation(
            "erf",
            torch.erf,
            lambda x: _TWO_OVER_SQRT_PI * torch.exp(-x * x),
            lambda x: -2 * x * _TWO_OVER_SQRT_PI * torch.exp(-x * x),
            kernel=_erf_kernel,
            grad_kernel=_erf_grad_kernel,
            sup_phi2=1.0,
            mean=_zero,
            dmean_dq=_zero,
        ),
        Activation(
            "linear",
            lambda x: x,
            torch.ones_like,
            torch.zeros_like,
            kernel=_linear_kernel,
            grad_kernel=lambda q1, q2, c: torch.ones_like(c),
            homogeneous=True,
            mean=_zero,
            dmean_dq=_zero,
        ),
        Activation("gelu", _gelu, _gelu_d, _gelu_d2),
        Activation("swish", lambda x: x * torch.sigmoid(x), _swish_d, _swish_d2),
    )
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name; the error lists the allowed names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation={name!r} is unknown; allowed: {sorted(ACTIVATIONS)}") from None


def register(act: Activation) -> Activation:
    """Add an activation at run time (config choices are fixed at import: use it from Python)."""
    if act.name in ACTIVATIONS:
        raise ValueError(f"activation {act.name!r} is already registered")
    ACTIVATIONS[act.name] = act
    return act


# ---- modulus activations of the GINN (docs/science.md §5) -------------------------------------


@dataclass(frozen=True)
class ModulusActivation:
    """g(r) acting on |z| of a complex unit, psi = g(|z|) z / |z|, with g(0) = 0 (continuity at z = 0).

    `g_and_slope(r, offset)` returns (g(r), g'(r)); `offset` is modReLU's bias b <= 0 (a float for the
    theory, a tensor of learnable per-unit values for the network) and is ignored by the others.
    `kink(offset)` is the modulus r > 0 where g' jumps (None: smooth), so the theory's quadrature can
    split its integrals there.
    """

    name: str
    g_and_slope: Callable[[torch.Tensor, float | torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    uses_offset: bool = False
    kink: Callable[[float], float] | None = None


def _modulus_tanh(r, offset):
    t = torch.tanh(r)
    return t, 1 - t * t


def _modulus_identity(r, offset):
    return r, torch.ones_like(r)


def _modulus_relu(r, offset):
    x = r + offset
    return torch.relu(x), (x > 0).to(r.dtype)


MODULUS_ACTIVATIONS: dict[str, ModulusActivation] = {
    m.name: m
    for m in (
        ModulusActivation("tanh", _modulus_tanh),
        ModulusActivation("modrelu", _modulus_relu, uses_offset=True, kink=lambda offset: -float(offset)),
        ModulusActivation("identity", _modulus_identity),
    )
}


def get_modulus_activation(name: str) -> ModulusActivation:
    """Look up a GINN modulus activation; the error lists the allowed names."""
    try:
        return MODULUS_ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"ginn.activation={name!r}: allowed {sorted(MODULUS_ACTIVATIONS)}") from None
