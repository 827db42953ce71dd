"""The train_synthesizer stage: the contract's model trained with DP on the training rows.

Every data-dependent step is charged to a fresh privacy ledger for this release (or shadow run).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import get_synthesizer, resolve_model_config
from synthgate.models.synthesizers.base import Checkpoint, Synthesizer, TrainingProgress
from synthgate.tasks.redaction import private_task
from synthgate.validation.contract import Contract


def fit_synthesizer(
    train: pl.DataFrame,
    contract: Contract,
    *,
    epsilon: float,
    epochs: float | None,
    batch_size: int | None,
    device: str,
    seed: int,
    progress: Callable[[TrainingProgress], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[Synthesizer, PrivacyLedger]:
    """Train ``contract.model`` on ``train`` with a fresh ledger (shared by releases and shadows).

    ``epochs`` / ``batch_size`` override the contract's ``model_options``; None keeps them.
    ``checkpoint`` is used by models that support it (``supports_checkpoints``); the others
    train without one and ``training_summary["checkpoints"]`` says so.
    """
    cls = get_synthesizer(contract.model)
    config = resolve_model_config(contract, epochs=epochs, batch_size=batch_size)
    ledger = PrivacyLedger(contract.privacy.delta)
    model = cls(contract, config, device=device)
    extra = {"checkpoint": checkpoint} if checkpoint is not None and cls.supports_checkpoints else {}
    model.fit(
        train.select(contract.modelled_columns), ledger=ledger, epsilon=epsilon, seed=seed, progress=progress, **extra
    )
    if checkpoint is not None:
        model.training_summary["checkpoints"] = (
            f"every {checkpoint.every_epochs:g} epochs" if extra else f"not supported by {cls.name}"
        )
    return model, ledger


# DP training as a task; every data-dependent step is charged to a fresh ledger for this release.
train_synthesizer = private_task(name="train_synthesizer", task_run_name="train the DP synthesizer")(fit_synthesizer)
