"""The fused tangent-chain kernel (pipeline/dynamics/tangent_kernel.c, `tangent_chain(kernel="fused")`): the same
chain as explicit rows with the same draws, per network independent of its batch, NaN where the torch path is
NaN, and a clear refusal of what it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config.errors import ConfigError
from pipeline.dynamics import native
from pipeline.dynamics.chain import ChainSpec, choose_kernel, tangent_chain
from tests.config.draws import names_a_key, validate_full
from tests.dynamics.test_chain import _explicit_rows_tangent_chain

pytestmark = pytest.mark.skipif(native.available() is not None, reason=f"fused kernel: {native.available()}")


@pytest.mark.parametrize(
    "kw",
    [
        dict(activation="tanh", width=12, depth=21, sigma_w2=(1.3, 2.2), sigma_b2=0.05),
        dict(activation="erf", width=7, depth=18, sigma_w2=(2.0, 3.5), sigma_b2=0.1, xi=0.4),
        dict(activation="relu", width=9, depth=20, sigma_w2=(1.5, 2.5), sigma_b2=0.2, xi=1.6),
        dict(activation="linear", width=5, depth=17, sigma_w2=(0.9,), sigma_b2=0.3),
    ],
)
def test_fused_kernel_is_the_explicit_row_chain(kw):
    """Rows formed explicitly (float64, numpy Cholesky, the dense gauge projector) against the fused loop's
    float32 rows and rational tanh/erf/exp: lambda within 2e-6 and q_hat^L within 5e-6 (relative) over a depth
    past one draw block, the gauge's sums (xi != 1) included. A wrong sum, factor or normalization is O(0.1)."""
    spec = ChainSpec(n_networks=3, seed=9, **kw)
    lam_ref, q_ref = _explicit_rows_tangent_chain(spec, burn_in=4)
    lam, q_L = tangent_chain(spec, burn_in=4, dtype="float32", kernel="fused")
    assert np.allclose(lam.numpy(), lam_ref, rtol=0, atol=2e-6), np.abs(lam.numpy() - lam_ref).max()
    assert np.allclose(q_L.numpy(), q_ref, rtol=5e-6, atol=0), np.abs(q_L.numpy() / q_ref - 1).max()


def test_fused_kernel_network_does_not_depend_on_its_batch_and_matches_the_torch_path():
    """Networks 3..4 alone equal the same networks in a batch of 0..6 bitwise (one generator per network); the
    torch float32 path gives the same numbers to float32 rounding at N = 256 and 40 layers (three draw blocks)."""
    kw = dict(activation="tanh", width=256, depth=40, sigma_w2=(1.2, 1.8, 2.6), sigma_b2=0.05, seed=5)
    lam_all, q_all = tangent_chain(ChainSpec(n_networks=7, **kw), 10, "float32", "fused")
    lam_two, q_two = tangent_chain(ChainSpec(n_networks=2, first_network=3, **kw), 10, "float32", "fused")
    assert torch.equal(lam_all[:, 3:5], lam_two) and torch.equal(q_all[:, 3:5], q_two)
    lam_t, q_t = tangent_chain(ChainSpec(n_networks=7, **kw), 10, "float32", "torch")
    assert (lam_all - lam_t).abs().max() < 1e-6 and ((q_all / q_t) - 1).abs().max() < 1e-5


def test_fused_kernel_drops_the_same_dead_relu_networks_as_the_torch_path():
    """Bias-free ReLU at N = 4: a layer with every unit off (p = 1/16) kills the tangent; the exponent is NaN or
    -inf in both paths, the same networks."""
    spec = ChainSpec(activation="relu", width=4, depth=8, sigma_w2=(2.0,), sigma_b2=0.0, n_networks=300, seed=1)
    lam_f, _ = tangent_chain(spec, 2, "float32", "fused")
    lam_t, _ = tangent_chain(spec, 2, "float32", "torch")
    dead_f, dead_t = ~torch.isfinite(lam_f), ~torch.isfinite(lam_t)
    assert 10 < int(dead_t.sum()) < 290 and torch.equal(dead_f, dead_t)
    assert torch.equal(lam_f.isnan(), lam_t.isnan()) and int(lam_t.isnan().sum()) > 10  # NaN stays NaN
    # at N = 4 a network with one active unit is ill-conditioned: torch's own float32 path is 3e-3 from float64
    lam_64, _ = tangent_chain(spec, 2, "float64", "torch")
    err_f, err_t = ((lam - lam_64)[~dead_t].abs().max() for lam in (lam_f, lam_t))
    assert err_f <= 2 * err_t + 1e-6, (err_f, err_t)


