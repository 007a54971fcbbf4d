"""`python -m pipeline.ginn_train`: GINN vs MLP training (see pipeline.stages.ginn_train)."""

from pipeline.stages.ginn_train import main

if __name__ == "__main__":
    main()
