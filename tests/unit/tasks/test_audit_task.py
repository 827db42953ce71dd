"""The audit flow's pieces in tasks/audit.py: the clipping paths it audits and its results JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgate.flows.demo import demo_contract
from synthgate.tasks.audit import PRIVACY_NOTE, AuditConfig, audit_paths, audit_result, write_audit
from synthgate.tasks.config import SourceConfig
from synthgate.validation.contract import ContractError, load_contract, load_yaml_text, parse_contract


def _config(**kw: object) -> AuditConfig:
    return AuditConfig(contract=demo_contract(), source=SourceConfig(path=Path("a.parquet")), **kw)  # type: ignore[arg-type]


def test_the_audited_paths_follow_the_clipping_option_and_refuse_a_ghost_path_the_model_lacks() -> None:
    contract = load_contract(demo_contract())  # ctgan, ghost clipping by default
    assert audit_paths(_config(), contract) == ["release"]
    assert audit_paths(_config(clipping="both"), contract) == ["per-sample", "ghost"]
    data = load_yaml_text(contract.to_yaml())
    data["model_options"] = {**(data.get("model_options") or {}), "clipping": "per-sample"}
    per_sample = parse_contract(data)
    assert audit_paths(_config(clipping="per-sample"), per_sample) == ["per-sample"]
    with pytest.raises(ContractError, match="--clipping ghost audits the ghost-clipping path"):
        audit_paths(_config(clipping="ghost"), per_sample)


def test_the_results_json_holds_every_run_and_fails_when_one_bound_is_above_its_claim(tmp_path: Path) -> None:
    contract = load_contract(demo_contract())
    runs = [{"below_claim": True}, {"below_claim": False}]
    result = audit_result(_config(epsilons=[1.0, 2.0]), contract, runs=runs, versions={"python": "3.11"})
    assert result["kind"] == "privacy-audit" and result["runs"] == runs and not result["all_below_claim"]
    assert result["privacy_note"] == PRIVACY_NOTE and result["config"]["epsilons"] == [1.0, 2.0]
    assert audit_result(_config(), contract, runs=runs[:1], versions={})["all_below_claim"]
    write_audit(result, tmp_path / "sub" / "audit.json")
    assert json.loads((tmp_path / "sub" / "audit.json").read_text())["runs"] == runs
