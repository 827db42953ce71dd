"""`synthgate audit`: an empirical lower bound on the ε of the DP critic, from one training run each.

For every ε asked for, the contract's model is trained exactly as a release trains it (same codec,
ledger, Poisson sampling, clipping and noise), with ``m`` gradient canaries planted in its DP
network (``models.canaries``); ``validation.audit`` turns the canaries' scores and secret coins into
a lower bound on ε that holds with 95% confidence (Steinke, Nasr & Jagielski 2023). The bound must
stay below the ε the ledger claims for that network: a bound above it means the implementation
leaks more than it accounts for (a clipping, noise, sampling or accounting bug), and the command
exits 3.

What it audits: the DP-SGD mechanism of the network that reads real rows, as implemented
(Opacus' clipping and noise, the step count, the accountant's ε), on either clipping path
(``clipping``): "release" (default) audits the path a release of this contract uses (ghost clipping
for ctgan's default), "ghost" insists on it, "per-sample" switches a ghost trainer to materialised
per-sample gradients, "both" runs every ε on each of the two paths. On the ghost path the canaries
are clipped by the module's own clipping coefficients together with the rows and added before the
noise; Opacus' computation of the rows' norms is checked by unit tests, not by the audit. By default
the canaries' coordinates are reserved (the rows' gradients are zeroed there, ``--no-reserve``
keeps them) so that the score sees the canaries and the noise, not the data's own gradient. It does
not audit the other routes by which rows could reach the output; the taint test
(``tests/unit/models/test_taint.py``) covers those.

Privacy of the audit itself: each audited training is a DP computation on the source at its ε, and
the results (bounds, counts) are post-processing of it, so an audit of a private table spends the
sum of its ε values. That is not charged to the registry's per-table budget: audit on public or
stand-in data (the default, the embedded Adult demo), and the output says so.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthgate.models.canaries import GradientCanaries, install
from synthgate.models.ledger import epsilon_of
from synthgate.models.synthesizers import resolve_model_config
from synthgate.models.synthesizers.base import TrainingProgress
from synthgate.tasks.config import SourceConfig
from synthgate.tasks.evaluate import child_seed
from synthgate.tasks.redaction import private_task
from synthgate.tasks.train import fit_synthesizer
from synthgate.validation.audit import score_audit
from synthgate.validation.contract import Contract, ContractError
from synthgate.validation.report import write_text_atomically

__all__ = ["PRIVACY_NOTE", "AuditConfig", "audit_one", "audit_paths", "audit_result", "write_audit"]

PRIVACY_NOTE = (
    "Each audited training is a differentially private computation on the source at its epsilon; these "
    "results are post-processing of it. An audit of a private table therefore spends the sum of the "
    "audited epsilons, which is NOT charged to the registry's per-table budget: audit public or stand-in "
    "data."
)


class AuditConfig(BaseModel):
    """The one parameter of the audit flow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract: Path
    source: SourceConfig
    epsilons: list[float] = Field(default_factory=lambda: [1.0, 3.0, 10.0], min_length=1)
    canaries: int = Field(1000, ge=2, description="Gradient canaries per run, each included with probability 1/2.")
    reserve: bool = Field(True, description="Zero the rows' gradients at the canaries' coordinates.")
    clipping: Literal["release", "ghost", "per-sample", "both"] = Field(
        "release",
        description="Clipping path audited: the release's own (ghost for ctgan), ghost, per-sample, or both in turn.",
    )
    confidence: float = Field(0.95, gt=0, lt=1)
    epochs: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=2)
    holdout_fraction: float = Field(1 / 3, gt=0, lt=1, description="Rows set aside as a release would (not used).")
    seed: int = Field(0, ge=0)
    device: str = "auto"
    output: Path | None = Field(None, description="JSON file for the results (written atomically).")
    show_progress: bool = True

    @field_validator("epsilons")
    @classmethod
    def _finite_positive(cls, value: list[float]) -> list[float]:
        bad = [e for e in value if not (math.isfinite(e) and e > 0)]
        if bad:
            raise ValueError(
                f"every audited epsilon must be a finite number > 0 (a non-DP fit has nothing to audit). Got {bad}."
            )
        return value


