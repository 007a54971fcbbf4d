"""Mean-field theory of signal propagation (docs/science.md §1, §4): float64, vectorized over grids.

`python -m pipeline.theory` runs the `theory` stage (see `pipeline.stages.theory`).
"""
