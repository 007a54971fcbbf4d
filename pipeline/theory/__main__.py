"""`python -m pipeline.theory`: the theory stage (entry point from pipeline.cli)."""

from pipeline.cli import theory

theory()
