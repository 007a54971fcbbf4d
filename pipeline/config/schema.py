"""One schema per stage: the keys it reads, their types, defaults (their one home) and allowed ranges.

Each stage's dataclass (`TheoryConfig`, ..., `ReportConfig`, named by `StageSpec.schema` in
`pipeline.stages.registry`) is registered in Hydra's ConfigStore as `schema/<stage>`; `conf/<stage>.yaml`
and the presets in `experiments/<stage>/` set values on top of it. A key the stage does not read is not in
its schema, so Hydra rejects it from every source (command line, preset, `--config-dir` file); a wrong type
or unknown choice too. `validate.check_ranges` then enforces the ranges in the field metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, List, Optional

from pipeline.activations import ACTIVATIONS
from pipeline.config.errors import ConfigError
from pipeline.theory.critical import SIGMA_W2_SEARCH
from pipeline.theory.ginn import MODRELU_OFFSET

# One member per registered activation: adding an activation needs no edit here.
ActivationName = Enum("ActivationName", {name: name for name in ACTIVATIONS}, type=str)


class WeightDist(str, Enum):
    """Weight ensemble of a random layer."""

    gaussian = "gaussian"
    orthogonal = "orthogonal"


def rng(default: Any, **bounds: Any) -> Any:
    """A dataclass field with range bounds (gt, ge, lt, le, min_len, even, ...) checked by `check_ranges`."""
    if isinstance(default, (list, dict)):
        return field(
            default_factory=lambda: list(default) if isinstance(default, list) else dict(default), metadata=bounds
        )
    return field(default=default, metadata=bounds)


class OneLoopRule:
    """Mixin of a net config: whether one loop (docs/science.md §6) applies to it."""

    @property
    def one_loop_applies(self) -> bool:
        """One loop is derived for i.i.d. Gaussian weights: xi = 1 and `weights` gaussian."""
        return self.xi == 1.0 and self.weights == WeightDist.gaussian


# The random network of each stage (docs/science.md notation): only the keys that stage reads.
@dataclass
class TheoryNet(OneLoopRule):
    """The `theory` stage's network: the mean field needs no width; it is derived for Gaussian weights."""

    activation: ActivationName = ActivationName.tanh  # one of pipeline.activations.ACTIVATIONS
    sigma_w2: float = rng(1.5, gt=0.0)  # weight variance: W_ij ~ N(0, sigma_w2 / N) (the iterates' point)
    sigma_b2: float = rng(0.05, ge=0.0)  # bias variance
    depth: int = rng(50, ge=1)  # L
    xi: float = rng(1.0, ge=0.0)  # gauge parameter of the weight ensemble (docs/science.md §4); 1 = i.i.d.
    weights: ClassVar[WeightDist] = WeightDist.gaussian  # not a key: the theory's ensemble


@dataclass
class MlpSweepNet(OneLoopRule):
    """One mlp_sweep job's network (sigma_w2 is the swept grid, `grid.sigma_w2`)."""

    activation: ActivationName = ActivationName.tanh
    sigma_b2: float = rng(0.05, ge=0.0)
    width: int = rng(256, ge=2)  # the engine's input pairs are 2 orthonormal vectors of R^N
    depth: int = rng(50, ge=1)
    xi: float = rng(1.0, ge=0.0)
    weights: WeightDist = WeightDist.gaussian


@dataclass
class LyapunovNet(OneLoopRule):
    """The lyapunov stage's network (each curve sets activation, sigma_b2 and its sigma_w2 grid)."""

    width: int = rng(256, ge=2)
    depth: int = rng(60, ge=1)
    xi: float = rng(1.0, ge=0.0)
    weights: WeightDist = WeightDist.gaussian


@dataclass
class GaugeScanNet:
    """The gauge scan's network (cases, widths and xi values are its `gauge` settings)."""

    depth: int = rng(80, ge=1)
    weights: WeightDist = WeightDist.gaussian


class Precision(str, Enum):
    """Floating-point type of the finite-width engine."""

    float32 = "float32"
    float64 = "float64"


class ChainKernel(str, Enum):
    """How `tangent_chain` computes a layer: auto (fused where it runs, else torch), the tensor path (any
    activation and device, float64 rows), or the fused C loop (CPU, tanh/relu/linear, float32 rows, ~2-3x faster;
    pipeline.dynamics.native)."""

    auto = "auto"
    torch = "torch"
    fused = "fused"


