"""The `field` stage: a tiny in-process run (tables, metrics, MLflow run), rejected input, and the chain's spectra
against full weight-matrix networks (docs/science.md §7b: the sector is not an artefact of the chain)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.dynamics.chain import ChainSpec, kernel_path
from pipeline.dynamics.spectra import ar1_fit
from pipeline.stages import field
from tests.conftest import runs

TINY = [
    "experiment=smoke", "field.widths=[16,32,64]", "field.n_networks=8", "field.depth=128", "field.burn_in=16",
    "field.segment=32", "field.corr_width=8", "field.gauge_xi=[1.0]", "field.gauge_width=8", "field.gauge_networks=8",
]  # fmt: skip


def test_field_stage_writes_its_tables_and_a_finished_run(run_inprocess, tmp_path, store):
    out = tmp_path / "field"
    r = run_inprocess("field", *TINY, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-2000:]
    spectra = pd.read_csv(out / "spectra.csv")
    assert list(spectra.columns) == field.SPECTRA_COLUMNS
    assert set(spectra["mode"]) == {"length", "gauge", "correlation"}
    length = spectra[spectra["mode"] == "length"]
    assert np.allclose(length.mass_mean_field, -np.log(length.multiplier_mean_field))
    assert (length.multiplier_exact.notna()).all()  # tanh at xi = 1: the transition operator
    fit = pd.read_csv(out / "one_loop_fit.csv")
    assert fit.c_exact.iloc[0] == pytest.approx(fit.c_one_loop.iloc[0], abs=0.02)  # widths 16..64: d/N absorbed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"multiplier_max_z_one_loop", "length_plateau_max_z", "one_loop_c_max_z"} <= set(metrics)
    # ReLU at N = 8 has a tail exponent ~2.2 (docs/science.md §7b): flagged, no measured number in any table
    gauge = spectra[spectra["mode"] == "gauge"].iloc[0]
    assert gauge.status == "heavy_tail" and gauge.tail_exponent < 4 and np.isnan(gauge.multiplier_measured)
    assert metrics["n_excluded_heavy_tail"] == 1
    curves = pd.read_csv(out / "spectrum_curves.csv")
    g = curves[curves["mode"] == "gauge"]
    assert len(g) and g.n_s_measured.isna().all() and g.n_s_predicted.notna().all()
    assert curves[curves["mode"] == "length"].n_s_measured.notna().all()
    assert list(runs(store, "field").status) == ["FINISHED"]
    assert {p.name for p in (out / "figures").iterdir()} == {"field_spectra.png", "field_collapse.png",
                                                            "field_masses.png"}  # fmt: skip


def test_field_stage_rejects_a_bad_width(run_inprocess, tmp_path):
    r = run_inprocess("field", "field.widths=[2]", f"hydra.run.dir={tmp_path / 'x'}")
    assert r.returncode == 2 and "field.widths" in r.stderr
    assert not (tmp_path / "x" / "spectra.csv").exists()


def _matrix_networks(width: int, n: int, depth: int, sw: float, sb: float, seed: int) -> np.ndarray:
    """G^l = sb + sw mean_j tanh(h_j^{l-1})^2 of full weight-matrix tanh networks (fresh Gaussian weights per
    layer, xi = 1), one input of unit variance: the conditional variance the chain samples."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, width, generator=gen, dtype=torch.float64)
    out = np.empty((n, depth))
    for layer in range(depth):
        phi = torch.tanh(h)
        G = sb + sw * (phi * phi).mean(1)
        out[:, layer] = G.numpy()
        W = torch.randn(n, width, width, generator=gen, dtype=torch.float64) * math.sqrt(sw / width)
        h = torch.bmm(W, phi.unsqueeze(-1)).squeeze(-1) + math.sqrt(sb) * torch.randn(
            n, width, generator=gen, dtype=torch.float64
        )
    return out


