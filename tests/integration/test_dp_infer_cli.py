"""`synthgate contract infer --dp` end to end: charge, draft, and a release the contract gate accepts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import yaml
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.governance.registry import Registry
from synthgate.validation.dp_infer import INFERENCE_KIND, OTHER_CATEGORY

runner = CliRunner()


def _source(tmp_path: Path, n: int = 1200) -> Path:
    rng = np.random.default_rng(4)
    df = pl.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.r_[rng.lognormal(10, 1, n - 1), 5e8],  # one row far out: clamped, never a bound
            "color": [*rng.choice(["red", "green", "blue"], n - 1).tolist(), "held-by-one-row"],
            "member": rng.random(n) < 0.3,
        }
    )
    db = tmp_path / "src.duckdb"
    with duckdb.connect(str(db)) as con:
        con.register("frame", df.to_arrow())
        con.execute("CREATE TABLE people AS SELECT * FROM frame")
    return db


def _fast(contract: Path, out: Path, tmp_path: Path, name: str) -> Path:
    """A run config for a quick release of ``contract`` (evaluation sizes cut; bounds untouched)."""
    data = yaml.safe_load(contract.read_text(encoding="utf-8"))
    data["model_options"] = {"epochs": 1}
    data["evaluation"].update(
        shadow_models=0, attack_rows=200, mia_targets=20, anonymeter_attacks=200, inference_attacks=200
    )
    fast = tmp_path / f"{name}.contract.yaml"
    fast.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    cfg = tmp_path / f"{name}.run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(fast),
                "source": {"db": str(tmp_path / "src.duckdb"), "table": "people"},
                "out": str(out),
                "batch_size": 200,
            }
        ),
        encoding="utf-8",
    )
    return cfg


def test_infer_dp_charges_the_budget_and_its_contract_passes_the_public_gate(
    prefect_harness: None, tmp_path: Path
) -> None:
    db = _source(tmp_path)
    out, drafted = tmp_path / "out", tmp_path / "people.contract.yaml"
    result = runner.invoke(
        app,
        [
            "contract",
            "infer",
            "--db",
            str(db),
            "--table",
            "people",
            "-o",
            str(drafted),
            "--dp",
            "1.0",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "learned with DP" in result.output and "charged to table 'people'" in result.output
    text = drafted.read_text(encoding="utf-8")
    assert "held-by-one-row" not in text and "500000000" not in text  # no private singleton, no outlier
    data = yaml.safe_load(text)
    cols = data["columns"]
    assert all(cols[c]["dp_learned"] for c in ("age", "income", "color"))
    assert not any(c.get("from_data") for c in cols.values())
    assert cols["color"]["categories"] == ["blue", "green", "red", OTHER_CATEGORY]
    assert cols["income"]["max"] < 5e8

    registry = Registry(out / "registry.duckdb")
    (inference,) = registry.runs()
    assert inference.kind == INFERENCE_KIND and inference.status == "released"
    assert inference.epsilon_charged == data["dp_inference"]["epsilon"] <= 1.0
    assert inference.run_id == data["dp_inference"]["run_id"]

    # A release on that contract: the contract gate accepts the DP-learned entries as public.
    run = runner.invoke(app, ["run", "--config", str(_fast(drafted, out, tmp_path, "ok")), "--quiet"])
    assert run.exit_code in (0, 3), run.output  # released or blocked by a fidelity gate at 1 epoch
    release = next(r for r in registry.runs() if r.kind == "release")
    gate = next(g for g in release.gates if g["name"] == "contract_is_public")
    assert gate["passed"], gate
    assert "contract_is_public" not in " ".join(release.reasons)
    assert registry.spend("people").epsilon == inference.epsilon_charged + release.epsilon_charged

    # The same contract against a registry that never paid for it: refused before a row is read.
    elsewhere = tmp_path / "elsewhere"
    refused = runner.invoke(app, ["run", "--config", str(_fast(drafted, elsewhere, tmp_path, "no")), "--quiet"])
    assert refused.exit_code == 2, refused.output
    assert "holds no such charged run" in refused.output
    (rec,) = Registry(elsewhere / "registry.duckdb").runs() or [None]  # nothing recorded as spent there
    assert rec is None or rec.epsilon_charged == 0.0

    # Inferring again beyond the table's lifetime budget is refused (exit 4), the registry unchanged.
    left = data["privacy"]["lifetime_epsilon"] - registry.spend("people").epsilon
    again = runner.invoke(
        app,
        [
            "contract",
            "infer",
            "--db",
            str(db),
            "--table",
            "people",
            "-o",
            str(tmp_path / "again.yaml"),
            "--dp",
            f"{left + 0.5:.3f}",
            "--out",
            str(out),
        ],
    )
    assert again.exit_code == 4, again.output
    assert "REFUSED" in again.output and "--dp" in again.output and not (tmp_path / "again.yaml").exists()


def test_a_bad_dp_budget_is_refused_before_anything_is_read_or_charged(tmp_path: Path) -> None:
    db, out = _source(tmp_path), tmp_path / "out"
    for args in (["--dp", "0"], ["--dp", "-1"], ["--dp", "nan"], ["--dp", "1e6"], ["--dp", "1", "--dp-delta", "2"]):
        result = runner.invoke(
            app,
            [
                "contract",
                "infer",
                "--db",
                str(db),
                "--table",
                "people",
                "-o",
                str(tmp_path / "c.yaml"),
                "--out",
                str(out),
                *args,
            ],
        )
        assert result.exit_code == 2, (args, result.output)
        assert "--dp" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c.yaml").exists() and Registry(out / "registry.duckdb").runs() == []


def test_the_noise_comes_from_the_private_entropy(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The CLI draws its noise from private_entropy() (OS entropy or the secret key), never a seed."""
    import synthgate.models.synthesizers.base as base

    calls: list[int] = []
    real = base.private_entropy

    def counted() -> int:
        calls.append(1)
        return real()

    monkeypatch.setattr(base, "private_entropy", counted)
    db = _source(tmp_path)
    outputs = []
    for key in ("1", "2"):
        monkeypatch.setenv("SYNTHGATE_NOISE_SEED", key)
        drafted = tmp_path / f"c{key}.yaml"
        result = runner.invoke(
            app,
            [
                "contract",
                "infer",
                "--db",
                str(db),
                "--table",
                "people",
                "-o",
                str(drafted),
                "--dp",
                "1.0",
                "--out",
                str(tmp_path / f"out{key}"),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(yaml.safe_load(drafted.read_text(encoding="utf-8"))["columns"])
    assert len(calls) == 2
    monkeypatch.setenv("SYNTHGATE_NOISE_SEED", "1")
    again = tmp_path / "again.yaml"
    assert (
        runner.invoke(
            app,
            [
                "contract",
                "infer",
                "--db",
                str(db),
                "--table",
                "people",
                "-o",
                str(again),
                "--dp",
                "1.0",
                "--out",
                str(tmp_path / "out3"),
            ],
        ).exit_code
        == 0
    )
    assert yaml.safe_load(again.read_text(encoding="utf-8"))["columns"] == outputs[0]  # the key repeats it
