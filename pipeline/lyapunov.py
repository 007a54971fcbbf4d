"""`python -m pipeline.lyapunov`: Lyapunov exponents of random networks (see pipeline.stages.lyapunov)."""

from pipeline.stages.lyapunov import main

if __name__ == "__main__":
    main()
