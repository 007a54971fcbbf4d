"""Real and synthetic classification data with a stratified train/val/test split fixed by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DATASETS = ("digits", "spirals")


@dataclass
class Split:
    """Standardized features (float tensors) and integer labels for train/val/test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def d_in(self) -> int:
        return int(self.x_train.shape[1])


def two_spirals(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane (label = arm)."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    arm = rng.integers(0, 2, n)
    sign = np.where(arm == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], 1) / (3 * np.pi) + noise * rng.normal(size=(n, 2))
    return x, arm


def load(
    name: str,
    seed: int,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    n_synthetic: int = 1000,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """Load a dataset, split it stratified by label with `seed`, scale with train statistics only."""
    from sklearn.model_selection import train_test_split

    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    elif name == "spirals":
        x, y = two_spirals(n_synthetic, 0.02, seed)
    else:
        raise ValueError(f"data.name={name!r}: allowed {list(DATASETS)}")
    x_tmp, x_test, y_tmp, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_tmp, y_tmp, test_size=val_fraction / (1 - test_fraction), stratify=y_tmp, random_state=seed
    )
    # per-feature centring, one global scale: near-constant pixels are not blown up to huge values
    mu, sd = x_train.mean(0), float((x_train - x_train.mean(0)).std()) or 1.0
    t = lambda a: torch.as_tensor((a - mu) / sd, dtype=dtype)  # noqa: E731
    lab = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return Split(t(x_train), lab(y_train), t(x_val), lab(y_val), t(x_test), lab(y_test), int(len(np.unique(y))))
