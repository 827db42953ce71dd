"""The data contract: what is public about a table, reviewed by a person.

The contract is synthgate's privacy boundary. The codec is built from it (never fitted on
private rows), the great-expectations suite is generated from it, and it carries the privacy
budget and the release-gate thresholds. Anything in it that was read off the private rows
(``from_data: true``, written by ``synthgate contract infer``) makes a release non-DP and
is blocked by the ``contract_is_public`` gate until a person replaces it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from synthgate.errors import ContractError


# --- YAML: duplicate keys are errors -----------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding the same key twice.

    PyYAML keeps the last of two equal keys silently, so a reviewed ``epsilon: 3.0`` could be
    overruled by a second ``epsilon: 1000.0`` further down; here the second one is an error that
    names both lines.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # merge keys (<<) first, as SafeLoader does
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {str(key)[:80]!r} on line {line} (first on line {first}); a YAML "
                        "mapping must not repeat a key, keep one of them",
                        key_node.start_mark,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse YAML safely (no tags that build objects) and refuse duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)


def read_yaml_file(path: Path, *, what: str) -> Any:
    """Read a YAML file (``what``: "contract", "run config") as UTF-8; errors are ContractErrors."""
    try:
        return load_yaml_text(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what_went_wrong = " ".join(str(err.problem or err.context or type(err).__name__).split())
        raise ContractError(f"{path} is not valid YAML ({what}): {what_went_wrong}{where}. Fix it there.") from None
    except yaml.YAMLError as err:
        raise ContractError(f"{path} is not valid YAML ({what}): {type(err).__name__}. Fix the file.") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path} is not UTF-8 text. Save the {what} as UTF-8 YAML.") from None
    except RecursionError:
        raise ContractError(f"{path} nests too deeply to be a {what}. Flatten it.") from None


# --- bounds every number of a contract or run config must keep ---------------------------------
MAX_EPSILON = 100.0  # ε per release; above it DP is meaningless (e^100) and a typo more likely
MAX_LIFETIME_EPSILON = 10_000.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TABLE_NAME = 128
RESERVED_PREFIXES = ("_synthgate", "_staging_")

# The values `model:` may take: the names the synthesizer registry (models/synthesizers/__init__.py)
# maps to classes, in `synthgate models` order. Listed here, not imported from the registry, so that
# the contract (the ground floor) imports no model code; the registry refuses to load when the two
# lists differ, so a new family is added to both.
MODEL_NAMES: tuple[str, ...] = (
    "ctgan",
    "tvae",
    "gumbel-gan",
    "wgan-gp",
    "cwgan-gp",
    "medgan",
    "corgan",
    "tablegan",
    "tgan",
)


def check_table_name(name: str, *, what: str) -> str:
    """A table name we store and print: 1-128 printable characters, no reserved prefix.

    Names are always quoted in SQL (``quote_ident``), so quotes and semicolons are harmless;
    control and format characters (newlines, ANSI escapes, bidi overrides) would forge lines in
    the audit views, and the reserved prefixes are synthgate's own tables.
    """
    import unicodedata

    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty table name.")
    if len(name) > MAX_TABLE_NAME:
        raise ValueError(f"{what} is {len(name)} characters long; at most {MAX_TABLE_NAME}. Use a shorter name.")
    bad = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")})
    if bad:
        raise ValueError(
            f"{what} holds control or format characters ({', '.join(bad[:5])}). Use printable characters only."
        )
    if name != name.strip():
        raise ValueError(f"{what} {name!r} starts or ends with white space. Remove it.")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise ValueError(
            f"{what} {name!r} starts with a prefix reserved for synthgate's own tables "
            f"({', '.join(RESERVED_PREFIXES)}). Choose another name."
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Derived(_Strict):
    """A column generated from another one, not learned: ``copy`` (the same value in every row) or
    ``offset`` (the source's value plus a constant ``offset``; for datetime columns, in days)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", min_length=1, description="The column this one is derived from.")
    as_: Literal["copy", "offset"] = Field(alias="as", description="copy, or offset (source + offset).")
    offset: float | None = Field(None, description="The constant added to the source (as: offset only).")

    @model_validator(mode="after")
    def _offset_given(self) -> Derived:
        if self.as_ == "offset" and (self.offset is None or not math.isfinite(self.offset)):
            raise ValueError(
                "derived `as: offset` needs a finite `offset` (the constant added to the source column). "
                "Add e.g. `offset: 30`, or use `as: copy`."
            )
        if self.as_ == "copy" and self.offset is not None:
            raise ValueError("derived `as: copy` takes no `offset`. Remove it, or use `as: offset`.")
        return self


#: Optional column keys left out of the serialised form when unset, so contracts without them keep
#: their fingerprint.
_OPTIONAL_KEYS = ("modes", "special_values", "true_values", "false_values", "derived")


class _ColumnBase(_Strict):
    nullable: bool = False
    description: str | None = None
    # True when the bounds or categories were learned with a DP mechanism (``contract infer --dp``)
    # whose ε is charged in the release registry (``Contract.dp_inference`` names the run).
    # Left out of the serialised form when false, so other contracts keep their fingerprint.
    dp_learned: bool = Field(False, exclude_if=lambda v: not v)
    # True when a bound or domain was drafted from the private rows (contract infer).
    from_data: bool = False
    derived: Derived | None = Field(
        None, description="Generated from another column (copy or constant offset), never learned."
    )

    @model_serializer(mode="wrap")
    def _drop_unset_optional(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in _OPTIONAL_KEYS:
                if key in data and getattr(self, key, None) is None:
                    data.pop(key)
            if self.derived is not None and isinstance(data.get("derived"), dict):
                # the YAML spelling: from / as, and no null offset
                data["derived"] = {"from": self.derived.source, "as": self.derived.as_}
                if self.derived.offset is not None:
                    data["derived"]["offset"] = self.derived.offset
        return data


class Mode(_Strict):
    """One component of a numeric column's Gaussian mixture (public knowledge, e.g. a codebook)."""

    mean: float
    std: float
    weight: float


class _NumericModes(_ColumnBase):
    """A numeric column that may declare its mixture modes (used by the codec's "modes" encoding).

    ``modes`` is optional public knowledge given by the data steward; when absent the codec learns
    modes from its DP histogram. It is left out of the serialised form when unset, so contracts
    without it keep their fingerprint.
    """

    modes: list[Mode] | None = None
    special_values: list[float] | None = Field(
        None,
        description="Values the column takes often and exactly (e.g. [0] for a zero-inflated amount): "
        "the codec gives each a point mass, as it does the bounds and 0 when within them.",
    )


class ContinuousColumn(_NumericModes):
    kind: Literal["continuous"]
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds(self) -> ContinuousColumn:
        _check_bounds(self.min, self.max)
        _check_modes(self.modes, self.min, self.max)
        _check_special(self.special_values, self.min, self.max, integer=False)
        return self


class IntegerColumn(_NumericModes):
    kind: Literal["integer"]
    min: int = Field(ge=INT64_MIN, le=INT64_MAX, description="Within int64, like the column.")
    max: int = Field(ge=INT64_MIN, le=INT64_MAX, description="Within int64, like the column.")

    @model_validator(mode="after")
    def _bounds(self) -> IntegerColumn:
        _check_bounds(self.min, self.max)
        _check_modes(self.modes, self.min, self.max)
        _check_special(self.special_values, self.min, self.max, integer=True)
        return self


class CategoricalColumn(_ColumnBase):
    kind: Literal["categorical"]
    categories: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CategoricalColumn:
        dupes = sorted(c for c, k in Counter(self.categories).items() if k > 1)
        if dupes:
            raise ValueError(f"categories must be unique; repeated: {dupes}. Remove the repeats.")
        return self


class BooleanColumn(_ColumnBase):
    """True/False. Read from a Boolean column, from integers 0/1, or from the declared text values
    (``true_values: [Y]``, ``false_values: [N]``)."""

    kind: Literal["boolean"]
    true_values: list[str] | None = Field(None, description="Text values read as True (e.g. [Y, yes]).")
    false_values: list[str] | None = Field(None, description="Text values read as False (e.g. [N, no]).")

    @model_validator(mode="after")
    def _text_values(self) -> BooleanColumn:
        if (self.true_values is None) != (self.false_values is None):
            raise ValueError(
                "declare both true_values and false_values (the text read as True and as False), or neither."
            )
        if self.true_values is not None and self.false_values is not None:
            if not self.true_values or not self.false_values:
                raise ValueError("true_values and false_values must each list at least one text value.")
            both = sorted(set(self.true_values) & set(self.false_values))
            if both:
                raise ValueError(f"{both} are listed in both true_values and false_values. Keep each in one.")
        return self


class DatetimeColumn(_ColumnBase):
    kind: Literal["datetime"]
    min: dt.datetime
    max: dt.datetime

    @model_validator(mode="after")
    def _bounds(self) -> DatetimeColumn:
        if not self.min < self.max:
            raise ValueError(f"min must be before max. Got min={self.min}, max={self.max}.")
        return self


class IdentifierColumn(_ColumnBase):
    """A key (record id, account number): never modelled, never released."""

    kind: Literal["identifier"]


class PiiColumn(_ColumnBase):
    """Directly identifying data (name, e-mail, phone): never modelled, never released."""

    kind: Literal["pii"]


Column = Annotated[
    Union[
        ContinuousColumn,
        IntegerColumn,
        CategoricalColumn,
        BooleanColumn,
        DatetimeColumn,
        IdentifierColumn,
        PiiColumn,
    ],
    Field(discriminator="kind"),
]

MODELLED_KINDS = ("continuous", "integer", "categorical", "boolean", "datetime")
NUMERIC_KINDS = ("continuous", "integer", "datetime")
DISCRETE_KINDS = ("categorical", "boolean")


def _check_bounds(lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"min and max must be finite numbers. Got min={lo}, max={hi}.")
    if not lo < hi:
        raise ValueError(f"min must be < max. Got min={lo}, max={hi}. Fix the bounds.")
    if not math.isfinite(float(hi) - float(lo)):
        raise ValueError(f"max - min must be a finite number. Got min={lo}, max={hi}. Narrow the bounds.")


def _check_special(values: list[float] | None, lo: float, hi: float, *, integer: bool) -> None:
    """Declared special values: finite, within the bounds, whole numbers for an integer column."""
    if values is None:
        return
    for i, v in enumerate(values):
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(
                f"special_values[{i}] = {v} must be a finite number within the column's bounds "
                f"[{lo}, {hi}]. Fix it or remove it."
            )
        if integer and v != int(v):
            raise ValueError(f"special_values[{i}] = {v} must be a whole number in an integer column.")
    if len(set(values)) != len(values):
        raise ValueError(f"special_values repeats a value: {values}. List each once.")


def _check_modes(modes: list[Mode] | None, lo: float, hi: float) -> None:
    """Declared mixture modes: positive stds, means within the bounds, weights > 0 summing to 1."""
    if modes is None:
        return
    if not modes:
        raise ValueError("modes is empty. Declare at least one {mean, std, weight}, or remove modes.")
    for i, m in enumerate(modes):
        if not all(math.isfinite(v) for v in (m.mean, m.std, m.weight)):
            raise ValueError(
                f"modes[{i}] must have finite mean, std and weight. Got mean={m.mean}, std={m.std}, "
                f"weight={m.weight}. Fix that mode."
            )
        if not m.std > 0:
            raise ValueError(f"modes[{i}].std must be > 0. Got {m.std}. Give each mode a positive std.")
        if not lo <= m.mean <= hi:
            raise ValueError(
                f"modes[{i}].mean must lie within the column's bounds [{lo}, {hi}]. Got {m.mean}. "
                "Move the mean inside the bounds (or widen min/max)."
            )
        if not m.weight > 0:
            raise ValueError(f"modes[{i}].weight must be > 0. Got {m.weight}. Remove the mode or give it a weight.")
    total = math.fsum(m.weight for m in modes)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"modes' weights must sum to 1 (within 1e-6). Got {total:.9g}. Rescale the weights.")


class PrivacyBudget(_Strict):
    epsilon: float = Field(
        gt=0,
        le=MAX_EPSILON,
        allow_inf_nan=False,
        description=f"Total ε a release may spend (codec + training); at most {MAX_EPSILON:g}.",
    )
    delta: float = Field(gt=0, lt=1, allow_inf_nan=False, description="δ; must be < 1/n for the table's n rows.")
    lifetime_epsilon: float | None = Field(
        None,
        gt=0,
        le=MAX_LIFETIME_EPSILON,
        allow_inf_nan=False,
        description="Total ε every run on this table may spend together (basic composition over the "
        "release registry). None: no limit; the registry still adds up what was spent.",
    )
    lifetime_delta: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="Total δ over every run on this table. None: no limit."
    )

    @model_validator(mode="after")
    def _lifetime_covers_one_run(self) -> PrivacyBudget:
        if self.lifetime_epsilon is not None and self.lifetime_epsilon < self.epsilon:
            raise ValueError(
                f"privacy.lifetime_epsilon = {self.lifetime_epsilon:g} is below privacy.epsilon = "
                f"{self.epsilon:g}, so no run could ever start. Raise it or lower privacy.epsilon."
            )
        if self.lifetime_delta is not None and self.lifetime_delta < self.delta:
            raise ValueError(
                f"privacy.lifetime_delta = {self.lifetime_delta:g} is below privacy.delta = {self.delta:g}."
            )
        return self

    def check_delta(self, n_rows: int) -> None:
        """δ must be below 1/n, or a mechanism could release a whole record with prob. δ."""
        if n_rows > 0 and self.delta >= 1.0 / n_rows:
            raise ContractError(
                f"privacy.delta must be < 1/n = {1.0 / n_rows:.3g} for a table of {n_rows} rows. "
                f"Got {self.delta:g}. Set privacy.delta in the contract to at most "
                f"{0.1 / n_rows:.1g}."
            )


