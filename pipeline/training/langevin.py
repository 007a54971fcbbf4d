"""Training in fictitious Langevin time: SGD, Adam, or noisy SGD at temperature T with covariant gauge fixing.

Langevin: p <- p - dt grad L + sqrt(2 T dt) eta for every parameter; for GINN phases the noise is
split into its physical part (used as is) and its gauge part, which `GaugeSector` integrates exactly
with drift strength 1/xi from a separate random stream. So with the same noise seed every
gauge-invariant quantity follows the same trajectory for every xi. Adam's per-coordinate scaling
breaks gauge covariance: gauge-fixing experiments use Langevin.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from pipeline.config.schema import TrainConfig
from pipeline.config.specs import spec_from
from pipeline.data.datasets import Split
from pipeline.nets.ginn import GINN
from pipeline.progress import progress as progress_bar
from pipeline.training.gauge_sector import GaugeSector

OPTIMIZERS = ("sgd", "adam", "langevin")


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """One training run. No defaults for configured values: their home is `pipeline.config.schema.TrainConfig`.

    Attributes:
        optimizer: "sgd", "adam" or "langevin" (Euler-Maruyama, docs/science.md §5).
        lr: learning rate; the Langevin time step dt.
        epochs: number of epochs.
        batch_size: mini-batch size.
        temperature: Langevin temperature T.
        xi: gauge-fixing parameter (inf: no gauge fixing).
        seed: seed of the mini-batch order.
        noise_seed: seed of the Langevin noise (the gauge stream uses noise_seed + 1_000_003).
        max_loss: divergence threshold on the training loss.
        restore_best: end with the best validation-accuracy epoch's parameters (unless diverged).
        record_gauge: record G(t) after every step (GINN with Langevin only).
    """

    optimizer: str  # sgd | adam | langevin
    lr: float
    epochs: int
    batch_size: int
    temperature: float  # Langevin temperature T
    xi: float  # gauge-fixing parameter (inf: no gauge fixing)
    seed: int  # mini-batch order
    noise_seed: int  # Langevin noise (physical and gauge streams derive from it)
    max_loss: float  # divergence: stop when the training loss exceeds this or is not finite
    restore_best: bool  # end with the parameters of the best validation-accuracy epoch (early stopping)
    record_gauge: bool = False  # record G(t) every step (GINN); not a config value: the stage asks for it


def train_spec(tc: TrainConfig, **over) -> TrainSpec:
    """The TrainSpec of a validated `ginn.train` section `tc` (its `xi_gf` is the spec's `xi`); `over` replaces
    any field (`seed` has no config value: give it)."""
    return spec_from(TrainSpec, tc, **{"xi": tc.xi_gf, **over})


def train_spec_with_defaults(**kw) -> TrainSpec:
    """TrainSpec with every value not given taken from the schema's TrainConfig (the defaults' one home) and
    seed 0; for scripts and tests that train directly."""
    return train_spec(TrainConfig(), **{"seed": 0, **kw})


@dataclass
class TrainResult:
    """Outcome of `train`.

    Attributes:
        history: one dict per completed epoch: epoch, train_loss, train_accuracy, val_loss, val_accuracy, and
            var_G (site mean of G^2) when a gauge sector is active.
        diverged: whether training stopped on a non-finite or too large loss (or a non-finite test loss).
        diverged_reason: human-readable reason, "" if not diverged.
        test_accuracy: accuracy on the test set with the final parameters.
        test_loss: cross-entropy on the test set with the final parameters.
        gauge_trace: G(t) after each step, float64 tensor of shape (steps, sites), or None.
        outputs_test: logits on the test set, shape (n_test, n_out).
        best_epoch_val_accuracy: validation accuracy of the restored epoch (nan if none was restored).
    """

    history: list[dict] = field(default_factory=list)  # one dict per epoch
    diverged: bool = False
    diverged_reason: str = ""
    test_accuracy: float = float("nan")
    test_loss: float = float("nan")
    gauge_trace: torch.Tensor | None = None  # (steps, sites) float64, G(t) after each step
    outputs_test: torch.Tensor | None = None  # logits on the test set at the end
    best_epoch_val_accuracy: float = float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """(loss, accuracy, logits).

    Args:
        model: classifier returning logits of shape (B, n_classes).
        x: inputs, tensor of shape (B, d_in).
        y: integer labels, tensor of shape (B,).

    Returns:
        (mean cross-entropy as python float, accuracy as python float, logits tensor of shape (B, n_classes)).
    """
    out = model(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean()), out


def train(
    model: nn.Module, data: Split, spec: TrainSpec, progress: bool = True, checkpoint: Path | None = None
) -> TrainResult:
    """Train with mini-batches; stop early (flagged, not raised) when the loss diverges.

    Langevin: p <- p - dt dL/dp + sqrt(2 T dt) eta for every parameter, dt = lr; for a GINN the phase noise
    loses its gauge-orbit part and `GaugeSector.step` integrates the gauge coordinates exactly
    (docs/science.md §5).

    Args:
        model: the network (a `GINN` enables the gauge sector under Langevin).
        data: train/val/test split.
        spec: the run's settings.
        progress: show a progress bar.
        checkpoint: if given, the final state_dict is saved there.

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: if `spec.optimizer` is not one of OPTIMIZERS.
    """
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={spec.optimizer!r}: allowed {list(OPTIMIZERS)}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = None
    if spec.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=spec.lr)
    elif spec.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=spec.lr)
    ginn = isinstance(model, GINN)
    sector = GaugeSector(model) if ginn and spec.optimizer == "langevin" else None
    order_gen = torch.Generator().manual_seed(spec.seed)
    noise_gen = torch.Generator().manual_seed(spec.noise_seed)
    gauge_gen = torch.Generator().manual_seed(spec.noise_seed + 1_000_003)
    phase_ids = {id(p) for p in model.phases()} if ginn else set()
    trace = []
    best = None
    result = TrainResult()
    n = data.x_train.shape[0]
    desc = f"train {type(model).__name__}"
    bar = progress_bar(range(spec.epochs), desc=desc) if progress else tqdm(range(spec.epochs), disable=True)
    for epoch in bar:
        perm = torch.randperm(n, generator=order_gen)
        total, count = 0.0, 0
        for s in range(0, n, spec.batch_size):
            idx = perm[s : s + spec.batch_size]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            value = float(loss.detach())
            if not math.isfinite(value) or value > spec.max_loss:
                result.diverged, result.diverged_reason = True, f"epoch {epoch}: training loss {value:.3g}"
                break
            model.zero_grad(set_to_none=True)
            loss.backward()
            if opt is not None:
                opt.step()
            else:
                _langevin_step(model, params, phase_ids, sector, spec, noise_gen, gauge_gen)
            if spec.record_gauge and sector is not None:
                trace.append(sector.divergence())
            total += value * len(idx)
            count += len(idx)
        if result.diverged:
            break
        val_loss, val_acc, _ = evaluate(model, data.x_val, data.y_val)
        _, train_acc, _ = evaluate(model, data.x_train, data.y_train)
        row = {
            "epoch": epoch,
            "train_loss": total / count,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
        }
        if sector is not None:
            row["var_G"] = float(sector.divergence().pow(2).mean())
        result.history.append(row)
        if spec.restore_best and (best is None or val_acc > best[0]):
            best = (val_acc, copy.deepcopy(model.state_dict()))
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{val_acc:.3f}")
    if best is not None and not result.diverged:
        model.load_state_dict(best[1])
        result.best_epoch_val_accuracy = best[0]
    result.test_loss, result.test_accuracy, result.outputs_test = evaluate(model, data.x_test, data.y_test)
    if not math.isfinite(result.test_loss):
        result.diverged, result.diverged_reason = True, result.diverged_reason or "non-finite test loss"
    if trace:
        result.gauge_trace = torch.stack(trace)
    if checkpoint is not None:
        torch.save(model.state_dict(), checkpoint)
    return result


@torch.no_grad()
def _langevin_step(
    model,
    params,
    phase_ids,
    sector: GaugeSector | None,
    spec: TrainSpec,
    noise_gen: torch.Generator,
    gauge_gen: torch.Generator,
) -> None:
    """One Euler–Maruyama step of the physical dynamics, then the exact gauge-sector step."""
    amp = math.sqrt(2 * spec.temperature * spec.lr)
    noises = [torch.randn(p.shape, generator=noise_gen, dtype=torch.float64).to(p.dtype) * amp for p in params]
    if sector is not None:
        phase_idx = [i for i, p in enumerate(params) if id(p) in phase_ids]
        physical = sector.project_out([noises[i] for i in phase_idx])
        for i, n in zip(phase_idx, physical):
            noises[i] = n
    for p, n in zip(params, noises):
        if p.grad is not None:
            p.add_(p.grad, alpha=-spec.lr)
        p.add_(n)
    if sector is not None and spec.temperature > 0:
        sector.step(spec.lr, spec.temperature, spec.xi, gauge_gen)
    elif sector is not None and not math.isinf(spec.xi):
        sector.step(spec.lr, 0.0, spec.xi, gauge_gen)


def load_checkpoint(model: nn.Module, path: Path) -> None:
    """Restore parameters saved by `train(..., checkpoint=path)` (weights only: no code is unpickled).

    Args:
        model: module with the same architecture, modified in place.
        path: checkpoint file.
    """
    model.load_state_dict(torch.load(path, weights_only=True))
