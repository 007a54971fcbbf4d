"""The one list of stages: name, config schema, cross-field checks, compute/write, DVC outputs.

The CLI entry points (`python -m pipeline.<stage>`, console scripts `ginn-<stage>`), the schema each stage's
config is validated against (registered in Hydra's ConfigStore by `pipeline.config.store`), the parameters a
run logs and the DVC stage definitions (checked against `dvc.yaml` by `tests/stages/test_dag.py`) all follow
from `STAGES`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config import schema as sc
from pipeline.config.errors import ConfigError
from pipeline.config.sources import compose_raw, job_sources, leaves, override_keys, parse_overrides
from pipeline.config.validate import (
    _show_value,
    check_booleans,
    check_fits_memory,
    check_known_keys,
    check_override_booleans,
    check_ranges,
    format_bytes,
    physical_memory_bytes,
)


@dataclass(frozen=True)
class StageSpec:
    """One pipeline stage."""

    stage: str
    schema: type  # its config dataclass (pipeline.config.schema): exactly the keys the stage reads
    summary: str
    outs: tuple[str, ...]  # DVC-owned outputs under outputs/<name>/ (metrics.json is always written too)
    multirun: bool = False  # DVC runs it as a Hydra multirun plus `collect`
    check: Callable[[Any], None] | None = None  # cross-field checks on the validated config object
    name: Callable[[Any], str] | None = None  # the MLflow run name, from the validated config
    inactive: Callable[[Any], dict[str, str]] | None = None  # keys (or "prefix.") the config turns off -> why

    @property
    def module(self) -> str:
        return f"pipeline.stages.{self.stage}"

    def run_name(self, cfg) -> str:
        """What the run is, for the MLflow UI (never MLflow's random name generator)."""
        return self.name(cfg) if self.name else self.stage

    def functions(self) -> tuple[Callable, Callable]:
        """(compute, write) of the stage module (imported on demand: each stage pulls in its own deps)."""
        mod = importlib.import_module(self.module)
        return mod.compute, mod.write

    def preflight(self) -> Callable[[Any], None] | None:
        """The stage module's `preflight(cfg)`: checks of the run's environment (input files) before the run."""
        return getattr(importlib.import_module(self.module), "preflight", None)


# ---- cross-field checks (each raises ConfigError with one line naming the key) ----------------


def _check_engine(cfg, widths: list[int], n_sigma: int, width_key: str = "net.width", grid_key: str = "") -> None:
    """Device, burn-in, spectrum size and memory budget of the finite-width engine."""
    eng, net = cfg.engine, cfg.net
    if not (eng.device == "cpu" or eng.device.startswith("cuda")):
        raise ConfigError(f"engine.device={eng.device!r}: allowed cpu, cuda, cuda:N")
    if eng.device.startswith("cuda"):
        import torch  # lazy: CLI start-up stays fast where no check needs torch

        if not torch.cuda.is_available():
            raise ConfigError(f"engine.device={eng.device!r}: CUDA is not available on this machine")
    if eng.burn_in >= net.depth:
        raise ConfigError(f"engine.burn_in={eng.burn_in}: must be < net.depth={net.depth}")
    if eng.method == sc.EngineMethod.chain and net.weights != sc.WeightDist.gaussian:
        raise ConfigError(
            f"engine.method=chain with net.weights={net.weights.value}: the kernel chain is exact for fresh gaussian "
            "weights only (allowed: net.weights=gaussian, or engine.method=matrix)"
        )
    _check_replica_eps("engine.eps", eng.eps, eng.dtype.value)
    if eng.n_spectrum > min(widths):
        raise ConfigError(f"engine.n_spectrum={eng.n_spectrum}: must be <= the width ({min(widths)})")
    _check_budget(cfg)
    _check_engine_call(
        cfg, max(widths), n_sigma, eng.n_seeds, net.depth, width_key=width_key, grid_key=grid_key or "the sigma_w2 grid"
    )


def _check_budget(cfg) -> None:
    """The memory budget is memory the engine may really use: at most this machine's physical memory."""
    phys = physical_memory_bytes()
    if cfg.engine.memory_budget_gb * 2**30 > phys:
        raise ConfigError(
            f"engine.memory_budget_gb={cfg.engine.memory_budget_gb:g}: more than this machine's physical memory "
            f"({format_bytes(phys)}; allowed <= {phys / 2**30:.3g})"
        )


def _check_engine_call(
    cfg,
    width: int,
    n_sigma: int,
    n_seeds: int,
    depth: int,
    n_spectrum: int | None = None,
    dtype: str | None = None,
    width_key: str = "net.width",
    seeds_key: str = "engine.n_seeds",
    depth_key: str = "net.depth",
    grid_key: str = "the sigma_w2 grid",
) -> None:
    """One engine call fits, before compute: one network's working set in the memory budget (and physical
    memory), and the per-layer measurements (float64, seeds x sigma_w2 x inputs x layers) in physical memory.
    Each error names the size keys and the memory in a unit that shows it."""
    from pipeline.dynamics.engine_spec import ensemble_spec  # lazy: torch, for the engine stages' checks only
    from pipeline.dynamics.ensemble import _bytes_per_seed

    eng = cfg.engine
    k = eng.n_spectrum if n_spectrum is None else n_spectrum
    over = dict(width=width, depth=depth, n_seeds=n_seeds, n_spectrum=k, dtype=dtype or eng.dtype.value)
    net = dict(activation="tanh", sigma_b2=0.0, width=width, xi=1.0)  # the sizes matter here, not these values
    spec = ensemble_spec(cfg.net, eng, (1.0,) * n_sigma, cfg.seed, **{**net, **over})
    per = _bytes_per_seed(spec)
    p = eng.n_pairs
    # every size key the working set grows with, with its value: the line names the one that is too large
    spectrum = f", engine.n_spectrum={k}" if k else ""
    sizes = f"{width_key}={width}, {grid_key} ({n_sigma} points), engine.n_pairs={p}{spectrum}"
    check_fits_memory(sizes, per, f"one network with {n_sigma} sigma_w2 values")
    if per > eng.memory_budget_gb * 2**30:
        raise ConfigError(
            f"engine.memory_budget_gb={eng.memory_budget_gb:g} is too small for {sizes}: one network "
            f"with {n_sigma} sigma_w2 values needs {format_bytes(per)} (raise the budget or lower these sizes)"
        )
    measured = 8 * n_seeds * n_sigma * (depth + 1) * (9 * p + k)
    check_fits_memory(
        f"{seeds_key}={n_seeds}, {depth_key}={depth}, {grid_key} ({n_sigma} points), engine.n_pairs={p}{spectrum}",
        measured,
        "the per-layer measurements",
    )


def _check_replica_eps(key: str, eps: float, dtype: str) -> None:
    """A replica separation within 100 float steps of the signal is rounding noise, not a perturbation: its
    squared relative error (>= 1e-4) biases every layer's log growth upward (gelu float32 eps=1e-6)."""
    import torch  # noqa: PLC0415 - lazy: only the engine stages' checks need torch

    floor = 100 * torch.finfo(getattr(torch, dtype)).eps
    if eps < floor:
        raise ConfigError(
            f"{key}={eps:g} with dtype {dtype}: the replica difference would be float rounding noise "
            f"(allowed: >= {floor:.2g}, or engine.dtype=float64)"
        )


def _check_weights(cfg, key: str = "net.xi") -> None:
    """Orthogonal weights have no gauge structure: xi != 1 would be silently ignored."""
    if cfg.net.weights == sc.WeightDist.orthogonal and cfg.net.xi != 1.0:
        raise ConfigError(
            f"{key}={cfg.net.xi:g} with net.weights=orthogonal: the gauge parameter applies to gaussian weights "
            "only (allowed: xi=1 or net.weights=gaussian)"
        )


def _positive_grid(grid, key: str) -> None:
    if grid.start <= 0:
        raise ConfigError(f"{key}.start={grid.start:g}: must be > 0 (sigma_w2 is a variance)")


def _check_theory(cfg) -> None:
    keys = [(c.activation.value, c.sigma_b2) for c in cfg.theory.one_loop.cases]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"theory.one_loop.cases: duplicate (activation, sigma_b2) entries {keys}")
    if cfg.theory.sigma_w2.start <= 0:
        _positive_grid(cfg.theory.sigma_w2, "theory.sigma_w2")
    if cfg.theory.sigma_b2.start < 0:
        raise ConfigError(f"theory.sigma_b2.start={cfg.theory.sigma_b2.start:g}: must be >= 0")
    th = cfg.theory  # lower bounds: 8 float64 columns per grid cell and per layer of the iterates
    cells = len(set(th.activations)) * th.sigma_w2.num * th.sigma_b2.num
    check_fits_memory(f"theory.sigma_w2.num={th.sigma_w2.num}, theory.sigma_b2.num={th.sigma_b2.num}", 64 * cells,
                      f"the mean-field grid ({cells} points)")  # fmt: skip
    check_fits_memory(f"net.depth={cfg.net.depth}", 64 * (cfg.net.depth + 1), "the layer iterates")
    if th.quad.n_nodes is not None:  # the rule keeps 160 float64 Hermite functions per node (quadrature.gauss_rule)
        check_fits_memory(f"theory.quad.n_nodes={th.quad.n_nodes}", 8 * 160 * th.quad.n_nodes, "the quadrature rule")