#: Kinds whose bounds or categories ``contract infer --dp`` learns.
DP_LEARNABLE_KINDS = ("continuous", "integer", "categorical", "datetime")


class DpInference(_Strict):
    """What paid for a contract's ``dp_learned`` entries: one charged run in the release registry."""

    run_id: str = Field(min_length=1, description="The registry run of kind 'contract inference'.")
    epsilon: float = Field(gt=0, allow_inf_nan=False, description="ε it charged (RDP of the Gaussian mechanism).")
    delta: float = Field(gt=0, lt=1, description="δ it charged (Gaussian part + the thresholding's part).")
    mechanism: str = Field(min_length=1)
    noise_std: float = Field(gt=0, allow_inf_nan=False, description="Std of the Gaussian noise on each count.")
    category_threshold: float = Field(description="A value is released when its noisy count exceeds this.")
    bin_threshold: float = Field(description="A numeric grid bin counts as occupied above this noisy count.")
    columns: int = Field(ge=1, description="Columns learned together (the L2 sensitivity is sqrt of this).")


class Gates(_Strict):
    """Release-gate thresholds; every gate must pass for a release.

    Privacy gates bound a risk from above and compare the *upper end* of its 95% interval;
    fidelity gates bound a quality from below. No single figure decides a release.
    """

    # --- privacy -----------------------------------------------------------------------------
    block_inconclusive: bool = Field(
        False,
        description="true: an inconclusive privacy check (its bound not met at these rows, but no "
        "evidence of a leak either) blocks the release. false (default): a privacy gate blocks on "
        "evidence of a leak, judged family-wise over the release's privacy gates (at most a 5% chance "
        "that a table leaking nothing is blocked); an inconclusive one is reported as limited by "
        "rows, and for that risk the release rests on the DP guarantee.",
    )
    max_dcr_share: float = Field(
        0.55,
        gt=0,
        le=1,
        description="Upper 95% bound of the share of synthetic rows closer to train than holdout "
        "(all columns, and the worst column subset).",
    )
    identical_match_tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Train identical-match share may exceed the holdout's by at most this.",
    )
    max_mia_auc: float = Field(
        0.60,
        gt=0,
        le=1,
        description="Upper 95% bound of the ROC AUC of the strongest membership-inference attack.",
    )
    max_mia_tpr_at_1pct_fpr: float = Field(
        0.03,
        ge=0,
        le=1,
        description="True-positive rate at 1% false-positive rate of the strongest attack.",
    )
    max_anonymeter_risk: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Upper 95% bound of each singling-out, linkability and inference risk.",
    )
    # --- fidelity ----------------------------------------------------------------------------
    min_column_shapes: float = Field(0.80, ge=0, le=1)
    min_pair_trends: float = Field(0.75, ge=0, le=1)
    min_three_way_ratio: float = Field(
        0.875,
        ge=0,
        le=2,
        description="3-way marginal similarity (train vs synthetic) / the same between train and "
        "holdout (the real data's own sampling noise).",
    )
    max_detection_auc: float = Field(
        0.975,
        gt=0,
        le=1,
        description="Cross-validated ROC AUC of a classifier telling holdout rows from synthetic "
        "ones (0.5 = indistinguishable).",
    )
    min_tstr_ratio: float = Field(
        0.85,
        ge=0,
        le=2,
        description="Train-on-synthetic score / train-on-real score on the target, both on holdout "
        "(AUC for a categorical target, R² for a numeric one).",
    )


