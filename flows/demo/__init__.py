"""The embedded demo: UCI Adult as parquet plus its hand-written contract, and the gate settings
that exercise the release plumbing (tests, screenshots) without depending on model quality."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEMO_TABLE = "adult"

#: Contract ``gates`` under which every gate passes, so a run is released whatever the model: for
#: tests and screenshots of the release plumbing (a 1-epoch model on a few hundred rows), never for a
#: real release. The gates' own logic is tested elsewhere.
LENIENT_GATES: dict[str, float] = {
    "max_dcr_share": 1.0,
    "identical_match_tolerance": 1.0,
    "max_mia_auc": 1.0,
    "max_mia_tpr_at_1pct_fpr": 1.0,
    "max_anonymeter_risk": 1.0,
    "min_column_shapes": 0.0,
    "min_pair_trends": 0.0,
    "min_three_way_ratio": 0.0,
    "max_detection_auc": 1.0,
    "min_tstr_ratio": 0.0,
}
#: ``LENIENT_GATES`` but one: no model matches every column exactly, so a run is blocked by
#: ``column_shapes`` alone.
BLOCKING_GATES: dict[str, float] = {**LENIENT_GATES, "min_column_shapes": 1.0}


def demo_parquet() -> Path:
    return Path(str(files(__package__) / "adult.parquet"))


def demo_contract() -> Path:
    return Path(str(files(__package__) / "adult.contract.yaml"))
