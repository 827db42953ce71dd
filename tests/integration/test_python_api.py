"""The Python API (``import synthgate``): each entry point on tiny tables, 1 epoch, no shadow models."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from synthgate.flows.demo import BLOCKING_GATES, LENIENT_GATES, demo_contract, demo_parquet


def _contract(tmp: Path, gates: dict[str, float]) -> Path:
    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data["evaluation"] = {"shadow_models": 0, "attack_rows": 50, "anonymeter_attacks": 50, "inference_attacks": 50}
    data["gates"] = {**data.get("gates", {}), **gates}
    path = tmp / "contract.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _config(tmp: Path, gates: dict[str, float]) -> dict[str, Any]:
    source = tmp / "source.parquet"
    pl.read_parquet(demo_parquet()).sample(n=600, seed=5).write_parquet(source)
    return {
        "contract": str(_contract(tmp, gates)),
        "source": {"path": str(source)},
        "out": str(tmp / "out"),
        "epochs": 1,
        "batch_size": 100,
        "n_synthetic": 400,
        "evaluation_rows": 300,
        "show_progress": False,
    }


def test_import_is_light() -> None:
    """``import synthgate`` pulls in neither torch nor Prefect; the names resolve on first use."""
    code = (
        "import sys, synthgate; heavy = [m for m in ('torch', 'prefect', 'opacus') if m in sys.modules]; "
        "print(heavy); assert not heavy, heavy; assert 'release' in dir(synthgate)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    synthgate = importlib.import_module("synthgate")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        synthgate.nope  # noqa: B018


def test_release_from_dict_and_yaml_and_sample(prefect_harness: None, tmp_path: Path) -> None:
    import synthgate
    from synthgate.errors import RegistryError

    cfg = _config(tmp_path, LENIENT_GATES)
    result = synthgate.release(cfg)
    assert result.released and result.failed_gates == []
    assert result.report_path.is_file() and result.report_path.parent == result.folder
    assert result.owner_report_path.is_file()
    assert result.folder.resolve().parent.name == "releases"
    names = {g["name"] for g in result.gates}
    assert {"dcr_share", "column_shapes"} <= names
    assert all(
        set(g) == {"name", "kind", "direction", "threshold", "passed", "outcome", "description"} for g in result.gates
    )
    page = result._repr_html_()
    assert "RELEASED" in page and "dcr_share" in page and "measured" not in page

    # The released (checked) rows: synthetic.parquet beside the DuckDB table, the same rows, hashed in the registry.
    import hashlib

    import duckdb

    from synthgate.governance.registry import Registry

    checked = pl.read_parquet(result.folder / "synthetic.parquet")
    with duckdb.connect(str(result.output_db), read_only=True) as con:
        table = pl.from_arrow(con.execute(f'SELECT * FROM "{result.output_table}"').to_arrow_table())
    assert checked.height == 400 and checked.sort(checked.columns).equals(table.sort(checked.columns))
    record = Registry(Path(cfg["out"]) / "registry.duckdb").get(result.run_id)
    digest = hashlib.sha256((result.folder / "synthetic.parquet").read_bytes()).hexdigest()
    assert digest in str(record.artifacts["synthetic.parquet"])

    release = synthgate.load_release(result.folder)
    rows = release.sample(50, seed=1)
    assert rows.height == 50 and set(release.contract.columns) <= set(rows.columns)
    women = release.sample(20, where="sex = 'Female'", seed=2)  # conditional generation
    assert women.height == 20 and set(women["sex"]) == {"Female"}
    assert release.sample(50, seed=1).equals(rows)  # seeded post-processing

    # The same checks as `synthgate sample`: a changed file is refused, at load and at each draw.
    (result.folder / "contract.yaml").write_text((result.folder / "contract.yaml").read_text() + "\n# edited\n")
    with pytest.raises(RegistryError, match="contract.yaml"):
        synthgate.load_release(result.folder)
    with pytest.raises(RegistryError, match="contract.yaml"):
        release.sample(5)
    with pytest.raises(ValueError, match="not a release folder"):
        synthgate.load_release(tmp_path)

    # A run.yaml path, blocked: released False, nothing published, the reports still written.
    blocked_dir = tmp_path / "blocked"
    blocked_dir.mkdir()
    run_yaml = blocked_dir / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(_config(blocked_dir, BLOCKING_GATES)))
    blocked = synthgate.release(run_yaml)
    assert not blocked.released and blocked.failed_gates == ["column_shapes"]
    assert blocked.report_path.is_file() and not (blocked.folder / "model.pt").exists()
    assert "BLOCKED" in blocked._repr_html_()


def test_release_refuses_a_bad_config_before_running() -> None:
    import synthgate
    from synthgate.errors import ContractError

    with pytest.raises(ContractError, match="source"):
        synthgate.release({"contract": "c.yaml"})
    with pytest.raises(ContractError, match="does not exist"):
        synthgate.release("no-such-run.yaml")


def test_contract_from_yaml_and_infer(tmp_path: Path) -> None:
    import pandas as pd

    import synthgate

    c = synthgate.Contract.from_yaml(demo_contract())
    assert c.table == "adult" and "age" in c.columns and c.data_derived == []
    frame = pl.DataFrame({"age": [23, 35, 41, 58, 62, 30] * 5, "city": ["a", "b", "c"] * 10})
    for data in (frame, frame.to_pandas(), frame.to_arrow()):
        inferred = synthgate.Contract.infer(data, table="people", epsilon=2.0)
        assert inferred.table == "people" and inferred.epsilon == 2.0
        assert set(inferred.columns) == {"age", "city"} and set(inferred.data_derived) == {"age", "city"}
    written = inferred.to_yaml(tmp_path / "people.yaml")
    again = synthgate.Contract.from_yaml(written)
    assert again.model.fingerprint() == inferred.model.fingerprint()
    with pytest.raises(TypeError, match="polars, pandas or Arrow"):
        synthgate.Contract.infer([[1, 2]], table="t")
    assert isinstance(pd.DataFrame(), pd.DataFrame)


def test_evaluate_takes_polars_pandas_and_arrow(prefect_harness: None, tmp_path: Path) -> None:
    """A copy of train is blocked by the privacy gates; the caller gets every figure (owner side)."""
    import synthgate

    rows = pl.read_parquet(demo_parquet()).sample(n=1200, seed=7, shuffle=True)
    train, holdout = rows[:600], rows[600:]
    contract = synthgate.Contract.from_yaml(_contract(tmp_path, {}))
    ev = synthgate.evaluate(train.to_pandas(), holdout.to_arrow(), train, contract, out=tmp_path / "ev")
    assert not ev.released
    assert {"dcr_share", "identical_match_share"} <= set(ev.failed_gates)
    assert ev.metrics["identical_match_share"] > 0.9  # the synthetic table is the train table
    assert (tmp_path / "ev" / "report.json").is_file()
    page = ev._repr_html_()
    assert "FAIL" in page and "measured (private)" in page


def test_registry_commands_json_and_registry_lookup(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`releases list` / `budget show` --json; the registry found from --config or $SYNTHGATE_REGISTRY."""
    import json

    from typer.testing import CliRunner

    import synthgate
    from synthgate.flows.cli import app

    cfg = _config(tmp_path, BLOCKING_GATES)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(cfg))
    blocked = synthgate.release(run_yaml)
    registry = tmp_path / "out" / "registry.duckdb"
    cli = CliRunner()
    monkeypatch.chdir(tmp_path)  # no out/demo here: the default would find nothing

    listed = cli.invoke(app, ["releases", "list", "--json", "--config", str(run_yaml)])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["run_id"] == blocked.run_id and row["status"] == "blocked"
    assert row["failed_gates"] == ["column_shapes"] and row["table"] == "adult"

    monkeypatch.setenv("SYNTHGATE_REGISTRY", str(registry))
    budget = cli.invoke(app, ["budget", "show", "--json"])
    assert budget.exit_code == 0, budget.output
    (spend,) = json.loads(budget.stdout)
    assert spend["table"] == "adult" and spend["runs_charged"] == 1
    assert spend["epsilon_spent"] == pytest.approx(blocked.epsilon_spent)
    shown = cli.invoke(app, ["releases", "show", blocked.run_id])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["run_id"] == blocked.run_id

    # Not a terminal: the table is not cut to 80 columns (the run id and every column in full).
    table = cli.invoke(app, ["releases", "list"])
    assert table.exit_code == 0
    (line,) = [ln for ln in table.stdout.splitlines() if blocked.run_id in ln]
    assert "blocked" in line and "column_shapes" in line and len(line) > 80

    monkeypatch.delenv("SYNTHGATE_REGISTRY")
    missing = cli.invoke(app, ["budget", "show"])
    assert missing.exit_code == 2 and "no release registry" in missing.output
