"""The registry of trained weights shipped with the package: named models, each fully described by its metadata.

An entry is three files in the registry folder (``agrnet/trained/`` in the installed package, or
``$AGRNET_WEIGHTS_DIR``, or the ``directory`` argument): ``<name>.safetensors`` (the state dict, parameters in
fp16, buffers as trained: BatchNorm statistics in fp32, integer counters as int64), ``<name>.json`` (the metadata
``ModelWeights`` reads: checksum, label schema, the ``AGRNetConfig`` as ``model_config``, input size, the command and
commit that trained it, metrics, training data and its terms) and ``<name>.md`` (the model card written from that
metadata). Every ``*.json`` of the folder is an entry; ``agrnet.weights.export`` writes all three from a training
checkpoint.

``load(name)`` verifies the sha256, casts the tensors back to float32 and loads them strictly into the AGRNet of
``model_config``, like torchvision's ``WeightsEnum.get_state_dict`` with ``check_hash``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from agrnet.data.labels import LabelSchema
from agrnet.files import atomic_write, default_cache_dir

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "trained"
ENV_VAR = "AGRNET_WEIGHTS_DIR"
# Metadata fields that entries written before them lack.
OPTIONAL_FIELDS = frozenset({"evaluations", "flip", "members"})


def weights_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The registry folder: ``directory``, else ``$AGRNET_WEIGHTS_DIR``, else the package's ``agrnet/trained``."""
    return Path(directory or os.environ.get(ENV_VAR) or PACKAGE_DIR)


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelWeights:
    """One trained model: where its file is, how to check and rebuild it, how it was trained and how well it does.

    ``name`` is the lowercase command-line name (``fasseg-resnet18``); ``key`` the enum-style spelling
    (``FASSEG_RESNET18``); both are accepted by ``get``. ``metrics`` holds ``dataset`` and ``split`` beside the
    scores (fractions in [0, 1]); ``command`` and ``commit`` retrain the model, ``train_config`` is its
    ``TrainConfig`` as a dict; ``fp16_max_abs_logit_diff`` is what the fp16 storage changed in the logits at export;
    ``evaluations`` are further scores of the same kind as ``metrics`` (other splits, other datasets); ``flip``
    whether the model parses with flip test-time augmentation by default (``Predictor.from_weights``, ``agrnet
    predict`` and ``agrnet evaluate`` without ``--flip`` or ``--no-flip``), as its scores were measured;
    ``members`` how many trainings of ``model_config`` it holds (more than one: an ``agrnet.model.Ensemble``, its
    ``train_config`` and ``step`` the first member's).
    """

    name: str
    file: str
    sha256: str
    size_bytes: int
    schema: dict[str, Any]
    model_config: dict[str, Any]
    input_size: int
    command: str
    commit: str
    metrics: dict[str, Any]
    training_data: str
    terms: str
    terms_url: str
    train_config: dict[str, Any]
    step: int
    agrnet_version: str
    fp16_max_abs_logit_diff: float
    evaluations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    flip: bool = False
    members: int = 1
    directory: Path = dataclasses.field(default=PACKAGE_DIR, compare=False)

    @property
    def key(self) -> str:
        """The enum-style name, e.g. ``FASSEG_RESNET18``."""
        return self.name.upper().replace("-", "_")

    @property
    def path(self) -> Path:
        """The safetensors file."""
        return self.directory / self.file

    @property
    def label_schema(self) -> LabelSchema:
        """The label schema the model predicts."""
        return LabelSchema.from_dict(self.schema)

    def to_dict(self) -> dict[str, Any]:
        """The JSON metadata (everything but the folder it lies in)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "directory"}

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ModelWeights:
        """Read an entry's metadata; clear errors naming the file when it is not valid."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"weights metadata {path}: cannot be read as JSON: {error}") from error
        expected = {f.name for f in dataclasses.fields(cls)} - {"directory"}
        if not isinstance(data, dict) or not expected - OPTIONAL_FIELDS <= set(data) <= expected:
            found = set(data) if isinstance(data, dict) else set()
            missing, unknown = sorted(expected - OPTIONAL_FIELDS - found), sorted(found - expected)
            raise ValueError(f"weights metadata {path}: missing fields {missing}, unknown fields {unknown}")
        for name, kind in FIELD_TYPES.items():
            if name not in data:  # an optional field (the required ones were checked above)
                continue
            value = data[name]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)) or (
                kind is int and value < 1
            ):
                expected_kind = "a positive integer" if kind is int else f"a JSON {JSON_KINDS[kind]}"
                raise ValueError(f"weights metadata {path}: field {name!r} is {value!r}; expected {expected_kind}")
        if data["name"] != path.stem:
            raise ValueError(f"weights metadata {path}: names the entry {data['name']!r}, not {path.stem!r}")
        return cls(**data, directory=path.parent)

    def read(self) -> bytes:
        """The safetensors file's bytes, after checking its sha256 against the metadata."""
        if not self.path.is_file():
            raise FileNotFoundError(f"weights {self.name}: file {self.path} is missing")
        data = self.path.read_bytes()
        digest = sha256(data)
        if digest != self.sha256:
            raise RuntimeError(
                f"weights {self.name}: file {self.path} has sha256 {digest}, expected {self.sha256} (corrupt or "
                "replaced: reinstall agrnet or export the entry again)"
            )
        return data

    def get_state_dict(self) -> dict[str, torch.Tensor]:
        """The verified state dict, floating tensors as float32, integer buffers as stored."""
        return state_from_bytes(self.read())

    def load(self, map_location: str | torch.device = "cpu") -> tuple[nn.Module, LabelSchema]:
        """The AGRNet of ``model_config`` (an ``AGRNetConfig``; an ``Ensemble`` of ``members`` of them) with these
        weights loaded strictly, in eval mode on ``map_location``, and its label schema."""
        from agrnet.model import AGRNetConfig, model_from_config

        state = self.get_state_dict()
        model = model_from_config(AGRNetConfig(**self.model_config), self.members)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise RuntimeError(f"weights {self.name}: {self.path} does not fit its model_config: {error}") from error
        return model.to(map_location).eval(), self.label_schema

    def payload(self) -> dict[str, Any]:
        """What a training checkpoint says beside its weights, from the metadata: ``config`` (the training's, at
        ``input_size``), ``step``, ``agrnet_version``, ``weights`` (this entry's name), ``weights_sha256`` and
        ``flip`` (whether it parses with flip test-time augmentation by default)."""
        config = {**self.train_config, "size": self.input_size}
        return {"config": config, "step": self.step, "agrnet_version": self.agrnet_version, "weights": self.name,
                "weights_sha256": self.sha256, "flip": self.flip}  # fmt: skip

    def load_as_checkpoint(
        self, map_location: str | torch.device = "cpu"
    ) -> tuple[nn.Module, LabelSchema, dict[str, Any]]:
        """``load`` with ``payload()``: what ``agrnet.checkpoint.load_model`` returns for a checkpoint, so that every
        command that takes a checkpoint takes shipped weights the same way."""
        model, schema = self.load(map_location)
        return model, schema, self.payload()

    def scores(self) -> list[dict[str, Any]]:
        """``metrics`` and then ``evaluations``: every score the entry records."""
        return [self.metrics, *self.evaluations]


