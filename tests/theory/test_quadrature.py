"""pipeline.theory.quadrature: the node-count convergence check (docs/science.md §7), red-team finding 1."""

import torch

from pipeline.activations import get_activation
from pipeline.theory.quadrature import check_node_count


def test_convergence_check_is_not_fooled_by_an_unresolved_narrow_integrand():
    """erf'(sqrt(q) z)^2 at q = 1e4 has width 0.005 in z: coarse rungs all give ~0 and agree."""
    act = get_activation("erf")
    chk = check_node_count(
        [lambda x: act.dphi(x) ** 2], torch.tensor([1.0, 1e4], dtype=torch.float64), 1e-12, (128, 256, 512, 1024)
    )
    assert chk.error > 1e-12  # no rung of this ladder resolves it: reported as not converged, not 128 with 1e-16