@private_task(name="audit_one")
def audit_one(
    train: Any,
    contract: Contract,
    *,
    epsilon: float,
    config: AuditConfig,
    seed: int,
    clipping: str = "release",
    progress: Callable[[TrainingProgress], None] | None = None,
) -> dict[str, Any]:
    """Train the contract's model at ``epsilon`` with canaries planted in its DP network on the ``clipping``
    path (per-sample, ghost, or the release's own); bound its ε. ``progress``: the flow's training bar."""
    canaries = GradientCanaries(config.canaries, seed=child_seed(seed, 1), reserve=config.reserve, clipping=clipping)
    started = time.perf_counter()
    with install(canaries):
        model, ledger = fit_synthesizer(
            train,
            contract,
            epsilon=epsilon,
            epochs=config.epochs,
            batch_size=config.batch_size,
            device=config.device,
            seed=child_seed(seed, 2),
            progress=progress,
        )
    seconds = time.perf_counter() - started
    trainer = canaries.trainer
    if trainer is None:
        raise ValueError(
            f"model {contract.model!r} built no DP network at epsilon={epsilon}, so there is nothing to audit; "
            "audit a finite epsilon with a model that trains a DP critic (ctgan's default, critic: auto, trains "
            "none when the planned noise leaves the critic no signal: set model_options critic: on to audit it)."
        )
    entry = trainer.entry
    network_epsilon = epsilon_of([(entry.noise_multiplier, entry.sample_rate, entry.steps)], ledger.delta)
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta, confidence=config.confidence)
    return {
        "epsilon_target": epsilon,
        "epsilon_ledger_total": ledger.epsilon,
        "epsilon_audited_network": network_epsilon,
        "delta": ledger.delta,
        "audited_network": canaries.what,
        "clipping": "ghost" if trainer.ghost else "per-sample",
        "mechanism": entry.mechanism,
        "noise_multiplier": entry.noise_multiplier,
        "sample_rate": entry.sample_rate,
        "steps": entry.steps,
        "network_parameters": canaries.n_parameters,
        "mean_participations_included": float(canaries.participations[canaries.included].mean())
        if canaries.included.any()
        else 0.0,
        "reserved_coordinates": canaries.reserve,
        "canary_gradient_length": f"{canaries.overshoot:g} x clip norm (clipped to the clip norm)",
        "bound": bound.to_dict(),
        "below_claim": bound.epsilon_lower_bound <= network_epsilon,
        # the codec's DP row estimate (post-processing of the charged histograms), never the exact count
        "train_rows_estimate": round(float(model.codec.n_estimate or 0.0), 1),
        "train_rows_estimate_sd": round(float(model.codec.n_estimate_sd or 0.0), 1),
        "fit_seconds": round(seconds, 1),
        "model": {"name": model.name, **{k: str(v) for k, v in model.training_summary.items()}},
    }


def audit_paths(config: AuditConfig, contract: Contract) -> list[str]:
    """The clipping paths to audit, in order; a ghost path the contract's model does not take is refused
    (ContractError) before a row is read."""
    paths: list[str] = ["per-sample", "ghost"] if config.clipping == "both" else [config.clipping]
    if "ghost" in paths and getattr(resolve_model_config(contract), "clipping", None) != "ghost":
        raise ContractError(  # refused before a row is read
            f"--clipping {config.clipping} audits the ghost-clipping path, but model {contract.model!r} as configured "
            "by the contract does not clip by ghost clipping (only ctgan with model_options clipping: ghost, its "
            "default, does); audit it with --clipping release or per-sample."
        )
    return paths


def audit_result(
    config: AuditConfig, contract: Contract, *, runs: list[dict[str, Any]], versions: dict[str, str]
) -> dict[str, Any]:
    """The audit's results JSON: the method, every run's bound against its claim, the privacy note.

    Nothing in it is read from the rows but through a DP training: the training rows are given as each
    run's DP estimate (``train_rows_estimate``), never counted exactly."""
    return {
        "kind": "privacy-audit",
        "method": "one-run audit, Steinke, Nasr & Jagielski (NeurIPS 2023), Dirac gradient canaries in the "
        "DP network (per-sample gradient rows, or on the ghost path extra rows clipped by the same "
        "clipping coefficients and added before the noise); top/bottom-k guesses on a fixed grid, "
        "Bonferroni-corrected",
        "clipping": config.clipping,
        "table": contract.table,
        "model": contract.model,
        "canaries": config.canaries,
        "confidence": config.confidence,
        "all_below_claim": all(r["below_claim"] for r in runs),
        "runs": runs,
        "privacy_note": PRIVACY_NOTE,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": versions,
        "config": config.model_dump(mode="json"),
    }


def write_audit(result: dict[str, Any], output: Path) -> None:
    """The results JSON at ``output``, written atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output, json.dumps(result, indent=2, default=str) + "\n")
