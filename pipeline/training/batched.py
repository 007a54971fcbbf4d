"""Many small networks trained at once: one stacked product per layer (`bmm` over networks), torch autograd.

Networks of one architecture (MLPs or GINNs of one depth and width) differ in their initialisation (sigma_w2,
seed), learning rate and mini-batch order; their parameters are stacked on a leading network axis, so every layer
is one batched product for all of them. Each network keeps its own Adam state, learning rate and divergence
flag: the sum of the per-network losses has a block-diagonal gradient, so network k gets exactly the gradient of
its own loss, and a network whose loss diverges is frozen from that step on (as `langevin.train` stops it).
The numbers equal `pipeline.training.langevin.train` run on each network alone (restore_best off), to float
tolerance (tests/training/test_batched.py). Used by the trainability map (Schoenholz et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from pipeline.activations import get_modulus_activation
from pipeline.data.datasets import Split
from pipeline.nets.ginn import GINN
from pipeline.nets.mlp import MLP

BATCHED_OPTIMIZERS = ("sgd", "adam")  # Langevin needs each GINN's gauge sector: trained one by one
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which `langevin.train` uses


@dataclass(frozen=True, kw_only=True)
class BatchedSpec:
    """Shared settings of one batched run (each network's own lr and seed are given per network).

    Attributes:
        optimizer: "sgd" or "adam".
        epochs: number of epochs.
        batch_size: mini-batch size.
        max_loss: divergence threshold on a network's mini-batch loss.
    """

    optimizer: str
    epochs: int
    batch_size: int
    max_loss: float


@dataclass
class BatchedResult:
    """Per-network outcome of `train_batched` (tensors of shape (K,), K networks, on the CPU).

    Attributes:
        train_loss: mean mini-batch loss of each completed epoch, shape (K, epochs) (nan after divergence).
        train_accuracy: accuracy on the whole training set with the final parameters.
        test_accuracy: accuracy on the test set with the final parameters.
        diverged: whether the network was frozen on a non-finite or too large loss.
        diverged_epoch: epoch of the divergence (-1 if none).
        model: the trained stack (network k's parameters: `model.network(k)`).
    """

    train_loss: torch.Tensor
    train_accuracy: torch.Tensor
    test_accuracy: torch.Tensor
    diverged: torch.Tensor
    diverged_epoch: torch.Tensor
    model: StackedMLP | StackedGINN


def _stacked(nets, get, transpose: bool = False) -> torch.Tensor:
    """One trainable tensor (K, ...) of a parameter of every network; weights stored transposed (K, in, out), so
    each layer is `bmm(h, w)` and its gradient comes out contiguous (no copy per step)."""
    t = torch.stack([get(n).detach() for n in nets])
    return (t.transpose(1, 2) if transpose else t).contiguous().requires_grad_(True)


class StackedMLP:
    """K MLPs of one architecture as stacked tensors: W^l^T (K, in, out), b^l (K, out), readout (K, N, C), (K, C).

    Built from per-network `pipeline.nets.mlp.MLP` modules, so the initialisation has one home.
    """

    def __init__(self, nets: list[MLP]):
        self.phi = nets[0].phi
        depth = len(nets[0].layers)
        self.weights = [_stacked(nets, lambda n, l=l: n.layers[l].weight, True) for l in range(depth)]
        self.biases = [_stacked(nets, lambda n, l=l: n.layers[l].bias) for l in range(depth)]
        self.readout = [_stacked(nets, lambda n: n.readout.weight, True), _stacked(nets, lambda n: n.readout.bias)]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases, *self.readout]

    def network(self, k: int) -> list[torch.Tensor]:
        """Network k's parameters in the MLP's layout: weights^1..L, biases^1..L, readout weight, readout bias."""
        return [w.detach()[k].T for w in self.weights] + [b.detach()[k] for b in self.biases] + [
            self.readout[0].detach()[k].T, self.readout[1].detach()[k]]  # fmt: skip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, C) of inputs x (K, B, d_in): h^l = phi(h^{l-1} W^l^T + b^l), then the readout."""
        h = x
        for w, b in zip(self.weights, self.biases):
            h = self.phi(torch.baddbmm(b.unsqueeze(1), h, w))
        return torch.baddbmm(self.readout[1].unsqueeze(1), h, self.readout[0])

    def predictor(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The logits function of the current parameters (for `accuracy`)."""
        return self


class StackedGINN:
    """K GINNs of one architecture as stacked magnitude-phase links rho_raw^l^T, theta^l^T (K, in, out), modulus
    offsets (K, N) per layer (modReLU only) and the real readout on moduli (docs/science.md §5).

    Built from per-network `pipeline.nets.ginn.GINN` modules, so the initialisation has one home.
    """

    def __init__(self, nets: list[GINN]):
        self.spec = get_modulus_activation(nets[0].acts[0].kind)
        depth = len(nets[0].links)
        self.rho_raw = [_stacked(nets, lambda n, l=l: n.links[l].rho_raw, True) for l in range(depth)]
        self.theta = [_stacked(nets, lambda n, l=l: n.links[l].theta, True) for l in range(depth)]
        self.b_raw = (
            [_stacked(nets, lambda n, l=l: n.acts[l].b_raw) for l in range(depth)] if self.spec.uses_offset else []
        )
        self.readout = [_stacked(nets, lambda n: n.readout.weight, True), _stacked(nets, lambda n: n.readout.bias)]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.rho_raw, *self.theta, *self.b_raw, *self.readout]

    def network(self, k: int) -> list[torch.Tensor]:
        """Network k's parameters in the GINN's layout: rho_raw^1..L, theta^1..L, [offsets^1..L], readout W, c."""
        t = lambda ps: [p.detach()[k].T for p in ps]  # noqa: E731
        return [*t(self.rho_raw), *t(self.theta), *(b.detach()[k] for b in self.b_raw), *t(self.readout[:1]),
                self.readout[1].detach()[k]]  # fmt: skip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, C): z^l = U^l psi^{l-1}, psi^l = g(|z^l|) z^l / |z^l|, y = V |psi^L| + c.

        In real arithmetic (torch's complex CPU kernels, polar above all, are several times slower than the real
        ones): a complex psi = a + ib is kept as (K, 2, B, N) = (a, b); see `_ComplexLinear`.
        """
        psi, g = x, None
        for l, (rho_raw, theta) in enumerate(zip(self.rho_raw, self.theta)):
            z = _ComplexLinear.apply(psi, rho_raw, theta)  # (K, 2, B, N): (Re z, Im z)
            offset = -F.softplus(self.b_raw[l]).unsqueeze(1) if self.b_raw else None
            psi, g = _Modulus.apply(z, offset, self.spec)
        return torch.baddbmm(self.readout[1].unsqueeze(1), g, self.readout[0])  # |psi^L| = g(|z^L|) >= 0

    @torch.no_grad()
    def predictor(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The logits function of the current parameters, outside autograd, with the links built once."""
        ws = [_real_links(rho_raw, theta)[0] for rho_raw, theta in zip(self.rho_raw, self.theta)]
        offsets = [-F.softplus(b).unsqueeze(1) for b in self.b_raw] if self.b_raw else [None] * len(ws)

        def logits(x: torch.Tensor) -> torch.Tensor:
            psi = x
            for w, offset in zip(ws, offsets):
                psi, g = _modulus(_complex_product(psi, w), offset, self.spec)[:2]
            return torch.baddbmm(self.readout[1].unsqueeze(1), g, self.readout[0])

        return logits


class _Modulus(torch.autograd.Function):
    """psi = g(r) u and g(r), r = |z| (clamped at the smallest normal float), u = z / r, z as (K, 2, B, N) =
    (Re, Im); g (and g') from `pipeline.activations`, with an offset (modReLU, g(r + offset)) of shape (K, 1, N)
    or None.

    Backward written out (autograd's graph of the pointwise ops costs more than the products): with s = g / r and
    the radial part a = u . dL/dpsi, dL/dz = s dL/dpsi + u [(g' - s) a + g' dL/dg] and dL/doffset = g' (a + dL/dg)
    summed over the batch; at z = 0, u = 0 (the gradient of |z| there is taken as 0, as torch's complex abs does).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, offset: torch.Tensor | None, spec) -> tuple[torch.Tensor, torch.Tensor]:
        psi, g, u, s, slope = _modulus(z, offset, spec)
        ctx.save_for_backward(u, s, slope)
        return psi, g

    @staticmethod
    def backward(ctx, g_psi: torch.Tensor, g_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        u, s, slope = ctx.saved_tensors
        radial = torch.addcmul(u[:, 0] * g_psi[:, 0], u[:, 1], g_psi[:, 1])
        coef = (slope - s).mul_(radial).addcmul_(slope, g_g)
        g_z = torch.addcmul(g_psi * s.unsqueeze(1), u, coef.unsqueeze(1))
        g_offset = (slope * (radial + g_g)).sum(1, keepdim=True) if ctx.needs_input_grad[1] else None
        return g_z, g_offset, None


class _ComplexLinear(torch.autograd.Function):
    """z = U psi for K networks in real arithmetic, U^T = rho e^{i theta}, rho = softplus(rho_raw) (K, in, out).

    psi is real (K, B, in) or complex as (K, 2, B, in) = (Re, Im); z is (K, 2, B, out). With W = [Re U^T | Im U^T]
    (K, in, 2 out) and Y = (a; b) W, z = (Y_a,re - Y_b,im, Y_a,im + Y_b,re): one bmm. Backward, with
    G = [[g_re, g_im], [g_im, -g_re]]: dW = (a; b)^T G and d(a; b) = G W^T, two bmms, and the chain rule through
    rho and theta written out (autograd's graph of these pointwise ops would cost more than the products).
    """

    @staticmethod
    def forward(ctx, psi: torch.Tensor, rho_raw: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        w, rho, cos, sin = _real_links(rho_raw, theta)
        ctx.save_for_backward(psi.flatten(1, 2) if psi.dim() == 4 else psi, w, rho_raw, cos, sin)
        ctx.complex_input = psi.dim() == 4
        return _complex_product(psi, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        q, w, rho_raw, cos, sin = ctx.saved_tensors
        k, n_in, n_out = cos.shape
        if ctx.complex_input:  # G = [[g_re, g_im], [g_im, -g_re]] (K, 2B, 2 out)
            g = torch.stack((grad.movedim(1, 2), torch.stack((grad[:, 1], -grad[:, 0]), 2)), 1).view(k, -1, 2 * n_out)
        else:  # G = [g_re, g_im] (K, B, 2 out)
            g = grad.movedim(1, 2).reshape(k, -1, 2 * n_out)
        g_psi = None
        if ctx.needs_input_grad[0]:
            g_psi = torch.bmm(g, w.transpose(1, 2))
            g_psi = g_psi.view(k, 2, -1, n_in) if ctx.complex_input else g_psi
        g_w = torch.bmm(q.transpose(1, 2), g)
        g_re, g_im = g_w[..., :n_out], g_w[..., n_out:]
        w_re, w_im = w[..., :n_out], w[..., n_out:]
        g_rho = torch.addcmul(g_re * cos, g_im, sin).mul_(torch.sigmoid(rho_raw))  # softplus' = sigmoid
        g_theta = torch.addcmul(g_im * w_re, g_re, w_im, value=-1)
        return g_psi, g_rho, g_theta


def _real_links(rho_raw: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """W = [Re U^T | Im U^T] = [rho cos theta | rho sin theta] (K, in, 2 out), rho = softplus(rho_raw), and
    (rho, cos theta, sin theta)."""
    k, n_in, n_out = theta.shape
    rho, cos, sin = F.softplus(rho_raw), theta.cos(), theta.sin()
    w = theta.new_empty(k, n_in, 2 * n_out)
    torch.mul(rho, cos, out=w[..., :n_out])
    torch.mul(rho, sin, out=w[..., n_out:])
    return w, rho, cos, sin


def _complex_product(psi: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """z = U psi (K, 2, B, out) of a real psi (K, B, in) or a complex one (K, 2, B, in), W from `_real_links`."""
    k, n_out = w.shape[0], w.shape[2] // 2
    y = torch.bmm(psi.flatten(1, 2) if psi.dim() == 4 else psi, w)
    if psi.dim() == 3:
        return y.view(k, -1, 2, n_out).transpose(1, 2).contiguous()
    y = y.view(k, 2, -1, 2, n_out)
    z = y.new_empty(k, 2, y.shape[2], n_out)
    torch.sub(y[:, 0, :, 0], y[:, 1, :, 1], out=z[:, 0])
    torch.add(y[:, 0, :, 1], y[:, 1, :, 0], out=z[:, 1])
    return z


def _modulus(z: torch.Tensor, offset: torch.Tensor | None, spec) -> tuple[torch.Tensor, ...]:
    """psi = g(r) u of z (K, 2, B, N), u = z / r, and g, u, s = g / r, g' (K, B, N); r = |z| clamped at the smallest
    normal float (z = 0 maps to 0)."""
    r = torch.addcmul(z[:, 0] * z[:, 0], z[:, 1], z[:, 1]).sqrt_().clamp_min_(torch.finfo(z.dtype).tiny)
    g, slope = spec.g_and_slope(r, 0.0 if offset is None else offset)
    u = z / r.unsqueeze(1)
    return u * g.unsqueeze(1), g, u, g / r, slope


def stack(nets: list[MLP] | list[GINN]) -> StackedMLP | StackedGINN:
    """The stacked form of networks of one kind and architecture."""
    kinds = {type(n) for n in nets}
    if len(kinds) != 1 or not nets:
        raise ValueError(f"stack: needs >= 1 networks of one kind, got {sorted(k.__name__ for k in kinds)}")
    return StackedGINN(nets) if kinds == {GINN} else StackedMLP(nets)


@torch.no_grad()
def accuracy(model: StackedMLP | StackedGINN, x: torch.Tensor, y: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Accuracy (K,) of every network on the same inputs x (B, d_in), labels y (B,), in sample chunks (small
    enough that a chunk's activations stay in cache)."""
    k = model.readout[0].shape[0]
    logits = model.predictor()
    hits = torch.zeros(k, dtype=torch.float64)
    for s in range(0, x.shape[0], chunk):
        xs = x[s : s + chunk].unsqueeze(0).expand(k, -1, -1)
        hits += (logits(xs).argmax(-1) == y[s : s + chunk]).sum(1).double()
    return hits / x.shape[0]


class _Optimizer:
    """Per-network SGD or Adam on stacked parameters: network k steps with lr_k, or not at all when frozen.

    Adam uses torch's fused kernel (torch.optim.Adam's math, defaults, no weight decay). While every network is
    active and all share one lr (the trainability map's case) it updates the stacked parameters in place in one
    pass. Otherwise it runs with lr = 1 into a scratch buffer, delta = -m_hat / (sqrt(v_hat) + eps), then
    p += lr_k delta per network, frozen networks' lr_k = 0 (both paths keep the same m, v and step count).
    """

    def __init__(self, params: list[torch.Tensor], kind: str, lrs: list[float]):
        self.params, self.kind, self.lr = params, kind, torch.tensor(lrs, dtype=params[0].dtype)
        self.views = [(-1, *[1] * (p.dim() - 1)) for p in params]
        self.common_lr = float(lrs[0]) if len(set(lrs)) == 1 else None
        if kind == "adam":
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
            self.delta: list[torch.Tensor] = []
            self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """One step of every active network (the others' parameters stay exactly as they are)."""
        grads = [p.grad for p in self.params]
        all_active = bool(active.all())
        if not all_active:  # a frozen network's gradient may be non-finite: keep it out of the update
            grads = [g.masked_fill(~active.view(v), 0.0) for g, v in zip(grads, self.views)]
        lr = self.lr * active
        if self.kind == "sgd":
            for p, g, v in zip(self.params, grads, self.views):
                p.sub_(g * lr.view(v))
            return
        torch._foreach_add_(self.steps, 1.0)
        b1, b2 = ADAM_BETAS
        adam = dict(beta1=b1, beta2=b2, weight_decay=0.0, eps=ADAM_EPS, amsgrad=False, maximize=False)
        if all_active and self.common_lr is not None:
            torch._fused_adam_(self.params, grads, self.m, self.v, [], self.steps, lr=self.common_lr, **adam)
            return
        if not self.delta:
            self.delta = [torch.zeros_like(p) for p in self.params]
        torch._foreach_zero_(self.delta)
        torch._fused_adam_(self.delta, grads, self.m, self.v, [], self.steps, lr=1.0, **adam)
        for p, d, v in zip(self.params, self.delta, self.views):
            p.addcmul_(d, lr.view(v))


def train_batched(
    nets: list[MLP] | list[GINN], data: Split, spec: BatchedSpec, lrs: list[float], seeds: list[int]
) -> BatchedResult:
    """Train K networks at once: network k with learning rate lrs[k] and mini-batch order of seed seeds[k].

    Per network the same steps as `langevin.train(net, data, TrainSpec(..., lr=lrs[k], seed=seeds[k],
    restore_best=False))`: each epoch a permutation from `torch.Generator().manual_seed(seed)`, a step per
    mini-batch, and a network whose mini-batch loss is non-finite or > max_loss is frozen (no update) from then on.

    Args:
        nets: K networks of one kind and architecture (their parameters are copied, not modified).
        data: the split; training on x_train, accuracies on x_train and x_test.
        spec: optimizer, epochs, batch size, divergence threshold.
        lrs: learning rate per network, length K.
        seeds: mini-batch order seed per network, length K.

    Returns:
        A `BatchedResult`.

    Raises:
        ValueError: on an optimizer outside BATCHED_OPTIMIZERS or lengths that differ from len(nets).
    """
    if spec.optimizer not in BATCHED_OPTIMIZERS:
        raise ValueError(f"train.optimizer={spec.optimizer!r}: the batched trainer allows {list(BATCHED_OPTIMIZERS)}")
    k = len(nets)
    if len(lrs) != k or len(seeds) != k:
        raise ValueError(f"train_batched: {k} networks need {k} lrs and seeds, got {len(lrs)} and {len(seeds)}")
    model = stack(nets)
    params = model.parameters()
    opt = _Optimizer(params, spec.optimizer, lrs)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    active = torch.ones(k, dtype=torch.bool)
    losses = torch.full((k, spec.epochs), float("nan"), dtype=torch.float64)
    diverged_epoch = torch.full((k,), -1, dtype=torch.long)
    n = data.x_train.shape[0]
    for epoch in range(spec.epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (K, n)
        total = torch.zeros(k, dtype=torch.float64)
        for s in range(0, n, spec.batch_size):
            idx = perm[:, s : s + spec.batch_size]
            logits = model(data.x_train[idx])
            loss = F.cross_entropy(logits.flatten(0, 1), data.y_train[idx].flatten(), reduction="none")
            loss = loss.view(k, -1).mean(1)
            value = loss.detach().double()
            bad = active & (~torch.isfinite(value) | (value > spec.max_loss))
            diverged_epoch[bad] = epoch
            active &= ~bad
            if not active.any():
                break
            for p in params:
                p.grad = None
            torch.where(active, loss, torch.zeros_like(loss)).sum().backward()
            opt.step(active)
            total += torch.where(active, value * idx.shape[1], 0.0)
        losses[:, epoch] = torch.where(active, total / n, float("nan"))
        if not active.any():
            break
    return BatchedResult(
        train_loss=losses,
        train_accuracy=accuracy(model, data.x_train, data.y_train),
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        diverged=diverged_epoch >= 0,
        diverged_epoch=diverged_epoch,
        model=model,
    )
