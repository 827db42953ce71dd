"""benchmarks/one_way_projection.py and benchmarks/target_weight.py: the simulation's arms and the paired table."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import one_way_projection as owp
from benchmarks import target_weight as tw


def test_the_simulation_scores_both_estimators_on_the_same_draws() -> None:
    # one column of nine categories holding one (ISLR::Wage's region), one dense column, one numeric column
    captured = {
        "sigma": 30.0,
        "exact": {"region": [0.0, 2100.0] + [0.0] * 7, "sex": [1000.0, 1100.0], "wage": [21.0] * 100},
        "categorical": ["region", "sex"],
    }
    a = owp.simulate(captured, draws=200, seed=3)
    assert a == owp.simulate(captured, draws=200, seed=3)  # seeded
    assert set(a) == {"region", "sex"}
    # clipping leaves ~0.40σ in each of 8 empty categories: 8 × 0.40 × 30 / 2100 ≈ 0.046 of the mass
    assert 0.03 < a["region"]["clip"] < 0.06
    assert a["region"]["project"] < 0.5 * a["region"]["clip"]
    assert abs(a["sex"]["project"] - a["sex"]["clip"]) < 0.005
    line = owp.table([{"dataset": "wage", "epsilon": 1.0, "sigma": 30.0, "columns": a}]).splitlines()[-1]
    assert line.startswith("| wage | 1 | 30.0 | 2 |") and "region -0.0" in line


def test_the_target_weight_table_pairs_the_arms_by_cell(tmp_path: Path) -> None:
    rows = [
        {"dataset": "t", "epsilon": 3.0, "seed": s, "mode": m, "column_shapes": 0.9, "pair_trends": 0.9, "tstr": v}
        for s, (m, v) in enumerate([("balance", 0.8), ("plain", 0.7), ("balance", 0.9), ("plain", 0.7)])
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    line = tw.table(path).splitlines()[-1]
    assert line == "| t | 3 | 2 | 0.9000 → 0.9000 (+0.0000) | 0.9000 → 0.9000 (+0.0000) | 0.7000 → 0.8500 (+0.1500) |"