def _check_mlp_sweep(cfg) -> None:
    _positive_grid(cfg.grid.sigma_w2, "grid.sigma_w2")
    _check_weights(cfg)
    fl, net = cfg.fluctuations, cfg.net
    if fl.n_seeds == 1:
        raise ConfigError("fluctuations.n_seeds=1: a variance over networks needs >= 2 (allowed: 0 = off, or >= 2)")
    if fl.n_seeds and net.width in fl.widths and not net.one_loop_applies:
        raise ConfigError(
            f"fluctuations.n_seeds={fl.n_seeds} with net.xi={net.xi:g}, net.weights={net.weights.value}: the "
            "fluctuation study tests one loop, derived for i.i.d. gaussian weights, and would be skipped "
            "(allowed: fluctuations.n_seeds=0, or net.xi=1 with net.weights=gaussian)"
        )
    _check_chain_kernel(cfg)
    grid_key = "grid.sigma_w2.num + grid.refine" if cfg.grid.refine else "grid.sigma_w2.num"
    _check_engine(cfg, [cfg.net.width], cfg.grid.sigma_w2.num + cfg.grid.refine, grid_key=grid_key)
    if fl.n_seeds and net.width in fl.widths:
        _check_engine_call(cfg, net.width, len(fl.sigma_w2), fl.n_seeds, net.depth, n_spectrum=0,
                           seeds_key="fluctuations.n_seeds", grid_key="fluctuations.sigma_w2")  # fmt: skip


