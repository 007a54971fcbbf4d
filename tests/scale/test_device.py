"""The engine is device-agnostic: on a GPU (where one exists) it reproduces the CPU statistics."""

import numpy as np
import pytest
import torch

from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import summarize
from tests.conftest import engine_spec


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_engine_agrees_with_cpu_within_errors():
    kw = dict(
        activation="tanh",
        width=256,
        depth=40,
        sigma_w2=(1.0, 1.76, 3.0),
        sigma_b2=0.05,
        n_seeds=8,
        dtype="float64",
        n_spectrum=2,
    )
    cpu = summarize(simulate(engine_spec(**dict(kw))), 10)
    gpu = summarize(simulate(engine_spec(**dict(kw), device="cuda")), 10)
    err = np.sqrt(cpu.lambda_replica_se**2 + gpu.lambda_replica_se**2)
    assert np.all(np.abs(cpu.lambda_replica - gpu.lambda_replica) < 4 * err)
    assert np.all(np.abs(cpu.chi / gpu.chi - 1) < 0.02)
    again = summarize(simulate(engine_spec(**dict(kw), device="cuda")), 10)
    assert np.array_equal(gpu.lambda_replica.to_numpy(), again.lambda_replica.to_numpy())
