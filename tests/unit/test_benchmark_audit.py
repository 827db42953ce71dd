"""benchmarks/audit.py: combining single-path results into the committed file, and its table."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.audit import combine, table


def _run(eps: float, bound: float, claim: float, **extra: Any) -> dict[str, Any]:
    return {
        "epsilon_target": eps,
        "epsilon_audited_network": claim,
        "epsilon_ledger_total": eps,
        "noise_multiplier": 1.0,
        "sample_rate": 0.03,
        "steps": 261,
        "mean_participations_included": 8.0,
        "bound": {"epsilon_lower_bound": bound, "guesses": 20, "correct": 12},
        "below_claim": bound <= claim,
        **extra,
    }


def _part(clipping: str | None, seconds: float) -> dict[str, Any]:
    config = {"canaries": 1000} if clipping is None else {"canaries": 1000, "clipping": clipping}
    tag = {} if clipping is None else {"clipping": clipping}
    return {
        "what": "x",
        "command": f"cmd {clipping}",
        "code_version": f"v-{clipping}",
        "machine": {"cpus": 2},
        "seconds": seconds,
        "honest": {
            "runs": [_run(1.0, 0.0, 0.8, **tag), _run(3.0, 0.5, 2.9, **tag)],
            "all_below_claim": True,
            "config": config,
        },
        "controls": [{"sabotage": "no noise", **_run(1.0, 4.4, 0.8, **tag)}],
    }


def test_combine_labels_each_path_and_keeps_each_parts_provenance() -> None:
    # a file from before the ghost path (no clipping recorded: the audit was per-sample only)
    data = combine([_part(None, 340.9), _part("ghost", 120.0)])
    assert [r["clipping"] for r in data["honest"]["runs"]] == ["per-sample", "per-sample", "ghost", "ghost"]
    assert [c["clipping"] for c in data["controls"]] == ["per-sample", "ghost"]
    assert data["seconds"] == {"per-sample": 340.9, "ghost": 120.0}
    assert data["code_version"] == ["v-None", "v-ghost"] and set(data["machine"]) == {"per-sample", "ghost"}
    assert data["honest"]["all_below_claim"] and data["honest"]["clipping"] == "both"
    lines = table(data).splitlines()
    assert len(lines) == 2 + 4 + 2
    assert lines[-1].startswith("| control: no noise | ghost | 0.800 |") and "caught" in lines[-1]


def test_combine_needs_one_result_per_path() -> None:
    with pytest.raises(SystemExit, match="one result per clipping path"):
        combine([_part("ghost", 1.0), _part("ghost", 2.0)])
