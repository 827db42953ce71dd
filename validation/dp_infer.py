"""DP bounds and category domains for a drafted contract (``synthgate contract infer --dp EPS``).

``contract infer`` alone copies bounds and category lists off the private rows (``from_data``),
and a person must replace each with public knowledge before a release counts as DP: for a table
of hundreds of columns that review is the heaviest step. With ``--dp EPS`` they are learned with
one differentially private mechanism instead, charged to the table's lifetime budget in the
release registry (a run of kind ``contract inference``), and the contract marks them
``dp_learned: true`` (public, paid for) rather than ``from_data: true``.

The mechanism: one Gaussian mechanism on every learned column's histogram at once.
- Numeric columns (continuous, integer) are counted over a PUBLIC grid fixed before any row is
  read: bin edges at 0 and ±{1, 2, 5}·10^k (``GRID_DECADES``: 10^-4 .. 5·10^15 for continuous,
  1 .. 5·10^18 for integer columns; values beyond the outermost edge fall in the outermost bin).
  A bin is *occupied* when its noisy count exceeds ``bin_threshold``; the range from the lowest
  to the highest occupied bin then extends over each next bin outward whose noisy count exceeds
  ``edge_threshold`` (a thinner tail beside the bulk); the bounds are that range's outer edges
  (round numbers). The bulk of the rows lies inside; tails too thin to rise above the noise are
  cut (and clamped at ingestion), so no single row sets a bound. Since the grid is public, both
  thresholds affect utility only: an empty bin of a column is taken as occupied with
  probability ≤ ``EMPTY_BIN_RATE``, an empty bin beside the range with ``EDGE_BIN_RATE``.
  Datetime columns are counted by calendar year (``DATETIME_YEARS``), their bounds the first
  instants of the lowest occupied year and of the year after the highest.
- Categorical columns are counted over the values present in the rows (the domain is not public).
  A value is released when its noisy count exceeds ``category_threshold`` = 1 + σ·Φ⁻¹(1 − p), set
  so that a value held by a single row is released with probability p = δ_T / (number of
  categorical columns) (the stability-based histogram / DP set union argument, Korolova et al.
  2009; Wilson et al. 2020). Each learned categorical column also gets the category
  ``OTHER_CATEGORY``: at ingestion every value outside the released set is mapped to it
  (``apply_dp_domains``), just as numeric values outside DP bounds are clamped to them.

Accounting (unit: one row, added or removed). A row adds 1 to one count of each learned column at
most (a null or non-finite value adds nothing), so the vector of all counts has L2 sensitivity
√m for m learned columns; Gaussian noise of std σ = z·√m is an RDP Gaussian mechanism with noise
multiplier z, accounted with ``models.ledger`` (Opacus' RDP analysis) at δ_G = δ/2 and calibrated
so that its ε is at most the ε asked for. Counts of keys present in both neighbouring tables are
covered by that; the only other difference is the up to m_cat values present in the larger table
only, each with count 1, which are released together with probability at most
δ_T = m_cat · p. Conditioning on their non-release gives, for every set S of outputs,
P[M(D) ∈ S] ≤ e^ε P[M(D') ∈ S] + δ_G + e^ε δ_T in both directions; δ_T = δ / (2 e^ε), so
the total is (ε, δ). The output (bounds, category sets, nothing else) is post-processing.

What stays outside the guarantee, and says so in the draft: the kinds and identifier/pii flags
``contract infer`` chooses by reading the rows (a reviewed, structural decision). Every learned
column is drafted ``nullable: true`` (a public default) instead of reading whether it has nulls.

Every random draw comes from the entropy the caller passes: ``private_entropy()`` (the OS, or
the secret ``SYNTHGATE_NOISE_SEED``), never the run's public seed.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.stats import norm

from synthgate.errors import ContractError
from synthgate.validation.contract import DP_LEARNABLE_KINDS, Contract, parse_contract

if TYPE_CHECKING:  # the registry is passed in (validation does not import governance)
    from synthgate.governance.registry import Registry

__all__ = [
    "EMPTY_BIN_RATE",
    "GRID_DECADES",
    "INFERENCE_KIND",
    "OTHER_CATEGORY",
    "DpPlan",
    "Learned",
    "apply_dp_domains",
    "count_columns",
    "noisy_counts",
    "dp_infer_contract",
    "numeric_grid",
    "plan_mechanism",
    "release_domains",
]

#: The category every value outside a DP-learned category set is mapped to at ingestion.
OTHER_CATEGORY = "(other)"
#: ``RunRecord.kind`` (``config["kind"]``) of the registry run that pays for the learning.
INFERENCE_KIND = "contract inference"
MECHANISM = "gaussian histograms (public grid for numbers, thresholded for categories)"
#: Decades of the public grid: ±{1, 2, 5}·10^k for k in this range (inclusive).
GRID_DECADES = {"continuous": (-4, 15), "integer": (0, 18)}
#: Datetime columns are counted by calendar year, from the first to the last year here (inclusive).
DATETIME_YEARS = (1800, 2199)
#: Chance that an empty grid bin of one column is taken as occupied (widening a bound).
EMPTY_BIN_RATE = 1e-3
#: Chance that an empty bin next to the occupied range is taken in (widening a bound one step).
EDGE_BIN_RATE = 0.05
#: The lifetime budget drafted for a new table: the inference, then this many releases.
LIFETIME_RELEASES = 3
#: The largest ε ``--dp`` takes (beyond it DP means little, and a typo is likelier).
MAX_DP_EPSILON = 100.0
#: δ of the inference unless the caller gives one (must be below 1/n; checked once n is known).
DEFAULT_DELTA = 1e-7
_INT64_TOP = 9_000_000_000_000_000_000  # a round edge below 2^63 - 1


def numeric_grid(kind: str) -> np.ndarray:
    """The public bin edges of a numeric kind: 0, ±{1, 2, 5}·10^k, and the outermost edges; for
    datetime, calendar years ``DATETIME_YEARS`` (edges are the years' first instants)."""
    if kind == "datetime":
        return np.arange(DATETIME_YEARS[0], DATETIME_YEARS[1] + 2, dtype=float)
    lo_k, hi_k = GRID_DECADES[kind]
    mags = sorted({float(f"{c}e{k}") for k in range(lo_k, hi_k + 1) for c in (1, 2, 5)})  # exact decimals
    if kind == "integer":
        mags = [float(int(round(m))) for m in mags] + [float(_INT64_TOP)]
    else:
        mags = mags + [1e16]
    pos = np.array(mags)
    return np.concatenate([-pos[::-1], [0.0], pos])


@dataclass(frozen=True)
class DpPlan:
    """The mechanism's public parameters, fixed before any row is read."""

    epsilon: float  # ε of the Gaussian mechanism (RDP-accounted at delta_gaussian), ≤ the ε asked for
    delta: float  # total δ = delta_gaussian + e^ε · delta_threshold
    delta_gaussian: float
    delta_threshold: float
    noise_multiplier: float  # z: noise std / L2 sensitivity
    columns: int  # m: learned columns; L2 sensitivity √m
    categorical_columns: int
    noise_std: float  # σ = z·√m, on every count
    category_threshold: float
    bin_threshold: float

    @property
    def edge_threshold(self) -> float:
        """A bin next to the occupied range joins it above this noisy count (an empty one: 5% chance)."""
        return self.noise_std * float(norm.isf(EDGE_BIN_RATE))

    @property
    def singleton_release_probability(self) -> float:
        """P[a value held by one row is released] = P[1 + N(0, σ²) > category_threshold]."""
        return float(norm.sf((self.category_threshold - 1.0) / self.noise_std))


def plan_mechanism(*, epsilon: float, delta: float, kinds: list[str]) -> DpPlan:
    """Calibrate the Gaussian noise and both thresholds for learning the columns of ``kinds``."""
    from synthgate.models.ledger import PrivacyLedger, calibrate_noise  # Opacus' RDP analysis

    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ContractError(f"--dp must be a finite ε > 0. Got {epsilon}. Pass e.g. --dp 1.0.")
    if not 0 < delta < 1:
        raise ContractError(f"the inference's δ must be in (0, 1). Got {delta}.")
    bad = sorted({k for k in kinds if k not in DP_LEARNABLE_KINDS})
    if bad or not kinds:
        raise ContractError(f"plan_mechanism learns {list(DP_LEARNABLE_KINDS)} columns; got kinds {bad or kinds}.")
    m = len(kinds)
    m_cat = sum(k == "categorical" for k in kinds)
    delta_g = delta / 2
    delta_t = delta / (2 * math.exp(epsilon))
    ledger = PrivacyLedger(delta_g)
    z = calibrate_noise(target_epsilon=epsilon, ledger=ledger, sample_rate=1.0, steps=1, tol=1e-4)
    ledger.charge("contract inference", noise_multiplier=z)
    sigma = z * math.sqrt(m)
    per_value = delta_t / max(m_cat, 1)
    bins = max(len(numeric_grid(k)) - 1 for k in kinds if k != "categorical") if m_cat < m else 1
    return DpPlan(
        epsilon=float(ledger.epsilon),
        delta=delta_g + math.exp(float(ledger.epsilon)) * delta_t,
        delta_gaussian=delta_g,
        delta_threshold=delta_t,
        noise_multiplier=z,
        columns=m,
        categorical_columns=m_cat,
        noise_std=sigma,
        category_threshold=1.0 + sigma * float(norm.isf(per_value)),
        bin_threshold=sigma * float(norm.isf(EMPTY_BIN_RATE / bins)),
    )


@dataclass
class Counts:
    """Exact (PRIVATE) counts per learned column: grid bins for numbers, values for categories."""

    kinds: dict[str, str]
    bins: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def count_columns(df: pl.DataFrame, kinds: dict[str, str]) -> Counts:
    """Each row adds one to one count per column at most (nulls and non-finite values add none)."""
    out = Counts(kinds=dict(kinds))
    for name, kind in kinds.items():
        s = df.get_column(name)
        if kind == "categorical":
            vc = s.cast(pl.String).drop_nulls().value_counts()
            out.values[name] = (vc.get_column(name).to_list(), vc.get_column("count").to_numpy().astype(float))
            continue
        edges = numeric_grid(kind)
        if kind == "datetime":  # one count per row in its calendar year's bin
            years = s.dt.year().drop_nulls().to_numpy().astype(float)
            idx = np.clip(years - edges[0], 0, len(edges) - 2).astype(np.int64)
            out.bins[name] = np.bincount(idx, minlength=len(edges) - 1).astype(float)
            continue
        v = s.cast(pl.Float64).drop_nulls().to_numpy()
        v = np.clip(v[np.isfinite(v)], edges[0], edges[-1])
        idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
        out.bins[name] = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    return out


@dataclass(frozen=True)
class Learned:
    """What the mechanism releases: bounds per numeric column, a category set per categorical one;
    None where nothing rose above the noise (that column is excluded from the draft)."""

    bounds: dict[str, tuple[float, float] | None]
    categories: dict[str, list[str] | None]


def noisy_counts(counts: Counts, plan: DpPlan, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every count (grid bins, present values) plus N(0, σ²), σ = ``plan.noise_std``; never published
    as such (only what ``release_domains`` thresholds out of them)."""
    out = {}
    for name, kind in counts.kinds.items():
        exact = counts.values[name][1] if kind == "categorical" else counts.bins[name]
        out[name] = exact + rng.normal(0.0, plan.noise_std, size=exact.shape)
    return out


def release_domains(counts: Counts, plan: DpPlan, rng: np.random.Generator) -> Learned:
    """Add N(0, σ²) to every count (grid bins and present values) and threshold."""
    bounds: dict[str, tuple[float, float] | None] = {}
    cats: dict[str, list[str] | None] = {}
    for name, noisy in noisy_counts(counts, plan, rng).items():
        kind = counts.kinds[name]
        if kind == "categorical":
            keys = counts.values[name][0]
            kept = sorted(k for k, x in zip(keys, noisy, strict=True) if x > plan.category_threshold)
            cats[name] = kept or None
            continue
        edges = numeric_grid(kind)
        occupied = np.flatnonzero(noisy > plan.bin_threshold)
        if not occupied.size:
            bounds[name] = None
            continue
        lo, hi = int(occupied[0]), int(occupied[-1])
        while lo > 0 and noisy[lo - 1] > plan.edge_threshold:  # a thinner tail next to the bulk
            lo -= 1
        while hi < noisy.size - 1 and noisy[hi + 1] > plan.edge_threshold:
            hi += 1
        bounds[name] = (float(edges[lo]), float(edges[hi + 1]))
    return Learned(bounds=bounds, categories=cats)


def _learned_spec(col: dict[str, Any], kind: str, learned: Learned, name: str, plan: DpPlan) -> dict[str, Any]:
    cost = f"ε {plan.epsilon:.3g} shared by {plan.columns} columns"
    if kind == "categorical":
        released = learned.categories[name]
        if released is None:
            return {
                "kind": "identifier",
                "nullable": True,
                "description": (
                    "drafted as categorical, but no value's noisy count rose above the DP threshold "
                    f"{plan.category_threshold:.1f}: excluded. Declare its categories from public knowledge, "
                    "or infer again with a larger --dp."
                ),
            }
        cats = released + ([OTHER_CATEGORY] if OTHER_CATEGORY not in released else [])
        return {
            "kind": kind,
            "nullable": True,
            "categories": cats,
            "dp_learned": True,
            "description": (
                f"categories learned with DP ({cost}): values held by more than about "
                f"{plan.category_threshold:.0f} rows; every other value is read as {OTHER_CATEGORY!r}."
            ),
        }
    b = learned.bounds[name]
    if b is None:
        return {
            "kind": "identifier",
            "nullable": True,
            "description": (
                f"drafted as {kind}, but no bin of the public grid rose above the DP threshold "
                f"{plan.bin_threshold:.1f}: excluded. Declare public bounds, or infer again with a larger --dp."
            ),
        }
    if kind == "datetime":
        start, end = dt.datetime(int(b[0]), 1, 1), dt.datetime(int(b[1]), 1, 1)
        return {
            "kind": kind,
            "nullable": True,
            "min": start,
            "max": end,
            "dp_learned": True,
            "description": (f"bounds learned with DP ({cost}) on calendar years; values outside are clamped to them."),
        }
    lo, hi = (int(b[0]), int(b[1])) if kind == "integer" else b
    return {
        "kind": kind,
        "nullable": True,
        "min": lo,
        "max": hi,
        "dp_learned": True,
        "description": (f"bounds learned with DP ({cost}) on a public 1-2-5 grid; values outside are clamped to them."),
    }


def dp_infer_contract(
    draft: Contract,
    df: pl.DataFrame,
    *,
    plan: DpPlan,
    rng: np.random.Generator,
    run_id: str,
    lifetime_epsilon: float | None,
    lifetime_delta: float | None,
) -> Contract:
    """Replace the draft's data-derived bounds/categories by DP-learned ones (``dp_learned: true``).

    Learned: the draft's ``from_data`` continuous, integer and categorical columns (derived ones
    excepted). Other modelled columns become ``nullable: true`` too; the budget's lifetime is set
    to what the registry checked.
    """
    kinds = _learnable(draft)
    counts = count_columns(df, kinds)
    learned = release_domains(counts, plan, rng)
    data = draft.model_dump(mode="json")
    for name, col in data["columns"].items():
        if name in kinds:
            data["columns"][name] = _learned_spec(col, kinds[name], learned, name, plan)
        elif draft.columns[name].kind in ("continuous", "integer", "categorical", "boolean", "datetime"):
            col["nullable"] = True
    data["privacy"]["lifetime_epsilon"] = lifetime_epsilon
    data["privacy"]["lifetime_delta"] = lifetime_delta
    data["dp_inference"] = {
        "run_id": run_id,
        "epsilon": plan.epsilon,
        "delta": plan.delta,
        "mechanism": MECHANISM,
        "noise_std": plan.noise_std,
        "category_threshold": plan.category_threshold,
        "bin_threshold": plan.bin_threshold,
        "columns": plan.columns,
    }
    if not any(c["kind"] not in ("identifier", "pii") for c in data["columns"].values()):
        raise ContractError(
            f"no column of table {draft.table!r} rose above the DP noise (std {plan.noise_std:.1f} rows on each "
            f"count at ε {plan.epsilon:.3g} over {plan.columns} columns), so the draft would model nothing; the ε "
            "was spent. The table has too few rows for this ε and width: infer again with a larger --dp, or "
            "declare public bounds and categories by hand."
        )
    return parse_contract(data, source=f"DP-inferred contract for table {draft.table!r}")


def _learnable(draft: Contract) -> dict[str, str]:
    return {
        n: c.kind
        for n, c in draft.columns.items()
        if c.kind in DP_LEARNABLE_KINDS and c.from_data and getattr(c, "derived", None) is None
    }


def infer_with_budget(
    *,
    table: str,
    read: Callable[[], pl.DataFrame],
    draft: Callable[[pl.DataFrame], Contract],
    registry: Registry,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    entropy: int,
    lifetime_epsilon: float | None = None,
    output: str = "",
) -> Contract:
    """Charge the table's lifetime budget, read the rows, learn their domains with DP.

    Before ``read`` is called the registry records a run of kind ``contract inference`` and reserves
    its (ε, δ), or records it refused and raises ``BudgetExceeded``. The lifetime budget checked is
    the one the table's newest registry run states (its contract's), else ``lifetime_epsilon``, else
    the inference plus ``LIFETIME_RELEASES`` releases at the draft's per-release ε. The drafted
    contract states the same lifetime (δ: likewise, with the draft's per-release δ).
    """
    if not (math.isfinite(epsilon) and 0 < epsilon <= MAX_DP_EPSILON):
        raise ContractError(
            f"--dp must be a finite ε in (0, {MAX_DP_EPSILON:g}]. Got {epsilon}. Pass e.g. --dp 1.0 (nothing was "
            "read or charged)."
        )
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ContractError(f"--dp-delta must be in (0, 1), far below 1/n. Got {delta}. Pass e.g. --dp-delta 1e-7.")
    # The lifetime in force: the newest release run's (its contract's), or a completed inference's
    # (the one its draft states); an inference that failed or was refused never set one.
    previous = [r for r in registry.runs(table=table) if r.kind != INFERENCE_KIND or r.status == "released"][:1]
    if previous:
        life_e, life_d = previous[0].lifetime_epsilon, previous[0].lifetime_delta
        stated = "its newest registry run's"
    else:
        life_e, life_d, stated = lifetime_epsilon, None, "the one asked for"
    run_id = f"infer-{uuid.uuid4().hex[:12]}"
    planned_delta = delta
    registry.begin_run(
        run_id=run_id,
        table=table,
        epsilon=epsilon,
        delta=planned_delta,
        lifetime_epsilon=life_e,
        lifetime_delta=life_d,
        contract_hash="",
        config={"kind": INFERENCE_KIND, "epsilon": epsilon, "delta": delta, "lifetime_from": stated, "output": output},
        output_db="",
        output_table="",
    )
    spent: float | None = None
    try:
        df = read()
        n = df.height
        if n and delta >= 1.0 / n:
            raise ContractError(
                f"the inference's δ = {delta:g} must be below 1/n = {1.0 / n:.3g} for this table. Pass "
                f"--dp-delta {0.1 / n:.1g}."
            )
        base = draft(df)
        kinds = _learnable(base)
        if not kinds:
            raise ContractError(
                f"table {table!r} has no continuous, integer, datetime or categorical column whose bounds or categories "
                "could be learned; nothing to spend --dp on. Run `contract infer` without --dp."
            )
        plan = plan_mechanism(epsilon=epsilon, delta=delta, kinds=list(kinds.values()))
        if life_e is None and not previous:
            life_e = epsilon + LIFETIME_RELEASES * base.privacy.epsilon  # the ε asked for ≥ the ε charged
        elif life_e is not None and not previous and life_e < plan.epsilon + base.privacy.epsilon:
            raise ContractError(
                f"--lifetime-epsilon {life_e:g} leaves no room for a release after this inference (ε "
                f"{plan.epsilon:.3g}) at the draft's per-release ε {base.privacy.epsilon:g}. Ask for at least "
                f"{plan.epsilon + base.privacy.epsilon:.3g}."
            )
        if life_d is None and not previous:
            life_d = min(0.5, delta + LIFETIME_RELEASES * base.privacy.delta)
        registry.mark_training(run_id, data_fingerprint=registry.fingerprint(df))
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        spent = plan.epsilon  # the noise is about to be drawn: from here the run is charged in full
        contract = dp_infer_contract(
            base, df, plan=plan, rng=rng, run_id=run_id, lifetime_epsilon=life_e, lifetime_delta=life_d
        )
        registry.set_lifetime(run_id, lifetime_epsilon=life_e, lifetime_delta=life_d)
        registry.finish(
            run_id, status="released", epsilon_spent=plan.epsilon, gates=[], reasons=[], folder=None, artifacts={}
        )
        return contract
    except BaseException as err:
        # The type only: a message may quote the row count.
        registry.fail(
            run_id, error=f"{type(err).__name__} (see the command's output)", epsilon_spent=spent, invalid=spent is None
        )
        raise


def apply_dp_domains(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """At ingestion: clamp numbers to their DP-learned bounds; map values outside a DP-learned
    category set (and not one of ``contract.missing_values``) to ``OTHER_CATEGORY``.

    Only ``dp_learned`` columns change: a DP bound cuts tails too thin to rise above the noise, and a
    DP category set leaves out rare values, so rows outside them are expected, not errors. NaN and
    ±inf stay as they are (validation reports them). Nothing is counted or logged.
    """
    exprs = []
    for name in contract.dp_learned_columns:
        if name not in df.columns:
            continue
        col, dtype = contract.columns[name], df.schema[name]
        if col.kind == "categorical":
            keep = [*col.categories, *contract.missing_values]
            text = pl.col(name).cast(pl.String)
            exprs.append(
                pl.when(text.is_null() | text.is_in(keep)).then(text).otherwise(pl.lit(OTHER_CATEGORY)).alias(name)
            )
        elif col.kind == "datetime":
            if dtype == pl.Date:
                exprs.append(pl.col(name).clip(col.min.date(), col.max.date()).alias(name))  # type: ignore[union-attr]
            elif isinstance(dtype, pl.Datetime):
                lo_l, hi_l = (pl.lit(v).cast(pl.Datetime(dtype.time_unit)) for v in (col.min, col.max))  # type: ignore[union-attr]
                if dtype.time_zone is not None:  # contract datetimes are naive UTC
                    lo_l, hi_l = (
                        x.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone) for x in (lo_l, hi_l)
                    )
                exprs.append(pl.col(name).clip(lo_l, hi_l).alias(name))
        elif dtype.is_integer():
            info = np.iinfo(pl.Series([], dtype=dtype).to_numpy().dtype)
            lo, hi = max(int(col.min), int(info.min)), min(int(col.max), int(info.max))  # type: ignore[union-attr]
            exprs.append(pl.col(name).clip(lo, hi).alias(name))
        elif dtype.is_numeric():  # floats; decimals become Float64 (a continuous column)
            x = pl.col(name) if dtype.is_float() else pl.col(name).cast(pl.Float64)
            clamped = x.clip(float(col.min), float(col.max))  # type: ignore[union-attr]
            exprs.append(pl.when(x.is_finite()).then(clamped).otherwise(x).alias(name))
    return df.with_columns(exprs) if exprs else df


_DP_HEADER = """\
# =====================================================================================
# DRAFT DATA CONTRACT, BOUNDS AND CATEGORIES LEARNED WITH DIFFERENTIAL PRIVACY
# =====================================================================================
# `synthgate contract infer --dp` wrote this file from table {table!r}.
#
# Columns marked `dp_learned: true` ({n_learned}) got their bounds / categories from one
# Gaussian mechanism (ε = {epsilon:.4g}, δ = {delta:.3g}, add/remove one row), charged to the
# table's lifetime budget in the release registry as run {run_id!r}
# (`synthgate releases show {run_id}`). They are public: the contract_is_public gate
# accepts them, provided the release runs use that same registry.
#   - numeric bounds: outer edges of the occupied bins of a public 1-2-5 grid; values
#     outside them are clamped to them at ingestion;
#   - categories: values whose noisy count exceeded {category_threshold:.1f} (a value held by
#     one row is released with probability <= {p_single:.1g}); every other value is read
#     as {other!r}.
# Every modelled column is nullable: true (a public default, not read from the rows).
#
# Still read from the private rows, outside the guarantee: each column's kind and the
# identifier/pii flags (review them), and any column marked `from_data: true`
# ({n_derived}): {derived}
# privacy.lifetime_epsilon ({lifetime}) includes this inference's ε.
# =====================================================================================
"""


def render_dp_yaml(contract: Contract) -> str:
    """The DP-inferred contract as YAML under a header stating what was learned, how, at what cost."""
    import textwrap

    paid = contract.dp_inference
    if paid is None:
        raise ContractError("render_dp_yaml needs a contract from infer_with_budget (it has no dp_inference).")
    derived = contract.data_derived_columns
    listing = ", ".join(repr(n) for n in derived) if derived else "(none)"
    header = _DP_HEADER.format(
        table=contract.table,
        n_learned=len(contract.dp_learned_columns),
        epsilon=paid.epsilon,
        delta=paid.delta,
        run_id=paid.run_id,
        category_threshold=paid.category_threshold,
        p_single=float(norm.sf((paid.category_threshold - 1.0) / paid.noise_std)),
        other=OTHER_CATEGORY,
        n_derived=len(derived),
        lifetime=contract.privacy.lifetime_epsilon,
        derived="\n# ".join(textwrap.wrap(listing, width=83, break_long_words=True, break_on_hyphens=False)),
    )
    body = (
        contract.to_yaml()
        .replace("\n  dp_learned: true\n", "\n  dp_learned: true  # learned with DP, charged to the lifetime budget\n")
        .replace(
            "\n    dp_learned: true\n", "\n    dp_learned: true  # learned with DP, charged to the lifetime budget\n"
        )
    )
    return header + body
