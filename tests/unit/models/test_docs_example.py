"""docs/models.md's worked example of a model family runs as written: one file of networks and hooks,
trained, checkpointed and resumed by the shared loop (``Synthesizer.fit``)."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import torch

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.base import Checkpoint, Synthesizer, TrainingProgress
from synthgate.validation.contract import Contract

DOC = Path(__file__).resolve().parents[3] / "docs" / "models.md"


@pytest.fixture(scope="module")
def mini_gan() -> Iterator[type[Synthesizer]]:
    text = DOC.read_text()
    section = text[text.index("### Worked example") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/models.md lost its worked example"
    module = types.ModuleType("mini_gan_from_docs")
    sys.modules[module.__name__] = module  # pydantic resolves the config's annotations through it
    try:
        exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)  # noqa: S102  (our own docs)
        yield module.MiniGAN
    finally:
        del sys.modules[module.__name__]


class Killed(Exception):
    pass


def _fit(
    cls: type[Synthesizer],
    contract: Contract,
    train: pl.DataFrame,
    checkpoint: Checkpoint | None = None,
    kill_at: int | None = None,
) -> tuple[Synthesizer, PrivacyLedger]:
    model = cls(contract, cls.config_class(epochs=1.0, batch_size=100, hidden=16, z_dim=8), device="cpu")
    ledger = PrivacyLedger(contract.privacy.delta)

    def progress(p: TrainingProgress) -> None:
        if kill_at is not None and p.step >= kill_at:
            raise Killed(p.step)

    model.fit(train, ledger=ledger, epsilon=3.0, seed=1, progress=progress, checkpoint=checkpoint)
    return model, ledger


def test_the_documented_family_trains_under_dp_and_resumes(
    mini_gan: type[Synthesizer], adult_contract: Contract, adult_small: pl.DataFrame, tmp_path: Path
) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole, ledger = _fit(mini_gan, adult_contract, train)
        ckpt = Checkpoint(tmp_path / "train.pt", every_epochs=0.25)
        with pytest.raises(Killed):
            _fit(mini_gan, adult_contract, train, ckpt, kill_at=7)
        resumed, resumed_ledger = _fit(mini_gan, adult_contract, train, ckpt)
    finally:
        torch.set_num_threads(before)
    # the loop charged the codec and one DP-SGD step per iteration, and spent (almost) all of ε
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-critic"]
    assert ledger.entries[1].steps == whole.training_summary["steps"] > 1
    assert ledger.differentially_private and 2.9 < ledger.epsilon <= 3.0 + 1e-6
    assert resumed.training_summary["resumed_at_step"] == 7
    assert [(e.mechanism, e.steps) for e in resumed_ledger.entries] == [(e.mechanism, e.steps) for e in ledger.entries]
    for k, v in whole.generator.state_dict().items():  # type: ignore[attr-defined]
        assert torch.equal(v, resumed.generator.state_dict()[k]), k  # type: ignore[attr-defined]
    rows = whole.sample(100, seed=2)
    assert rows.columns == list(adult_contract.modelled_columns) and rows.height == 100
    assert rows.equals(resumed.sample(100, seed=2))