class EngineMethod(str, Enum):
    """How the finite-width engine draws a layer: weight matrices, or the exact kernel chain (science.md §7)."""

    matrix = "matrix"
    chain = "chain"


@dataclass
class EngineConfig:
    """Finite-width ensemble engine (docs/science.md §2–3): ensemble size, measurement, resources."""

    n_seeds: int = rng(8, ge=2)  # networks per sigma_w2 value (>= 2 for a standard error)
    n_pairs: int = rng(2, ge=1)  # input pairs per network
    q0: float = rng(1.0, gt=0.0)  # variance of layer-0 pre-activations
    c0: float = rng(0.5, ge=-1.0, lt=1.0)  # correlation of the two inputs of a pair
    eps: float = rng(1e-3, gt=0.0, lt=1.0)  # two-replica separation: RMS eps * max(1, RMS(h)) (ReLU/linear: relative)
    burn_in: int = rng(10, ge=0)  # layers excluded from the exponent and gain averages
    n_spectrum: int = rng(0, ge=0)  # k tangent vectors for the QR spectrum (0: off)
    dtype: Precision = Precision.float32
    device: str = "cpu"  # cpu | cuda | cuda:N
    memory_budget_gb: float = rng(2.0, gt=0.0, le=1e6)
    method: EngineMethod = EngineMethod.matrix  # chain: exact O(N) per layer sampler, gaussian weights only


@dataclass
class TrackingConfig:
    """Where and whether runs are recorded in MLflow."""

    enabled: bool = True
    uri: Optional[str] = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db
    experiment: Optional[str] = None  # default: the stage name
    run_name: Optional[str] = None
    sqlite_wal: bool = True  # SQLite store in WAL mode (fast commits); false for a store on a shared network filesystem


@dataclass
class GridSpec:
    """An evenly spaced grid start..stop with num points (inclusive), ascending: start < stop for num > 1,
    start == stop for a single point (so no value is silently ignored). Tables built on a grid are joined
    to theory by key, never by position, whatever the order."""

    start: float = 0.0
    stop: float = 1.0
    num: int = rng(11, ge=1)

    def check(self, key: str) -> None:
        """Cross-field check: an ordered, non-degenerate grid (ConfigError naming `key` otherwise)."""
        if self.num > 1 and not self.start < self.stop:
            raise ConfigError(
                f"{key}: start={self.start:g} must be < stop={self.stop:g} (grids are ascending; "
                f"for a single point set num=1 and start=stop)"
            )
        if self.num == 1 and self.start != self.stop:
            raise ConfigError(f"{key}: num=1 takes start={self.start:g} only: set stop={self.start:g} or num > 1")

    def points(self) -> tuple[float, ...]:
        """The grid's values, ascending."""
        import numpy as np

        return tuple(float(x) for x in np.linspace(self.start, self.stop, self.num))


@dataclass
class QuadConfig:
    """Quadrature and fixed-point solver settings (docs/science.md §1, Numerics)."""

    n_nodes: Optional[int] = rng(None, ge=2, even=True)  # None: chosen by the convergence check
    tol: float = rng(1e-12, gt=0.0)  # convergence check tolerance (relative)
    q_max: Optional[float] = rng(None, gt=0.0)  # largest variance the rule must resolve
    fixed_point_tol: float = rng(1e-13, gt=0.0)
    # sweeps of the bracketed Newton/bisection solver: bisection exhausts float64 within ~2100 halvings, so a larger
    # bound only lets points that never converge run (1e12 ran for hours without a result)
    max_iter: int = rng(500, ge=1, le=10_000)


@dataclass
class IterateConfig:
    """Start values (layer-0 pre-activation statistics) for the layer-by-layer iterates."""

    q11: float = rng(1.0, gt=0.0)
    q22: float = rng(1.0, gt=0.0)
    c0: float = rng(0.5, ge=-1.0, le=1.0)


@dataclass
class ActivationCase:
    """One activation and bias variance (a curve of the one-loop tables, docs/science.md §6)."""

    activation: ActivationName = ActivationName.tanh
    sigma_b2: float = rng(0.05, ge=0.0)