def _check_chain_kernel(cfg) -> None:
    """chain.kernel: only with the chain crossing on; `fused` only where the fused kernel runs (and builds)."""
    ch = cfg.chain
    if ch.kernel == sc.ChainKernel.auto:
        return
    if not ch.network_width:
        raise ConfigError(
            f"chain.kernel={ch.kernel.value} with chain.network_width=0: the chain crossing is off and the kernel "
            "would be ignored (allowed: chain.kernel=auto, or chain.network_width > 0)"
        )
    if not cfg.net.one_loop_applies:  # the crossing is measured around the one-loop prediction: i.i.d. weights only
        raise ConfigError(
            f"chain.kernel={ch.kernel.value} with net.xi={cfg.net.xi:g}, net.weights={cfg.net.weights.value}: the "
            "chain crossing runs only where one loop applies and the kernel would be ignored (allowed: "
            "chain.kernel=auto, or net.xi=1 with net.weights=gaussian)"
        )
    if ch.kernel == sc.ChainKernel.fused:
        from pipeline.dynamics import native  # lazy: may build the kernel (once per machine)

        other = "or chain.kernel=auto, which takes the torch path there"
        if cfg.net.activation.value not in native.ACTIVATIONS:
            raise ConfigError(f"chain.kernel=fused with net.activation={cfg.net.activation.value}: allowed "
                              f"net.activation {', '.join(native.ACTIVATIONS)} ({other})")  # fmt: skip
        if cfg.engine.device != "cpu":
            raise ConfigError(f"chain.kernel=fused with engine.device={cfg.engine.device}: allowed cpu ({other})")
        reason = native.available()
        if reason:
            raise ConfigError(f"chain.kernel=fused: {reason} ({other})")


