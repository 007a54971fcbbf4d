"""The gauge-invariant network, GINN (docs/science.md §5, our construction).

Hidden units are complex (the matter field psi); the weights are links U_ij = rho_ij exp(i theta_ij)
between adjacent layers with rho = softplus(free parameter) >= 0. Pre-activation z = U psi; the
activation acts on the modulus and keeps the phase, psi_i = g(|z_i|) z_i / |z_i| with g(0) = 0
(modReLU g(r) = relu(r + b_i), b_i = -softplus(.) <= 0, or g = tanh, or g = identity). No complex bias. The input is
real (gauge fixed there) and the readout acts on moduli: y = V |psi^L| + c. A local U(1) gauge
transformation psi^l_i -> e^{i a^l_i} psi^l_i, theta^l_ij -> theta^l_ij + a^l_i - a^{l-1}_j leaves
the network function exactly invariant.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.activations import get_modulus_activation
from pipeline.theory.ginn import MODRELU_OFFSET


def _inv_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class GaugeLink(nn.Module):
    """Links between layer l-1 (n_in sites) and layer l (n_out sites) in magnitude-phase form.

    U_ij = rho_ij exp(i theta_ij), rho = softplus(rho_raw), initialised as circular complex Gaussians
    (|U|^2 ~ Exp with mean sigma_w2 / n_in, uniform phase; docs/science.md §5).

    Args:
        n_in: number of sites of layer l-1.
        n_out: number of sites of layer l.
        sigma_w2: link variance, E|U_ij|^2 = sigma_w2 / n_in.
        generator: random generator of the initialisation.
        dtype: real dtype of the parameters rho_raw and theta, each of shape (n_out, n_in).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        sigma_w2: float,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        # circular complex Gaussian links: |U|^2 ~ Exp(mean sigma_w2 / n_in), phase uniform
        mag2 = torch.empty(n_out, n_in, dtype=torch.float64).exponential_(generator=generator) * (sigma_w2 / n_in)
        phase = torch.rand(n_out, n_in, dtype=torch.float64, generator=generator) * (2 * math.pi)
        self.rho_raw = nn.Parameter(_inv_softplus(mag2.sqrt().clamp_min(1e-12)).to(dtype))
        self.theta = nn.Parameter(phase.to(dtype))

    @property
    def rho(self) -> torch.Tensor:
        """Link moduli rho = softplus(rho_raw) >= 0, shape (n_out, n_in)."""
        return F.softplus(self.rho_raw)

    def forward(self, psi: torch.Tensor) -> torch.Tensor:
        """z = U psi for a batch psi (B, n_in), real or complex; returns complex (B, n_out)."""
        u = torch.polar(self.rho, self.theta)
        if not psi.is_complex():
            psi = psi.to(u.dtype)
        return psi @ u.T