class Evaluation(_Strict):
    """How hard the privacy checks attack the synthetic table (cost vs power)."""

    secret_columns: list[str] = Field(
        default_factory=list,
        description="Columns an attacker tries to infer (attribute inference); default: the target.",
    )
    attack_rows: int = Field(
        2000,
        ge=50,
        le=1_000_000,
        description="Train (member) and holdout (non-member) rows scored by the "
        "distance and density-ratio attacks, each.",
    )
    mia_targets: int = Field(
        300,
        ge=10,
        le=100_000,
        description="Most exposed (outlying) records per side attacked by shadow models; 300 per side "
        "keeps the attack's 95% AUC interval within about ±0.05.",
    )
    shadow_models: int = Field(
        8, ge=0, le=64, description="Shadow synthesizers trained for the shadow-model attack; 0 skips it."
    )
    shadow_rows: int = Field(
        2000, ge=100, le=1_000_000, description="Reference rows each shadow synthesizer is trained on."
    )

    @model_validator(mode="after")
    def _enough_shadows(self) -> Evaluation:
        if 0 < self.shadow_models < 4:
            raise ValueError(
                f"shadow_models must be 0 (no shadow attack) or at least 4 (each target needs two "
                f"shadows with it and two without). Got {self.shadow_models}."
            )
        return self

    anonymeter_attacks: int = Field(
        2000,
        ge=50,
        le=1_000_000,
        description="Targets per singling-out and linkability attack (and per control attack).",
    )
    inference_attacks: int = Field(
        10000,
        ge=50,
        le=10_000_000,
        description="Targets per attribute-inference attack (and per control attack), shared by the "
        "secret's value classes and capped by each class's rows. The risk is divided by 1 - the control "
        "success rate (averaged over the classes), so a secret the other columns predict needs many "
        "attacks for a tight interval.",
    )


