"""Benchmark: the batched trainer (pipeline.training.batched) against training the same networks one by one.

Networks trained per CPU second at width 100 on digits (Adam, one epoch, batch 32), MLP and GINN: one
(depth, sigma_w2 x seeds) group of the trainability map, batched vs `langevin.train` per network (restore_best
off; timed on a subset and scaled), both in this run, one torch thread each (the stage's default,
`ginn.train.threads`), after one untimed warm-up of each (torch's first Adam step loads code). CPU time of the
process, not wall time: on a shared machine the wall clock also counts other processes; with one thread the
CPU time is the work done. Also the batched run on two threads (its wall time), for information.
"""

from __future__ import annotations

import time

import torch

from pipeline.data.datasets import load
from pipeline.nets.ginn import GINN
from pipeline.nets.mlp import MLP
from pipeline.training.batched import BatchedSpec, train_batched
from pipeline.training.langevin import train, train_spec_with_defaults

WIDTH, DEPTH, SEEDS = 100, 10, [0, 1]
SIGMA_W2 = [1.0 + 3.0 * i / 23 for i in range(24)]  # the paper-grain map's group: 24 sigma_w2 x 2 seeds
N_ALONE = 6  # networks timed one by one (then scaled to the group)
SPEC = BatchedSpec(optimizer="adam", epochs=1, batch_size=32, max_loss=1e3)
TARGET = 10.0


def _nets(model, data):
    if model == "mlp":
        build = lambda sw, s: MLP(data.d_in, WIDTH, DEPTH, data.n_classes, sw, 0.05, "tanh", s)  # noqa: E731
    else:
        build = lambda sw, s: GINN(data.d_in, WIDTH, DEPTH, data.n_classes, sw, "tanh", seed=s)  # noqa: E731
    return [build(sw, s) for sw in SIGMA_W2 for s in SEEDS]


def _alone(net, data, seed):
    spec = train_spec_with_defaults(optimizer="adam", lr=2e-3, epochs=1, batch_size=32, seed=seed, restore_best=False)
    train(net, data, spec, progress=False)


def _batched(nets, data, seeds) -> None:
    train_batched(nets, data, SPEC, [2e-3] * len(nets), seeds)


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def run() -> list[dict]:
    before = torch.get_num_threads()
    try:
        data = load("digits", 0)
        rows = []
        for model in ("mlp", "ginn"):
            torch.set_num_threads(1)
            nets = _nets(model, data)
            seeds = [s for _ in SIGMA_W2 for s in SEEDS]
            _alone(_nets(model, data)[0], data, 0)  # warm-up
            _batched(nets[:2], data, seeds[:2])
            batched = _cpu(lambda: _batched(nets, data, seeds))
            alone = _cpu(lambda: [_alone(n, data, s) for n, s in zip(nets[:N_ALONE], seeds)]) * len(nets) / N_ALONE
            torch.set_num_threads(2)
            t0 = time.perf_counter()
            _batched(nets, data, seeds)
            wall2 = time.perf_counter() - t0
            n, ratio = len(nets), alone / batched
            rows.append(
                dict(
                    benchmark=f"batched trainer vs one by one, {model} width {WIDTH} depth {DEPTH} ({n} networks)",
                    measured=f"{ratio:.1f}x ({n / batched:.1f} vs {n / alone:.1f} networks per CPU s)",
                    target=f">= {TARGET:g}x",
                    met=ratio >= TARGET,
                    note=f"digits, Adam, 1 epoch, batch 32, 1 thread each, CPU time (one by one: {N_ALONE} networks, "
                    f"scaled); batched on 2 threads: {n / wall2:.1f} networks per wall s on the shared machine",
                )
            )
        return rows
    finally:
        torch.set_num_threads(before)