@dataclass
class OneLoopSettings:
    """Finite width at one loop (docs/science.md §6): per-point coefficients and crossings vs width."""

    enabled: bool = True
    cases: List[ActivationCase] = field(metadata={"min_len": 1}, default_factory=lambda: [
        ActivationCase(ActivationName.tanh, 0.05), ActivationCase(ActivationName.erf, 0.05),
        ActivationCase(ActivationName.gelu, 0.05), ActivationCase(ActivationName.relu, 0.0),
        ActivationCase(ActivationName.relu, 0.05), ActivationCase(ActivationName.tanh, 0.0)])  # fmt: skip
    widths: List[int] = rng([16, 32, 64, 128, 256, 512], min_len=1, ge=2, ascending=True)


@dataclass
class TheorySettings:
    """What the `theory` stage computes."""

    activations: List[ActivationName] = rng(["tanh", "relu", "erf"], min_len=1, unique=True)
    sigma_w2: GridSpec = field(default_factory=lambda: GridSpec(0.1, 5.0, 99))
    sigma_b2: GridSpec = field(default_factory=lambda: GridSpec(0.0, 1.0, 41))
    critical_sigma_b2: List[float] = rng([0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0], min_len=1, ge=0.0, ascending=True)
    # (lo, hi) bracket of the critical-line root finder: 0 < lo < hi <= 1000 (every registered activation's
    # critical sigma_w2 is below 5 at sigma_b2 <= 2; the 64-point scan and the bisection grow with hi: 1e300 never ends)
    sigma_w2_search: List[float] = rng(list(SIGMA_W2_SEARCH), len=2, gt=0.0, le=1e3, ascending=True)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    quad: QuadConfig = field(default_factory=QuadConfig)
    one_loop: OneLoopSettings = field(default_factory=OneLoopSettings)
    figures: bool = True  # false: tables only (large sweeps, benchmarks)


@dataclass
class MlpGridSettings:
    """The sigma_w2 grid one mlp_sweep job vectorizes over (config section `grid`).

    `refine` extra points, evenly spaced over +- `refine_halfwidth` around the one-loop prediction of this
    job's zero crossing (docs/science.md §6), are merged into the grid, so that the crossing's error comes
    from the seeds rather than the grid spacing. 0 turns it off.
    """

    sigma_w2: GridSpec = field(default_factory=lambda: GridSpec(0.5, 4.0, 36))
    refine: int = rng(0, ge=0)
    refine_halfwidth: float = rng(0.1, gt=0.0)


@dataclass
class FluctuationSettings:
    """Network-to-network fluctuations of q_hat^l against one loop (docs/science.md §6), per mlp_sweep job.

    Var(q_hat) needs many networks: its relative standard error is about sqrt(2/n_seeds) (6% at 512),
    so this runs apart from the main ensemble, at a few sigma_w2 values and only in the jobs whose width is
    in `widths` (its cost grows like N^2). 0 seeds: off.
    """

    sigma_w2: List[float] = rng([1.0, 1.5, 1.9], min_len=1, gt=0.0, ascending=True)
    n_seeds: int = rng(0, ge=0)
    widths: List[int] = rng([128], ge=2, ascending=True)  # only jobs whose net.width is listed run the study


@dataclass
class ChainCrossingSettings:
    """The job's zero crossing of the typical exponent measured again by the exact kernel chain (docs/science.md §7a),
    cheap enough (O(N) per layer) for SE ~0.003: `network_width` / max(width, 64) networks (>= 32) on `points`
    sigma_w2 values over +- `halfwidth` around the refine centre (the one-loop crossing at this depth); the
    crossing is the zero of a line through the points within halfwidth/2 of it. 0: off."""

    network_width: int = rng(0, ge=0)  # networks x width (0: off): the same SE at every width >= 64
    points: int = rng(9, ge=2)
    halfwidth: float = rng(0.08, gt=0.0)
    kernel: ChainKernel = ChainKernel.auto


@dataclass
class CurveSpec:
    """One Lyapunov curve: an activation and bias variance over a sigma_w2 grid."""

    activation: ActivationName = ActivationName.tanh
    sigma_b2: float = rng(0.0, ge=0.0)
    sigma_w2: GridSpec = field(default_factory=lambda: GridSpec(0.5, 3.0, 26))


