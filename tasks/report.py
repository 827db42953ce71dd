"""The run's report before it is written: the row counts, the notes, the owner's report and the
public decision record (the flows pass them to ``publish_release`` / ``write_evaluation``).

The owner's report holds figures computed on private rows (exact row counts included) and stays
with the data owner; the public decision (``decision.json``) holds which gates passed, never a
measured value (see validation/public_report.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthgate.governance.registry import code_version
from synthgate.models.synthesizers.base import private_randomness_source
from synthgate.tasks.config import RunConfig
from synthgate.tasks.ingest import SampledTable
from synthgate.tasks.publish import Published
from synthgate.validation.contract import Contract
from synthgate.validation.public_report import decision_record
from synthgate.validation.report import build_report
from synthgate.validation.results import GateDecision, MetricResult

#: the row counts of (train, holdout, synthetic)
Sizes = tuple[int, int, int]

_SETS = ("train", "holdout", "synthetic")


def _subsampled(sets: Sizes, checked: Sizes) -> bool:
    return any(c < full for c, full in zip(checked, sets, strict=True))


def release_rows(sets: Sizes, checked: Sizes, sampled: SampledTable | None) -> dict[str, int]:
    """The report's row counts: the three sets; a streamed source's rows and sample; the sets the checks
    scored when ``evaluation_subsample`` cut them."""
    rows = dict(zip(_SETS, sets, strict=True))
    if sampled is not None:
        rows = {"source": sampled.n_rows, "sampled": sampled.sample.height, **rows}
    if _subsampled(sets, checked):
        rows |= {f"checked_{k}": c for k, c in zip(_SETS, checked, strict=True)}
    return rows


def release_notes(
    contract: Contract,
    training_summary: Mapping[str, Any],
    *,
    sets: Sizes,
    checked: Sizes,
    sampled: SampledTable | None,
    max_rows: int,
    evaluation_rows: int,
) -> list[str]:
    """The report's notes: the model's training summary, where the DP randomness came from, the unit of
    privacy, the dropped identifier columns, a streamed source's sampling and the checks' subsampling."""
    notes = [
        f"model {contract.model}: " + ", ".join(f"{k}={v}" for k, v in training_summary.items()),
        f"DP noise and Poisson sampling drawn from {private_randomness_source()}; the seed in this "
        "report does not determine them.",
        f"unit of privacy: {contract.privacy_unit}.",
    ]
    if contract.excluded_columns:
        notes.append(f"identifier/pii columns dropped, never modelled: {contract.excluded_columns}")
    if sampled is not None:
        notes.append(
            f"the source's {sampled.n_rows} rows exceed max_rows = {max_rows}: all were validated in "
            f"streamed batches; training and the checks used an independent random sample of "
            f"{sampled.sample.height} rows (each row kept with probability {sampled.fraction:.4g}, secret coins). "
            "The DP guarantee covers the whole table; the amplification by this sampling is not claimed."
        )
    if _subsampled(sets, checked):
        notes.append(
            f"the privacy and fidelity checks scored seeded uniform subsamples of at most evaluation_rows = "
            f"{evaluation_rows} rows per set (train {checked[0]}, holdout {checked[1]}, "
            f"synthetic {checked[2]}); their figures are estimates for the whole sets."
        )
    return notes


def release_report(
    *,
    run_id: str,
    contract: Contract,
    config: RunConfig,
    decision: GateDecision,
    results: list[MetricResult],
    ledger: dict[str, Any],
    training_summary: Mapping[str, Any],
    rows: dict[str, int],
    notes: list[str],
    timings: dict[str, float],
    versions: dict[str, str],
    output_table: str,
    registry_path: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the owner's report, the public decision record) of a release, from one ``GateDecision``."""
    report = build_report(
        run_id=run_id,
        table=contract.table,
        decision=decision,
        results=results,
        ledger=ledger,
        epsilon_budget=contract.privacy.epsilon,
        delta=contract.privacy.delta,
        rows=rows,
        timings=timings,
        versions=versions,
        contract_fingerprint=contract.fingerprint(),
        config=config.model_dump(mode="json"),
        notes=notes,
        dp_randomness=private_randomness_source(),
    )
    report["output"] = {"db": str(config.output_db), "table": output_table}
    report["registry"] = {"path": str(registry_path), "code_version": code_version()}
    # The public part of the outcome: which gates passed, never a measured value (decision.json).
    public_decision = decision_record(
        run_id=run_id,
        table=contract.table,
        decision=decision,
        results=results,
        dp_randomness=private_randomness_source(),
        versions=report["versions"],
        output=report["output"],
        model=contract.model,
        training_summary=training_summary,
    )
    return report, public_decision


def with_published(report: dict[str, Any], published: Published) -> dict[str, Any]:
    """The owner's report with where the run's files went (the registry records the folders' hashes).

    The returned dict is the owner's report (in this process only); the CLI prints only "public"."""
    report["folder"] = str(published.folder)
    report["artifacts"] = published.hashes  # for the registry; the folder's own report.json cannot hold its hash
    report["public"] = published.public_report
    report["owner_report"] = {"folder": str(published.owner_folder), "artifacts": published.owner_hashes}
    return report


def evaluation_notes(contract: Contract, *, shadow: bool) -> list[str]:
    """The notes of ``synthgate evaluate``'s report: no ledger, and whether the shadow attack ran."""
    notes = [
        "evaluation of tables made outside this run: no privacy ledger, so the budget and "
        "contract-is-public gates do not apply and no differential-privacy claim is made.",
    ]
    if shadow:
        notes.append(
            f"shadow-model attack: {contract.model} trained as a stand-in for the unknown synthesizer "
            f"at ε = {contract.privacy.epsilon}."
        )
    else:
        notes.append("shadow-model attack not run (pass --shadow to train stand-in shadow synthesizers).")
    return notes
