"""`python -m pipeline.collect <stage>`: merge a stage's multirun jobs (see pipeline.stages.collect)."""

from pipeline.stages.collect import main

if __name__ == "__main__":
    raise SystemExit(main())
