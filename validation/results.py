"""Plain result types passed between the checks, the gate and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from synthgate.validation.stats import two_sided_z

# Every privacy gate's interval is a 95% one (the contract's gates say so).
GATE_CONFIDENCE = 0.95
# The family-wise error rate of a release's "fail" claims (evidence of a leak, ``MetricResult.outcome``):
# a no-leak table is failed by any of its privacy gates with at most this chance (Bonferroni over the
# gates, ``family_evidence``). Measured on fresh real rows: BENCHMARKS.md "False blocks".
FAMILY_ALPHA = 0.05


@dataclass(frozen=True)
class MetricResult:
    """One measured figure, and the gate it feeds when it has a threshold.

    ``direction`` says how the threshold reads: ``"max"`` means value must be <= threshold
    (a risk), ``"min"`` means value must be >= threshold (a quality). ``gated_value`` is the
    figure actually compared (e.g. the upper end of a confidence interval for a risk).

    ``power_floor`` (risks with an interval): the gated figure an ideal outcome would get at the
    same numbers of rows (the risk at its no-leak value ``ideal``, only the interval's width left).

    A failed privacy gate is ``"fail"`` only on *evidence of a leak*: its evidence interval
    (``evidence_ci``: Bonferroni over the ``family`` of privacy gates of one release, so that a
    no-leak table is failed by any of them with about ``FAMILY_ALPHA`` chance at most) excludes the
    no-leak value ``ideal`` (for a gate that blocks on its lower end, ``evidence``: that end is still
    past the threshold). Otherwise it is ``"inconclusive"``: limited by the rows, not by risk; it
    blocks only where the contract says so (``gates.block_inconclusive``), and
    ``details["min_rows_to_pass"]`` says how many rows would let it pass. A gate without an interval
    (no ``ideal``) is inconclusive when its no-leak floor is past the threshold, else a fail.
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
    # The gated figure is the worst of this many estimates (the worst column subset, the worst
    # attack): a "fail" claims one of them differs from the no-leak value, a union of tests.
    estimates: int = 1
    # The confidence level of ``ideal_ci`` (else ``ci``): 95%, or a simultaneous level over ``estimates``.
    ci_level: float = GATE_CONFIDENCE
    # The number of privacy gates whose evidence claims are tested together (``family_evidence``).
    family: int = 1
    # A gate that blocks on evidence: on the lower end of its interval (the DCR shares).
    evidence: bool = False

    @property
    def evidence_ci(self) -> tuple[float, float] | None:
        """The interval a "fail" is judged on: ``ideal_ci`` (else ``ci``) widened from its own level
        ``ci_level`` to 1 − ``FAMILY_ALPHA`` / (``estimates`` × ``family``) (Bonferroni over the worst
        of several estimates and over the release's privacy gates), each arm scaled by the ratio of
        the two normal quantiles: exact for a Wald interval; for the Wilson, MOVER and DeLong
        intervals of these gates an approximation, their arms growing with z about linearly at
        these counts."""
        ci = self.ideal_ci if self.ideal_ci is not None else self.ci
        level = 1.0 - FAMILY_ALPHA / (self.estimates * self.family)
        if ci is None or level <= self.ci_level:
            return ci
        scale = two_sided_z(level) / two_sided_z(self.ci_level)
        v = min(max(self.value, ci[0]), ci[1])
        return (max(0.0, v - (v - ci[0]) * scale), min(1.0, v + (ci[1] - v) * scale))

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
        ci = self.evidence_ci
        if self.evidence and ci is not None:  # blocks on its lower end: still past the gate?
            return "fail" if ci[0] > self.threshold else "inconclusive"
        if self.ideal is not None and ci is not None:
            # evidence of a leak, whatever the rows: the interval excludes the no-leak value
            return "inconclusive" if ci[0] <= self.ideal <= ci[1] else "fail"
        if self.power_floor is not None and (
            self.power_floor > self.threshold if self.direction == "max" else self.power_floor < self.threshold
        ):
            return "inconclusive"
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
        evidence = self.evidence_ci
        d["evidence_ci"] = list(evidence) if evidence is not None else None
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
    estimates: int = 1,
    ci_level: float = GATE_CONFIDENCE,
) -> MetricResult:
    """A privacy risk gated on the upper end of its interval: passes when ``ci[1] <= threshold``.

    ``power_floor``: the upper end an ideal (no-leak) outcome would have at these sizes;
    ``min_rows``: the rows per side at which that floor would clear the threshold (details);
    ``ideal``: the no-leak value (0 for a risk, 0.5 for a share or an AUC at chance);
    ``estimates``: the gated figure is the worst of this many estimates, ``ci_level`` the level of
    ``ideal_ci`` (else ``ci``): see ``MetricResult``.
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
        estimates=estimates,
        ci_level=ci_level,
    )


def family_evidence(results: list[MetricResult]) -> list[MetricResult]:
    """``results`` with every privacy gate that has an interval told the size of its family (the
    number of such gates), so that its "fail" is judged on the family-wise interval
    (``MetricResult.evidence_ci``). Idempotent: it sets the size, it does not compound it."""
    members = [
        i
        for i, r in enumerate(results)
        if r.kind == "privacy" and r.is_gate and r.ci is not None and (r.ideal is not None or r.evidence)
    ]
    k = len(members)
    out = list(results)
    for i in members:
        out[i] = replace(out[i], family=k)
    return out


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
    # Privacy gates that failed their bound without evidence of a leak (inconclusive: too few rows
    # to tell) and did not block (``gates.block_inconclusive: false``, the default): one line each.
    row_limited: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"released": self.released, "reasons": list(self.reasons), "row_limited": list(self.row_limited)}


def _inconclusive_note(r: MetricResult) -> str:
    need = r.details.get("min_rows_to_pass")
    floor = f" (which would score about {r.power_floor:.4g} here)" if r.power_floor is not None else ""
    return (
        f"inconclusive: too few rows to tell a no-leak table{floor} from one past the gate, and no evidence "
        "of a leak" + (f"; it needs about {need} {r.details.get('min_rows_unit', 'rows per side')}" if need else "")
    )


def decide_release(results: list[MetricResult], *, block_inconclusive: bool = False) -> GateDecision:
    """Release only if every gated result passed, or failed without evidence; say which did not.

    A privacy gate blocks on evidence of a leak (``MetricResult.outcome`` "fail", judged over the
    family of the release's privacy gates: ``family_evidence`` is applied here). An inconclusive
    gate (its bound not met, but no evidence either: limited by the rows) blocks only when
    ``block_inconclusive`` (the contract's ``gates.block_inconclusive``); otherwise it is listed in
    ``row_limited`` and the release rests on the DP guarantee for that risk.
    """
    gates = [r for r in family_evidence(results) if r.is_gate]
    if not gates:
        return GateDecision(False, ["no gate was evaluated: refusing to release unchecked data"])
    reasons: list[str] = []
    row_limited: list[str] = []
    for r in gates:
        if r.passed:
            continue
        v = r.value if r.gated_value is None else r.gated_value
        op = "<=" if r.direction == "max" else ">="
        reason = f"{r.name}: {v:.4g} must be {op} {r.threshold:.4g} (off by {abs(r.margin or 0):.3g})"
        if r.outcome == "inconclusive":
            reason += f"; {_inconclusive_note(r)}"
            (reasons if block_inconclusive else row_limited).append(reason)
        else:
            reasons.append(reason)
    return GateDecision(not reasons, reasons, row_limited)