@dataclass
class ReluFiniteWidthSpec:
    """Bias-free ReLU exponent at small widths against the exact formula (docs/science.md §2)."""

    widths: List[int] = rng([4, 8, 16, 64, 256], min_len=1, ge=2, ascending=True)
    sigma_w2: List[float] = rng([1.5, 2.0, 3.0], min_len=1, gt=0.0, ascending=True)
    depth: int = rng(100, ge=2)
    n_seeds: int = rng(32, ge=2)


@dataclass
class EpsCheckSpec:
    """The two-replica estimate must be flat in eps: one point, several eps (float64)."""

    activation: ActivationName = ActivationName.tanh
    sigma_w2: float = rng(2.5, gt=0.0)
    sigma_b2: float = rng(0.05, ge=0.0)
    eps: List[float] = rng([1e-8, 1e-6, 1e-4, 1e-3], min_len=1, gt=0.0, lt=1.0, ascending=True)


@dataclass
class LyapunovSettings:
    """What the `lyapunov` stage measures besides `net`: curves, ReLU finite-width check, eps check."""

    curves: List[CurveSpec] = field(
        default_factory=lambda: [
            CurveSpec(ActivationName.tanh, 0.0, GridSpec(0.5, 3.0, 26)),
            CurveSpec(ActivationName.tanh, 0.05, GridSpec(0.5, 3.0, 26)),
            CurveSpec(ActivationName.relu, 0.0, GridSpec(1.0, 3.5, 26)),
        ]
    )
    relu_finite_width: ReluFiniteWidthSpec = field(default_factory=ReluFiniteWidthSpec)
    eps_check: EpsCheckSpec = field(default_factory=EpsCheckSpec)


@dataclass
class GaugeCase:
    """One activation and bias variance of the gauge scan."""

    activation: ActivationName = ActivationName.relu
    sigma_b2: float = rng(0.0, ge=0.0)


@dataclass
class GaugeSettings:
    """The `gauge_scan` stage (docs/science.md §4): xi values x cases x widths over a sigma_w2 grid."""

    xi: List[float] = rng([0.0, 0.25, 0.5, 1.0, 2.0, 4.0], min_len=1, ge=0.0, ascending=True)
    cases: List[GaugeCase] = field(
        default_factory=lambda: [
            GaugeCase(ActivationName.relu, 0.0),
            GaugeCase(ActivationName.tanh, 0.0),
            GaugeCase(ActivationName.tanh, 0.05),
        ]
    )
    widths: List[int] = rng([128, 512], min_len=1, ge=2, ascending=True)
    sigma_w2: GridSpec = field(default_factory=lambda: GridSpec(0.6, 3.4, 29))


@dataclass
class FieldCase:
    """One (activation, sigma_w2, sigma_b2) point of the field stage's length mode (docs/science.md §7b)."""

    activation: ActivationName = ActivationName.tanh
    sigma_w2: float = rng(1.5, gt=0.0, le=1e3)
    sigma_b2: float = rng(0.05, gt=0.0, le=1e3)


@dataclass
class FieldSettings:
    """The `field` stage (docs/science.md §7b): depth-time spectra of the exact kernel chain, three modes.

    length: every case x width (xi = 1); correlation: two inputs on the chaotic side, each activation x
    corr_sigma_w2 at corr_sigma_b2 and corr_width; gauge: the length mode of gauge_activation at (gauge_sigma_w2,
    gauge_sigma_b2) for every gauge_xi at gauge_width. Every chain: n_networks x (burn_in + depth) layers."""

    cases: List[FieldCase] = field(
        default_factory=lambda: [FieldCase(ActivationName.tanh, 1.5, 0.05), FieldCase(ActivationName.erf, 1.5, 0.05)]
    )
    widths: List[int] = rng([16, 32, 64, 128], min_len=1, ge=4, ascending=True)
    n_networks: int = rng(200, ge=2)
    depth: int = rng(1200, ge=64)
    burn_in: int = rng(200, ge=0)
    segment: int = rng(200, ge=16)  # layers per zero-frequency periodogram segment (>> the correlation length)
    corr_activations: List[ActivationName] = field(default_factory=lambda: [ActivationName.tanh, ActivationName.erf])
    corr_sigma_w2: List[float] = rng([2.0, 2.4, 3.0, 4.0], min_len=1, gt=0.0, le=1e3, ascending=True)
    corr_sigma_b2: float = rng(0.05, gt=0.0, le=1e3)
    corr_width: int = rng(128, ge=4)
    gauge_activation: ActivationName = ActivationName.relu
    gauge_sigma_w2: float = rng(1.5, gt=0.0, le=1e3)
    gauge_sigma_b2: float = rng(0.1, gt=0.0, le=1e3)
    gauge_xi: List[float] = rng([0.0, 0.5, 1.0, 1.5, 1.8], min_len=1, ge=0.0, ascending=True)
    gauge_width: int = rng(64, ge=4)
    gauge_networks: int = rng(800, ge=2)  # near the length threshold the mass is small: more networks for its SE


