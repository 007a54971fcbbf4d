"""Training over (fictitious Langevin) time: optimizers, the GINN gauge sector and its observables (docs/science.md §5).

Propagation through depth (the finite-width engine) lives in `pipeline.dynamics`; this package is its
counterpart in training time.
"""
