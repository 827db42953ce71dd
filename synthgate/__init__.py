"""synthgate's Python API: DP synthetic tables released only when privacy and fidelity gates pass.

The public surface, for notebooks and pipelines (the CLI runs the same flows)::

    import synthgate

    result = synthgate.release("run.yaml")          # or a RunConfig, or a dict of the same keys
    result.released, result.gates, result.report_path, result.owner_report_path
    release = synthgate.load_release(result.folder)  # registry hashes checked first
    rows = release.sample(1000, where="age < 30")     # post-processing: no ε spent

    contract = synthgate.Contract.from_yaml("contract.yaml")
    evaluation = synthgate.evaluate(train, holdout, synthetic, contract)  # polars, pandas or Arrow

``import synthgate`` is light: torch, Prefect and the checks are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Contract",
    "Evaluation",
    "Release",
    "ReleaseResult",
    "evaluate",
    "load_release",
    "release",
]

if TYPE_CHECKING:  # pragma: no cover
    from synthgate.api import Contract, Evaluation, Release, ReleaseResult, evaluate, load_release, release


def __getattr__(name: str) -> Any:
    if name in __all__:
        from synthgate import api

        return getattr(api, name)
    raise AttributeError(f"module 'synthgate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
