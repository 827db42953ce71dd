"""Sources larger than ``max_rows``: the whole release flow on tables of millions of rows.

    python -m benchmarks.large                          # 3M, 30M and 100M rows (about 40 minutes on 2 cores)
    python -m benchmarks.large --rows 300000000         # any size the disk holds (about 15 s per GB of table)
    python -m benchmarks.large --table                  # markdown from benchmarks/results/large.json

The source is a DuckDB table of Adult's 15 columns: the 48,842-row embedded table repeated
(``CROSS JOIN range(k)``) to the size asked for, built outside the timings. Each size runs the real
release flow (``run_release``) in its own subprocess with the defaults for large sources
(``max_rows`` 1,000,000, ``batch_rows`` 500,000, ``evaluation_rows`` 50,000) and ctgan at ε = 3 for
ONE epoch (the default is 8) with the shadow-model attack off, so the figures show what grows with the
table: the streamed pass that validates (great-expectations) and fingerprints every row and keeps the
Bernoulli sample. Peak RSS is the subprocess's high-water mark.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "large.json"
DEFAULT_ROWS = "3000000,30000000,100000000"


def _build_source(db: Path, rows: int) -> int:
    import duckdb

    from synthgate.flows.demo import DEMO_TABLE, demo_parquet

    with duckdb.connect(str(db)) as con:
        base = con.execute("SELECT count(*) FROM read_parquet(?)", [str(demo_parquet())]).fetchall()[0][0]
        copies = max(1, -(-rows // base))
        con.execute(
            f"CREATE TABLE {DEMO_TABLE} AS SELECT a.* FROM read_parquet(?) a CROSS JOIN range(?) LIMIT ?",
            [str(demo_parquet()), copies, rows],
        )
        return int(con.execute(f"SELECT count(*) FROM {DEMO_TABLE}").fetchall()[0][0])


def run_one(rows: int, seed: int = 0) -> dict[str, Any]:
    import yaml

    from benchmarks.common import machine, peak_rss_mib
    from synthgate.flows.config import RunConfig, SourceConfig
    from synthgate.flows.demo import DEMO_TABLE, demo_contract
    from synthgate.flows.release import run_release
    from synthgate.governance.registry import code_version

    with tempfile.TemporaryDirectory(prefix="synthgate-large-") as tmp:
        db = Path(tmp) / "source.duckdb"
        started = time.perf_counter()
        n = _build_source(db, rows)
        build_s = time.perf_counter() - started
        data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
        data["privacy"]["delta"] = min(float(data["privacy"]["delta"]), 0.1 / n)  # δ < 1/n
        data.setdefault("evaluation", {})["shadow_models"] = 0
        contract = Path(tmp) / "contract.yaml"
        contract.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        config = RunConfig(
            contract=contract,
            source=SourceConfig(db=db, table=DEMO_TABLE),
            out=Path(tmp) / "out",
            epochs=1.0,
            seed=seed,
            show_progress=False,
        )
        started = time.perf_counter()
        report = run_release(config)
        total = time.perf_counter() - started
        source_mib = db.stat().st_size / 2**20
    return {
        "rows": n,
        "columns": len(data["columns"]),
        "source_db_mib": round(source_mib),
        "build_source_seconds": round(build_s, 1),
        "rows_used": report["rows"],
        "stages": report["timings"],
        "total_seconds": round(total, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "released": report["released"],
        "epsilon_spent": round(float(report["privacy"]["epsilon_spent"]), 4),
        "config": {
            "max_rows": config.max_rows,
            "batch_rows": config.batch_rows,
            "evaluation_rows": config.evaluation_rows,
            "epochs": 1.0,
            "model": data.get("model", "ctgan"),
        },
        "commit": code_version(),
        "machine": machine(),
    }


def table(runs: list[dict[str, Any]]) -> str:
    names = list(runs[0]["stages"]) if runs else []
    head = "| source rows × columns | " + " | ".join(names) + " | total (s) | peak RSS (MiB) |"
    lines = [head, "|---" * (len(names) + 3) + "|"]
    for r in sorted(runs, key=lambda r: r["rows"]):
        cells = [f"{r['stages'].get(n, float('nan')):g}" for n in names]
        lines.append(
            f"| {r['rows']:,} × {r['columns']} | "
            + " | ".join(cells)
            + f" | {r['total_seconds']:g} | {r['peak_rss_mib']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    from benchmarks.common import sizes_main

    sizes_main(__doc__ or "", "benchmarks.large", RESULTS, DEFAULT_ROWS, run_one, table)


if __name__ == "__main__":
    main()