class ModulusActivationName(str, Enum):
    """GINN activation acting on |z| (docs/science.md §5)."""

    tanh = "tanh"
    modrelu = "modrelu"
    identity = "identity"


class ModelKind(str, Enum):
    ginn = "ginn"
    mlp = "mlp"
    both = "both"


class OptimizerName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    langevin = "langevin"


class MapOptimizer(str, Enum):
    """Optimizers of the batched trainer (Langevin needs each GINN's gauge sector: not batched)."""

    sgd = "sgd"
    adam = "adam"


class DatasetName(str, Enum):
    digits = "digits"
    spirals = "spirals"


@dataclass
class DataConfig:
    name: DatasetName = DatasetName.digits
    val_fraction: float = rng(0.2, gt=0.0, lt=0.5)
    test_fraction: float = rng(0.2, gt=0.0, lt=0.5)
    seed: int = rng(0, ge=0)  # the stratified split


@dataclass
class TrainConfig:
    optimizer: OptimizerName = OptimizerName.adam
    lr: float = rng(2e-3, gt=0.0)
    epochs: int = rng(40, ge=1)
    batch_size: int = rng(32, ge=1)
    temperature: float = rng(0.0, ge=0.0)  # Langevin temperature T
    xi_gf: float = rng(float("inf"), gt=0.0, inf_ok=True)  # gauge-fixing strength 1/xi_gf (inf: none; not net.xi)
    noise_seed: int = rng(0, ge=0)
    max_loss: float = rng(1e3, gt=0.0)
    threads: int = rng(1, ge=1)  # torch threads: small models run fastest on one
    restore_best: bool = True  # early stopping: keep the best validation epoch


@dataclass
class TrainabilityConfig:
    """Experiment (a): training accuracy over sigma_w2 x depth x seeds for GINN and MLP (batched trainer), and the
    depth law L_max = a xi fitted on both sides of the critical point (Schoenholz et al. 2017; docs/science.md §1, §5).
    """

    enabled: bool = True
    sigma_w2: List[float] = rng([0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0], min_len=3, gt=0.0, ascending=True)
    depths: List[int] = rng([4, 8, 16, 32, 64], min_len=3, ge=1, ascending=True)  # >= 3: shallow value + a crossing
    width: int = rng(32, ge=1)
    epochs: int = rng(1, ge=1)
    n_seeds: int = rng(2, ge=2)  # networks per (model, sigma_w2, depth): seeds seed .. seed + n_seeds - 1
    batch_size: int = rng(64, ge=1)  # the map's own mini-batch (short training: few large steps)
    optimizer: MapOptimizer = MapOptimizer.adam  # the map's own optimizer (the batched trainer's: sgd, adam)
    lr: float = rng(5e-3, gt=0.0)  # the map's learning rate
    n_boot: int = rng(200, ge=20)  # bootstrap replicates of the SE of L_max over seeds
    memory_gb: float = rng(1.0, gt=0.0)  # budget of one batched run (networks of one depth are chunked to fit)
    workers: int = rng(1, ge=1)  # batched runs in parallel threads, torch single-threaded in each


@dataclass
class GaugeFixingConfig:
    """Experiment (b): Langevin training at several gauge-fixing xi_gf with one noise seed (docs/science.md §5)."""

    enabled: bool = True
    xi_gf: List[float] = rng([0.1, 1.0, 10.0, float("inf")], min_len=2, gt=0.0, inf_ok=True, ascending=True)
    temperature: float = rng(1e-4, gt=0.0)
    lr: float = rng(0.05, gt=0.0)
    epochs: int = rng(30, ge=1)
    width: int = rng(16, ge=1)
    depth: int = rng(3, ge=1)
    burn_in_steps: int = rng(300, ge=0)


