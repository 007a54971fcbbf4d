"""ginn-lab: signal propagation, edge of chaos and gauge-invariant networks (arXiv 2508.18948)."""

__version__ = "0.1.0"