class Contract(_Strict):
    version: Literal[1] = 1
    table: str = Field(min_length=1, description="Name of the table the contract describes.")
    description: str | None = None
    missing_values: list[str] = Field(
        default_factory=list,
        description="Strings that mean 'missing' in text columns (read as null).",
    )
    target: str | None = Field(None, description="Column to predict in ML-efficacy checks.")
    model: str = Field("ctgan", description="Synthesizer family (`synthgate models` lists them).")
    model_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the model's config (e.g. {epochs: 10}); a run's --epochs overrides.",
    )
    columns: dict[str, Column] = Field(min_length=1)
    unit: str | None = Field(
        None,
        description=(
            "The entity column (e.g. patient_id, kind identifier) when a person may have several "
            "rows: the unit of privacy becomes one person, whose rows are reduced to one before "
            "anything reads them. None: the unit is one row of the source table."
        ),
    )
    privacy: PrivacyBudget
    gates: Gates = Field(default_factory=Gates)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    dp_inference: DpInference | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="The registry run that learned the `dp_learned` columns' bounds and categories with "
        "DP (`synthgate contract infer --dp`) and the (ε, δ) it charged to the table's lifetime budget.",
    )

    @model_validator(mode="after")
    def _dp_learned_paid(self) -> Contract:
        learned = self.dp_learned_columns
        both = [n for n in learned if self.columns[n].from_data]
        if both:
            raise ValueError(
                f"columns {both} are marked both dp_learned and from_data; an entry is either learned "
                "with DP or read off the rows. Remove one of the two marks."
            )
        wrong = [n for n in learned if self.columns[n].kind not in DP_LEARNABLE_KINDS]
        if wrong:
            raise ValueError(
                f"columns {wrong} are marked dp_learned, but only {list(DP_LEARNABLE_KINDS)} columns have "
                "bounds or categories to learn. Remove dp_learned from them."
            )
        if learned and self.dp_inference is None:
            raise ValueError(
                f"columns {learned[:5]}{' ...' if len(learned) > 5 else ''} are marked dp_learned but the "
                "contract has no dp_inference record naming the registry run that paid for them. Draft it "
                "again with `synthgate contract infer --dp EPS`, or replace their bounds/categories with "
                "public knowledge and remove dp_learned."
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        check_table_name(self.table, what="table")

        if self.model not in MODEL_NAMES:
            raise ValueError(
                f"model {self.model!r} is not a registered synthesizer. Choose one of "
                f"{list(MODEL_NAMES)} (`synthgate models` describes each)."
            )
        if not self.modelled_columns:
            raise ValueError(
                "the contract models no column: every column is identifier or pii. "
                "Declare at least one continuous/integer/categorical/boolean/datetime column."
            )
        if self.target is not None:
            if self.target not in self.columns:
                raise ValueError(
                    f"target {self.target!r} is not a column of the contract. "
                    f"Columns: {list(self.columns)}. Set target to one of them, or remove it."
                )
            kind = self.columns[self.target].kind
            if kind not in MODELLED_KINDS or kind == "datetime":
                raise ValueError(
                    f"target {self.target!r} has kind {kind!r}; a target must be categorical, "
                    "boolean (classification), continuous or integer (regression). Set target "
                    "to such a column or remove it."
                )
        if self.unit is not None:
            spec = self.columns.get(self.unit)
            if spec is None or spec.kind not in ("identifier", "pii"):
                raise ValueError(
                    f"unit {self.unit!r} must name an identifier or pii column of the contract (the "
                    f"person key, never modelled). Got {'no such column' if spec is None else 'kind ' + repr(spec.kind)}. "
                    "Declare it as `{kind: identifier}` or remove `unit`."
                )
            if spec.nullable:
                raise ValueError(
                    f"unit {self.unit!r} is declared nullable: a row without a person cannot be bounded to "
                    "one person. Set nullable: false (and drop such rows in the source query)."
                )
        for name, col in self.columns.items():
            if col.derived is not None:
                _check_derived(name, col, self.columns)
        for name in self.evaluation.secret_columns:
            if name not in self.modelled_columns:
                raise ValueError(
                    f"evaluation.secret_columns names {name!r}, which is not a modelled column. "
                    f"Modelled columns: {self.modelled_columns}. Fix the name or remove it."
                )
        return self

    @property
    def secret_columns(self) -> list[str]:
        """Columns attacked by attribute inference: the declared ones, else the target."""
        if self.evaluation.secret_columns:
            return list(self.evaluation.secret_columns)
        return [self.target] if self.target is not None else []

    # --- views -----------------------------------------------------------------------------
    @property
    def modelled_columns(self) -> list[str]:
        """The columns the synthesizer learns: modelled kinds, less the ``derived`` ones."""
        return [n for n, c in self.columns.items() if c.kind in MODELLED_KINDS and c.derived is None]

    @property
    def derived_columns(self) -> list[str]:
        """Columns generated from another column (``derived:``): released, never learned."""
        return [n for n, c in self.columns.items() if c.derived is not None]

    @property
    def released_columns(self) -> list[str]:
        """The synthetic table's columns: modelled and derived ones, in the contract's order."""
        return [n for n, c in self.columns.items() if c.kind in MODELLED_KINDS]

    @property
    def excluded_columns(self) -> list[str]:
        """identifier and pii columns: dropped before training, never released."""
        return [n for n, c in self.columns.items() if c.kind not in MODELLED_KINDS]

    @property
    def privacy_unit(self) -> str:
        """The neighbouring relation the DP guarantee is stated for, in words (report, README)."""
        if self.unit is None:
            return (
                "add/remove one row of the source table (no unit column declared: a person with k rows "
                "is protected as k rows, about k times weaker; declare `unit:` to protect people)"
            )
        return (
            f"add/remove one person (unit column {self.unit!r}): each person's rows are reduced to one, "
            "chosen by a secret keyed hash, before anything reads them"
        )

    @property
    def data_derived_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.from_data]

    @property
    def dp_learned_columns(self) -> list[str]:
        """Columns whose bounds/categories were learned with DP and charged (``contract infer --dp``)."""
        return [n for n, c in self.columns.items() if c.dp_learned]

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON form, for the report and the registry."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)


