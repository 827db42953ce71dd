"""A fit killed mid-training resumes from its checkpoint and ends where an uninterrupted fit ends."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import polars as pl
import pytest
import torch

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import get_synthesizer
from synthgate.models.synthesizers.base import Checkpoint, TrainingProgress
from synthgate.validation.contract import Contract


class Killed(Exception):
    """Stands in for SIGKILL at a given step (after the checkpoint before it was written)."""


def _fit(
    contract: Contract,
    train: pl.DataFrame,
    *,
    epsilon: float = 3.0,
    checkpoint: Checkpoint | None = None,
    kill_at: int | None = None,
    epochs: float = 1.0,
    critic: str = "auto",
):
    cls = get_synthesizer("ctgan")
    model = cls(contract, cls.config_class(epochs=epochs, batch_size=100, critic=critic), device="cpu")
    ledger = PrivacyLedger(contract.privacy.delta)

    def progress(p: TrainingProgress) -> None:
        if kill_at is not None and p.step >= kill_at:
            raise Killed(p.step)

    model.fit(train, ledger=ledger, epsilon=epsilon, seed=3, progress=progress, checkpoint=checkpoint)
    return model, ledger


@pytest.mark.parametrize(
    ("epsilon", "critic"), [(3.0, "auto"), (math.inf, "auto"), (3.0, "off")], ids=["dp", "non-dp", "dp-no-critic"]
)
def test_a_killed_fit_resumes_to_the_uninterrupted_result(
    adult_contract: Contract, adult_modelled: pl.DataFrame, tmp_path: Path, epsilon: float, critic: str
) -> None:
    whole, whole_ledger = _fit(adult_contract, adult_modelled, epsilon=epsilon, critic=critic)
    steps = whole.training_summary["steps"]  # 12 steps at q = 100/~1200
    ckpt = Checkpoint(tmp_path / "train.pt", every_epochs=0.25)
    every = ckpt.every_steps(whole.training_summary["sample_rate"])
    assert 1 <= every < steps // 2
    with pytest.raises(Killed):
        _fit(adult_contract, adult_modelled, epsilon=epsilon, checkpoint=ckpt, kill_at=2 * every + 1, critic=critic)
    assert ckpt.path.exists()
    assert stat.S_IMODE(os.stat(ckpt.path).st_mode) == 0o600  # it holds the private streams' state

    resumed, resumed_ledger = _fit(adult_contract, adult_modelled, epsilon=epsilon, checkpoint=ckpt, critic=critic)
    assert resumed.training_summary["resumed_at_step"] == 2 * every + 1
    assert (
        resumed.training_summary["critic"] == whole.training_summary["critic"] == ("off" if critic == "off" else "on")
    )
    # The accounting continued: same entries, same step counts, same ε as the uninterrupted fit.
    assert [(e.mechanism, e.steps, e.noise_multiplier) for e in resumed_ledger.entries] == [
        (e.mechanism, e.steps, e.noise_multiplier) for e in whole_ledger.entries
    ]
    assert resumed_ledger.epsilon == whole_ledger.epsilon
    if math.isfinite(epsilon) and critic != "off":
        assert resumed.accountant.get_epsilon(adult_contract.privacy.delta) == pytest.approx(
            whole.accountant.get_epsilon(adult_contract.privacy.delta), rel=1e-9
        )
    # And the same model: every random stream, moment and weight came back.
    for k, v in whole.generator.state_dict().items():
        assert torch.equal(v, resumed.generator.state_dict()[k]), k
    assert whole.sample(200, seed=1).equals(resumed.sample(200, seed=1))


def test_a_checkpoint_of_another_fit_is_refused(
    adult_contract: Contract, adult_modelled: pl.DataFrame, tmp_path: Path
) -> None:
    ckpt = Checkpoint(tmp_path / "train.pt", every_epochs=0.25)
    with pytest.raises(Killed):
        _fit(adult_contract, adult_modelled, checkpoint=ckpt, kill_at=4)
    with pytest.raises(ValueError, match="different fit"):
        _fit(adult_contract, adult_modelled, checkpoint=ckpt, epochs=2.0)


def test_checkpoint_rejects_a_bad_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="every_epochs"):
        Checkpoint(tmp_path / "x.pt", every_epochs=0)


class _Payload:
    """Stands for a planted object: unpickling it would run code (``__reduce__``)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_a_tampered_checkpoint_is_refused_without_running_its_payload(tmp_path: Path, capsys) -> None:
    import torch

    path = tmp_path / "train.pt"
    torch.save({"key": "k", "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="not a synthgate checkpoint .* refused"):
        Checkpoint(path).load("k")
    assert "code ran" not in capsys.readouterr().out
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="damaged"):
        Checkpoint(path).load("k")


def test_a_checkpoint_loads_only_with_a_recorded_hash(
    adult_contract: Contract, adult_modelled: pl.DataFrame, tmp_path: Path
) -> None:
    """The hash is handed out before the file is renamed in; a file that is not on record is refused,
    even a well-formed checkpoint of the same fit (e.g. one copied in from another run)."""
    import hashlib

    recorded: list[str] = []
    ckpt = Checkpoint(tmp_path / "train.pt", every_epochs=0.25, on_save=recorded.append)
    with pytest.raises(Killed):
        _fit(adult_contract, adult_modelled, checkpoint=ckpt, kill_at=4)
    assert recorded and hashlib.sha256(ckpt.path.read_bytes()).hexdigest() == recorded[-1]
    key = torch.load(ckpt.path, weights_only=True)["key"]
    assert Checkpoint(ckpt.path, trusted=tuple(recorded[-2:])).load(key) is not None
    with pytest.raises(ValueError, match="not the file this run wrote"):
        Checkpoint(ckpt.path, trusted=tuple(recorded[:-1])).load(key)
    with pytest.raises(ValueError, match="not the file this run wrote"):
        Checkpoint(ckpt.path, trusted=()).load(key)  # a new run: no checkpoint on record


# ---------------------------------------------------------------------------- every family resumes
# Tiny networks and ~12 steps (epochs 1 at an expected batch of 100 of 1,200 rows): the test is about
# the state a checkpoint carries, not about quality.
TINY: dict[str, dict[str, object]] = {
    "ctgan": {"generator_dims": (16,), "critic_dims": (16,), "z_dim": 8},
    "tvae": {"encoder_dims": (16,), "decoder_dims": (16,), "latent_dim": 8},
    "gumbel-gan": {"generator_dims": (16,), "discriminator_dims": (16,), "z_dim": 8},
    "wgan-gp": {"generator_dims": (16,), "critic_dims": (16,), "z_dim": 8, "n_critic": 2},
    "cwgan-gp": {"generator_dims": (16,), "critic_dims": (16,), "z_dim": 8},
    "medgan": {
        "autoencoder_epochs": 0.5,
        "latent_dim": 8,
        "z_dim": 8,
        "generator_dims": (8, 8),
        "discriminator_dims": (16,),
    },
    "corgan": {
        "autoencoder_epochs": 0.5,
        "latent_dim": 8,
        "z_dim": 8,
        "channels": (4, 4),
        "generator_channels": 4,
        "generator_length": 8,
    },
    "tablegan": {"z_dim": 8, "generator_channels": 4, "discriminator_channels": 4, "norm_groups": 2, "feature_dim": 4},
    "tgan": {"z_dim": 4, "hidden_dim": 8, "feature_dim": 8, "embed_dim": 4, "discriminator_dims": (16,)},
}


def _fit_family(
    name: str,
    contract: Contract,
    train: pl.DataFrame,
    *,
    checkpoint: Checkpoint | None = None,
    kill_at: int | None = None,
):
    cls = get_synthesizer(name)
    model = cls(contract, cls.config_class(epochs=1.0, batch_size=100, **TINY[name]), device="cpu")
    ledger = PrivacyLedger(contract.privacy.delta)

    def progress(p: TrainingProgress) -> None:
        if kill_at is not None and p.step >= kill_at:
            raise Killed(p.step)

    model.fit(train, ledger=ledger, epsilon=3.0, seed=3, progress=progress, checkpoint=checkpoint)
    return model, ledger


# medgan/corgan: killed in the autoencoder phase (step 4: its checkpoint at 3) and in the GAN phase
# (step 7: the checkpoint at 6 is the last autoencoder step, so the GAN phase starts on resume).
KILLS = [(name, 7) for name in TINY] + [("medgan", 4), ("corgan", 4)]


@pytest.mark.parametrize(("name", "kill_at"), KILLS, ids=[f"{n}-killed-at-{k}" for n, k in KILLS])
def test_every_family_resumes_bit_identically(
    name: str, kill_at: int, adult_contract: Contract, adult_modelled: pl.DataFrame, tmp_path: Path, one_thread: None
) -> None:
    whole, whole_ledger = _fit_family(name, adult_contract, adult_modelled)
    ckpt = Checkpoint(tmp_path / "train.pt", every_epochs=0.25)
    assert ckpt.every_steps(whole.training_summary["sample_rate"]) == 3
    with pytest.raises(Killed):
        _fit_family(name, adult_contract, adult_modelled, checkpoint=ckpt, kill_at=kill_at)
    assert ckpt.path.exists()
    resumed, resumed_ledger = _fit_family(name, adult_contract, adult_modelled, checkpoint=ckpt)
    assert resumed.training_summary["resumed_at_step"] == kill_at
    assert [(e.mechanism, e.steps, e.noise_multiplier) for e in resumed_ledger.entries] == [
        (e.mechanism, e.steps, e.noise_multiplier) for e in whole_ledger.entries
    ]
    assert resumed_ledger.epsilon == whole_ledger.epsilon
    nets, again = whole._networks(), resumed._networks()
    assert set(nets) == set(again)
    for net in nets:
        for k, v in nets[net].state_dict().items():
            assert torch.equal(v, again[net].state_dict()[k]), f"{name}: {net}.{k} differs after the resume"
    assert whole.sample(200, seed=1).equals(resumed.sample(200, seed=1))