def _check_lyapunov(cfg) -> None:
    ly = cfg.lyapunov
    if not ly.curves:
        raise ConfigError("lyapunov.curves=[]: needs at least 1 entry")
    for i, c in enumerate(ly.curves):
        _positive_grid(c.sigma_w2, f"lyapunov.curves[{i}].sigma_w2")
    keys = [(c.activation.value, c.sigma_b2) for c in ly.curves]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"lyapunov.curves: duplicate (activation, sigma_b2) entries {keys}")
    if cfg.engine.burn_in >= ly.relu_finite_width.depth:
        raise ConfigError(
            f"lyapunov.relu_finite_width.depth={ly.relu_finite_width.depth}: "
            f"must be > engine.burn_in={cfg.engine.burn_in}"
        )
    for e in ly.eps_check.eps:  # the eps check runs in float64
        _check_replica_eps("lyapunov.eps_check.eps", e, "float64")
    _check_weights(cfg)
    _check_engine(cfg, [cfg.net.width], max(c.sigma_w2.num for c in ly.curves), grid_key="lyapunov.curves.sigma_w2.num")
    rfw, key = ly.relu_finite_width, "lyapunov.relu_finite_width"
    for width in rfw.widths:  # every size before compute: the last width must not fail after the others ran
        _check_engine_call(cfg, width, len(rfw.sigma_w2), rfw.n_seeds, rfw.depth, n_spectrum=0,
                           width_key=f"{key}.widths", seeds_key=f"{key}.n_seeds", depth_key=f"{key}.depth",
                           grid_key=f"{key}.sigma_w2")  # fmt: skip
    _check_engine_call(cfg, cfg.net.width, 1, cfg.engine.n_seeds, cfg.net.depth, n_spectrum=0, dtype="float64")


def _check_gauge_scan(cfg) -> None:
    ga = cfg.gauge
    if not ga.cases:
        raise ConfigError("gauge.cases=[]: needs at least 1 entry")
    keys = [(c.activation.value, c.sigma_b2) for c in ga.cases]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"gauge.cases: duplicate (activation, sigma_b2) entries {keys}")
    _positive_grid(ga.sigma_w2, "gauge.sigma_w2")
    if cfg.net.weights.value == "orthogonal":
        raise ConfigError("net.weights=orthogonal: the gauge scan sweeps xi of gaussian weights (allowed: gaussian)")
    _check_engine(cfg, list(ga.widths), ga.sigma_w2.num, width_key="gauge.widths", grid_key="gauge.sigma_w2.num")


def _check_field(cfg) -> None:
    """The field stage's checks need its theory: they live in its module (imported for this stage only)."""
    importlib.import_module("pipeline.stages.field").check_config(cfg)


