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


class ContractError(ValueError):
    """The contract file is missing, malformed or inconsistent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ColumnBase(_Strict):
    nullable: bool = False
    description: str | None = None
    # True when the bounds or categories were learned with a DP mechanism (``contract infer --dp``)
    # whose ε is charged in the release registry (``Contract.dp_inference`` names the run).
    # Left out of the serialised form when false, so other contracts keep their fingerprint.
    dp_learned: bool = Field(False, exclude_if=lambda v: not v)
    # True when a bound or domain was drafted from the private rows (contract infer).
    from_data: bool = False


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

    @model_serializer(mode="wrap")
    def _drop_unset_modes(self, handler: Any) -> Any:
        data = handler(self)
        if self.modes is None and isinstance(data, dict):
            data.pop("modes", None)
        return data


class ContinuousColumn(_NumericModes):
    kind: Literal["continuous"]
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds(self) -> ContinuousColumn:
        _check_bounds(self.min, self.max)
        _check_modes(self.modes, self.min, self.max)
        return self


class IntegerColumn(_NumericModes):
    kind: Literal["integer"]
    min: int
    max: int

    @model_validator(mode="after")
    def _bounds(self) -> IntegerColumn:
        _check_bounds(self.min, self.max)
        _check_modes(self.modes, self.min, self.max)
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
    kind: Literal["boolean"]


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
            raise ValueError(
                f"modes[{i}].weight must be > 0. Got {m.weight}. Remove the mode or give it a weight."
            )
    total = math.fsum(m.weight for m in modes)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"modes' weights must sum to 1 (within 1e-6). Got {total:.9g}. Rescale the weights."
        )


class PrivacyBudget(_Strict):
    epsilon: float = Field(gt=0, description="Total ε a release may spend (codec + training).")
    delta: float = Field(gt=0, lt=1, description="δ; must be < 1/n for the table's n rows.")
    lifetime_epsilon: float | None = Field(
        None,
        gt=0,
        description="Total ε every run on this table may spend together (basic composition over the "
        "release registry). None: no limit; the registry still adds up what was spent.",
    )
    lifetime_delta: float | None = Field(
        None, gt=0, lt=1, description="Total δ over every run on this table. None: no limit."
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
        2000, ge=50, description="Train (member) and holdout (non-member) rows scored by the "
        "distance and density-ratio attacks, each."
    )
    mia_targets: int = Field(
        300,
        ge=10,
        description="Most exposed (outlying) records per side attacked by shadow models; 300 per side "
        "keeps the attack's 95% AUC interval within about ±0.05.",
    )
    shadow_models: int = Field(
        8, ge=0, description="Shadow synthesizers trained for the shadow-model attack; 0 skips it."
    )
    shadow_rows: int = Field(
        2000, ge=100, description="Reference rows each shadow synthesizer is trained on."
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
        2000, ge=50, description="Targets per singling-out and linkability attack (and per control attack)."
    )
    inference_attacks: int = Field(
        10000,
        ge=50,
        description="Targets per attribute-inference attack (and per control attack), capped by the rows "
        "available. The risk is divided by 1 - the control success rate, so a secret that is easy to "
        "guess anyway (income on Adult: ~78%) needs many attacks for a tight interval.",
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
        from models.synthesizers import MODEL_NAMES  # names only: no model module is imported

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
        return [n for n, c in self.columns.items() if c.kind in MODELLED_KINDS]

    @property
    def excluded_columns(self) -> list[str]:
        """identifier and pii columns: dropped before training, never released."""
        return [n for n, c in self.columns.items() if c.kind not in MODELLED_KINDS]

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
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True
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
            f"{source}: a contract must be a YAML mapping with keys table, columns, privacy. "
            f"Got {type(data).__name__}."
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
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ContractError(f"{p} is not valid YAML: {err}. Fix the syntax at that line.") from None
    except UnicodeDecodeError:
        raise ContractError(f"{p} is not UTF-8 text. Save the contract as UTF-8 YAML.") from None
    return parse_contract(data, source=str(p))
