"""`python -m pipeline.lyapunov`: Lyapunov exponents of random networks (see pipeline.stages.lyapunov)."""

from pipeline.cli import lyapunov as main

if __name__ == "__main__":
    main()
