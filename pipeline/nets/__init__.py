"""Finite-width random networks: weight ensembles generated on the fly from seeds."""
