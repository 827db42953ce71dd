"""Synthesizer registry: models are chosen by name (``model: ctgan`` in the contract).

Modules are imported on first use, so listing names costs nothing and one broken optional model
cannot stop the others from loading.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgate.validation.contract import MODEL_NAMES as CONTRACT_MODEL_NAMES

if TYPE_CHECKING:
    from synthgate.models.synthesizers.base import Synthesizer
    from synthgate.validation.contract import Contract

# name -> "module:Class"; the order is the order `synthgate models` lists them in.
_ENTRIES: dict[str, str] = {
    "ctgan": "synthgate.models.synthesizers.ctgan:DPCTGAN",
    "tvae": "synthgate.models.synthesizers.tvae:DPTVAE",
    "gumbel-gan": "synthgate.models.synthesizers.gumbel_gan:GumbelGAN",
    "wgan-gp": "synthgate.models.synthesizers.wgan_gp:WGANGP",
    "cwgan-gp": "synthgate.models.synthesizers.wgan_gp:CWGANGP",
    "medgan": "synthgate.models.synthesizers.medgan:MedGAN",
    "corgan": "synthgate.models.synthesizers.corgan:CorGAN",
    "tablegan": "synthgate.models.synthesizers.tablegan:TableGAN",
    "tgan": "synthgate.models.synthesizers.tgan:TGAN",
}

MODEL_NAMES: tuple[str, ...] = tuple(_ENTRIES)
if MODEL_NAMES != CONTRACT_MODEL_NAMES:  # the contract lists the names so that it imports no model
    raise ImportError(
        f"the synthesizer registry {list(MODEL_NAMES)} and the model names a contract accepts "
        f"{list(CONTRACT_MODEL_NAMES)} differ. Add a new family's name to both _ENTRIES in "
        "models/synthesizers/__init__.py and MODEL_NAMES in validation/contract.py, in the same order."
    )


def get_synthesizer(name: str) -> type[Synthesizer]:
    """The model class registered under ``name`` (the contract's ``model:``)."""
    try:
        target = _ENTRIES[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}. Registered models: {list(MODEL_NAMES)}. Set `model:` in the "
            "contract to one of them (`synthgate models` describes each)."
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def registered() -> dict[str, type[Synthesizer]]:
    """Every registered model class, by name."""
    return {name: get_synthesizer(name) for name in MODEL_NAMES}


def load_synthesizer(path: str | Path, contract: Contract, *, device: str = "auto") -> Synthesizer:
    """Load a saved model of any registered family (the name is read from the file)."""
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    name = blob.get("model")
    if not isinstance(name, str):
        raise ValueError(f"{path} is not a synthgate model file (it names no model).")
    from synthgate.models.synthesizers.base import FORMAT_VERSION

    if blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format {blob.get('format_version')!r}; this synthgate reads format "
            f"{FORMAT_VERSION}. Re-run the release with this version to get a loadable model."
        )
    return get_synthesizer(name).load(path, contract, device=device)


def resolve_model_config(contract: Contract, *, epochs: float | None = None, batch_size: int | None = None) -> Any:
    """The contract's model config: its defaults, then ``model_options``, then a run's overrides.

    A bad option is a contract error (exit code 2) that names the option and the valid ones.
    """
    from pydantic import ValidationError

    from synthgate.errors import ContractError

    cls = get_synthesizer(contract.model)
    options = dict(contract.model_options)
    options.update({k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None})
    try:
        return cls.config_class.model_validate(options)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        valid = sorted(cls.config_class.model_fields)
        raise ContractError(
            f"model_options for {contract.model!r} are invalid ({problems}). Valid options: {valid}."
        ) from None