def _check_ginn_train(cfg) -> None:
    """Options the chosen optimizer or activation would silently ignore are rejected."""
    g, tr = cfg.ginn, cfg.ginn.train
    if tr.optimizer.value != "langevin":
        if tr.temperature != 0.0:
            raise ConfigError(
                f"ginn.train.temperature={tr.temperature:g}: only the langevin optimizer has a temperature "
                f"(optimizer={tr.optimizer.value}; allowed: 0, or ginn.train.optimizer=langevin)"
            )
        if tr.xi_gf != float("inf"):
            raise ConfigError(
                f"ginn.train.xi_gf={tr.xi_gf:g}: gauge fixing acts in Langevin training only "
                f"(optimizer={tr.optimizer.value}; allowed: inf, or ginn.train.optimizer=langevin)"
            )
    # lower bounds of the weights a model holds: a GINN layer keeps modulus and phase (8 bytes per link)
    if g.model.value != "mlp":
        check_fits_memory(f"ginn.width={g.width}, ginn.depth={g.depth}", 8 * g.depth * g.width**2, "the GINN's weights")
    ta, gf = g.trainability, g.gauge_fixing
    if ta.enabled:
        check_fits_memory(f"ginn.trainability.width={ta.width}, ginn.trainability.depths={max(ta.depths)}",
                          4 * max(ta.depths) * ta.width**2, "the trainability map's deepest model")  # fmt: skip
    if gf.enabled:
        check_fits_memory(f"ginn.gauge_fixing.width={gf.width}, ginn.gauge_fixing.depth={gf.depth}",
                          8 * gf.depth * gf.width**2, "the gauge-fixing scan's GINN")  # fmt: skip
    if g.activation.value != "modrelu" and g.modrelu_offset != sc.GinnSettings().modrelu_offset:
        raise ConfigError(
            f"ginn.modrelu_offset={g.modrelu_offset:g}: used by ginn.activation=modrelu only "
            f"(activation={g.activation.value})"
        )
    if g.model.value == "mlp" and g.gauge_fixing.enabled:
        raise ConfigError("ginn.gauge_fixing.enabled=true with ginn.model=mlp: the gauge-fixing scan trains a GINN")
    gf = g.gauge_fixing
    if gf.enabled:  # the gauge sector is measured after burn_in_steps: at least 2 steps must remain
        from pipeline.data.datasets import load  # noqa: PLC0415 - lazy: scikit-learn's data only for this check

        n_train = len(load(g.data.name.value, g.data.seed, g.data.val_fraction, g.data.test_fraction).y_train)
        steps = gf.epochs * math.ceil(n_train / tr.batch_size)
        if gf.burn_in_steps > steps - 2:
            raise ConfigError(
                f"ginn.gauge_fixing.burn_in_steps={gf.burn_in_steps}: must be <= {steps - 2} (the scan runs "
                f"{steps} steps = ginn.gauge_fixing.epochs={gf.epochs} x {math.ceil(n_train / tr.batch_size)} "
                f"batches of ginn.train.batch_size={tr.batch_size}, and needs >= 2 after the burn-in)"
            )
    if g.model.value == "ginn" and not g.trainability.enabled and g.mlp_sigma_b2 != sc.GinnSettings().mlp_sigma_b2:
        raise ConfigError(
            f"ginn.mlp_sigma_b2={g.mlp_sigma_b2:g}: used by the MLP only, and no MLP is trained (ginn.model=ginn, "
            "ginn.trainability.enabled=false; allowed: ginn.model=mlp|both or ginn.trainability.enabled=true)"
        )


def report_preflight(cfg) -> None:  # removed after report.py defines `preflight` (StageSpec.preflight)
    """Every stage output the report reads exists, before a run or an output folder is created."""
    report = importlib.import_module("pipeline.stages.report")
    missing = report.missing_inputs(cfg.report.inputs)
    if missing:
        raise ConfigError(report.missing_inputs_message(cfg.report.inputs, missing))


# ---- options inert under the rest of the config: an override of one would be silently ignored ----------


def _inactive_theory(cfg) -> dict[str, str]:
    if not cfg.theory.one_loop.enabled:
        return {"theory.one_loop.": "theory.one_loop.enabled=false"}
    if not cfg.net.one_loop_applies:  # the stage skips the one-loop tables with a warning
        return {"theory.one_loop.": f"net.xi={cfg.net.xi:g} (one loop is derived for i.i.d. weights, xi = 1)"}
    return {}


