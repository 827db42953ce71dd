"""No exact private count in anything a release publishes (issue 18, item 2).

The unit of privacy is one row of the source table, so the number of rows is private: the source's
count, and the training and holdout counts that the secret split makes from it. A release publishes
the synthetic table (to a DuckDB table; its length is then public), the files of its release folder, the CLI output
and the Prefect artifacts. This test releases a source of a distinctive size, lets the synthetic
table take its default length, and looks for each exact count in everything published.

``published`` is the one place that says what is published; the owner's evaluation report (issue 18,
item 4), which is owner-only and holds exact figures by design, is not in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import torch
import yaml
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.flows.demo import LENIENT_GATES, demo_contract, demo_parquet
from synthgate.governance.registry import Registry
from synthgate.models.synthesizers.base import private_entropy
from synthgate.tasks.ingest import prepare_frame
from synthgate.tasks.split import split_holdout
from synthgate.validation.contract import load_contract

runner = CliRunner()
SOURCE_ROWS = 1337  # distinctive
FRACTION = 1 / 3


def published(run: dict[str, Any]) -> dict[str, str]:
    """Everything the release published, as text by where it is: each text file of the release folder (the public report included),
    the CLI's output, and the Prefect artifacts that mention the run. (The synthetic table's length is
    checked by the test above; the model file is binary, its only count the DP estimate.)"""
    out: dict[str, str] = {"CLI output": run["cli"].output}
    for path in sorted(Path(run["record"].folder).rglob("*")):
        if path.is_file():
            try:
                out[str(path)] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    for artifact in run["artifacts"]:
        out[f"Prefect artifact {artifact.key}"] = f"{artifact.data} {artifact.description or ''}"
    return out


def occurrences(count: int, text: str) -> list[str]:
    """``count`` written as a number in ``text`` (1337, 1337.0, 1,337), with some context; not as part of
    a longer number, a decimal fraction or a hash."""
    number = re.escape(str(count)) + r"(?:\.0+)?"
    if count >= 1000:
        number = f"(?:{number}|{re.escape(f'{count:,}')})"
    pattern = re.compile(rf"(?<![\w.,]){number}(?![\w]|[.,]\d)")
    return [text[max(0, m.start() - 40) : m.end() + 40] for m in pattern.finditer(text)]


@pytest.fixture(scope="module")
def run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("counts")
    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data["evaluation"] = {"shadow_models": 0, "attack_rows": 50, "anonymeter_attacks": 50, "inference_attacks": 50}
    data["gates"] = {**data.get("gates", {}), **LENIENT_GATES}
    contract = tmp / "contract.yaml"
    contract.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    source = tmp / "source.parquet"
    pl.read_parquet(demo_parquet()).sample(n=SOURCE_ROWS, seed=21).write_parquet(source)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {  # no n_synthetic: the default length is under test
                "contract": str(contract),
                "source": {"path": str(source)},
                "out": str(tmp / "out"),
                "epochs": 1,
                "batch_size": 100,
                "evaluation_rows": 300,
                "holdout_fraction": FRACTION,
            }
        )
    )
    result = runner.invoke(app, ["run", "--config", str(cfg), "--quiet"])
    (record,) = Registry(tmp / "out" / "registry.duckdb").runs()
    assert result.exit_code == 0 and record.status == "released", result.output
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if record.run_id in str(a.data)]
    assert artifacts, "the release made no Prefect artifact that names its run"
    # The exact counts, as the data owner can recompute them: the run's split key is private_entropy(),
    # which the tests' SYNTHGATE_NOISE_SEED makes repeatable.
    c = load_contract(contract)
    rows = prepare_frame(pl.read_parquet(source), c).select(c.modelled_columns)
    train, holdout = split_holdout.fn(rows, fraction=FRACTION, key=private_entropy())
    counts = {"source": SOURCE_ROWS, "train": train.height, "holdout": holdout.height}
    return {"cli": result, "record": record, "artifacts": artifacts, "counts": counts, "tmp": tmp}


def test_the_synthetic_table_is_as_long_as_the_dp_estimate_not_the_exact_count(run: dict[str, Any]) -> None:
    folder = Path(run["record"].folder)
    model = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    estimate = max(1, round(model["codec"]["n_estimate"]))  # published with the model: DP
    with duckdb.connect(str(run["tmp"] / "out" / "synthgate.duckdb"), read_only=True) as con:
        published_rows = con.execute("SELECT count(*) FROM adult_synthetic").fetchall()[0][0]
    assert published_rows == estimate
    assert estimate not in run["counts"].values(), (estimate, run["counts"])  # DP noise moved it off


@pytest.mark.parametrize("which", ["source", "train", "holdout"])
def test_no_exact_count_is_published(run: dict[str, Any], which: str) -> None:
    count = run["counts"][which]
    everything = published(run)
    assert len(everything) >= 4  # the CLI output, an artifact, the contract and the ledger at least
    found = {where: hits for where, text in everything.items() if (hits := occurrences(count, text))}
    assert not found, f"the exact {which} row count {count} is published in: {found}"


def test_occurrences_finds_counts_and_skips_other_numbers() -> None:
    """The finder has power, and does not mistake hashes, fractions or longer numbers for a count."""
    assert occurrences(1337, '"rows": 1337,') and occurrences(1337, "1337.0 rows") and occurrences(1337, "1,337 rows")
    for text in ("ab1337cd", "0.1337", "13370", "1337.25", "21337", "run-20261206T1337"):
        assert not occurrences(1337, text), text
