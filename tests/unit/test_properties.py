"""Property-based tests (hypothesis) over random contracts and tables that obey them.

- Codec: encode → decode returns the table (categorical, boolean and small-range integer columns
  exactly; continuous and datetime within the codec's float resolution), with negligible DP noise on
  the histograms; decoding ANY matrix yields values the contract allows.
- Validation: a table drawn inside its contract passes the great-expectations suite; one value
  planted outside it fails on exactly that column with a count of 1.

Deterministic: ``derandomize=True`` (examples from a fixed seed) and no example database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthgate.models.codec import MAX_BINS, Codec
from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.expectations import validate_frame

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=12)
EPOCH = dt.datetime(2000, 1, 1)


@st.composite
def column_specs(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "continuous", "categorical", "boolean", "datetime"]))
    spec: dict[str, Any] = {"kind": kind, "nullable": draw(st.booleans())}
    if kind == "integer":
        lo = draw(st.integers(-1000, 1000))
        spec |= {"min": lo, "max": lo + draw(st.integers(1, MAX_BINS - 1))}  # one bin per value: exact
    elif kind == "continuous":
        lo = draw(st.floats(-1e4, 1e4, allow_nan=False))
        spec |= {"min": lo, "max": lo + draw(st.floats(0.5, 1e4))}
    elif kind == "categorical":
        spec["categories"] = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    elif kind == "datetime":
        spec |= {"min": EPOCH, "max": EPOCH + dt.timedelta(days=draw(st.integers(1, 3650)))}
    return spec


@st.composite
def contract_and_table(draw: Any) -> tuple[Contract, pl.DataFrame]:
    specs = draw(st.lists(column_specs(), min_size=1, max_size=5))
    columns = {f"c{i}_{s['kind']}": s for i, s in enumerate(specs)}
    contract = parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 3.0, "delta": 1e-6}})
    n = draw(st.integers(5, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = {}
    for name, s in columns.items():
        if s["kind"] == "integer":
            series = pl.Series(name, rng.integers(s["min"], s["max"] + 1, n), dtype=pl.Int64)
        elif s["kind"] == "continuous":
            series = pl.Series(name, rng.uniform(s["min"], s["max"], n))
        elif s["kind"] == "categorical":
            series = pl.Series(name, rng.choice(s["categories"], n).tolist(), dtype=pl.String)
        elif s["kind"] == "boolean":
            series = pl.Series(name, rng.random(n) < 0.5)
        else:
            span = int((s["max"] - s["min"]).total_seconds())
            series = pl.Series(
                name,
                [s["min"] + dt.timedelta(seconds=int(x)) for x in rng.integers(0, span, n)],
                dtype=pl.Datetime("us"),
            )
        if s["nullable"]:
            series = series.scatter(np.flatnonzero(rng.random(n) < 0.2), None)
        data[name] = series
    return contract, pl.DataFrame(data)


def _codec(contract: Contract, df: pl.DataFrame) -> Codec:
    codec = Codec(contract)
    codec.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=1e-3, rng=np.random.default_rng(0))
    return codec


@PROPERTY
@given(contract_and_table())
def test_codec_round_trip(case: tuple[Contract, pl.DataFrame]) -> None:
    contract, df = case
    codec = _codec(contract, df)
    x = codec.encode(df, rng=np.random.default_rng(1), dtype=np.float64)
    assert x.shape == (df.height, codec.dim) and np.isfinite(x).all()
    back = codec.decode(x)
    for name, col in contract.columns.items():
        a, b = df[name], back[name]
        assert a.is_null().to_list() == b.is_null().to_list(), name
        if col.kind == "continuous":
            gap, tol = (a.drop_nulls() - b.drop_nulls()).abs().max(), 1e-6 * (col.max - col.min)
            assert gap is None or gap <= tol, (name, gap, tol)
        elif col.kind == "datetime":
            gap = (a.drop_nulls() - b.drop_nulls()).abs().max()
            assert gap is None or gap <= dt.timedelta(seconds=1), name
        else:
            assert a.to_list() == b.to_list(), name


@PROPERTY
@given(contract_and_table(), st.integers(0, 2**32 - 1))
def test_decoding_any_matrix_obeys_the_contract(case: tuple[Contract, pl.DataFrame], seed: int) -> None:
    contract, df = case
    codec = _codec(contract, df)
    out = codec.decode(np.random.default_rng(seed).uniform(-4, 4, size=(200, codec.dim)))
    assert out.height == 200
    for name, col in contract.columns.items():
        s = out[name].drop_nulls()
        if not col.nullable:
            assert out[name].null_count() == 0, name
        if col.kind in ("integer", "continuous", "datetime") and s.len():
            assert col.min <= s.min() and s.max() <= col.max, name
        elif col.kind == "categorical":
            assert set(s.to_list()) <= set(col.categories), name


@settings(PROPERTY, max_examples=12)
@given(contract_and_table(), st.data())
def test_validation_passes_inside_the_contract_and_names_a_planted_value(
    case: tuple[Contract, pl.DataFrame], data: st.DataObject
) -> None:
    contract, df = case
    assert validate_frame(df, contract).success
    name = data.draw(st.sampled_from(list(contract.columns)))
    col = contract.columns[name]
    row = data.draw(st.integers(0, df.height - 1))
    if col.kind == "boolean":
        return  # a boolean column has no value outside its contract that keeps its dtype
    outside: Any = {
        "integer": lambda: col.max + 1,
        "continuous": lambda: col.max + 1.0,
        "categorical": lambda: "\u2063not-declared",
        "datetime": lambda: col.max + dt.timedelta(days=1),
    }[col.kind]()
    bad = df.with_columns(df[name].scatter(row, outside))
    report = validate_frame(bad, contract)
    assert not report.success
    assert [(f.column, f.unexpected_count) for f in report.failures] == [(name, 1)]
