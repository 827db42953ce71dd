"""The run's secret keys are kept (mode 0600) for a resume and replaced by a fresh run (moved from
tests/integration/test_large_source.py with the functions, flows/release.py -> tasks/keys.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from synthgate.tasks.keys import sampling_entropy, split_key, unit_key


@pytest.mark.parametrize(
    ("key", "file"), [(sampling_entropy, "sample.key"), (split_key, "split.key"), (unit_key, "unit.key")]
)
def test_a_resumed_run_reuses_its_sampling_and_split_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: Callable[..., int], file: str
) -> None:
    monkeypatch.delenv("SYNTHGATE_NOISE_SEED")  # OS entropy: every fresh draw differs
    folder = tmp_path / "checkpoints" / "run-1"
    first = key(folder, resume=False)
    assert (folder / file).stat().st_mode & 0o777 == 0o600
    assert key(folder, resume=True) == first
    assert key(folder, resume=False) != first  # not resuming: a new key replaces it
