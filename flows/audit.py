"""`synthgate audit`: an empirical lower bound on the ε of the DP critic, from one training run each.

The flow composes: load → validate → split (as a release) → per ε and clipping path, train with
gradient canaries and bound ε (``tasks.audit.audit_one``) → the results JSON. What is audited, how,
and what the audit itself spends: see tasks/audit.py.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from synthgate.flows.stages import label_flow_run, new_run_id, package_versions, training_progress
from synthgate.models.synthesizers.base import private_entropy
from synthgate.tasks.audit import AuditConfig, audit_one, audit_paths, audit_result, write_audit
from synthgate.tasks.evaluate import child_seed
from synthgate.tasks.ingest import load_table
from synthgate.tasks.redaction import withhold_library_errors
from synthgate.tasks.split import split_holdout
from synthgate.tasks.validate import validate_table
from synthgate.validation.contract import load_contract

__all__ = ["AuditConfig", "audit_flow"]


@flow(name="synthgate-audit", validate_parameters=False)
@withhold_library_errors
def audit_flow(config: AuditConfig) -> dict[str, Any]:
    """load → validate → split (as a release) → per ε: train with canaries, bound ε → results JSON.

    The flow run is named ``<table>-<run_id>`` (run id ``audit-...``) as a release's is, and tagged
    table:, model: and kind:audit."""
    contract = load_contract(config.contract)
    run_id = new_run_id("audit-")
    label_flow_run(f"{contract.table}-{run_id}", [f"table:{contract.table}", f"model:{contract.model}", "kind:audit"])
    paths = audit_paths(config, contract)  # refused before a row is read
    df = load_table(config.source, contract)
    validate_table(df, contract)
    # Split as a release does: per-row coins under a fresh secret key (the audit never resumes).
    train, _ = split_holdout(
        df.select(contract.modelled_columns), fraction=config.holdout_fraction, key=private_entropy()
    )
    del df
    runs = []
    for path in paths:
        for i, eps in enumerate(config.epsilons):
            with training_progress(config.show_progress) as progress:
                runs.append(
                    audit_one(
                        train,
                        contract,
                        epsilon=eps,
                        config=config,
                        seed=child_seed(config.seed, 10 + i),
                        clipping=path,
                        progress=progress,
                    )
                )
    result = {
        "run_id": run_id,
        **audit_result(config, contract, runs=runs, versions=package_versions()),
    }
    if config.output is not None:
        write_audit(result, config.output)
    return result
