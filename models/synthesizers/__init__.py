"""Synthesizer registry: models are chosen by name (``model: ctgan`` in the contract)."""

from __future__ import annotations

from models.synthesizers.ctgan import CTGANConfig, DPCTGAN

REGISTRY: dict[str, type[DPCTGAN]] = {"ctgan": DPCTGAN}
CONFIGS = {"ctgan": CTGANConfig}


def get_synthesizer(name: str) -> type[DPCTGAN]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}. Registered models: {sorted(REGISTRY)}. Set `model:` in the "
            "contract to one of them."
        ) from None
