"""Stage tables on disk: one CSV per DataFrame, keyed for the figure registry."""

from __future__ import annotations

from pathlib import Path


def write_tables(stage: str, folder: Path, tables: dict) -> dict:
    """Write each DataFrame as folder/<file> (CSV, no index); return them keyed '<stage>/<file>' for the figures."""
    for name, df in tables.items():
        df.to_csv(folder / name, index=False)
    return {f"{stage}/{name}": df for name, df in tables.items()}
