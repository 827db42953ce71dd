"""benchmarks/precision_grid.py: its "before" arm is the old decode rule, and its table pairs the arms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import synthgate.models.codec as codec_module
from benchmarks import precision_grid as pg
from benchmarks.common import append_rows, read_rows
from synthgate.models.codec import PRECISION_STEPS, Codec, precision_level
from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import parse_contract


def test_the_before_arm_decodes_by_the_old_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole and half years: the new rule puts rows on halves, the old rule (a grid drawn apart from the
    value, the half share folded into the 0.1 grid) rounds values out of their cells."""
    contract = parse_contract(
        {
            "table": "t",
            "columns": {"educ": {"kind": "continuous", "min": 0.0, "max": 30.0}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(0)
    x = rng.choice(np.array([9.0, 10.5, 11.0, 11.5, 18.0]), size=8000, p=[0.3, 0.35, 0.1, 0.15, 0.1])
    codec = Codec(contract)
    codec.fit_dp(pl.DataFrame({"educ": x}), ledger=PrivacyLedger(1e-6), noise_multiplier=2.0, rng=rng)
    enc = codec.encode(pl.DataFrame({"educ": x}), rng=np.random.default_rng(1))
    steps = PRECISION_STEPS["continuous"]
    after = codec.decode(enc, rng=np.random.default_rng(2))["educ"].to_numpy()
    # _before replaces the module's _on_grid (one fit per process in the script): restored after the test
    monkeypatch.setattr(codec_module, "_on_grid", codec_module._on_grid)
    pg._before(codec)
    before = codec.decode(enc, rng=np.random.default_rng(2))["educ"].to_numpy()
    assert (precision_level(after, steps) <= 1).all()  # every value a whole or a half year
    assert np.mean(after == 10.5) > 0.3
    # the old rule moved half of 10.5's rows to 10 or 11 and spread the rest over 10.4-10.6
    assert np.mean(before == 10.5) < 0.25
    assert np.mean(before == 10.0) > 0.05 > np.mean(after == 10.0)  # the real column has no 10


def test_the_table_pairs_the_arms_of_each_fit(tmp_path: Path) -> None:
    rows = [
        {
            "arm": arm,
            "dataset": "d",
            "epsilon": 3.0,
            "seed": s,
            "column_shapes": shapes,
            "pair_trends": 0.9,
            "tstr": 0.8,
        }
        for s, (b, a) in enumerate([(0.90, 0.93), (0.92, 0.93)])
        for arm, shapes in (("before", b), ("after", a))
    ]
    path = tmp_path / "rows.jsonl"
    append_rows(path, rows[:2])
    append_rows(path, rows[2:])
    assert read_rows(path) == rows
    assert read_rows(tmp_path / "absent.jsonl") == []
    text = pg.table(rows)
    assert "| d | 3 | 2 | 0.9100 → 0.9300 (+0.0200 [+0.0100, +0.0300])" in text
    assert "**+0.0200**" in text
