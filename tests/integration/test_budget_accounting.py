"""What a run is charged when it fails, and an over-budget ε refused before any row is read (issue 18, item 6 e, f).

Once training has started, the rows have been used: a run that fails afterwards, whatever the
error, is charged its whole planned ε (its spent ε is not known). A refund would let anyone retry a
crashing run until its budget is spent many times over. And an ``--epsilon`` above the contract's
budget is refused before the source is opened, so the refusal says nothing about the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import synthgate.flows.release as release_module
from synthgate.errors import InputError
from synthgate.flows.cli import app
from synthgate.flows.config import RunConfig, SourceConfig
from synthgate.flows.demo import demo_contract
from synthgate.flows.release import release_flow
from synthgate.governance.registry import Registry
from synthgate.validation.contract import load_contract

runner = CliRunner()


def _raise(err: BaseException) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise err

    return fail


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("train_synthesizer", RuntimeError("crashed while training")),
        ("sample_synthetic", InputError("bad after training")),
    ],
    ids=["crash-in-training", "input-error-after-training"],
)
def test_a_run_that_fails_after_training_started_is_charged_its_planned_epsilon(
    prefect_harness: None,
    tmp_path: Path,
    small_source: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    error: BaseException,
) -> None:
    monkeypatch.setattr(release_module, stage, _raise(error))
    cfg = RunConfig(
        contract=demo_contract(),
        source=SourceConfig(path=small_source),
        out=tmp_path / "out",
        epochs=0.1,
        batch_size=250,
        show_progress=False,
        checkpoint_every=None,
    )
    with pytest.raises(type(error)):
        release_flow(cfg)
    planned = load_contract(demo_contract()).privacy.epsilon
    registry = Registry(cfg.registry_path)
    (record,) = registry.runs()
    assert record.training_started and record.status == "failed"
    assert planned > 0 and record.epsilon_charged == pytest.approx(planned)
    assert registry.spend(record.source_table).epsilon == pytest.approx(planned)


def test_an_epsilon_above_the_budget_is_refused_before_any_row_is_read(
    prefect_harness: None, tmp_path: Path, small_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    for name in ("count_source_rows", "load_table", "sample_large_table"):
        monkeypatch.setattr(
            release_module, name, lambda *a, name=name, **k: reads.append(name) or _raise(AssertionError(name))()
        )
    budget = load_contract(demo_contract()).privacy.epsilon
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"contract: {demo_contract()}\nsource: {{path: {small_source}}}\nout: {tmp_path / 'out'}\n")
    result = runner.invoke(app, ["run", "--config", str(cfg), "--epsilon", str(budget * 2), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "budget" in result.output and reads == []
    registry = tmp_path / "out" / "registry.duckdb"
    assert not registry.exists() or all(r.epsilon_charged == 0 for r in Registry(registry).runs())
