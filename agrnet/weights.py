"""Trained weights shipped with the package: a registry of named models, each fully described by its metadata.

An entry is three files in the registry folder (``agrnet/trained/`` in the installed package, or
``$AGRNET_WEIGHTS_DIR``, or the ``directory`` argument): ``<name>.safetensors`` (the state dict, parameters in
fp16, buffers as trained: BatchNorm statistics in fp32, integer counters as int64), ``<name>.json`` (the metadata
``ModelWeights`` reads: checksum, label schema, ``AGRNet`` arguments, input size, the command and commit that
trained it, metrics, training data and its terms) and ``<name>.md`` (the model card written from that metadata).
Every ``*.json`` of the folder is an entry; ``export_weights`` writes all three from a training checkpoint.

``load(name)`` verifies the sha256, casts the tensors back to float32 and loads them strictly into
``AGRNet(**model_config)``, like torchvision's ``WeightsEnum.get_state_dict`` with ``check_hash``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from agrnet import __version__
from agrnet.data.labels import LabelSchema
from agrnet.files import atomic_write, default_cache_dir, write_json

PACKAGE_DIR = Path(__file__).resolve().parent / "trained"
ENV_VAR = "AGRNET_WEIGHTS_DIR"
NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Fields of the training configuration that name files of one machine, not the recipe.
UNRECORDED_FIELDS = ("out", "resume")
# Metadata fields that entries written before them lack.
OPTIONAL_FIELDS = frozenset({"evaluations"})


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
    ``evaluations`` are further scores of the same kind as ``metrics`` (other splits, other datasets).
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
            value = data.get(name, [])
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
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
        """``AGRNet(**model_config)`` with these weights loaded strictly, in eval mode on ``map_location``, and
        its label schema."""
        from agrnet.model import AGRNet

        state = self.get_state_dict()
        model = AGRNet(**self.model_config)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise RuntimeError(f"weights {self.name}: {self.path} does not fit its model_config: {error}") from error
        return model.to(map_location).eval(), self.label_schema

    def payload(self) -> dict[str, Any]:
        """What a training checkpoint says beside its weights, from the metadata: ``config`` (the training's, at
        ``input_size``), ``step``, ``agrnet_version`` and ``weights`` (this entry's name)."""
        config = {**self.train_config, "size": self.input_size}
        return {"config": config, "step": self.step, "agrnet_version": self.agrnet_version, "weights": self.name}

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


JSON_KINDS: dict[Any, str] = {str: "string", int: "integer", (int, float): "number", dict: "object", list: "array"}
FIELD_TYPES: dict[str, Any] = {
    "name": str, "file": str, "sha256": str, "size_bytes": int, "schema": dict, "model_config": dict,
    "input_size": int, "command": str, "commit": str, "metrics": dict, "training_data": str, "terms": str,
    "terms_url": str, "train_config": dict, "step": int, "agrnet_version": str, "fp16_max_abs_logit_diff": (int, float),
    "evaluations": list,
}  # fmt: skip
"""The JSON kind of each metadata field, checked on reading (a wrong one is named with its file)."""

WEIGHTS_PREFIX = "weights:"
"""``pretrained_backbone="weights:NAME"`` starts a training from the backbone of the shipped weights NAME."""


def backbone_file(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """The backbone of the shipped weights ``name`` as a torchvision ResNet state dict (what ``pretrained_backbone``
    takes), written once under ``agrnet.files.default_cache_dir()/backbones/`` and named by the weights' sha256."""
    entry = get(name, directory)
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


def available(directory: str | os.PathLike[str] | None = None) -> dict[str, ModelWeights]:
    """Every entry of the registry folder (see ``weights_dir``), by name, sorted."""
    folder = weights_dir(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder}: no such folder")
    return {entry.name: entry for entry in map(ModelWeights.from_json, sorted(folder.glob("*.json")))}


def get(name: str, directory: str | os.PathLike[str] | None = None) -> ModelWeights:
    """The entry called ``name`` (``fasseg-resnet18`` or ``FASSEG_RESNET18``). Only that entry's metadata is read,
    so a broken entry never stands in the way of another."""
    folder = weights_dir(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder}: no such folder")
    path = folder / f"{name.lower().replace('_', '-')}.json"
    if not path.is_file():
        known = ", ".join(sorted(file.stem for file in folder.glob("*.json"))) or f"none (no entries in {folder})"
        raise UnknownWeightsError(f"weights {name!r}: unknown name; known: {known}")
    return ModelWeights.from_json(path)


def verify(names: Sequence[str] = (), directory: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """Check entries ``names`` (default: every ``*.json`` of the registry folder): metadata readable and complete,
    file present with the recorded sha256, weights fitting ``model_config``. Maps each name to None when it is
    fine, else to the reason it is not."""
    folder = weights_dir(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder}: no such folder")
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


# Export -----------------------------------------------------------------------------------------------------------


def to_storage(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as stored: parameters in fp16, buffers unchanged (BatchNorm statistics stay exact).

    Raises ValueError naming the tensor when a parameter does not fit in fp16.
    """
    buffers = {name for name, _ in model.named_buffers()}
    limit = torch.finfo(torch.float16).max
    stored = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if value.is_floating_point() and key not in buffers:
            if value.numel() and value.abs().max() > limit:
                raise ValueError(f"parameter {key}: values beyond the fp16 range ({limit}) cannot be stored in fp16")
            value = value.half()
        stored[key] = value
    return stored


def _as_text(value: Any) -> str:
    """A config value as ``--set`` writes it."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def train_command(config: Mapping[str, Any]) -> str:
    """The ``agrnet train`` command that rebuilds ``config`` (a ``TrainConfig`` dict): its preset and a ``--set``
    for every field that differs from the preset, except the run folder and resume path. Warns about the fields it
    cannot rebuild (e.g. ones this version of ``TrainConfig`` no longer has)."""
    from agrnet.config import parse_overrides, preset_config

    preset = config.get("preset") or "synthetic"
    base = dataclasses.asdict(preset_config(preset))
    fields = {key: value for key, value in config.items() if key not in UNRECORDED_FIELDS}
    sets = [f"{key}={_as_text(value)}" for key, value in fields.items()
            if key in base and _as_text(value) != _as_text(base[key])]  # fmt: skip
    rebuilt = dataclasses.asdict(preset_config(preset, **parse_overrides(sets)))
    lost = [key for key, value in fields.items() if key not in rebuilt or _as_text(value) != _as_text(rebuilt[key])]
    if lost:
        print(f"warning: the rebuilt `agrnet train` command cannot set {', '.join(lost)}; pass --command",
              file=sys.stderr)  # fmt: skip
    return shlex.join(["agrnet", "train", "--preset", preset, *(word for item in sets for word in ("--set", item))])


def git_commit() -> str:
    """The commit of the git checkout agrnet is imported from (ValueError outside one); warns on local changes."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        raise ValueError(f"--commit: agrnet at {root} is not in a git checkout; pass the training commit") from error
    if changes:
        print(f"warning: the checkout at {root} has uncommitted changes; recording HEAD {commit}", file=sys.stderr)
    return commit


def metrics_summary(report: Mapping[str, Any], dataset: str, split: str) -> dict[str, Any]:
    """The scores of an evaluation report (``agrnet evaluate --out`` or a checkpoint's validation) and what they
    were measured on."""
    keys = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy", "f1", "group_f1", "command")
    return {"dataset": dataset, "split": split, **{key: report[key] for key in keys if key in report}}


PORTABLE_ROOTS = {"fasseg": "data/fasseg"}
"""Data roots a model card names, by dataset: where ``agrnet download`` puts the dataset."""
EVALUATE_DEFAULTS = {"--batch-size": "1", "--amp": "none", "--device": "auto"}
"""Options of ``agrnet evaluate`` that a card's command leaves out when they hold their default."""


def evaluation_command(name: str, command: str) -> str:
    """The recorded ``agrnet evaluate CHECKPOINT ...`` ``command`` as one that runs on any machine: ``--weights
    name`` instead of the checkpoint, the data root where ``agrnet download`` puts the dataset (``PORTABLE_ROOTS``;
    other roots must be relative), options at their defaults left out. ValueError when it names an absolute path."""
    words = shlex.split(command)
    if words[:2] != ["agrnet", "evaluate"]:
        raise ValueError(f"metrics command {command!r}: expected an `agrnet evaluate` command")
    options: list[str] = []
    rest = iter(words[2:])
    dataset = next((words[i + 1] for i, word in enumerate(words[:-1]) if word == "--dataset"), "synthetic")
    for word in rest:
        if not word.startswith("--"):
            continue  # the checkpoint, replaced by --weights
        value = None if word in ("--flip", "--skip-bad") else next(rest, "")
        if word in ("--weights", "--out") or (word in EVALUATE_DEFAULTS and EVALUATE_DEFAULTS[word] == value):
            continue
        if word == "--data-root":
            value = PORTABLE_ROOTS.get(dataset, value)
            if Path(value).is_absolute():
                raise ValueError(f"metrics command {command!r}: --data-root {value} is a path of one machine")
        options += [word] if value is None else [word, value]
    return shlex.join(["agrnet", "evaluate", "--weights", name, *options])


def max_logit_difference(reference: nn.Module, model: nn.Module, size: int) -> float:
    """The largest absolute difference of the two models' logits on one seeded random image of ``size`` x ``size``."""
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = reference.eval()(image).logits
        actual = model.eval()(image).logits
    return float((expected - actual).abs().max())


def _percent_cell(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def scores_table(entry: ModelWeights) -> list[str]:
    """The card's table of every score of ``entry``: where it was measured, mean F1, mIoU, pixel accuracy."""
    rows = [
        f"| {score.get('dataset')} {score.get('split')} | {_percent_cell(score.get('mean_f1'))} | "
        f"{_percent_cell(score.get('miou'))} | {_percent_cell(score.get('pixel_accuracy'))} |"
        for score in entry.scores()
    ]
    return ["| dataset, split | mean F1 (%) | mIoU (%) | pixel accuracy (%) |", "|---|---|---|---|", *rows]


def model_card(entry: ModelWeights) -> str:
    """The model card (Markdown) of an entry, written from its metadata alone."""
    schema = entry.label_schema
    metrics = entry.metrics
    per_class = ", ".join(
        f"{name} {100 * value:.1f}" for name, value in metrics.get("f1", {}).items() if value is not None
    )
    commands = [score["command"] for score in entry.scores() if score.get("command")]
    measured = (
        ["Each row is measured by one of these commands (the dataset laid out as `data/README.md` says):", "",
         "```bash", *commands, "```"]
        if commands else ["The first row is the last validation of training."]
    )  # fmt: skip
    config = ", ".join(f"{key}={value!r}" for key, value in entry.model_config.items())
    lines = [
        f"# {entry.name} (`{entry.key}`)",
        "",
        f"AGRNet (Te et al., IEEE TIP 2021) trained on {entry.training_data}: {schema.num_classes} classes of the "
        f"`{schema.name}` schema, input {entry.input_size} x {entry.input_size}.",
        "",
        "## Use",
        "",
        "```bash",
        f"agrnet predict --weights {entry.name} photos/ --out parsed/",
        "```",
        "",
        "```python",
        "from agrnet import Predictor",
        f'labels = Predictor.from_weights("{entry.name}")(image)  # or agrnet.weights.load("{entry.name}")',
        "```",
        "",
        "## Model",
        "",
        f"- `AGRNet({config})`",
        f"- classes: {', '.join(schema.classes)}",
        f"- file: `{entry.file}`, {entry.size_bytes / 2**20:.1f} MiB, sha256 `{entry.sha256}`",
        f"- storage: parameters in fp16, buffers as trained; the largest change this made to a logit at export "
        f"was {entry.fp16_max_abs_logit_diff:.2e}",
        "",
        "## Scores",
        "",
        *scores_table(entry),
        "",
        *measured,
        "",
        f"F1 (%) per class on {metrics.get('dataset')} {metrics.get('split')}: {per_class or 'not recorded'}.",
        "",
        "## Training data and terms",
        "",
        f"{entry.training_data}. Terms: {entry.terms} <{entry.terms_url}>. The weights are derived from this data;",
        "use them under its terms.",
        "",
        "## Retrain",
        "",
        f"Trained for {entry.step} steps by agrnet {entry.agrnet_version} at commit `{entry.commit}`:",
        "",
        "```bash",
        f"git checkout {entry.commit}",
        entry.command,
        "```",
        "",
        f"`agrnet weights retrain {entry.name}` runs the command (`--dry-run` prints it).",
        "",
    ]
    return "\n".join(lines)


def score_summaries(name: str, reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The metadata's scores of entry ``name`` from ``agrnet evaluate --out`` reports: each one's scores, what they
    were measured on and the command that measures them on any machine (``evaluation_command``)."""
    summaries = []
    for index, report in enumerate(reports):
        if not {"dataset", "split", "mean_f1"} <= set(report):
            raise ValueError(f"--metrics #{index + 1}: expected an `agrnet evaluate --out` report (with dataset, "
                             "split, mean_f1)")  # fmt: skip
        summary = metrics_summary(report, report["dataset"], report["split"])
        if report.get("command"):
            summary["command"] = evaluation_command(name, report["command"])
        summaries.append(summary)
    return summaries


def write_entry(entry: ModelWeights, data: bytes | None = None) -> None:
    """Write ``entry``'s model card and metadata (and its weights file, when ``data`` is given) atomically."""
    if data is not None:
        atomic_write(entry.path, lambda file: file.write(data))
    card = model_card(entry)
    atomic_write(entry.directory / f"{entry.name}.md", lambda file: file.write(card.encode()))
    write_json(entry.directory / f"{entry.name}.json", entry.to_dict())


def export_weights(
    checkpoint: str | os.PathLike[str],
    name: str,
    terms: str,
    terms_url: str,
    training_data: str | None = None,
    command: str | None = None,
    commit: str | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> ModelWeights:
    """Write registry entry ``name`` (safetensors, JSON metadata, model card) from an ``agrnet train`` checkpoint.

    ``training_data`` defaults to the checkpoint's dataset and training split; ``command`` to the ``agrnet train``
    command that rebuilds its configuration (``train_command``); ``commit`` to this checkout's HEAD. ``metrics``
    (``agrnet evaluate --out`` reports) become the entry's scores, the first its ``metrics``; without them, the
    checkpoint's last validation is. Returns the new entry.
    """
    from agrnet.checkpoint import load_model
    from agrnet.evaluate import check_model_schema, checkpoint_size, training_config
    from agrnet.model import AGRNet

    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"--name {name!r}: expected lowercase letters, digits and hyphens, e.g. fasseg-resnet18")
    folder = weights_dir(out_dir)
    if (folder / f"{name}.json").exists() and not overwrite:
        raise FileExistsError(f"weights {name}: {folder / f'{name}.json'} exists; pass --force to replace it")
    scores = score_summaries(name, metrics)
    reference, schema, payload = load_model(checkpoint)
    config = training_config(payload)
    if not config:
        raise ValueError(f"checkpoint {checkpoint}: holds no training config; export a `last.pt` or `best.pt`")
    try:
        check_model_schema(reference, schema)
    except ValueError as error:
        raise ValueError(f"checkpoint {checkpoint}: {error}; no entry written") from error
    if not scores:
        scores = [metrics_summary(payload.get("metrics") or {}, config["dataset"], config["val_split"])]
    data = save_safetensors(to_storage(reference), metadata={"agrnet_weights": name, "agrnet_version": __version__})
    restored = AGRNet(**reference.config)
    restored.load_state_dict(state_from_bytes(data))
    size = checkpoint_size(payload)
    difference = max_logit_difference(reference, restored, size)
    entry = ModelWeights(
        name=name,
        file=f"{name}.safetensors",
        sha256=sha256(data),
        size_bytes=len(data),
        schema=schema.to_dict(),
        model_config=dict(reference.config),
        input_size=size,
        command=command or train_command(config),
        commit=commit or git_commit(),
        metrics=scores[0],
        training_data=training_data or f"{config['dataset']} ({config['train_split']} split)",
        terms=terms,
        terms_url=terms_url,
        train_config=json.loads(json.dumps(config)),
        step=int(payload.get("step", 0)),
        agrnet_version=str(payload.get("agrnet_version")),
        fp16_max_abs_logit_diff=difference,
        evaluations=scores[1:],
        directory=folder,
    )
    write_entry(entry, data)
    return entry


def rescore(
    name: str, metrics: Sequence[Mapping[str, Any]], directory: str | os.PathLike[str] | None = None
) -> ModelWeights:
    """Replace the scores of entry ``name`` by those of ``metrics`` (``agrnet evaluate --weights name --out``
    reports, the first its ``metrics``) and write its metadata and card again; the weights are not touched."""
    entry = get(name, directory)
    if not metrics:
        raise ValueError("--metrics: give at least one `agrnet evaluate --out` report")
    for index, report in enumerate(metrics):
        if report.get("weights") != entry.name or report.get("weights_sha256") != entry.sha256:
            raise ValueError(f"--metrics #{index + 1}: scores {report.get('weights') or report.get('checkpoint')}, "
                             f"not these weights of {entry.name} (sha256 {entry.sha256[:12]})")  # fmt: skip
    scores = score_summaries(entry.name, metrics)
    updated = dataclasses.replace(entry, metrics=scores[0], evaluations=scores[1:])
    write_entry(updated)
    return updated
