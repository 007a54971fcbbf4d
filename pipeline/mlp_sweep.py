"""`python -m pipeline.mlp_sweep`: finite-width random MLP sweep (see pipeline.stages.mlp_sweep)."""

from pipeline.stages.mlp_sweep import main

if __name__ == "__main__":
    main()
