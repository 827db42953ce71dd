"""The gate_decision stage: every gate, the budget and the contract included, decides the release."""

from __future__ import annotations

from prefect import task

from synthgate.validation.contract import Contract
from synthgate.validation.gates import governance_checks
from synthgate.validation.results import GateDecision, MetricResult, family_evidence
from synthgate.validation.results import decide_release as _decide


@task(name="gate_decision", task_run_name="gate decision")
def gate_decision(
    results: list[MetricResult], contract: Contract, *, epsilon_spent: float
) -> tuple[GateDecision, list[MetricResult]]:
    """All gates, budget and contract included; released only if none blocks.

    The flow's decision task: ``validation.results.decide_release`` over the checks' results plus the
    governance checks (budget, contract). The results come back with their privacy gates' family
    size set (``family_evidence``), so the report shows the outcomes the decision used."""
    everything = family_evidence([*results, *governance_checks(contract, epsilon_spent=epsilon_spent)])
    return _decide(everything, block_inconclusive=contract.gates.block_inconclusive), everything
