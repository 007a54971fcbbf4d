"""`python -m pipeline.ginn_train`: GINN vs MLP training (see pipeline.stages.ginn_train)."""

from pipeline.cli import ginn_train as main

if __name__ == "__main__":
    main()
