"""`python -m pipeline.field`: depth-time spectra of the kernel chain (see pipeline.stages.field)."""

from pipeline.cli import field as main

if __name__ == "__main__":
    main()