JSON_KINDS: dict[Any, str] = {
    str: "string", int: "integer", (int, float): "number", dict: "object", list: "array", bool: "boolean",
}  # fmt: skip
FIELD_TYPES: dict[str, Any] = {
    "name": str, "file": str, "sha256": str, "size_bytes": int, "schema": dict, "model_config": dict,
    "input_size": int, "command": str, "commit": str, "metrics": dict, "training_data": str, "terms": str,
    "terms_url": str, "train_config": dict, "step": int, "agrnet_version": str, "fp16_max_abs_logit_diff": (int, float),
    "evaluations": list, "flip": bool, "members": int,
}  # fmt: skip
"""The JSON kind of each metadata field, checked on reading (a wrong one is named with its file)."""

WEIGHTS_PREFIX = "weights:"
"""``pretrained_backbone="weights:NAME"`` starts a training from the backbone of the shipped weights NAME."""


def backbone_file(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """The backbone of the shipped weights ``name`` as a torchvision ResNet state dict (what ``pretrained_backbone``
    takes), written once under ``agrnet.files.default_cache_dir()/backbones/`` and named by the weights' sha256."""
    entry = get(name, directory)
    if entry.members > 1:
        raise ValueError(f"weights {name}: an ensemble of {entry.members} models has no one backbone to start from")
    path = default_cache_dir() / "backbones" / f"{entry.name}-{entry.sha256[:16]}.pt"
    if not path.is_file():
        state = {key.removeprefix("backbone."): value for key, value in entry.get_state_dict().items()
                 if key.startswith("backbone.")}  # fmt: skip
        torchvision_names = {"stem.0.": "conv1.", "stem.1.": "bn1."}
        for ours, theirs in torchvision_names.items():
            state = {(theirs + k.removeprefix(ours) if k.startswith(ours) else k): v for k, v in state.items()}
        atomic_write(path, lambda file: torch.save(state, file))
    return path


def resolve_backbone(pretrained: str | None) -> str | None:
    """``pretrained_backbone`` with a ``weights:NAME`` value replaced by ``backbone_file(NAME)``; others as given."""
    if pretrained is None or not str(pretrained).startswith(WEIGHTS_PREFIX):
        return pretrained
    return str(backbone_file(str(pretrained).removeprefix(WEIGHTS_PREFIX)))


def state_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors file's bytes, floating tensors as float32, integer tensors as stored."""
    return {key: value.float() if value.is_floating_point() else value for key, value in load_safetensors(data).items()}


class UnknownWeightsError(ValueError):
    """A name that no registry entry has; the message lists the known ones."""


def _folder(directory: str | os.PathLike[str] | None) -> Path:
    folder = weights_dir(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder}: no such folder")
    return folder


def read_entries(directory: str | os.PathLike[str] | None = None) -> dict[str, ModelWeights | ValueError]:
    """Every entry of the registry folder (see ``weights_dir``), by name, sorted: its metadata, or the error that
    says why it cannot be read, so that a broken entry never hides the others."""
    entries: dict[str, ModelWeights | ValueError] = {}
    for path in sorted(_folder(directory).glob("*.json")):
        try:
            entries[path.stem] = ModelWeights.from_json(path)
        except ValueError as error:
            entries[path.stem] = error
    return entries


def available(directory: str | os.PathLike[str] | None = None) -> dict[str, ModelWeights]:
    """Every entry of the registry folder (see ``weights_dir``), by name, sorted; the first broken one raises its
    ValueError."""
    entries = read_entries(directory)
    for entry in entries.values():
        if isinstance(entry, ValueError):
            raise entry
    return {entry.name: entry for entry in entries.values() if isinstance(entry, ModelWeights)}


def get(name: str, directory: str | os.PathLike[str] | None = None) -> ModelWeights:
    """The entry called ``name`` (``fasseg-resnet18`` or ``FASSEG_RESNET18``). Only that entry's metadata is read,
    so a broken entry never stands in the way of another."""
    folder = _folder(directory)
    path = folder / f"{name.lower().replace('_', '-')}.json"
    if not path.is_file():
        known = ", ".join(sorted(file.stem for file in folder.glob("*.json"))) or f"none (no entries in {folder})"
        raise UnknownWeightsError(f"weights {name!r}: unknown name; known: {known}")
    return ModelWeights.from_json(path)


def verify(names: Sequence[str] = (), directory: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """Check entries ``names`` (default: every ``*.json`` of the registry folder): metadata readable and complete,
    file present with the recorded sha256, weights fitting ``model_config``. Maps each name to None when it is
    fine, else to the reason it is not."""
    folder = _folder(directory)
    results: dict[str, str | None] = {}
    for name in names or sorted(file.stem for file in folder.glob("*.json")):
        try:
            get(name, folder).load()
        except (ValueError, OSError, RuntimeError) as error:
            if isinstance(error, UnknownWeightsError):
                raise
            results[name] = str(error)
        else:
            results[name] = None
    return results


def load(
    name: str, directory: str | os.PathLike[str] | None = None, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, LabelSchema]:
    """The model (eval mode, verified weights) and label schema of entry ``name``."""
    return get(name, directory).load(map_location)
