"""`python -m pipeline.mlp_sweep`: finite-width random MLP sweep (see pipeline.stages.mlp_sweep)."""

from pipeline.cli import mlp_sweep as main

if __name__ == "__main__":
    main()
