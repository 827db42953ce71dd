"""Plain result types passed between the checks, the gate and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class MetricResult:
    """One measured figure, and the gate it feeds when it has a threshold.

    ``direction`` says how the threshold reads: ``"max"`` means value must be <= threshold
    (a risk), ``"min"`` means value must be >= threshold (a quality). ``gated_value`` is the
    figure actually compared (e.g. the upper end of a confidence interval for a risk).
    """

    name: str
    value: float
    threshold: float | None
    passed: bool
    direction: Literal["max", "min"] = "min"
    ci: tuple[float, float] | None = None
    gated_value: float | None = None
    kind: Literal["privacy", "fidelity", "budget", "contract"] = "fidelity"
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_gate(self) -> bool:
        return self.threshold is not None

    @property
    def margin(self) -> float | None:
        """How far the gated figure is from its threshold; negative when the gate fails."""
        if self.threshold is None:
            return None
        v = self.value if self.gated_value is None else self.gated_value
        return self.threshold - v if self.direction == "max" else v - self.threshold

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        d["margin"] = self.margin
        return d


def upper_bound_gate(
    name: str,
    value: float,
    ci: tuple[float, float],
    threshold: float,
    *,
    description: str,
    details: dict[str, Any],
) -> MetricResult:
    """A privacy risk gated on the upper end of its interval: passes when ``ci[1] <= threshold``."""
    return MetricResult(
        name=name,
        value=value,
        threshold=threshold,
        passed=ci[1] <= threshold,
        direction="max",
        ci=ci,
        gated_value=ci[1],
        kind="privacy",
        description=description,
        details=details,
    )


@dataclass(frozen=True)
class GateDecision:
    released: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"released": self.released, "reasons": list(self.reasons)}


def decide_release(results: list[MetricResult]) -> GateDecision:
    """Release only if every gated result passed; otherwise say which failed and by how much."""
    gates = [r for r in results if r.is_gate]
    if not gates:
        return GateDecision(False, ["no gate was evaluated: refusing to release unchecked data"])
    reasons = []
    for r in gates:
        if not r.passed:
            v = r.value if r.gated_value is None else r.gated_value
            op = "<=" if r.direction == "max" else ">="
            reasons.append(
                f"{r.name}: {v:.4g} must be {op} {r.threshold:.4g} (off by {abs(r.margin or 0):.3g})"
            )
    return GateDecision(not reasons, reasons)
