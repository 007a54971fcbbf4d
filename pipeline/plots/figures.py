"""The one figure registry: every figure's file, owning stage, report section, caption, inputs and drawer.

A stage draws its figures into outputs/<stage>/figures/ (`draw_stage_figures`, or its own calls to the
same plot functions); the report never re-draws, it embeds the PNGs listed here (`REPORT_FIGURES`).
Table keys are 'stage/file' under the outputs root, e.g. "theory/theory.csv".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.plots import chain, field, finite_width, gauge, ginn, lyapunov, one_loop, theory, trainability
from pipeline.plots.prepare import iterates_title, widest_first_activation


@dataclass(frozen=True)
class Figure:
    """One figure: file name, owning stage, report section, caption, table keys it needs, how to draw it."""

    name: str
    stage: str  # its PNG lives in outputs/<stage>/figures/<name>
    section: str
    caption: str  # may name what was run as {dataset}, {activation}, {mlp_activation} (report.caption_facts)
    needs: tuple[str, ...]
    draw: Callable[..., None]  # draw(*the tables `needs` names, png path[, keys=...])
    keyed: bool = False  # a merged sweep's figure: draw also gets keys=, the config values its jobs differ in
    in_report: bool = True
    optional: bool = False  # drawn only when an optional study ran (the report notes its absence, no error)
    when: Callable[[dict], bool] | None = None  # drawn only if this holds for the tables (else skipped)

    def render(self, tables: dict, path: Path) -> None:
        """Draw the figure from `tables` (keyed 'stage/file') into `path`."""
        self.draw(*(tables[k] for k in self.needs), path, **({"keys": _keys(tables)} if self.keyed else {}))

    @property
    def source(self) -> str:
        """Path of the PNG relative to the outputs root."""
        return f"{self.stage}/figures/{self.name}"


def _keys(tables: dict) -> tuple[str, ...]:
    """The config values that differ between a sweep's jobs (collect passes them as "mlp_sweep/keys"): each
    figure draws one line per configuration of these, never one line across them."""
    return tuple(tables.get("mlp_sweep/keys", ()))


FIGURES: tuple[Figure, ...] = (
    Figure(
        "phase_diagram.png",
        "theory",
        "Mean-field theory",
        "Phase diagram: ln chi_1 over (sigma_w2, sigma_b2) per activation (blue ordered, red chaotic) with "
        "the critical line chi_1 = 1. Closed forms: ReLU at sigma_w2 = 2 for every sigma_b2, tanh and "
        "erf at 1 and pi/4 for sigma_b2 = 0 (to 1e-6).",
        ("theory/theory.csv", "theory/critical_line.csv"),
        theory.phase_diagram,
    ),
    Figure(
        "chi1_depth_scale_c.png",
        "theory",
        "Mean-field theory",
        "chi_1 and the correlation depth scale depth_scale_c against sigma_w2 for several sigma_b2: it diverges "
        "where chi_1 crosses 1 (the edge of chaos).",
        ("theory/theory.csv",),
        theory.gain_and_depth,
    ),
    Figure(
        "iterates.png",
        "theory",
        "Mean-field theory",
        "Mean-field iterates q^l (both inputs) and c^l against layer for the configured network.",
        ("theory/iterates.csv",),
        lambda it, p: theory.iterates(it, iterates_title(it), p),
        in_report=False,
    ),
    Figure(
        "measured_vs_theory.png",
        "mlp_sweep",
        "Finite-width networks",
        "Measured q^L, c^L, gain chi and two-replica exponent (points +- SE, colour = width) against mean "
        "field (lines), one row per configuration (activation, sigma_b2, depth, ...). Expect agreement up to O(1/N) "
        "corrections, largest near the edge of chaos.",
        ("mlp_sweep/sweep.csv",),
        finite_width.measured_vs_theory,
        keyed=True,
    ),
    Figure(
        "layer_profiles.png",
        "mlp_sweep",
        "Finite-width networks",
        "q^l and c^l layer by layer at the widest network (markers) against the mean-field iterates "
        "(lines), for a few sigma_w2; one row per configuration of that network (sigma_b2, depth, ...).",
        ("mlp_sweep/layers.csv",),
        lambda layers, p, keys: finite_width.layer_profiles(widest_first_activation(layers), p, keys=keys),
        keyed=True,
    ),
    Figure(
        "finite_width_collapse.png",
        "mlp_sweep",
        "Loop corrections",
        "Deviation from mean field times N, per (activation, sigma_b2): curves for different widths collapse if the "
        "corrections scale like 1/N (the paper's loop corrections); the black line is the one-loop prediction of "
        "N (lambda - lambda_MF) at the deep fixed point (docs/science.md §6). Error bars grow like N.",
        ("mlp_sweep/finite_width.csv",),
        finite_width.collapse,
        keyed=True,
    ),
    Figure(
        "one_loop_crossings.png",
        "mlp_sweep",
        "Loop corrections",
        "Zero crossing of the measured exponent against 1/N (points +- SE) with mean field (dashed: infinite depth; "
        "dotted grey: the same layers as measured), one loop averaged over the measured layers (orange) and, for "
        "bias-free ReLU, the exact finite-width formula (green). One loop "
        "should agree within 2 SE (or 0.02) for N >= 64; gelu at sigma_b2 > 0 has no one-loop crossing (its finite "
        "variance fixed point vanishes at a saddle node, where chi_par -> 1 and the expansion breaks down).",
        ("mlp_sweep/one_loop_crossings.csv",),
        one_loop.crossings_vs_inverse_width,
        keyed=True,
    ),
    Figure(
        "chain_crossing_shift.png",
        "mlp_sweep",
        "Loop corrections",
        "Finite-width shift of the zero crossing measured by the exact kernel chain (docs/science.md §7a), times N, "
        "against 1/N (points +- N SE; mean field taken over the same layers): one loop (orange) is the 1/N -> 0 "
        "limit, the slope the next order; green: the exact bias-free ReLU formula.",
        ("mlp_sweep/one_loop_crossings.csv",),
        chain.shift_vs_inverse_width,
        keyed=True,
        optional=True,  # only when mlp_sweep's chain.network_width > 0
        when=lambda t: chain.has_chain_crossings(t["mlp_sweep/one_loop_crossings.csv"]),
    ),
    Figure(
        "one_loop_fluctuations.png",
        "mlp_sweep",
        "Loop corrections",
        "Network-to-network fluctuations of q_hat^l = |h^l|^2/N (points +- SE over networks): N Var(q_hat) against "
        "V + 2K^2 and N (E q_hat - K) against K1 (lines, one loop), layer by layer.",
        ("mlp_sweep/fluctuations.csv",),
        one_loop.fluctuations_vs_layer,
        keyed=True,
        optional=True,  # only when fluctuations.n_seeds > 0 for a job's width
    ),
    Figure(
        "lyapunov_vs_sigma_w2.png",
        "lyapunov",
        "Lyapunov exponents",
        "The key figure: largest Lyapunov exponent per layer (two replicas, +- SE) for tanh and ReLU, "
        "with 0.5 ln chi_1 and chi_1 - 1; both vanish at the edge of chaos. Finite width shifts the "
        "crossing up: ~sqrt(3/N) for tanh at sigma_b2 = 0, ~+5/N for ReLU.",
        ("lyapunov/lyapunov.csv",),
        lyapunov.exponent_vs_sigma_w2,
    ),
    Figure(
        "spectrum.png",
        "lyapunov",
        "Lyapunov exponents",
        "Top-k Lyapunov spectrum by QR re-orthonormalization: lambda_1 equals the two-replica exponent; the "
        "gaps are O(1/N).",
        ("lyapunov/lyapunov.csv",),
        lyapunov.spectrum,
        when=lambda t: "lambda_1" in t["lyapunov/lyapunov.csv"].columns,
    ),
    Figure(
        "relu_finite_width.png",
        "lyapunov",
        "Lyapunov exponents",
        "Exact finite-width check: bias-free Gaussian ReLU networks against lambda_N = 0.5 [ln(2 sigma_w2/N) "
        "+ E psi(k/2)] (lines); expect agreement within 2 SE at every width, below mean field (dashed).",
        ("lyapunov/relu_finite_width.csv",),
        lyapunov.relu_finite_width,
    ),
    Figure(
        "eps_flatness.png",
        "lyapunov",
        "Lyapunov exponents",
        "The two-replica estimate is flat in the replica separation eps and equals the tangent estimate.",
        ("lyapunov/eps_check.csv",),
        lyapunov.eps_flatness,
    ),
    Figure(
        "thresholds_vs_xi.png",
        "gauge_scan",
        "Gauge parameter",
        "Length (A_q = 1) and chaos thresholds against the gauge parameter xi: theory lines, measured "
        "points. ReLU: the chaos threshold stays at 2 for xi <= 1 and follows 2 pi/(pi - 1 + xi) above; "
        "tanh has no xi dependence.",
        ("gauge_scan/thresholds.csv",),
        gauge.thresholds_vs_xi,
    ),
    Figure(
        "a_q_vs_sigma_w2.png",
        "gauge_scan",
        "Gauge parameter",
        "Longitudinal amplification factor A_q(xi) and transverse gain chi_1 against sigma_w2.",
        ("gauge_scan/gauge_scan.csv",),
        gauge.a_q_vs_sigma_w2,
    ),
    Figure(
        "lyapunov_vs_sigma_w2_per_xi.png",
        "gauge_scan",
        "Gauge parameter",
        "Measured exponent per xi with 0.5 ln chi_1 (black) and 0.5 ln A_q (lines): for ReLU without bias "
        "lambda = 0.5 ln max(chi_1, A_q).",
        ("gauge_scan/gauge_scan.csv",),
        gauge.exponent_vs_sigma_w2,
    ),
    Figure(
        "field_spectra.png",
        "field",
        "Stochastic field",
        "Depth-time spectra of the exact kernel chain (length mode, widest width): N times the periodogram of "
        "G^l (points, SE over networks) and the AR(1) Lorentzian Sigma/|1 - chi_par e^{-i omega}|^2 "
        "(docs/science.md §7b).",
        ("field/spectrum_curves.csv",),
        field.spectra,
        optional=True,  # the smoke pipeline (tests/conftest.py) has no field stage yet
    ),
    Figure(
        "field_collapse.png",
        "field",
        "Stochastic field",
        "Spectrum collapse: N S(omega) of every width on one curve (the sector's amplitude is a pure 1/N effect).",
        ("field/spectrum_curves.csv",),
        field.collapse,
        optional=True,  # the smoke pipeline (tests/conftest.py) has no field stage yet
    ),
    Figure(
        "field_masses.png",
        "field",
        "Stochastic field",
        "Masses: the correlation mode's -ln chi_c(c*) against sigma_w2 (vanishing at the edge of chaos, dotted) and "
        "the length mode's -ln A_q(xi) against xi (vanishing at the length threshold of §4); chain points with SE.",
        ("field/spectra.csv", "field/mass_theory.csv"),
        field.masses,
        optional=True,  # the smoke pipeline (tests/conftest.py) has no field stage yet
    ),
    Figure(
        "training_curves.png",
        "ginn_train",
        "Gauge-invariant network",
        "GINN (magnitude-phase links, complex units, {activation}) against a {mlp_activation} MLP of the same size "
        "on the data set {dataset}: loss and validation accuracy per epoch.",
        ("ginn_train/history.csv",),
        ginn.training_curves,
    ),
    Figure(
        "trainability.png",
        "ginn_train",
        "Gauge-invariant network",
        "Training accuracy (mean over seeds, batched short training) over sigma_w2 x depth, MLP (tanh) and GINN "
        "side by side, with L = a xi on both sides of the critical point (dotted): the fitted a and Schoenholz's "
        "6 (xi = xi_c for the MLP, 1/|ln chi_GINN| for the GINN). Title: the verdict line.",
        ("ginn_train/trainability.csv", "ginn_train/trainability_boundary.csv", "ginn_train/trainability_law.csv"),
        trainability.accuracy_maps,
    ),
    Figure(
        "trainability_law.png",
        "ginn_train",
        "Gauge-invariant network",
        "L_max (depth where training accuracy falls halfway from its shallow value to chance; bootstrap SE over "
        "seeds) against the mean-field depth scale on log axes, ordered and chaotic sides, with a xi fitted and 6 xi.",
        ("ginn_train/trainability_lmax.csv", "ginn_train/trainability_law.csv"),
        trainability.l_max_vs_scale,
    ),
    Figure(
        "gauge_spectra.png",
        "ginn_train",
        "Gauge-invariant network",
        "Gauge sector under Langevin training with covariant gauge fixing: power spectrum of the site "
        "divergence G (measured points, predicted discrete Lorentzians) narrows like 1/xi, and Var(G) = xi T; "
        "gauge-invariant outputs are identical for every xi.",
        ("ginn_train/gauge_spectra.csv", "ginn_train/gauge_fixing.csv"),
        ginn.gauge_spectra,
    ),
)

REPORT_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURES if f.in_report)


def stage_figures(stage: str) -> list[Figure]:
    """The registry entries owned by `stage`, in registry order."""
    return [f for f in FIGURES if f.stage == stage]


def draw_stage_figures(stage: str, tables: dict, folder: Path) -> list[Path]:
    """Draw every figure of `stage` whose tables are all in `tables` (and whose `when` holds) into `folder`.

    `tables` is keyed like the registry's needs ("mlp_sweep/sweep.csv"); entries with a missing table are
    skipped (e.g. an optional study that was not run). Returns the written paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in stage_figures(stage):
        if not all(k in tables for k in f.needs) or (f.when is not None and not f.when(tables)):
            continue
        f.render(tables, folder / f.name)
        written.append(folder / f.name)
    return written


def missing_report_figures(root: Path) -> list[Path]:
    """PNGs the report embeds that are absent under the outputs root."""
    return [Path(root) / f.source for f in REPORT_FIGURES if not f.optional and not (Path(root) / f.source).is_file()]
