"""A generated table shaped like a steward's case file (seeded; no real person): `python docs/steward/make_table.py DB [CASES]`.

R-style row index, a person key (several cases per person for some), two DATE columns that always
agree, a 0/1 flag, a zero-inflated amount, free text.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl


def cases(n: int = 6000, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    # about 0.7 people per case: most with one case, some with two to four
    person = np.repeat(np.arange(1, n + 1), np.minimum(rng.geometric(0.7, n), 4))[:n]
    arrest = [dt.date(2019, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 1500, n)]
    severity = rng.integers(1, 6, n)
    return pl.DataFrame(
        {
            "rownames": np.arange(1, n + 1),
            "person_id": [f"P{p:05d}" for p in person],
            "arrest_date": pl.Series(arrest, dtype=pl.Date),
            "filing_date": pl.Series(arrest, dtype=pl.Date),
            "severity": severity,
            "state": rng.choice(["CA", "NY", "TX", "WA"], n),
            "bail_amount": np.where(rng.random(n) < 0.7, 0.0, np.round(rng.gamma(2.0, 400.0, n), 2)),
            "remarks": [
                f"seen near {w} {int(k)}"
                for w, k in zip(rng.choice(["gate", "dock", "CA"], n), rng.integers(0, 400, n), strict=True)
            ],
            "reoffended": (rng.random(n) < 0.2 + 0.1 * severity).astype(np.int64),
        }
    )


if __name__ == "__main__":
    db = Path(sys.argv[1])
    db.parent.mkdir(parents=True, exist_ok=True)
    frame = cases(int(sys.argv[2]) if len(sys.argv) > 2 else 6000)
    with duckdb.connect(str(db)) as con:
        con.register("frame", frame.to_arrow())
        con.execute("CREATE OR REPLACE TABLE cases AS SELECT * FROM frame")
    print(f"wrote {frame.height} rows to {db} (table cases)")
