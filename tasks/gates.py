"""The gate_decision stage: every gate, the budget and the contract included, decides the release."""

from __future__ import annotations

from prefect import task

from synthgate.validation.contract import Contract
from synthgate.validation.gates import governance_checks
from synthgate.validation.results import GateDecision, MetricResult
from synthgate.validation.results import decide_release as _decide


@task(name="gate_decision", task_run_name="gate decision")
def gate_decision(
    results: list[MetricResult], contract: Contract, *, epsilon_spent: float
) -> tuple[GateDecision, list[MetricResult]]:
    """All gates, budget and contract included; released only if every one passes.

    The flow's decision task: ``validation.results.decide_release`` over the checks' results plus the
    governance checks (budget, contract)."""
    everything = [*results, *governance_checks(contract, epsilon_spent=epsilon_spent)]
    return _decide(everything, block_inconclusive=contract.gates.block_inconclusive), everything