@pytest.mark.parametrize("width", [16, pytest.param(64, marks=pytest.mark.slow)])
def test_chain_spectra_match_weight_matrix_networks(width):
    """Multiplier and N S(0) of G^l: the exact chain and real networks agree within 2 combined SE (N <= 64)."""
    sw, sb, n, depth, burn = 1.5, 0.05, 300, 700, 50
    real = ar1_fit(_matrix_networks(width, n, depth + burn, sw, sb, seed=7)[:, burn:])
    torch.set_num_threads(1)
    G = kernel_path(ChainSpec(activation="tanh", width=width, depth=depth + burn, sigma_w2=(sw,), sigma_b2=sb,
                              n_networks=n, n_inputs=1, seed=3))  # fmt: skip
    chain = ar1_fit(G[:, 0, burn:, 0, 0].numpy())
    se = math.hypot(real.multiplier_se, chain.multiplier_se)
    assert abs(real.multiplier - chain.multiplier) < 2 * se
    assert abs(real.s0 - chain.s0) < 2 * math.hypot(real.s0_se, chain.s0_se)
    assert se < 0.01  # a 1/N-sized difference (0.126/16 = 0.008 at N = 16) would be ~2 SE


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("field.corr_sigma_w2=[1.5]", "field.corr_sigma_w2"),  # tanh, sigma_b2 0.05: ordered below 1.761
        ("field.gauge_xi=[3.0]", "field.gauge_xi"),  # relu at 1.5: A_q(3) > 1, no stationary length mode
        ("field.segment=5000", "field.segment"),
    ],
)
def test_field_stage_rejects_points_without_the_mode(run_inprocess, tmp_path, override, key):
    r = run_inprocess("field", override, f"hydra.run.dir={tmp_path / 'x'}")
    assert r.returncode == 2 and key in r.stderr, r.stderr[-500:]
    assert not (tmp_path / "x" / "spectra.csv").exists()


@pytest.mark.parametrize("tail,expansion,status", [(3.9, 0.1, "heavy_tail"), (4.0, 0.5, "heavy_tail"),
                                                   (4.1, 0.5, "expansion_breakdown"), (4.1, 0.3, "ok"),
                                                   (math.inf, 0.1, "ok")])  # fmt: skip
def test_a_row_with_a_tail_exponent_at_most_4_is_flagged_heavy_tail_before_breakdown(tail, expansion, status):
    """The regression and its SE need E G^4 < inf (kappa > 4, docs/science.md §7b); the boundaries are inclusive
    at kappa = 4 and exclusive at the expansion limit 0.3. Flagged rows leave the headline metrics; a heavy_tail
    row shows no measured value, a row past the expansion limit no one-loop value."""
    x = np.random.default_rng(0).standard_normal((4, 64)).cumsum(1) * 0.1
    fit = ar1_fit(x)
    row = field._row("relu", 1.5, 0.1, 1.0, 64, "gauge", fit, fit, 0.75, 0.75, 7.2, None, expansion, tail)
    assert row["status"] == status and row["tail_exponent"] == tail
    masked = field.mask_by_status(pd.DataFrame([row], columns=field.SPECTRA_COLUMNS)).iloc[0]  # status before number
    assert math.isnan(masked.multiplier_measured) == math.isnan(masked.plateau_se) == (status == "heavy_tail")
    assert math.isnan(masked.multiplier_one_loop) == (expansion > 0.3) and masked.plateau_predicted == 7.2
    spectra = pd.DataFrame([row, {**row, "status": "ok"}], columns=field.SPECTRA_COLUMNS)
    fit_table = pd.DataFrame({k: pd.Series(dtype=float) for k in ("c_measured", "c_one_loop", "c_se", "c_exact")})
    result = field.FieldResult(spectra, pd.DataFrame(), fit_table, pd.DataFrame())
    m = field.headline(result).metrics
    assert m["n_excluded_heavy_tail"] == (status == "heavy_tail")
    assert m["n_excluded_expansion_breakdown"] == (status == "expansion_breakdown")
