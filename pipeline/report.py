"""`python -m pipeline.report`: every figure and a self-contained report.html (see pipeline.stages.report)."""

from pipeline.cli import report as main

if __name__ == "__main__":
    main()
