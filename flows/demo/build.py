"""Rebuild flows/demo/adult.parquet from the UCI files (a maintainer's step, not run by users)."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
INTEGER = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}


def _read(path: Path, skip: int) -> pl.DataFrame:
    df = pl.read_csv(
        path,
        has_header=False,
        new_columns=COLUMNS,
        skip_rows=skip,
        separator=",",
        schema_overrides={c: pl.Utf8 for c in COLUMNS},
        truncate_ragged_lines=True,
    )
    df = df.filter(pl.col("income").is_not_null())
    return df.select(
        [
            pl.col(c).str.strip_chars().cast(pl.Int64)
            if c in INTEGER
            else pl.col(c).str.strip_chars().str.strip_suffix(".")
            if c == "income"
            else pl.col(c).str.strip_chars()
            for c in COLUMNS
        ]
    )


def main(src: str = "../shared/datasets/adult") -> None:
    root = Path(src)
    df = pl.concat([_read(root / "adult.data", 0), _read(root / "adult.test", 1)])
    out = Path(__file__).with_name("adult.parquet")
    df.write_parquet(out, compression="zstd", compression_level=19, statistics=False)
    print(f"wrote {out} ({df.height} rows, {out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:])
