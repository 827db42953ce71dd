"""A release writes two reports: a public one whose every figure is DP, and the owner's.

The public report must be a function of the release folder alone: with the source table and the
owner's report deleted, ``build_public_report(folder)`` gives the same report.json and
report.html byte for byte, and no figure computed on private rows (exact row counts, metric
values and intervals) appears in it, in the Prefect artifacts or in the CLI output. The owner's
report lies outside the release folder, owner-only (0700 folders, 0600 files), and is registered
with its hashes.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from synthgate.errors import RegistryError
from synthgate.flows.cli import app
from synthgate.flows.demo import BLOCKING_GATES, LENIENT_GATES, demo_contract, demo_parquet
from synthgate.governance.registry import Registry
from synthgate.validation.public_report import build_public_report, write_public_report

runner = CliRunner()
SOURCE_ROWS = 613  # distinctive: the exact counts derived from it must not be published
N_SYNTHETIC = 577  # a public number from the run config
EVALUATION_ROWS = 300


def _release(tmp: Path, gates: dict[str, float]) -> dict[str, Any]:
    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data["evaluation"] = {"shadow_models": 0, "attack_rows": 50, "anonymeter_attacks": 50, "inference_attacks": 50}
    data["gates"] = {**data.get("gates", {}), **gates}
    contract = tmp / "contract.yaml"
    contract.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    source = tmp / "source.parquet"
    pl.read_parquet(demo_parquet()).sample(n=SOURCE_ROWS, seed=11).write_parquet(source)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(contract),
                "source": {"path": str(source)},
                "out": str(tmp / "out"),
                "epochs": 1,
                "batch_size": 100,
                "n_synthetic": N_SYNTHETIC,
                "evaluation_rows": EVALUATION_ROWS,
            }
        )
    )
    result = runner.invoke(app, ["run", "--config", str(cfg), "--quiet"])
    (record,) = Registry(tmp / "out" / "registry.duckdb").runs()
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if record.run_id in str(a.data)]
    return {"tmp": tmp, "source": source, "cli": result, "record": record, "artifacts": artifacts}


@pytest.fixture(scope="module", params=["released", "blocked"])
def run(
    request: pytest.FixtureRequest, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp(request.param)
    out = _release(tmp, LENIENT_GATES if request.param == "released" else BLOCKING_GATES)
    assert out["cli"].exit_code == (0 if request.param == "released" else 3), out["cli"].output
    assert out["record"].status == request.param
    return out


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    items = value.values() if isinstance(value, dict) else value
    return [x for v in items for x in _numbers(v)]


def _private_figures(owner: dict[str, Any]) -> tuple[set[int], set[float]]:
    """Exact row counts and every value, interval end and gated value of the checks run on private rows."""
    # checked_* rows equal to evaluation_rows are that public setting, not a count.
    counts = {int(v) for k, v in owner["rows"].items() if k != "synthetic" and v != EVALUATION_ROWS}
    trivial = {0.0, 1.0, 0.5} | {float(g["threshold"]) for g in owner["gates"]}
    values = set()
    for m in owner["metrics"]:
        if m["kind"] not in ("privacy", "fidelity"):  # budget: the ledger's ε; contract: public
            continue
        for v in [m["value"], m["gated_value"], *(m["ci"] or [])]:
            if isinstance(v, float) and v not in trivial:
                values.add(v)
    return counts, values


def _visible_text(html: str) -> str:
    """The page without its CSS and SVG drawing data (path coordinates), SVG labels kept."""
    labels = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", html))
    text = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return re.sub(r"<svg.*?</svg>", " ", text, flags=re.S) + " " + labels


def test_owner_report_is_owner_only_outside_the_release_and_registered(run: dict[str, Any], tmp_path: Path) -> None:
    record = run["record"]
    folder, owner = Path(record.folder).resolve(), Path(record.owner_folder).resolve()
    assert not owner.is_relative_to(folder) and not folder.is_relative_to(owner)
    assert owner == (run["tmp"] / "out" / "owner" / record.run_id).resolve()
    for d in (owner.parent, owner):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    files = sorted(p.name for p in owner.iterdir())
    assert files == ["report.html", "report.json"]
    for f in owner.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # Registered with its hashes like the release folder; a changed file is refused.
    assert set(record.owner_artifacts) == {"report.html", "report.json"}
    registry = Registry(run["tmp"] / "out" / "registry.duckdb")
    registry.verify_owner_report(record.run_id)
    if record.status == "released":
        registry.verify_folder(record.run_id, Path(record.folder))
    report = json.loads((owner / "report.json").read_text())
    assert report["kind"] == "owner" and report["metrics"] and report["rows"]["train"] > 0
    # The registry holds only the public gates (pass/fail): `synthgate releases show` prints them.
    assert all("value" not in g for g in record.gates)
    copy = tmp_path / "owner-copy"
    shutil.copytree(owner, copy)
    (copy / "report.json").write_text(json.dumps({**report, "rows": {}}))
    with pytest.raises(RegistryError, match="report.json changed"):
        registry.verify_owner_report(record.run_id, copy)


def test_public_report_rebuilds_from_the_release_folder_alone(run: dict[str, Any], tmp_path: Path) -> None:
    record = run["record"]
    folder = Path(record.folder)
    owner_folder = Path(record.owner_folder)
    owner = json.loads((owner_folder / "report.json").read_text())
    published_json = (folder / "report.json").read_bytes()
    published_html = (folder / "report.html").read_bytes()

    run["source"].unlink()
    shutil.rmtree(owner_folder)
    rebuilt = build_public_report(folder)
    write_public_report(rebuilt, tmp_path / "rebuilt")
    assert (tmp_path / "rebuilt" / "report.json").read_bytes() == published_json
    assert (tmp_path / "rebuilt" / "report.html").read_bytes() == published_html

    public = json.loads(published_json)
    assert public["kind"] == "public" and "metrics" not in public
    assert public["released"] == owner["released"] == (record.status == "released")
    assert public["privacy"]["adjacency"].startswith("add/remove one row of the source table")
    assert public["privacy"]["epsilon_spent"] == owner["privacy"]["epsilon_spent"]
    # Gate outcomes are public (and listed outside the guarantee); their measured values are not.
    assert [(g["name"], g["passed"]) for g in public["gates"]] == [(g["name"], g["passed"]) for g in owner["gates"]]
    assert all(
        set(g) == {"name", "kind", "direction", "threshold", "passed", "outcome", "description"}
        for g in public["gates"]
    )
    assert all(g["outcome"] in ("pass", "fail", "inconclusive") for g in public["gates"])
    assert any("gate outcomes" in s for s in public["outside_guarantee"])

    counts, values = _private_figures(owner)
    # The synthetic table's own shares are public (the released table; the rebuild above recomputed
    # them from the release folder alone) and rounded, so one can equal a coarse private figure by
    # coincidence (a membership TPR of 2/50 = 0.04 against a synthetic category share of 0.04): they are
    # left out of the numbers searched for a leak.
    searched = {
        **public,
        "distributions": {k: {**d, "synthetic": []} for k, d in public.get("distributions", {}).items()},
    }
    numbers = set(_numbers(searched))
    assert owner["rows"]["train"] + owner["rows"]["holdout"] == SOURCE_ROWS
    assert not counts & {n for n in numbers if n == int(n)}, "an exact count of private rows is published"
    assert not values & numbers, (
        "a figure computed on private rows is published",
        values & numbers,
        [
            (m["name"], m["value"], m["ci"])
            for m in owner["metrics"]
            if {m["value"], *(m["ci"] or [])} & values & numbers
        ],
    )
    text = _visible_text(published_html.decode())
    for n in counts:
        assert not re.search(rf"(?<![\d.,]){n:,}(?![\d,])|(?<![\d.,]){n}(?![\d])", text), n
    for v in values:
        shown = f"{v:.4g}"
        # the figure as a whole number in the text, trailing zeros allowed ("0.080" is it, "0.0834" is not);
        # not inside a dotted version ("synthgate 0.1.0" is not the figure 0.1: with 50 attacks a risk of
        # exactly 5/50 is common)
        zeros = "0*" if "." in shown else ""
        whole = re.search(rf"(?<![\d.]){re.escape(shown)}{zeros}(?![\d]|\.\d)", text)
        assert whole is None or shown in {f"{x:.4g}" for x in numbers}, (
            v,
            text[max(0, whole.start() - 80) : whole.end() + 80],
        )
    if public["released"]:
        assert public["rows"]["synthetic"] == N_SYNTHETIC
        assert public["rows"]["train_dp_estimate"] != owner["rows"]["train"]  # DP noise (σ of many rows)
        dists = public["distributions"]
        shapes = next(m for m in owner["metrics"] if m["name"] == "column_shapes")
        assert list(dists) == list(shapes["details"]["per_column"])  # every modelled column
        for name, d in dists.items():
            assert len(d["real"]) == len(d["labels"]) == len(d["synthetic"]), name
            assert abs(sum(d["real"]) - 1) < 1e-9 and 0 <= d["score"] <= 1, name
        assert {"model.pt", "synthetic.parquet", "ledger.json", "contract.yaml", "decision.json"} <= set(
            public["files"]
        )
        assert pl.read_parquet(folder / "synthetic.parquet").height == N_SYNTHETIC
    else:
        assert public["failed_gates"] == ["column_shapes"] and public["distributions"] == {}
        assert public["decision"]["reasons"] == ["column_shapes: failed (must be >= 1)"]

    # Neither the Prefect artifacts nor the CLI output hold a private figure.
    assert run["artifacts"], "the run left no Prefect artifact"
    for artifact in run["artifacts"]:
        data = artifact.data if isinstance(artifact.data, str) else json.dumps(artifact.data)
        for n in counts:
            assert not re.search(rf"(?<![\d.]){n}(?![\d])", data), (artifact.key, n)
        for v in values:
            assert f"{v:.4g}" not in data and f"{v:.3f}" not in data, (artifact.key, v)
    output = run["cli"].output
    assert "pass" in output or "FAIL" in output
    for n in counts:
        assert not re.search(rf"(?<![\d.]){n}(?![\d])", output), n
    for v in values:
        assert f"{v:.4g}" not in output, v
