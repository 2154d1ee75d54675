"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors, primitive containers and strings only, so that the safe loader accepts it:
``model`` (state dict), ``model_config`` (the ``AGRNetConfig`` as a dict), ``schema`` (``LabelSchema.to_dict()``)
and ``agrnet_version``, plus whatever training state the trainer adds (optimizer, scheduler, scaler, RNG states as
tensors, step, config as a plain dict).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agrnet.data.labels import LabelSchema
from agrnet.files import BadFileError, atomic_write
from agrnet.version import __version__

REQUIRED_KEYS = ("model", "model_config", "schema")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_state(model: nn.Module, schema: LabelSchema) -> dict[str, Any]:
    """The part of a checkpoint that ``load_model`` needs: weights, constructor arguments, label schema, version."""
    model = unwrap_model(model)
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"model: {type(model).__name__} has no `config` dict to rebuild it from")
    return {
        "model": model.state_dict(),
        "model_config": dict(config),
        "schema": schema.to_dict(),
        "agrnet_version": __version__,
    }


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (``agrnet.files.atomic_write``): a crash mid-write leaves the previous
    checkpoint at ``path`` intact. Returns the path."""
    return atomic_write(path, lambda file: torch.save(dict(state), file))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the safe loader (``weights_only=True``); clear one-line errors for missing
    (FileNotFoundError), unreadable (``agrnet.files.BadFileError``) or foreign (ValueError) files, each naming the
    path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        reason = str(error).strip().split("\n")[0].split(". ")[0]  # torch's first sentence; the rest is advice
        raise BadFileError(
            f"checkpoint {path}: cannot be read as a torch checkpoint (truncated, corrupt, or holding objects "
            f"the safe loader refuses): {reason}"
        ) from error
    if not isinstance(payload, dict):
        raise ValueError(f"checkpoint {path}: not an agrnet checkpoint (holds a {type(payload).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"checkpoint {path}: not an agrnet checkpoint (missing {', '.join(missing)})")
    return payload


def load_model(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> tuple[nn.Module, LabelSchema, dict[str, Any]]:
    """Rebuild the AGRNet of its ``model_config`` (an ``AGRNetConfig``) from a checkpoint and load its weights.

    Returns (model in eval mode on ``map_location``, label schema, the whole checkpoint dict).
    """
    from agrnet.model import AGRNet, AGRNetConfig

    payload = load_checkpoint(path, map_location)
    try:
        model = AGRNet.from_config(AGRNetConfig(**payload["model_config"]))
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError) as error:
        raise RuntimeError(f"checkpoint {path}: weights do not fit the model they describe: {error}") from error
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), LabelSchema.from_dict(payload["schema"]), payload


def rng_state() -> dict[str, Any]:
    """The state of every random generator training draws from (torch CPU, the current CUDA device, numpy,
    python), as tensors and primitives."""
    # The legacy global numpy generator is saved on purpose: third-party augmentation code may draw from it.
    _, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, python_state, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_position": int(position),
        "numpy_gauss": (int(has_gauss), float(gauss)),
        "python": torch.tensor(python_state, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": python_gauss,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` captured (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    has_gauss, gauss = state["numpy_gauss"]
    keys = state["numpy_keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_position"], has_gauss, gauss))  # noqa: NPY002
    python_state = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], python_state, state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