class ModulusLayer(nn.Module):
    """psi = g(|z|) z / |z|: acts on the modulus, keeps the phase, continuous at z = 0.

    docs/science.md §5; modReLU after Arjovsky et al. 2016 (arXiv:1511.06464).

    Args:
        kind: modulus activation: "tanh", "identity" or "modrelu".
        n: number of units (size of modReLU's per-unit offset).
        offset: initial modReLU offset b <= 0 (values above -1e-6 start at -1e-6); ignored by other kinds.
        dtype: dtype of the offset parameter.

    Raises:
        ValueError: if `kind` uses an offset and `offset` > 0.
    """

    def __init__(self, kind: str, n: int, offset: float = MODRELU_OFFSET, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.kind = kind
        self.spec = get_modulus_activation(kind)
        if self.spec.uses_offset:
            if offset > 0:
                raise ValueError(f"ginn.modrelu_offset={offset}: must be <= 0 (continuity at z = 0)")
            self.b_raw = nn.Parameter(
                torch.full((n,), float(_inv_softplus(torch.tensor(max(-offset, 1e-6)))), dtype=dtype)
            )

    def g(self, r: torch.Tensor) -> torch.Tensor:
        """g(|z|) from the shared definition; modReLU's offset is -softplus(b_raw) <= 0 per unit.

        Args:
            r: moduli, real tensor of shape (B, n) (or broadcastable with the offset of shape (n,)).

        Returns:
            g(r), real tensor of the shape of r.
        """
        offset = -F.softplus(self.b_raw) if self.spec.uses_offset else 0.0
        return self.spec.g_and_slope(r, offset)[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """psi = g(|z|) z / |z| for complex pre-activations z of shape (B, n); z = 0 maps to 0."""
        r = z.abs()
        ratio = self.g(r) / r.clamp_min(torch.finfo(r.dtype).tiny)  # g(r)/r; z = 0 maps to 0
        return z * ratio


class GINN(nn.Module):
    """Input (real, d_in) -> L complex hidden layers of width N -> real readout on moduli.

    psi^0 = x, psi^l = g(|z^l|) z^l / |z^l| with z^l = U^l psi^{l-1}, y = V |psi^L| + c with V ~ N(0, 1/N),
    c = 0 at initialisation (docs/science.md §5). All parameters come from one generator seeded by `seed`.

    Args:
        d_in: input dimension.
        width: hidden width N.
        depth: number of hidden layers L.
        n_out: number of outputs (classes).
        sigma_w2: link variance (E|U_ij|^2 = sigma_w2 / fan_in).
        activation: modulus activation: "tanh", "identity" or "modrelu".
        modrelu_offset: initial modReLU offset (<= 0).
        seed: seed of the initialisation.
        dtype: real parameter dtype (hidden units are the matching complex dtype).
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        depth: int,
        n_out: int,
        sigma_w2: float,
        activation: str = "tanh",
        modrelu_offset: float = MODRELU_OFFSET,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        sizes = [d_in] + [width] * depth
        self.links = nn.ModuleList(GaugeLink(a, b, sigma_w2, gen, dtype) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(ModulusLayer(activation, width, modrelu_offset, dtype) for _ in range(depth))
        self.readout = nn.Linear(width, n_out, dtype=dtype)
        with torch.no_grad():
            self.readout.weight.normal_(0, 1 / math.sqrt(width), generator=gen)
            self.readout.bias.zero_()

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """psi^1 .. psi^L for a batch of real inputs.

        Args:
            x: real inputs, tensor of shape (B, d_in).

        Returns:
            List of L complex tensors of shape (B, N).
        """
        out, psi = [], x
        for link, act in zip(self.links, self.acts):
            psi = act(link(psi))
            out.append(psi)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real logits y = V |psi^L| + c of real inputs x (B, d_in); returns shape (B, n_out)."""
        return self.readout(self.hidden(x)[-1].abs())

    def phases(self) -> list[torch.Tensor]:
        """theta^1 .. theta^L (the gauge-carrying parameters).

        Returns:
            List of L parameters; theta^l has shape (n_l, n_{l-1}) (n_0 = d_in).
        """
        return [link.theta for link in self.links]


@torch.no_grad()
def apply_gauge(model: GINN, a: list[torch.Tensor]) -> None:
    """theta^l_ij += a^l_i - a^{l-1}_j for hidden sites (a^0 = 0: the real input is gauge fixed).

    The local U(1) transformation of docs/science.md §5, applied in place; the network function is
    exactly invariant.

    Args:
        model: the GINN, modified in place.
        a: site phases per hidden layer, list of L tensors, a^l of shape (n_l,).
    """
    prev = None
    for link, a_l in zip(model.links, a):
        link.theta += a_l[:, None]
        if prev is not None:
            link.theta -= prev[None, :]
        prev = a_l


def random_gauge(model: GINN, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Uniform random phases a^l_i in [0, 2 pi) at every hidden site.

    Args:
        model: the GINN (fixes the layer sizes and dtype).
        generator: random generator.

    Returns:
        List of L tensors, a^l of shape (n_l,) in the dtype of the phases.
    """
    return [
        torch.rand(link.theta.shape[0], generator=generator, dtype=torch.float64).to(link.theta.dtype) * 2 * math.pi
        for link in model.links
    ]


def site_divergence(thetas: list[torch.Tensor]) -> torch.Tensor:
    """G^l_i = sum_j theta^l_ij - sum_k theta^{l+1}_ki for every hidden site, concatenated over layers (= E^T theta).

    The site divergence of the covariant gauge fixing (docs/science.md §5).

    Args:
        thetas: link phases per layer, theta^l of shape (n_l, n_{l-1}).

    Returns:
        Tensor of shape (n_1 + ... + n_L,) in the dtype of the phases.
    """
    out = []
    for l, th in enumerate(thetas):
        g = th.sum(1)
        if l + 1 < len(thetas):
            g = g - thetas[l + 1].sum(0)
        out.append(g)
    return torch.cat(out)


def gauge_generator_gram(model: GINN) -> torch.Tensor:
    """M = E^T E over hidden sites (float64): degree on the diagonal, -1 per link between hidden sites.

    E maps site phases to link phases, (E a)^l_ij = a^l_i - a^{l-1}_j (docs/science.md §5); the diagonal is
    fan-in plus hidden fan-out. Positive definite because the input is gauge fixed.

    Args:
        model: the GINN.

    Returns:
        float64 tensor of shape (n, n), n = n_1 + ... + n_L the number of hidden sites.
    """
    sizes = [link.theta.shape for link in model.links]  # (n_out, n_in)
    n = sum(s[0] for s in sizes)
    m = torch.zeros(n, n, dtype=torch.float64)
    start = 0
    for l, (n_out, n_in) in enumerate(sizes):
        idx = torch.arange(start, start + n_out)
        fan_out = sizes[l + 1][0] if l + 1 < len(sizes) else 0
        m[idx, idx] = float(n_in + fan_out)
        if l > 0:  # links to the previous hidden layer
            prev = torch.arange(start - n_in, start)
            m[idx[:, None], prev[None, :]] = -1.0
            m[prev[:, None], idx[None, :]] = -1.0
        start += n_out
    return m
