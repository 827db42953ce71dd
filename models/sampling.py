"""Sampling with a condition: ``synthgate sample --where "income = '>50K'"``.

A SQL WHERE clause (polars' SQL dialect) selects the rows to return. Where the model can fix a
column directly (``Synthesizer.conditionable_columns``) and the clause's top level is a
conjunction that contains ``column = value`` for such a column, that column is generated
conditionally, with no rejection; whatever else the clause says is then checked by filtering.
Otherwise rows are drawn in batches and filtered (rejection sampling), within a bounded number of
draws, and the achieved acceptance rate is reported.

Sampling is post-processing of the released DP model: it reads no private row and spends no ε.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from synthgate.errors import WhereError
from synthgate.models.synthesizers.base import Synthesizer
from synthgate.validation.contract import BooleanColumn, CategoricalColumn, Contract, IntegerColumn

# `column = value` with value a quoted string, a number or a boolean; column optionally "quoted".
_EQUALITY = re.compile(
    r"""^\s*(?:"(?P<qcol>[^"]+)"|(?P<col>[A-Za-z_][A-Za-z0-9_]*))\s*=\s*
        (?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class ConditionalSample:
    rows: pl.DataFrame
    method: str  # "conditional" | "conditional+filter" | "rejection"
    fixed: dict[str, Any]  # the column(s) the model generated directly
    drawn: int  # rows generated in total
    acceptance: float  # matching / drawn


def _split_top_level_and(clause: str) -> list[str] | None:
    """The clause's top-level AND-ed parts, or None when it has a top-level OR or parentheses."""
    parts: list[str] = []
    buf: list[str] = []
    in_quote = False
    i = 0
    while i < len(clause):
        ch = clause[i]
        if ch == "'":
            in_quote = not in_quote
        elif not in_quote:
            if ch in "()":
                return None
            word = re.match(r"\s(AND|OR)\s", clause[i:], re.IGNORECASE)
            if word:
                if word.group(1).upper() == "OR":
                    return None
                parts.append("".join(buf))
                buf = []
                i += word.end() - 1
                continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _literal(raw: str) -> Any:
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return float(raw) if "." in raw else int(raw)


def equality_conditions(clause: str) -> dict[str, Any]:
    """``column = value`` terms that every matching row must satisfy (top-level AND only)."""
    parts = _split_top_level_and(clause)
    if parts is None:
        return {}
    out: dict[str, Any] = {}
    for part in parts:
        m = _EQUALITY.match(part)
        if m:
            out[m.group("qcol") or m.group("col")] = _literal(m.group("value"))
    return out


def parse_where(clause: str, contract: Contract) -> pl.Expr:
    """A polars expression for ``clause``; errors name the problem and the modelled columns."""
    if not clause.strip():
        raise WhereError("the WHERE clause is empty. Example: --where \"income = '>50K' AND age < 30\".")
    try:
        expr = pl.sql_expr(clause)
        names = expr.meta.root_names()
    except Exception as err:  # noqa: BLE001  polars raises several SQL error types
        raise WhereError(
            f"cannot parse the WHERE clause {clause!r}: {err}. Use SQL, with text in single quotes: "
            "\"income = '>50K' AND age < 30\"."
        ) from None
    unknown = [n for n in names if n not in contract.modelled_columns]
    if unknown:
        raise WhereError(
            f"the WHERE clause names {unknown}, which the released table does not have. "
            f"Columns: {contract.modelled_columns}."
        )
    return expr


def _coerce(contract: Contract, column: str, value: Any) -> Any:
    """The clause's literal as the column's domain value (booleans, integers, category text)."""
    col = contract.columns[column]
    if isinstance(col, BooleanColumn) and isinstance(value, bool):
        return value
    if isinstance(col, CategoricalColumn):
        return str(value)
    if isinstance(col, IntegerColumn) and isinstance(value, int | float) and float(value).is_integer():
        return int(value)
    return value


def sample_where(
    model: Synthesizer,
    n: int,
    *,
    where: str,
    seed: int,
    max_draws: int | None = None,
    batch: int = 50_000,
) -> ConditionalSample:
    """``n`` rows that satisfy ``where``: conditional generation where the model allows, else rejection.

    ``max_draws`` bounds the rows generated in total (default: max(100·n, 1M)); hitting it is an
    error that states the acceptance rate, so a near-impossible condition never loops for ever.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1. Got {n!r}.")
    contract = model.contract
    expr = parse_where(where, contract)
    limit = max_draws if max_draws is not None else max(100 * n, 1_000_000)
    allowed = set(model.conditionable_columns())
    candidates = {c: _coerce(contract, c, v) for c, v in equality_conditions(where).items() if c in allowed}
    fixed: dict[str, Any] = {}
    if candidates:
        # Fix the rarest category under the model's own (DP) frequencies: the rest is filtered.
        def share(item: tuple[str, Any]) -> float:
            col, value = item
            freq = model.codec.frequencies.get(col)
            spec = next((s for s in model.codec.discrete if s.name == col), None)
            if freq is None or spec is None or value not in spec.categories:
                return 1.0
            return float(freq[spec.categories.index(value)])

        column, value = min(candidates.items(), key=share)
        fixed = {column: value}
    seeds = np.random.SeedSequence(seed)
    parts: list[pl.DataFrame] = []
    matched = drawn = 0
    round_ = 0
    while matched < n:
        want = n - matched
        if drawn == 0:  # a fixed condition should need no more; rejection starts with a probe
            guess = want if fixed else max(want, 1000)
        else:
            guess = max(want, math.ceil(1.2 * want / max(matched / drawn, 1e-3)))
        size = min(batch, limit - drawn, guess)
        if size <= 0:
            raise ValueError(
                f"only {matched} of {n} rows matching {where!r} were found in {drawn} generated rows "
                f"(acceptance {matched / max(drawn, 1):.2e}). The condition is too rare for rejection "
                f"sampling with this model; loosen it, ask for fewer rows, or use a model that can "
                f"condition on its columns (conditional on: {sorted(allowed) or 'none'})."
            )
        child = int(seeds.spawn(1)[0].generate_state(1)[0]) if round_ else seed
        rows = model.sample(size, seed=child, conditions=fixed or None)
        hits = rows.filter(expr)
        drawn += size
        matched += hits.height
        parts.append(hits)
        round_ += 1
    out = pl.concat(parts, how="vertical").head(n)
    exact = bool(fixed) and drawn == n
    method = "conditional" if exact else ("conditional+filter" if fixed else "rejection")
    return ConditionalSample(out, method, fixed, drawn, matched / drawn)
