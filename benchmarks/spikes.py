"""Column shapes of a zero-inflated and a near-constant column (generated, seeded): the codec with uniform u decoded, and a short DP ctgan fit (`python -m benchmarks.spikes [EPOCHS]`)."""

import sys

import numpy as np
import polars as pl

from synthgate.models.codec import Codec
from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import parse_contract
from synthgate.validation.fidelity import column_shapes

rng = np.random.default_rng(7)
n = 4000
amount = np.where(rng.random(n) < 0.7, 0.0, np.round(rng.gamma(2.0, 800.0, n), 2)).clip(0, 20000)
rate = np.where(rng.random(n) < 0.95, 5.0, rng.uniform(0, 10, n))  # near-constant at 5
age = rng.integers(18, 90, n)
df = pl.DataFrame({"amount": amount, "rate": rate, "age": age})
contract = parse_contract(
    {
        "table": "t",
        "columns": {
            "amount": {"kind": "continuous", "min": 0, "max": 20000},
            "rate": {"kind": "continuous", "min": 0, "max": 10, "special_values": [5.0]},
            "age": {"kind": "integer", "min": 18, "max": 90},
        },
        "privacy": {"epsilon": 3.0, "delta": 1e-6},
    }
)
codec = Codec(contract)
codec.fit_dp(df, ledger=PrivacyLedger(delta=1e-6), noise_multiplier=8.0, rng=np.random.default_rng(1))
# the ideal generator: a uniform u per numeric slot (the codec's target marginal), decoded
x = 2 * np.random.default_rng(2).random((n, codec.dim)) - 1
syn = codec.decode(x)
r = column_shapes(df, syn, contract)
print(
    "codec round trip (uniform u, decoded): overall",
    round(r.value, 3),
    {k: v["score"] for k, v in r.details["per_column"].items()},
)
print("share exactly 0 in amount: real %.3f synthetic %.3f" % ((amount == 0).mean(), (syn["amount"] == 0).mean()))
print("share exactly 5 in rate: real %.3f synthetic %.3f" % ((rate == 5).mean(), (syn["rate"] == 5).mean()))
if len(sys.argv) > 1:
    from synthgate.tasks.train import train_synthesizer

    model, ledger = train_synthesizer.fn(
        df,
        contract,
        epsilon=3.0,
        epochs=float(sys.argv[1]),
        batch_size=None,
        device="cpu",
        seed=0,
        progress=None,
        checkpoint=None,
    )
    s2 = model.sample(n, seed=1)
    r2 = column_shapes(df, s2, contract)
    print(
        f"ctgan {sys.argv[1]} epochs, ε=3: overall",
        round(r2.value, 3),
        {k: v["score"] for k, v in r2.details["per_column"].items()},
    )
    print(
        "share exactly 0 in amount: synthetic %.3f; share exactly 5 in rate: %.3f"
        % ((s2["amount"] == 0).mean(), (s2["rate"] == 5).mean())
    )