def _check_derived(name: str, col: Any, columns: dict[str, Any]) -> None:
    """``derived`` names a learned column of the same kind; an offset needs a numeric/datetime kind."""
    d = col.derived
    if col.kind not in MODELLED_KINDS:
        raise ValueError(
            f"column {name!r} is {col.kind} and declares `derived`; identifier and pii columns are "
            "never released. Remove `derived` or give the column a modelled kind."
        )
    src = columns.get(d.source)
    if src is None:
        raise ValueError(
            f"column {name!r} is derived from {d.source!r}, which is not a column of the contract. "
            f"Columns: {list(columns)}. Fix `derived.from`."
        )
    if src.kind not in MODELLED_KINDS or src.derived is not None:
        why = "itself derived" if src.derived is not None else f"{src.kind} (never modelled)"
        raise ValueError(
            f"column {name!r} is derived from {d.source!r}, which is {why}. Derive it from a "
            "learned column (continuous, integer, categorical, boolean or datetime, without `derived`)."
        )
    if src.kind != col.kind:
        raise ValueError(
            f"column {name!r} ({col.kind}) is derived from {d.source!r} ({src.kind}); a derived "
            "column must have its source's kind. Fix the kind or `derived.from`."
        )
    if d.as_ == "offset" and col.kind not in NUMERIC_KINDS:
        raise ValueError(
            f"column {name!r} is {col.kind}: `as: offset` needs a continuous, integer or datetime "
            "column. Use `as: copy`."
        )
    if d.as_ == "offset" and col.kind == "integer" and d.offset != int(d.offset):  # type: ignore[arg-type]
        raise ValueError(f"column {name!r} is integer: its derived offset must be a whole number. Got {d.offset}.")
    if src.nullable and not col.nullable:
        raise ValueError(
            f"column {name!r} is derived from nullable {d.source!r}, so it can be null too. Set "
            f"`nullable: true` on {name!r}."
        )