@pytest.mark.parametrize(
    "kw, call, field",
    [
        (dict(activation="gelu"), dict(dtype="float32", kernel="fused"), "activation"),
        (dict(activation="tanh", device="meta"), dict(dtype="float32", kernel="fused"), "device"),
        (dict(activation="tanh"), dict(dtype="float64", kernel="fused"), "dtype"),
        (dict(activation="tanh"), dict(dtype="float32", kernel="numba"), "kernel"),
    ],
)
def test_fused_kernel_refuses_what_it_cannot_run(kw, call, field):
    spec = ChainSpec(width=8, depth=3, sigma_w2=(1.0,), sigma_b2=0.0, n_networks=2, seed=0, **kw)
    with pytest.raises(ValueError) as err:
        tangent_chain(spec, 0, **call)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{field}=") and "allowed" in msg


def test_auto_kernel_falls_back_to_torch_without_a_compiler(monkeypatch, tmp_path):
    """No compiler: `available()` says why, auto picks torch, and an explicit fused request fails with that reason;
    with the compiler back, auto picks fused for tanh on the CPU and torch for gelu."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("GINN_LAB_CACHE", str(tmp_path / "cache"))
    native.reset()
    try:
        reason = native.available()
        assert reason is not None and "CC=" in reason and "not found" in reason
        assert choose_kernel("auto", "tanh", "cpu") == "torch"
        with pytest.raises(native.NativeUnavailable):
            spec = ChainSpec(activation="tanh", width=4, depth=2, sigma_w2=(1.0,), sigma_b2=0.0, n_networks=1)
            tangent_chain(spec, 0, "float32", "fused")
    finally:
        monkeypatch.undo()
        native.reset()
    assert choose_kernel("auto", "tanh", "cpu") == "fused" and choose_kernel("auto", "gelu", "cpu") == "torch"
    assert choose_kernel("torch", "tanh", "cpu") == "torch"


@pytest.mark.parametrize(
    "overrides, keys",
    [
        (["chain.network_width=4096", "chain.kernel=fused", "net.activation=gelu"], ["chain.kernel", "net.activation"]),
        (["chain.network_width=0", "chain.kernel=torch"], ["chain.kernel", "chain.network_width"]),
        (
            ["chain.network_width=4096", "chain.kernel=fused", "net.xi=0.5", "fluctuations.n_seeds=0"],
            ["chain.kernel", "net.xi"],
        ),
    ],
)
def test_mlp_sweep_rejects_a_kernel_it_cannot_use(overrides, keys):
    """fused where it cannot run, or any kernel while the chain crossing is off (it would be ignored): one line
    naming the key, before any compute; auto and torch with the crossing on are accepted."""
    with pytest.raises(ConfigError) as err:
        validate_full("mlp_sweep", overrides)
    msg = str(err.value)
    assert "\n" not in msg and all(names_a_key(msg, [k]) for k in keys) and "allowed" in msg
    validate_full("mlp_sweep", ["chain.network_width=4096", "chain.kernel=torch", "net.activation=gelu"])
    validate_full("mlp_sweep", ["chain.network_width=4096", "chain.kernel=fused", "net.activation=erf"])


@pytest.mark.parametrize("activation", ["tanh", "erf", "relu", "linear"])
def test_fused_activation_values_are_libm_to_float32_rounding(activation):
    """The kernel's phi and phi' (rational tanh and erf, Cephes exp) against float64 torch on 2e5 points over
    [-12, 12]: within 4e-7 absolute for phi and 4e-7 relative for phi' (erf' spans 1e-63 .. 1.13; a wrong
    polynomial coefficient is >= 1e-5). erf' is compared at the float32 square h * h the kernel exponentiates
    (its rounding alone moves exp(-h^2) by h^2 x 6e-8, 2e-6 at h = 6, in the torch float32 path too)."""
    x = torch.linspace(-12, 12, 200_001, dtype=torch.float32)
    a, d = native.activation_values(activation, x)
    ref = {"tanh": torch.tanh, "erf": torch.erf, "relu": torch.relu, "linear": lambda v: v}[activation]
    dref = {
        "tanh": lambda v: 1 - torch.tanh(v) ** 2,
        "erf": lambda v: 2 / np.sqrt(np.pi) * torch.exp(-(v.float() * v.float()).double()),
        "relu": lambda v: (v > 0).double(),
        "linear": torch.ones_like,
    }[activation]
    x64 = x.double()
    assert (a.double() - ref(x64)).abs().max() < 4e-7
    dr = dref(x64)
    keep = dr > 1e-37  # erf' below the float32 normals is clamped at exp(-87) (its weight d^2 < 1e-74)
    assert (
        ((d.double()[keep] - dr[keep]).abs() / dr[keep].clamp_min(1e-300)).max() < 4e-7
        if activation != "tanh"
        else (d.double() - dr).abs().max() < 8e-7
    )


def test_an_unwritable_cache_folder_is_a_reason_not_a_crash(monkeypatch, tmp_path):
    """A read-only cache (a cluster's home): `available()` names GINN_LAB_CACHE; auto falls back to torch."""
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder should be: mkdir fails
    monkeypatch.setenv("GINN_LAB_CACHE", str(blocked / "cache"))
    native.reset()
    try:
        reason = native.available()
        assert reason is not None and "GINN_LAB_CACHE" in reason and "\n" not in reason
        assert choose_kernel("auto", "erf", "cpu") == "torch"
    finally:
        monkeypatch.undo()
        native.reset()


def test_a_failed_build_names_the_compilers_error_line_once(monkeypatch, tmp_path):
    """A compiler that fails: the reason quotes its `error:` line (not gcc's closing 'compilation terminated.'),
    and the failure is remembered: one build attempt (two invocations, with and without -march=native) per process."""
    log = tmp_path / "calls"
    fake = tmp_path / "fakecc"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo fake 1.0; exit 0; fi\necho call >> {log}\n'
        'echo "k.c:3:5: error: unknown type name bad" >&2\necho "compilation terminated." >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("GINN_LAB_CACHE", str(tmp_path / "cache"))
    native.reset()
    try:
        reason = native.available()
        assert reason is not None and "error: unknown type name bad" in reason and "\n" not in reason
        assert native.available() == reason and choose_kernel("auto", "tanh", "cpu") == "torch"
        assert log.read_text().count("call") == 2
    finally:
        monkeypatch.undo()
        native.reset()


def test_an_empty_cache_variable_means_the_default_folder(monkeypatch, tmp_path):
    """GINN_LAB_CACHE= (empty) is unset, not the current folder (a bare file name would send dlopen searching the
    library path)."""
    monkeypatch.setenv("GINN_LAB_CACHE", "")
    monkeypatch.chdir(tmp_path)
    native.reset()
    try:
        assert native.available() is None and not list(tmp_path.iterdir())
    finally:
        monkeypatch.undo()
        native.reset()


def test_the_bits_do_not_depend_on_the_simd_width(monkeypatch, tmp_path):
    """The kernel built for this CPU (-march=native: AVX-512 here) and a portable build (SSE2: 4-wide) give
    bitwise the same exponents and q_hat^L (fixed lane sums, no FMA contraction): a dvc.lock made on one machine
    holds on another. N = 37 and 300: a partial last lane block; tanh, erf with the gauge sums."""
    for kw in (
        dict(activation="tanh", width=300, sigma_b2=0.05),
        dict(activation="erf", width=37, sigma_b2=0.1, xi=0.5),
    ):
        spec = ChainSpec(depth=21, sigma_w2=(1.3, 2.2), n_networks=4, seed=2, **kw)
        native.reset()
        lam_native, q_native = tangent_chain(spec, 3, "float32", "fused")
        monkeypatch.setenv("GINN_LAB_CACHE", str(tmp_path))
        try:
            native._LOADED["lib"] = native._load(arches=((),))
            lam_plain, q_plain = tangent_chain(spec, 3, "float32", "fused")
        finally:
            monkeypatch.undo()
            native.reset()
        assert torch.equal(lam_native, lam_plain) and torch.equal(q_native, q_plain)