def _inactive_mlp_sweep(cfg) -> dict[str, str]:
    out = {}
    if cfg.grid.refine == 0:
        out["grid.refine_halfwidth"] = "grid.refine=0 (no refinement)"
    fl = cfg.fluctuations
    if fl.n_seeds == 0:
        out["fluctuations.sigma_w2"] = out["fluctuations.widths"] = "fluctuations.n_seeds=0 (the study is off)"
    elif cfg.net.width not in fl.widths and not _in_multirun():
        # a single job runs the study only at a listed width; a sweep over widths runs it in the jobs listed
        out["fluctuations."] = (
            f"net.width={cfg.net.width} (the study runs only at fluctuations.widths={list(fl.widths)}; "
            "allowed: list this width, or set fluctuations.n_seeds=0)"
        )
    return out


def _inactive_ginn_train(cfg) -> dict[str, str]:
    g, out = cfg.ginn, {}
    if not g.trainability.enabled:
        out["ginn.trainability."] = "ginn.trainability.enabled=false"
    if not g.gauge_fixing.enabled:
        out["ginn.gauge_fixing."] = "ginn.gauge_fixing.enabled=false"
        if g.train.optimizer.value != "langevin":  # the Langevin noise: langevin training or the gauge-fixing scan
            out["ginn.train.noise_seed"] = (
                f"ginn.train.optimizer={g.train.optimizer.value} and ginn.gauge_fixing.enabled=false (only Langevin "
                "training draws noise; allowed: ginn.train.optimizer=langevin or ginn.gauge_fixing.enabled=true)"
            )
    return out


def _in_multirun() -> bool:
    """Inside a job of a Hydra multirun (its overrides are shared by every job of the sweep)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - no Hydra context: a single run
        return False


def _inactive(spec: StageSpec, cfg) -> dict[str, str]:
    return {**(spec.inactive(cfg) if spec.inactive is not None else {}), **_tracking_off(cfg)}


def _turned_off(key: str, off: dict[str, str]) -> str | None:
    """Why `key` is turned off (a key of `off`, or under a "prefix." of it other than its `enabled` switch)."""
    for prefix, why in off.items():
        is_switch = prefix.endswith(".") and key == prefix + "enabled"
        if not is_switch and (key == prefix or (prefix.endswith(".") and key.startswith(prefix))):
            return why
    return None


def check_overrides(spec: StageSpec, cfg, overrides) -> None:
    """Command-line values: a boolean is true or false (OmegaConf would read 5 as true), and no key is one the
    rest of the config turns off (`ginn.trainability.width` with `ginn.trainability.enabled=false`): its value
    would be silently ignored. Keys the stage does not read at all never get here (its schema rejects them)."""
    check_override_booleans(parse_overrides(overrides), spec.schema)
    off = _inactive(spec, cfg)
    for key in override_keys(overrides):
        why = _turned_off(key, off)
        if why:
            raise ConfigError(f"{key}: not used with {why}: the value would be ignored")


def check_config_sources(cfg, config_name: str, overrides: list[str]) -> None:
    """The checks of a command-line value applied to a value from a file (a preset in `experiments/<stage>/`, a
    `--config-dir`/`--config-name` file): the job's config files are composed again without the schema, so each
    value is seen as written (a boolean field holds true/false, not 5 or 0) and only the keys a file sets appear
    (the defaults live in the schema); a key the rest of the config turns off (`inactive`, unless its switch
    was set on the command line) is a ConfigError naming it and its source."""
    spec = get_stage(cfg.stage)
    raw = compose_raw(config_name, overrides)
    check_booleans(raw, spec.schema, "")
    cl_keys = set(override_keys(overrides))
    off = _inactive(spec, cfg)
    for key, value in leaves(raw):
        why = _turned_off(key, off)
        if why and not _set_on_command_line(key, cl_keys) and why.split("=", 1)[0] not in cl_keys:
            where = _source(key, config_name, overrides)
            raise ConfigError(
                f"{key}={_show_value(value)}: not used with {why}: the value set {where} would be ignored"
            )


def _set_on_command_line(key: str, cl_keys: set[str]) -> bool:
    return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in cl_keys)


def _source(key: str, config_name: str, overrides: list[str]) -> str:
    """Where a file value came from: the experiment preset, else the primary config."""
    choice = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "experiment"), None)
    if choice in (None, "null"):
        return f"in config {config_name!r}"
    bare = dict(leaves(compose_raw(config_name, [o for o in overrides if not o.lstrip("+").startswith("experiment=")])))
    return f"in config {config_name!r}" if key in bare else f"by experiment={choice}"


def _tracking_off(cfg) -> dict[str, str]:
    """Every stage: without tracking there is no run to resume and no store, so `resume` and `tracking.*` would
    be ignored."""
    if cfg.tracking.enabled:
        return {}
    why = "tracking.enabled=false (no MLflow run: nothing to resume, no store)"
    return {"resume": why, "tracking.": why}


def _hydra_overrides() -> list[str]:
    """The current Hydra job's command-line overrides (empty outside a Hydra app)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    except Exception:  # noqa: BLE001 - no Hydra context: nothing to check
        return []