_KIND_MODELS: dict[str, type[BaseModel]] = {
    "continuous": ContinuousColumn,
    "integer": IntegerColumn,
    "categorical": CategoricalColumn,
    "boolean": BooleanColumn,
    "datetime": DatetimeColumn,
    "identifier": IdentifierColumn,
    "pii": PiiColumn,
}


def _allowed_keys(parent: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed at ``parent`` (a pydantic error location), when it is a known model."""
    model: type[BaseModel] | None = None
    if parent == ():
        model = Contract
    elif parent == ("privacy",):
        model = PrivacyBudget
    elif parent == ("gates",):
        model = Gates
    elif parent == ("evaluation",):
        model = Evaluation
    elif len(parent) == 3 and parent[0] == "columns":
        model = _KIND_MODELS.get(str(parent[2]))
    return list(model.model_fields) if model is not None else None


def _fix_hint(e: Any) -> str:
    """How to fix one pydantic error, for the error types pydantic leaves without a fix."""
    kind, loc = e["type"], tuple(e["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        where = f" Allowed keys here: {', '.join(allowed)}." if allowed else ""
        return f" Unknown key {str(loc[-1])!r}: remove it or fix its spelling.{where}"
    if kind == "missing":
        return " Add this key to the contract."
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f" Set `kind` to one of: {', '.join(_KIND_MODELS)}."
    if kind == "value_error":
        return ""  # our validators already say how to fix
    return " Fix this entry in the contract."


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).rstrip(".")
        lines.append(f"  - {loc or '(top level)'}: {msg}.{_fix_hint(e)}")
    return "\n".join(lines)


def parse_contract(data: Any, *, source: str = "<contract>") -> Contract:
    if not isinstance(data, dict):
        raise ContractError(
            f"{source}: a contract must be a YAML mapping with keys table, columns, privacy. Got {type(data).__name__}."
        )
    try:
        return Contract.model_validate(data)
    except ValidationError as err:
        raise ContractError(f"{source} is not a valid contract:\n{_format_errors(err)}") from None


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract YAML file. Unknown keys are errors."""
    p = Path(path)
    if not p.is_file():
        raise ContractError(f"contract file {str(p)!r} does not exist. Pass an existing YAML file.")
    return parse_contract(read_yaml_file(p, what="contract"), source=str(p))
