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

    ``power_floor`` (risks with an interval): the gated figure an ideal outcome would get at the
    same numbers of rows (the risk at its no-leak value ``ideal``, only the interval's width left).
    A failed gate is ``"inconclusive"`` (it still blocks by default) when the rows are too few to
    tell: the floor itself is past the threshold, or the interval holds both the no-leak value and
    the threshold; ``details["min_rows_to_pass"]`` says how many rows would do.
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
    power_floor: float | None = None
    ideal: float | None = None
    # The interval checked for the no-leak value when the gated figure is the worst of several
    # estimates (None: ``ci``). Passing needs every estimate's bound to clear the threshold, an
    # intersection-union test that needs no multiplicity correction; but "fail, not inconclusive"
    # claims some estimate differs from the no-leak value, a union of K tests, which does: this is
    # the simultaneous (Bonferroni over the K estimates) interval of the estimate that says so best.
    ideal_ci: tuple[float, float] | None = None

    @property
    def is_gate(self) -> bool:
        return self.threshold is not None

    @property
    def outcome(self) -> Literal["pass", "fail", "inconclusive", "info"]:
        """pass / fail, or inconclusive: failed, but an ideal outcome would have failed too at
        these row counts (limited by rows, not by risk); info for a figure without a gate."""
        if self.threshold is None:
            return "info"
        if self.passed:
            return "pass"
        if self.power_floor is not None and (
            self.power_floor > self.threshold if self.direction == "max" else self.power_floor < self.threshold
        ):
            return "inconclusive"
        ci = self.ideal_ci if self.ideal_ci is not None else self.ci
        if self.ideal is not None and ci is not None and ci[0] <= self.ideal <= ci[1]:
            return "inconclusive"  # the interval cannot tell a no-leak table from one past the gate
        return "fail"

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
        d["ideal_ci"] = list(self.ideal_ci) if self.ideal_ci is not None else None
        d["margin"] = self.margin
        d["outcome"] = self.outcome
        return d


def upper_bound_gate(
    name: str,
    value: float,
    ci: tuple[float, float],
    threshold: float,
    *,
    description: str,
    details: dict[str, Any],
    power_floor: float | None = None,
    min_rows: int | None = None,
    ideal: float | None = None,
    ideal_ci: tuple[float, float] | None = None,
) -> MetricResult:
    """A privacy risk gated on the upper end of its interval: passes when ``ci[1] <= threshold``.

    ``power_floor``: the upper end an ideal (no-leak) outcome would have at these sizes;
    ``min_rows``: the rows per side at which that floor would clear the threshold (details);
    ``ideal``: the no-leak value (0 for a risk, 0.5 for a share or an AUC at chance).
    """
    if power_floor is not None:
        details = {**details, "power_floor": power_floor}
        if min_rows is not None:
            details["min_rows_to_pass"] = min_rows
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
        power_floor=power_floor,
        ideal=ideal,
        ideal_ci=ideal_ci,
    )


def min_rows_to_pass(floor_at: Any, threshold: float, *, start: int, limit: int = 10_000_000) -> int | None:
    """The smallest n >= start with ``floor_at(n) <= threshold`` (floor_at decreasing in n), by
    doubling then bisection; None when even ``limit`` rows would not do."""
    if floor_at(start) <= threshold:
        return start
    lo, hi = start, start * 2
    while floor_at(hi) > threshold:
        if hi >= limit:
            return None
        lo, hi = hi, min(hi * 2, limit)
    while hi - lo > max(1, lo // 100):  # 1% resolution is enough for advice
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if floor_at(mid) <= threshold else (mid, hi)
    return hi


@dataclass(frozen=True)
class GateDecision:
    released: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"released": self.released, "reasons": list(self.reasons)}


def decide_release(results: list[MetricResult], *, block_inconclusive: bool = True) -> GateDecision:
    """Release only if every gated result passed; otherwise say which failed and by how much.

    An inconclusive gate (``MetricResult.outcome``) blocks unless ``block_inconclusive`` is False
    (the contract's ``gates.block_inconclusive``).
    """
    gates = [r for r in results if r.is_gate]
    if not gates:
        return GateDecision(False, ["no gate was evaluated: refusing to release unchecked data"])
    reasons = []
    for r in gates:
        if not r.passed and (block_inconclusive or r.outcome != "inconclusive"):
            v = r.value if r.gated_value is None else r.gated_value
            op = "<=" if r.direction == "max" else ">="
            reason = f"{r.name}: {v:.4g} must be {op} {r.threshold:.4g} (off by {abs(r.margin or 0):.3g})"
            if r.outcome == "inconclusive":
                need = r.details.get("min_rows_to_pass")
                reason += (
                    f"; inconclusive: too few rows to tell a no-leak table (which would score about "
                    f"{r.power_floor:.4g} here) from one past the gate"
                    + (f"; it needs about {need} {r.details.get('min_rows_unit', 'rows per side')}" if need else "")
                )
            reasons.append(reason)
    return GateDecision(not reasons, reasons)
