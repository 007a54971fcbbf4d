"""`python -m pipeline.gauge_scan`: the gauge parameter xi swept (see pipeline.stages.gauge_scan)."""

from pipeline.stages.gauge_scan import main

if __name__ == "__main__":
    main()
