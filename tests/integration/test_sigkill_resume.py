"""A real SIGKILL mid-training (no exception handler, no cleanup runs) and a resume from the checkpoint
it left: the resumed fit ends bit-identical to an uninterrupted one. In the integration lane because the
killed fit runs in its own process (importing torch and opacus takes ~10 s on a loaded machine); the
unit lane checks every family with an exception standing in for the kill
(tests/unit/models/test_checkpoint.py::test_every_family_resumes_bit_identically)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import torch

from synthgate.models.synthesizers.base import Checkpoint
from synthgate.validation.contract import Contract
from tests.unit.models.test_checkpoint import TINY, _fit_family

_KILLED_FIT = """
import os, signal, sys
from pathlib import Path
import polars as pl, torch
torch.set_num_threads(1)
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import get_synthesizer
from synthgate.models.synthesizers.base import Checkpoint
from synthgate.validation.contract import load_contract

name, contract_path, table, path, kill_at, options = sys.argv[1:7]
contract = load_contract(contract_path)
cls = get_synthesizer(name)
model = cls(contract, cls.config_class(epochs=1.0, batch_size=100, **eval(options)), device="cpu")

def progress(p):
    if p.step >= int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)

model.fit(pl.read_parquet(table), ledger=PrivacyLedger(contract.privacy.delta), epsilon=3.0, seed=3,
          progress=progress, checkpoint=Checkpoint(Path(path), every_epochs=0.25))
"""


def test_a_sigkilled_fit_resumes_bit_identically(
    adult_contract: Contract, adult_modelled: pl.DataFrame, tmp_path: Path, one_thread: None
) -> None:
    """A real SIGKILL (no exception handler, no cleanup) in medgan's GAN phase, its second phase."""
    import subprocess
    import sys

    from synthgate.flows.demo import demo_contract

    path, table = tmp_path / "train.pt", tmp_path / "train.parquet"
    adult_modelled.write_parquet(table)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_FIT,
            "medgan",
            str(demo_contract()),
            str(table),
            str(path),
            "8",
            repr(TINY["medgan"]),
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]  # killed by SIGKILL
    assert path.exists()
    resumed, resumed_ledger = _fit_family(
        "medgan", adult_contract, adult_modelled, checkpoint=Checkpoint(path, every_epochs=0.25)
    )
    whole, whole_ledger = _fit_family("medgan", adult_contract, adult_modelled)
    assert resumed.training_summary["resumed_at_step"] == 7  # the checkpoint of step 6 (every 3 steps)
    assert [(e.mechanism, e.steps) for e in resumed_ledger.entries] == [
        (e.mechanism, e.steps) for e in whole_ledger.entries
    ]
    for net, module in whole._networks().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, resumed._networks()[net].state_dict()[k]), f"{net}.{k}"
