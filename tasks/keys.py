"""The run's secret keys, kept (mode 0600) in its private working folder beside the checkpoint.

A resumed run must train on the same rows: the large-source sampling coins, the holdout split's
coins and the one-row-per-person choice are keyed by private entropy that the first attempt writes
here and a resume reads back. The folder is deleted at the run's end, with the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from synthgate.models.synthesizers.base import private_entropy, private_file


def sampling_entropy(folder: Path, *, resume: bool) -> int:
    """The private entropy of a large source's sampling coins, kept (mode 0600) beside the run's
    checkpoint so that a resumed run trains on the same sample; deleted with the checkpoint."""
    return kept_entropy(folder / "sample.key", resume=resume)


def split_key(folder: Path, *, resume: bool) -> int:
    """The secret key of the holdout split's per-row coins (``tasks.split.holdout_coins``), kept like the
    sampling key so that a resumed run trains on the same rows; deleted with the checkpoint."""
    return kept_entropy(folder / "split.key", resume=resume)


def unit_key(folder: Path, *, resume: bool) -> int:
    """The secret key of the one-row-per-person choice (``tasks.units``), kept like the split key."""
    return kept_entropy(folder / "unit.key", resume=resume)


def kept_entropy(path: Path, *, resume: bool) -> int:
    """``private_entropy()``, written to ``path`` (mode 0600); a resumed run reads it back."""
    if resume and path.exists():
        return int(path.read_text().strip())
    value = private_entropy()
    with private_file(path) as fh:
        fh.write(str(value).encode())
    return value
