"""The peer benchmark's own logic (benchmarks/peers.py, benchmarks/peer_fit.py), without any peer.

peer_fit.py imports only numpy and pandas at module level, so its binning is testable here; the
peers themselves live in a separate venv and are never imported by the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks import peer_fit, peers


def test_mst_bins_come_from_public_bounds_and_decode_inside_their_bin() -> None:
    rng = np.random.default_rng(0)
    for lo, hi in ((17, 90), (0, 99_999), (0, 2_000_000), (1, 16)):
        edges = peer_fit._edges(lo, hi)
        assert edges[0] == lo and np.all(np.diff(edges) > 0) and edges[-1] <= hi
        if hi - lo <= 100:
            assert len(edges) == hi - lo + 1  # one bin per value: exact
        else:
            assert edges[1] == lo + 1  # the minimum (e.g. capital-gain's 0) is a bin of its own
        col = {"name": "c", "kind": "integer", "min": lo, "max": hi}
        values = pd.Series(np.r_[lo, hi, rng.integers(lo, hi + 1, 500)])
        codes = peer_fit.to_bins(values, col)
        decoded = peer_fit.from_bins(codes, col, rng)
        assert np.all((decoded >= lo) & (decoded <= hi))
        assert np.array_equal(peer_fit.to_bins(pd.Series(decoded), col), codes)  # same bin


def test_suites_alternate_synthgate_and_peer_runs() -> None:
    for which in ("quick", "full"):
        jobs = peers.suite(which, seeds=3)
        systems = [j["system"] == "synthgate" for j in jobs]
        n = min(systems.count(True), systems.count(False))
        assert all(systems[2 * i] and not systems[2 * i + 1] for i in range(n)), which
    full = peers.suite("full", seeds=3)
    grid = {(j["name"], j["epsilon"]) for j in full}
    for eps in (0.5, 1.0, 3.0, 10.0):
        assert ("synthgate", eps) in grid and ("smartnoise MST", eps) in grid
    assert ("synthgate", math.inf) in grid
    assert sum(j["name"] == "synthgate" for j in full) == 5 * 3


def test_frontier_table_reports_mean_and_range_per_epsilon() -> None:
    runs = [
        {"suite": "full", "name": "synthgate", "epsilon": "3", "seed": s, "tstr_auc": a, "pair_trends": p}
        for s, (a, p) in enumerate(((0.84, 0.92), (0.86, 0.93), (0.85, 0.94)))
    ]
    table = peers.frontier_table(runs)
    assert "| 3 | 0.850 [0.840, 0.860] | — | 0.930 [0.920, 0.940] | — | 3 / 0 |" in table