STAGES: dict[str, StageSpec] = {
    s.stage: s
    for s in (
        StageSpec(
            "theory",
            sc.TheoryConfig,
            "mean-field maps, fixed points, chi1, depth scales, critical lines (docs/science.md §1)",
            ("theory.csv", "critical_line.csv", "iterates.csv", "one_loop.csv", "one_loop_crossings.csv", "figures"),
            check=_check_theory,
            inactive=_inactive_theory,
            name=lambda c: f"theory {','.join(a.value for a in c.theory.activations)} xi={c.net.xi:g}",
        ),
        StageSpec(
            "mlp_sweep",
            sc.MlpSweepConfig,
            "one (activation, width, depth, sigma_b2, xi) job over a sigma_w2 grid vs theory (§2)",
            (
                "sweep.csv",
                "layers.csv",
                "finite_width.csv",
                "crossings.csv",
                "one_loop_crossings.csv",
                "fluctuations.csv",
                "figures",
            ),
            multirun=True,
            check=_check_mlp_sweep,
            inactive=_inactive_mlp_sweep,
            name=lambda c: (
                f"{c.net.activation.value} N={c.net.width} L={c.net.depth} sb2={c.net.sigma_b2:g}"
                + (f" xi={c.net.xi:g}" if c.net.xi != 1.0 else "")
            ),
        ),
        StageSpec(
            "lyapunov",
            sc.LyapunovConfig,
            "two-replica and tangent exponents, QR spectrum, crossings, exact finite-width ReLU (§2-3)",
            (
                "lyapunov.csv",
                "zero_crossings.csv",
                "relu_finite_width.csv",
                "eps_check.csv",
                "local_exponents.csv",
                "figures",
            ),
            check=_check_lyapunov,
            name=lambda c: (
                f"lyapunov N={c.net.width} L={c.net.depth} "
                + ",".join(f"{k.activation.value}/{k.sigma_b2:g}" for k in c.lyapunov.curves)
            ),
        ),
        StageSpec(
            "gauge_scan",
            sc.GaugeScanConfig,
            "the gauge parameter xi swept: A_q(xi), length/chaos thresholds, measured vs predicted (§4)",
            ("gauge_scan.csv", "thresholds.csv", "figures"),
            check=_check_gauge_scan,
            name=lambda c: f"gauge_scan L={c.net.depth} N={','.join(map(str, c.gauge.widths))}",
        ),
        StageSpec(
            "field",
            sc.FieldConfig,
            "the kernel as a stochastic field in depth: chain spectra, masses, plateaus vs the linear sector (§7b)",
            ("spectra.csv", "spectrum_curves.csv", "one_loop_fit.csv", "mass_theory.csv", "figures"),
            check=_check_field,
            name=lambda c: f"field N={','.join(map(str, c.field.widths))} L={c.field.depth}",
        ),
        StageSpec(
            "ginn_train",
            sc.GinnTrainConfig,
            "GINN vs MLP on digits, trainability map, Langevin gauge-fixing scan (§5)",
            (
                "history.csv",
                "ginn.pt",
                "mlp.pt",
                "trainability.csv",
                "trainability_boundary.csv",
                "trainability_lmax.csv",
                "trainability_law.csv",
                "gauge_fixing.csv",
                "gauge_spectra.csv",
                "figures",
            ),
            check=_check_ginn_train,
            inactive=_inactive_ginn_train,
            name=lambda c: (
                f"ginn_train {c.ginn.model.value} {c.ginn.activation.value} N={c.ginn.width} "
                f"L={c.ginn.depth} {c.ginn.data.name.value}"
            ),
        ),
        StageSpec(
            "report",
            sc.ReportConfig,
            "every figure, summary.csv and a self-contained report.html from the stage outputs",
            ("report.html", "figures", "summary.csv"),
        ),
    )
}


