"""Benchmark: the exact kernel chain (engine.method=chain, docs/science.md §7a) against weight matrices at equal
standard error, one run on the same machine.

Both engines sample the same law, so equal SE needs the same number of networks; the ratio is
(t_matrix var_matrix) / (t_chain var_chain), times per network and the per-network variance of the tangent exponent
as measured by each (their ratio is ~1 up to sampling noise, shown in the note). The batch is a mlp_sweep job's:
tanh, sigma_b2 = 0.05, 8 sigma_w2 values x 1 input pair, float32, depth 30. Target (issue 23): >= N/8 at N >= 256.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.dynamics.chain import ChainSpec, tangent_chain
from pipeline.dynamics.engine_spec import spec_with_defaults
from pipeline.dynamics.ensemble import simulate
from pipeline.dynamics.statistics import network_values

GRID, DEPTH, BURN_IN = tuple(np.linspace(1.2, 2.6, 8).tolist()), 30, 10


def _per_network(method: str, width: int, n_seeds: int) -> tuple[float, float]:
    """(seconds per network, variance over networks of the layer-averaged tangent exponent at sigma_w2 = 1.8)."""
    spec = spec_with_defaults(activation="tanh", width=width, depth=DEPTH, sigma_w2=GRID, sigma_b2=0.05,
                              n_seeds=n_seeds, n_pairs=1, dtype="float32", method=method, seed=7)  # fmt: skip
    simulate(spec.__class__(**{**spec.__dict__, "n_seeds": 2, "depth": 2}))  # warm-up
    t0 = time.perf_counter()
    m = simulate(spec)
    t = (time.perf_counter() - t0) / n_seeds
    lam = network_values(m, BURN_IN, "lambda_tangent")[int(np.argmin(np.abs(np.asarray(GRID) - 1.8)))]
    return t, float(np.var(lam[np.isfinite(lam)], ddof=1))


def _tangent_chain_per_network(width: int, n_networks: int) -> tuple[float, float]:
    """The same for the lean typical-exponent chain (`tangent_chain`, one input, no replica/probe columns)."""
    spec = ChainSpec(activation="tanh", width=width, depth=DEPTH, sigma_w2=GRID, sigma_b2=0.05, n_networks=n_networks,
                     seed=7)  # fmt: skip
    tangent_chain(ChainSpec(**{**spec.__dict__, "n_networks": 2, "depth": 2}), 0)  # warm-up
    t0 = time.perf_counter()
    lam, _ = tangent_chain(spec, BURN_IN)
    t = (time.perf_counter() - t0) / n_networks
    row = lam[int(np.argmin(np.abs(np.asarray(GRID) - 1.8)))].numpy()
    return t, float(np.var(row[np.isfinite(row)], ddof=1))


def run() -> list[dict]:
    rows = []
    for n, seeds in ((256, 64), (1024, 16)):
        tm, vm = _per_network("matrix", n, seeds)
        tc, vc = _tangent_chain_per_network(n, 16 * seeds)
        ratio = tm * vm / (tc * vc)
        rows.append(
            {
                "benchmark": f"typical-exponent chain (tangent_chain) vs matrix engine, equal SE of lambda, width {n}",
                "measured": f"{ratio:.1f}x",
                "target": f">= N/8 = {n / 8:.0f}x",
                "met": ratio >= n / 8,
                "note": f"per network {tm * 1e3:.1f} ms (matrix, 2 inputs, all measurements) vs {tc * 1e3:.2f} ms "
                f"(chain, 1 input, exponent and q only); variance ratio {vm / vc:.2f} (matrix averages 2 inputs)",
            }
        )
    for n, seeds in ((256, 64), (512, 32), (1024, 16)):
        tm, vm = _per_network("matrix", n, seeds)
        tc, vc = _per_network("chain", n, 4 * seeds)
        ratio = tm * vm / (tc * vc)
        rows.append(
            {
                "benchmark": f"engine.method=chain vs matrix, equal SE, width {n} (all measurements)",
                "measured": f"{ratio:.1f}x",
                "target": f">= N/8 = {n / 8:.0f}x",
                "met": ratio >= n / 8,
                "note": f"per network {tm * 1e3:.1f} ms (matrix, {seeds} nets) vs {tc * 1e3:.2f} ms (chain, {4 * seeds}"
                f" nets); time ratio {tm / tc:.1f}x, variance ratio {vm / vc:.2f} (same law: ~1 +- sampling noise)",
            }
        )
    return rows
