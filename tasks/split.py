"""The split_holdout stage: per-row secret coins send each row to training or to the holdout.

The holdout is never shown to the model; the checks compare the synthetic table against it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from synthgate.errors import InputError
from synthgate.tasks.redaction import private_task

#: blake2b personalisation of the split's hash seed: the same secret key used elsewhere (the large-source
#: sampling coins, SYNTHGATE_NOISE_SEED in tests) gives unrelated coins here
_SPLIT_DOMAIN = b"synthgate-split1"


def holdout_coins(df: pl.DataFrame, *, fraction: float, key: int) -> np.ndarray:
    """Per row, True when it goes to the holdout: a coin that is a keyed hash of the row itself.

    Row i's coin is a function of (its content, how many identical rows come before it, ``key``),
    never of its position or of the other rows: adding or removing one row anywhere changes at most
    that row's membership, and, among identical rows, at most how many of them go to each side
    (by one). Identical rows still get independent coins (the occurrence index tells them apart), so
    common values are shared between train and holdout as an independent split would share them.
    The hash is polars' row hash seeded by a 64-bit value derived from ``key`` (blake2b, domain-separated).
    With a secret key nobody can tell which side a row went to; the stability above holds for any key.
    Each coin is True with probability ``fraction`` (to the hash's uniformity, 2^-64 granularity).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1). Got {fraction!r}.")
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise ValueError("the split key must be a non-negative integer (a secret); its value is not shown here.")
    digest = hashlib.blake2b(str(key).encode(), digest_size=8, person=_SPLIT_DOMAIN).digest()
    seed = int.from_bytes(digest, "little")
    content = df.hash_rows(seed=0)
    occurrence = pl.DataFrame({"h": content}).select(pl.int_range(pl.len(), dtype=pl.UInt64).over("h")).to_series()
    u = pl.DataFrame({"h": content, "k": occurrence}).hash_rows(seed=seed).to_numpy().astype(np.float64) / 2.0**64
    return u < fraction


@private_task(name="split_holdout", task_run_name="split off the holdout (secret coins)")
def split_holdout(df: pl.DataFrame, *, fraction: float, key: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, holdout): each row goes to the holdout independently with probability ``fraction``, by a
    secret keyed coin of the row itself (``holdout_coins``); row order is kept. The holdout is never
    shown to the model.

    The unit of privacy is one row of the source table: a split that permuted range(n) under a public
    seed would move thousands of training rows when one person is added, and ε would hold only for the
    training set given the split. Here adding or removing one source row changes the training set by at
    most one row, so the training's (ε, δ) holds for the source table. ``key`` is a private value (the
    release flow keeps it beside the run's checkpoint so that a resumed run splits the same way); the
    split's sizes are random (Binomial) and private.
    """
    coins = holdout_coins(df, fraction=fraction, key=key)
    mask = pl.Series(coins)
    train, holdout = df.filter(~mask), df.filter(mask)
    if holdout.height < 1 or train.height < 2:
        # No row count here: the sizes are private counts, and this message reaches the CLI.
        raise InputError(
            f"the holdout split left too few rows on one side (a holdout needs at least one row, training "
            f"at least two). Each row goes to the holdout independently with probability {fraction:.3g} "
            "(secret coins), so the sizes are random and a table of a handful of rows can leave a side "
            "(nearly) empty; the sizes are private counts and not shown. Use a larger table (a few dozen "
            "rows at least) or a holdout_fraction nearer one half."
        )
    return train, holdout