def get_stage(name: str) -> StageSpec:
    """The stage called `name` (one-line ConfigError listing the stages otherwise)."""
    try:
        return STAGES[name]
    except KeyError:
        raise ConfigError(f"stage={name!r}: allowed {', '.join(STAGES)}") from None


def _in_hydra_job() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.initialized()
    except Exception:  # noqa: BLE001
        return False


def check_stage(
    cfg, overrides=None, preflight: bool | None = None, sources: tuple[str, list[str]] | None = None
) -> None:
    """All cross-field checks of the stage `cfg.stage` (after the schema's keys, types and ranges), the
    command-line checks (`overrides`: default, the Hydra job's), the same checks for values from the config
    files (`sources`: (config name, overrides) to compose; default, the Hydra job's, see
    `check_config_sources`), and, for a real run (`preflight`: default, inside a Hydra job), the stage's
    preflight checks of its input files."""
    spec = get_stage(cfg.stage)
    if spec.check is not None:
        spec.check(cfg)
    check_overrides(spec, cfg, _hydra_overrides() if overrides is None else overrides)
    sources = job_sources() if sources is None else sources
    if sources is not None:
        check_config_sources(cfg, *sources)
    run_preflight = spec.preflight() or (report_preflight if spec.stage == "report" else None)
    if run_preflight is not None and (_in_hydra_job() if preflight is None else preflight):
        run_preflight(cfg)


def validate_stage(cfg: DictConfig, stage: str, overrides: list[str] = (), **check: Any) -> Any:
    """Every check a stage's config gets before compute, as the validated config object: the keys, types and
    choices of the stage's schema (merged onto it, whatever the config's own defaults list), resolved values,
    ranges (`check_ranges`), then `check_stage` (`check`: its keyword arguments). A failure is a ConfigError:
    one line naming the key."""
    spec = get_stage(stage)
    tree = OmegaConf.to_container(cfg, resolve=False)
    check_known_keys(tree, spec.schema)  # unknown keys first: `+key=1` adds one even to a structured config
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.schema), cfg))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg) from None
    check_ranges(obj)
    if obj.stage != stage:
        raise ConfigError(f"stage={obj.stage!r}: this entry point runs {stage!r} (leave `stage` unset)")
    check_stage(obj, overrides=list(overrides), **check)
    return obj


def logged_params(obj: Any) -> dict:
    """The run's parameters (and what its resume key hashes): every key of the validated config (the schema
    holds only keys the stage reads) except the tracking settings and unset (None) values."""
    return {k: v for k, v in OmegaConf.to_container(OmegaConf.structured(obj), enum_to_str=True).items()
            if k != "tracking" and v is not None}  # fmt: skip
