"""`python -m pipeline.gauge_scan`: the gauge parameter xi swept (see pipeline.stages.gauge_scan)."""

from pipeline.cli import gauge_scan as main

if __name__ == "__main__":
    main()
