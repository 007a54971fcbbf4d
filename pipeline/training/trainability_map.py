"""The trainability map: training accuracy over (model, sigma_w2, depth, seed), all networks of one depth batched.

Each (model, depth) trains every (sigma_w2, seed) network at once with `train_batched` (in chunks that fit
`memory_gb`); network seed s is both its initialisation seed and its mini-batch order seed, so all sigma_w2 of
one seed share their random numbers (common random numbers: the map is smooth in sigma_w2).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from torch import nn

from pipeline.data.datasets import Split
from pipeline.progress import progress
from pipeline.training.batched import BatchedSpec, train_batched

log = logging.getLogger("ginn.trainability")

# Bytes per network and layer, measured upper bounds (parameters, gradients, Adam state, update copies,
# saved activations) per weight (width^2) and per activation (batch x width).
BYTES_PER_WEIGHT = {"mlp": 32, "ginn": 64}
BYTES_PER_ACTIVATION = {"mlp": 16, "ginn": 80}


def network_bytes(model: str, depth: int, width: int, batch: int) -> int:
    """Estimated memory of one network in batched training (upper bound)."""
    return depth * (width * width * BYTES_PER_WEIGHT[model] + batch * width * BYTES_PER_ACTIVATION[model])


def networks_per_chunk(model: str, depth: int, width: int, batch: int, memory_gb: float) -> int:
    """How many networks of this size one batched run holds within `memory_gb` (at least 1)."""
    return max(1, int(memory_gb * 2**30 // network_bytes(model, depth, width, batch)))


def trainability_map(
    build: Callable[[str, int, float, int], nn.Module],
    data: Split,
    models: list[str],
    sigma_w2: list[float],
    depths: list[int],
    seeds: list[int],
    width: int,
    spec: BatchedSpec,
    lr: float,
    memory_gb: float,
    workers: int = 1,
) -> pd.DataFrame:
    """Train every (model, sigma_w2, depth, seed) network and tabulate its accuracies.

    Args:
        build: build(model, depth, sigma_w2, seed) -> a fresh MLP or GINN of width `width`.
        data: the split (train accuracy on x_train, test accuracy on x_test).
        models: "mlp" and/or "ginn".
        sigma_w2: weight variances.
        depths: depths.
        seeds: network seeds.
        width: hidden width (for the memory estimate).
        spec: optimizer, epochs, batch size, divergence threshold (shared).
        lr: learning rate of every network.
        memory_gb: memory budget of one batched run (each of the `workers` holds one).
        workers: batched runs in parallel, each on its own thread running torch single-threaded (no fork/join
            between threads: robust on a busy machine); the numbers do not depend on it.

    Returns:
        DataFrame keyed by (model, sigma_w2, depth, seed) with train_accuracy, test_accuracy, final_train_loss,
        diverged.
    """
    jobs = []
    for model in models:
        for depth in depths:
            cells = [(sw, s) for sw in sigma_w2 for s in seeds]
            size = networks_per_chunk(model, depth, width, spec.batch_size, memory_gb)
            jobs += [(model, depth, cells[i : i + size]) for i in range(0, len(cells), size)]

    def run(job) -> list[dict]:
        model, depth, cells = job
        nets = [build(model, depth, sw, s) for sw, s in cells]
        r = train_batched(nets, data, spec, [lr] * len(cells), [s for _, s in cells])
        return [
            dict(model=model, sigma_w2=sw, depth=depth, seed=s, train_accuracy=float(r.train_accuracy[k]),
                 test_accuracy=float(r.test_accuracy[k]), final_train_loss=float(r.train_loss[k, -1]),
                 diverged=bool(r.diverged[k]))
            for k, (sw, s) in enumerate(cells)
        ]  # fmt: skip

    rows = []  # jobs in order (MLP, then GINN; shallow first): a long map's log holds every finished job's rows
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trainability")
    try:
        for part in progress(pool.map(run, jobs), total=len(jobs), desc="trainability map"):
            log.info("trainability rows %s", json.dumps(part))
            rows += part
    finally:  # on an interrupt, queued jobs are dropped (running ones finish their chunk)
        pool.shutdown(wait=True, cancel_futures=True)
    return pd.DataFrame(rows).sort_values(["model", "sigma_w2", "depth", "seed"], ignore_index=True)
