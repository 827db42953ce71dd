"""How fast can a generator sample on this machine? An arithmetic bound beside the measured rate.

    python -m benchmarks.sampling_estimate          # writes benchmarks/results/sampling_estimate.json

For each model given (default: synthgate's ctgan and tvae at their defaults, and ctgan at the ctgan
package's architecture), the generator's Linear layers are counted (2·in·out FLOPs per row each:
the matrix products, which dominate) and this machine's float32 matrix-product throughput is
measured at the same shapes (torch.mm, the process's torch threads, batch 50,000 as sampling uses).
rows/s bound = throughput / FLOPs per row: what the products alone allow, before activations,
Gumbel draws, concatenations and decoding. The measured rate (model.sample of 200,000 rows after
a fit of one epoch on adult.data, non-DP) is printed beside it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "sampling_estimate.json"
BATCH = 50_000
ROWS = 200_000


def _linear_shapes(net: Any) -> list[tuple[int, int]]:
    from torch import nn

    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


def _matmul_seconds(shapes: list[tuple[int, int]], batch: int) -> float:
    """Seconds for one batch through every product of ``shapes`` (best of 5)."""
    import torch

    xs = [(torch.randn(batch, i), torch.randn(i, o)) for i, o in shapes]
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for x, w in xs:
            torch.mm(x, w)
        best = min(best, time.perf_counter() - t0)
    return best


def estimate(name: str, config: dict[str, Any], train: Any, contract: Any) -> dict[str, Any]:
    import torch

    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    cls = get_synthesizer(name)
    model = cls(contract, cls.config_class(**{**config, "epochs": 1}), device="cpu")
    model.fit(train, ledger=PrivacyLedger(1e-6), epsilon=math.inf, seed=0)
    shapes = [s for net in model._networks().values() for s in _linear_shapes(net)]
    if name == "tvae":  # sampling runs the decoder only
        shapes = _linear_shapes(model._networks()["decoder"])
    flops_per_row = sum(2 * i * o for i, o in shapes)
    seconds = _matmul_seconds(shapes, BATCH)
    gflops = flops_per_row * BATCH / seconds / 1e9
    model.sample(1_000, seed=0)
    t0 = time.perf_counter()
    model.sample(ROWS, seed=1)
    measured = ROWS / (time.perf_counter() - t0)
    return {
        "model": name,
        "config": config,
        "linear_layers": shapes,
        "flops_per_row": flops_per_row,
        "matmul_gflops": round(gflops, 1),
        "bound_rows_per_second": round(BATCH / seconds),
        "measured_rows_per_second": round(measured),
        "measured_share_of_bound": round(measured / (BATCH / seconds), 3),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    from benchmarks.common import machine
    from benchmarks.peers import EQUAL_ARCHITECTURE, adult_split
    from synthgate.governance.registry import code_version
    from synthgate.validation.report import write_text_atomically

    contract, train, _ = adult_split()
    runs = [
        estimate("ctgan", {}, train, contract),
        estimate("ctgan", EQUAL_ARCHITECTURE, train, contract),
        estimate("tvae", {}, train, contract),
    ]
    for r in runs:
        print(
            f"{r['model']} {r['config'] or '(defaults)'}: {r['flops_per_row']:,} FLOPs/row, "
            f"{r['matmul_gflops']} GFLOP/s -> bound {r['bound_rows_per_second']:,} rows/s; "
            f"measured {r['measured_rows_per_second']:,} rows/s ({r['measured_share_of_bound']:.0%})"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(
        RESULTS, json.dumps({"runs": runs, "commit": code_version(), "machine": machine()}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