@dataclass
class GinnSettings:
    """The `ginn_train` stage."""

    model: ModelKind = ModelKind.both
    activation: ModulusActivationName = ModulusActivationName.tanh
    modrelu_offset: float = rng(MODRELU_OFFSET, le=0.0)
    width: int = rng(64, ge=1)
    depth: int = rng(3, ge=1)
    sigma_w2: float = rng(1.0, gt=0.0)
    mlp_sigma_b2: float = rng(0.05, ge=0.0)
    precision: Precision = Precision.float32
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainability: TrainabilityConfig = field(default_factory=TrainabilityConfig)
    gauge_fixing: GaugeFixingConfig = field(default_factory=GaugeFixingConfig)


@dataclass
class ReportSettings:
    """Where the report reads the stage outputs (DVC outs, not MLflow)."""

    inputs: str = "${repo_root:}/outputs"


# ---- one schema per stage: the common keys, then each stage's own sections --------------------------------


@dataclass
class StageBase:
    """The keys every stage reads (or that steer its run)."""

    stage: str = ""  # set by each stage's schema; the entry point checks it
    seed: ClassVar[int] = 0  # not a key here: a deterministic stage's RNGs are seeded with 0 (SeededStage: a key)
    out_dir: str = "${hydra:runtime.output_dir}"
    resume: bool = False  # skip a job whose identical config already has a FINISHED run (config_hash tag)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass
class SeededStage(StageBase):
    """A stage with random networks or data."""

    seed: int = rng(0, ge=0)


@dataclass
class EngineStage(SeededStage):
    """A finite-width stage: reads the theory stage's tables, runs the ensemble engine."""

    theory_outputs: str = "${repo_root:}/outputs/theory"


@dataclass
class TheoryConfig(StageBase):
    stage: str = "theory"
    net: TheoryNet = field(default_factory=TheoryNet)
    theory: TheorySettings = field(default_factory=TheorySettings)


@dataclass
class MlpSweepConfig(EngineStage):
    stage: str = "mlp_sweep"
    net: MlpSweepNet = field(default_factory=MlpSweepNet)
    engine: EngineConfig = field(default_factory=EngineConfig)
    grid: MlpGridSettings = field(default_factory=MlpGridSettings)
    fluctuations: FluctuationSettings = field(default_factory=FluctuationSettings)
    chain: ChainCrossingSettings = field(default_factory=ChainCrossingSettings)


@dataclass
class LyapunovConfig(EngineStage):
    stage: str = "lyapunov"
    net: LyapunovNet = field(default_factory=LyapunovNet)
    # float64: the replica difference loses digits in float32
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(eps=1e-6, n_spectrum=4, dtype=Precision.float64))
    lyapunov: LyapunovSettings = field(default_factory=LyapunovSettings)


@dataclass
class GaugeScanConfig(EngineStage):
    stage: str = "gauge_scan"
    net: GaugeScanNet = field(default_factory=GaugeScanNet)
    # burn_in 40: the top Lyapunov vector needs ~25 layers to emerge from a random start (xi > 1)
    engine: EngineConfig = field(
        default_factory=lambda: EngineConfig(n_seeds=6, eps=1e-6, burn_in=40, dtype=Precision.float64)
    )
    gauge: GaugeSettings = field(default_factory=GaugeSettings)


@dataclass
class FieldConfig(SeededStage):
    stage: str = "field"
    field: FieldSettings = field(default_factory=FieldSettings)


@dataclass
class GinnTrainConfig(SeededStage):
    stage: str = "ginn_train"
    ginn: GinnSettings = field(default_factory=GinnSettings)


@dataclass
class ReportConfig(StageBase):
    stage: str = "report"
    report: ReportSettings = field(default_factory=ReportSettings)


StageConfig = (
    TheoryConfig | MlpSweepConfig | LyapunovConfig | GaugeScanConfig | FieldConfig | GinnTrainConfig | ReportConfig
)
"""Any stage's validated config (a type for annotations)."""
