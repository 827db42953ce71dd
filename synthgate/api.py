"""The implementation behind ``import synthgate`` (see the package docstring and the README).

Thin, typed wrappers over the flows and modules the CLI uses: the same config, the same checks,
the same registry. Nothing here has logic of its own beyond converting inputs and results.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import polars as pl

    from synthgate.flows.config import RunConfig
    from synthgate.validation.contract import Contract as ContractModel

ConfigLike = Union["RunConfig", Mapping[str, Any], str, os.PathLike[str]]


def _prefect_defaults() -> None:
    """The CLI's defaults for a local run (analytics off, quiet logs); a user's PREFECT_* settings win.

    Called before Prefect is first imported (its settings are read then). great-expectations' "ephemeral
    docs site" line is not emitted at all: validation builds its contexts without a docs site
    (validation/expectations.py).
    """
    from synthgate.flows.cli import prefect_defaults as defaults

    defaults()


def _to_polars(data: Any, *, what: str) -> pl.DataFrame:
    """A polars DataFrame from polars, pandas or Arrow (Table or RecordBatch) data."""
    import polars as pl

    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pl.from_pandas(data)
    if module == "pyarrow":
        return pl.from_arrow(data)  # type: ignore[return-value]
    raise TypeError(
        f"{what} must be a polars, pandas or Arrow table; got {type(data).__name__}. Convert it first, "
        "or pass one of those."
    )


def _gate_rows_html(gates: Sequence[Mapping[str, Any]], *, values: bool) -> str:
    rows = []
    for g in gates:
        op = "&le;" if g.get("direction") == "max" else "&ge;"
        mark = '<b style="color:#1a7f37">pass</b>' if g.get("passed") else '<b style="color:#cf222e">FAIL</b>'
        threshold = "" if g.get("threshold") is None else f"{op} {float(g['threshold']):.4g}"
        cells = [mark, html.escape(str(g.get("name"))), html.escape(str(g.get("kind", ""))), threshold]
        if values:
            shown = g.get("gated_value", g.get("value"))
            cells.append("" if shown is None else f"{float(shown):.4g}")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["", "gate", "kind", "must be"] + (["measured (private)"] if values else [])
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


# --------------------------------------------------------------------------------------------- contract
@dataclass(frozen=True)
class Contract:
    """A data contract: the table's columns, bounds, privacy budget and gates.

    ``model`` is the validated :class:`validation.contract.Contract`; ``path`` the YAML file it was read
    from (``None`` for an inferred draft until :meth:`to_yaml` writes one).
    """

    model: ContractModel
    path: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Contract:
        """Read and validate a contract YAML file (unknown keys and duplicate keys are errors)."""
        from synthgate.validation.contract import load_contract

        p = Path(path)
        return cls(model=load_contract(p), path=p)

    @classmethod
    def infer(
        cls,
        data: Any,
        *,
        table: str,
        epsilon: float | None = None,
        delta: float | None = None,
        missing_values: Sequence[str] = (),
    ) -> Contract:
        """Draft a contract from a polars, pandas or Arrow table (``validation.infer.infer_contract``).

        Every bound and category list is read from the rows and marked ``from_data``: review it (and
        remove the marks) before a release, or the ``contract_is_public`` gate blocks it.
        """
        from synthgate.validation.infer import DEFAULT_EPSILON, infer_contract

        df = _to_polars(data, what="data")
        eps = DEFAULT_EPSILON if epsilon is None else epsilon
        return cls(model=infer_contract(df, table=table, epsilon=eps, delta=delta, missing_values=missing_values))

    @property
    def table(self) -> str:
        return self.model.table

    @property
    def epsilon(self) -> float:
        """The contract's privacy budget per run (privacy.epsilon)."""
        return float(self.model.privacy.epsilon)

    @property
    def columns(self) -> list[str]:
        return list(self.model.columns)

    @property
    def data_derived(self) -> list[str]:
        """Columns whose bounds or categories were read from rows (``from_data``): review them."""
        return list(self.model.data_derived_columns)

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the contract as YAML (an inferred draft keeps its "read from rows" header)."""
        from synthgate.validation.infer import render_inferred_yaml

        p = Path(path)
        p.write_text(render_inferred_yaml(self.model))
        return p

    def _file(self, folder: Path) -> Path:
        """A YAML file holding this contract: its own, else a copy written into ``folder``."""
        return self.path if self.path is not None else self.to_yaml(folder / "contract.yaml")

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"Contract(table={self.table!r}, columns={len(self.columns)}, epsilon={self.epsilon:g}{where})"


def _contract(contract: Contract | ContractModel | str | os.PathLike[str]) -> Contract:
    from synthgate.validation.contract import Contract as ContractModel

    if isinstance(contract, Contract):
        return contract
    if isinstance(contract, ContractModel):
        return Contract(model=contract)
    return Contract.from_yaml(contract)


# ---------------------------------------------------------------------------------------------- release
@dataclass(frozen=True)
class ReleaseResult:
    """What a release run did. ``gates`` is the public outcome: each gate's name, kind, threshold and
    pass/fail, never a figure measured on private rows (those are in ``owner_report_path`` only)."""

    run_id: str
    table: str
    released: bool
    gates: list[dict[str, Any]]
    folder: Path
    report_path: Path
    owner_report_path: Path
    output_db: Path
    output_table: str
    epsilon_spent: float | None
    public_report: dict[str, Any] = field(repr=False)

    @property
    def failed_gates(self) -> list[str]:
        return [str(g["name"]) for g in self.gates if not g["passed"]]

    def _repr_html_(self) -> str:
        head = "RELEASED" if self.released else "BLOCKED: nothing published"
        eps = "" if self.epsilon_spent is None else f"; ε spent {self.epsilon_spent:.3g}"
        return (
            f"<div><b>{html.escape(head)}</b> — table {html.escape(self.table)}, run {html.escape(self.run_id)}"
            f"{html.escape(eps)}<br/>public report: <code>{html.escape(str(self.report_path))}</code><br/>"
            f"owner's evaluation report (private): <code>{html.escape(str(self.owner_report_path))}</code>"
            f"{_gate_rows_html(self.gates, values=False)}</div>"
        )


def _run_config(config: ConfigLike) -> RunConfig:
    from synthgate.flows.config import RunConfig, load_run_config

    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        from pydantic import ValidationError

        from synthgate.errors import ContractError

        try:
            return RunConfig.model_validate(dict(config))
        except ValidationError as err:
            lines = "\n".join(f"  - {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ContractError(f"the run config is not valid:\n{lines}") from None
    return load_run_config(config)


def release(config: ConfigLike) -> ReleaseResult:
    """Run the release flow (the same as ``synthgate run --config``) and return its public outcome.

    ``config``: a :class:`flows.config.RunConfig`, a dict of the same keys (relative paths are relative
    to the working directory), or the path of a run.yaml (relative paths relative to its folder).
    A blocked run returns ``released=False`` (its blocked report is published, no rows); bad input,
    a refused budget or a failure raise the same exceptions the CLI reports (``synthgate.errors``: all
    derive from ``SynthgateError``).
    """
    _prefect_defaults()
    from synthgate.flows.release import run_release

    cfg = _run_config(config)
    report = run_release(cfg)
    public = report["public"]
    folder = Path(report["folder"])
    return ReleaseResult(
        run_id=str(public["run_id"]),
        table=str(public["table"]),
        released=bool(public["released"]),
        gates=list(public["gates"]),
        folder=folder,
        report_path=folder / "report.html",
        owner_report_path=Path(report["owner_report"]["folder"]) / "report.html",
        output_db=Path(report["output"]["db"]),  # from the config (a blocked run's public report has none)
        output_table=str(report["output"]["table"]),
        epsilon_spent=public["privacy"].get("epsilon_spent"),
        public_report=public,
    )


# --------------------------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class Evaluation:
    """synthgate's checks on three tables the caller holds. ``report`` is the full owner-side report
    (every figure computed on the real rows): keep it with the data, do not publish it."""

    released: bool
    gates: list[dict[str, Any]]
    report: dict[str, Any] = field(repr=False)
    folder: Path

    @property
    def failed_gates(self) -> list[str]:
        return [str(g["name"]) for g in self.gates if not g["passed"]]

    @property
    def metrics(self) -> dict[str, Any]:
        """Every measured figure by name (private: computed on the real rows)."""
        return {m["name"]: m["value"] for m in self.report["metrics"]}

    def _repr_html_(self) -> str:
        head = "all gates pass" if self.released else f"blocked by {len(self.failed_gates)} gate(s)"
        return (
            f"<div><b>evaluation: {html.escape(head)}</b> (owner-only figures: do not publish)<br/>"
            f"report: <code>{html.escape(str(self.folder / 'report.html'))}</code>"
            f"{_gate_rows_html(self.gates, values=True)}</div>"
        )


def evaluate(
    train: Any,
    holdout: Any,
    synthetic: Any,
    contract: Contract | ContractModel | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    shadow: bool = False,
    show_progress: bool = False,
) -> Evaluation:
    """Run synthgate's evaluate flow (``synthgate evaluate``) on tables made anywhere.

    ``train``, ``holdout`` and ``synthetic`` are polars, pandas or Arrow tables; each is validated
    against ``contract`` like a source. The report (report.json / report.html, every figure) goes to
    ``out`` (default: a new private temporary folder). No ε is spent and nothing is published.
    """
    _prefect_defaults()
    from synthgate.flows.config import SourceConfig
    from synthgate.flows.evaluate import EvaluateConfig, evaluate_flow

    c = _contract(contract)
    frames = {
        role: _to_polars(t, what=role) for role, t in (("train", train), ("holdout", holdout), ("synthetic", synthetic))
    }
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="synthgate-evaluation-"))
    with tempfile.TemporaryDirectory(prefix="synthgate-inputs-") as tmp:
        folder = Path(tmp)
        sources = {}
        for role, df in frames.items():
            path = folder / f"{role}.parquet"
            df.write_parquet(path)
            sources[role] = SourceConfig(path=path)
        config = EvaluateConfig(
            **sources, contract=c._file(folder), out=out_dir, seed=seed, shadow=shadow, show_progress=show_progress
        )
        report = evaluate_flow(config)
    return Evaluation(released=bool(report["released"]), gates=list(report["gates"]), report=report, folder=out_dir)


# ------------------------------------------------------------------------------------- released models
@dataclass(frozen=True)
class Release:
    """A released run's folder, checked against the registry's hashes; draws more rows from its model."""

    folder: Path
    contract: Contract
    run_id: str
    registry: Path

    def sample(self, n: int, *, where: str | None = None, seed: int = 0, device: str = "auto") -> pl.DataFrame:
        """``n`` new rows from the released model (post-processing: no private row read, no ε spent).

        These rows are NOT the released (checked) table: no gate has looked at them. ``where`` is a SQL
        condition (``"income = '>50K' AND age < 30"``) as in ``synthgate sample --where``.
        """
        from synthgate.governance.registry import Registry
        from synthgate.models.sampling import sample_where
        from synthgate.models.synthesizers import load_synthesizer
        from synthgate.validation.derived import add_derived_columns

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}.")
        # Checked again at every draw: a file changed since load_release is refused.
        Registry(self.registry).verify_folder(self.run_id, self.folder)
        model = load_synthesizer(self.folder / "model.pt", self.contract.model, device=device)
        rows = sample_where(model, n, where=where, seed=seed).rows if where else model.sample(n, seed=seed)
        return add_derived_columns(rows, self.contract.model)


def load_release(folder: str | os.PathLike[str], *, registry: str | os.PathLike[str] | None = None) -> Release:
    """Open a release folder (``OUT/releases/RUN_ID``) after the same checks as ``synthgate sample``.

    Every file must match the SHA-256 the registry recorded when the run was published (default
    registry: ``OUT/registry.duckdb``, two levels above the folder). Raises ``synthgate.errors.RegistryError`` otherwise,
    ``ValueError`` for a folder that is not a released run's.
    """
    from synthgate.governance.registry import Registry

    f = Path(folder)
    if not (f / "model.pt").is_file() or not (f / "contract.yaml").is_file():
        raise ValueError(
            f"{f} is not a release folder (it needs model.pt and contract.yaml; blocked runs have no model). "
            "Pass OUT/releases/RUN_ID of a RELEASED run."
        )
    reg = Path(registry) if registry is not None else f.resolve().parent.parent / "registry.duckdb"
    run_id = f.resolve().name
    Registry(reg).verify_folder(run_id, f)
    return Release(folder=f, contract=Contract.from_yaml(f / "contract.yaml"), run_id=run_id, registry=reg)
