"""Writing registry entries: the weights of a training checkpoint stored in fp16 (``to_storage``), the command that
retrains them (``train_command``), their scores (``metrics_summary`` of a report of ``agrnet evaluate``; the command
line turns the command of each report into one that measures it again on any machine) and the model card
(``model_card``); ``export_weights`` writes a new entry, ``rescore`` replaces an entry's scores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from agrnet.files import atomic_write, write_json
from agrnet.framing import frame_for
from agrnet.provenance import git_commit
from agrnet.version import __version__
from agrnet.weights.registry import ModelWeights, sha256, state_from_bytes, weights_dir

NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Fields of the training configuration that name files of one machine, not the recipe.
UNRECORDED_FIELDS = ("out", "resume")


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


def metrics_summary(report: Mapping[str, Any], dataset: str, split: str) -> dict[str, Any]:
    """The scores of an evaluation report (``agrnet evaluate --out`` or a checkpoint's validation) and what they
    were measured on."""
    keys = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy", "f1", "group_f1", "num_images", "pipeline",
            "labels_read_as", "command")  # fmt: skip
    return {"dataset": dataset, "split": split, **{key: report[key] for key in keys if key in report}}


def max_logit_difference(reference: nn.Module, model: nn.Module, size: int) -> float:
    """The largest absolute difference of the two models' logits on one seeded random image of ``size`` x ``size``."""
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = reference.eval()(image).logits
        actual = model.eval()(image).logits
    return float((expected - actual).abs().max())


def _percent_cell(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def score_place(score: Mapping[str, Any]) -> str:
    """Where a score was measured, in words: dataset and split, and when recorded the images, labels read as another
    schema's and the photo pipeline (e.g. ``celebamask-hq all, 10 images, labels as fasseg, photo pipeline``)."""
    details = [f"{score['num_images']} images"] if "num_images" in score else []
    details += [f"labels as {score['labels_read_as']}"] if "labels_read_as" in score else []
    details += ["photo pipeline"] if score.get("pipeline") == "photo" else []
    return ", ".join([f"{score.get('dataset')} {score.get('split')}", *details])


def scores_table(entry: ModelWeights) -> list[str]:
    """The card's table of every score of ``entry``: where it was measured, mean F1, mIoU, pixel accuracy."""
    rows = [
        f"| {score_place(score)} | {_percent_cell(score.get('mean_f1'))} | "
        f"{_percent_cell(score.get('miou'))} | {_percent_cell(score.get('pixel_accuracy'))} |"
        for score in entry.scores()
    ]
    return ["| dataset, split | mean F1 (%) | mIoU (%) | pixel accuracy (%) |", "|---|---|---|---|", *rows]


def model_description(entry: ModelWeights) -> str:
    """What the weights are, in the card's first words: AGRNet (an ensemble of its trainings when the entry holds
    several), or the paper's baseline when the model has neither the edge module nor the graph (Table I(a) row 1
    when it was trained with cross-entropy alone)."""
    from agrnet.model import AGRNetConfig

    architecture = AGRNetConfig(**entry.model_config)
    if architecture.use_graph or architecture.use_edge:
        members = f"An ensemble of {entry.members} trainings of " if entry.members > 1 else ""
        return f"{members}AGRNet (Te et al., IEEE TIP 2021)"
    alone = not (entry.train_config or {}).get("use_boundary", True)
    return (
        "The baseline of AGRNet (Te et al., IEEE TIP 2021): ResNet and pyramid pooling without the edge module or "
        "the graph" + (", with cross-entropy as its only loss (the paper's Table I(a), row 1)," if alone else ",")
    )


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
    use = (
        f"agrnet predict --weights {entry.name} photos/ --out parsed/  # faces found, aligned, parsed, pasted back"
        if frame_for(schema) is not None
        else f"agrnet predict --weights {entry.name} --aligned faces/ --out parsed/  # one face per image, framed"
    )
    lines = [
        f"# {entry.name} (`{entry.key}`)",
        "",
        f"{model_description(entry)} trained on {entry.training_data}: {schema.num_classes} classes of the "
        f"`{schema.name}` schema, input {entry.input_size} x {entry.input_size}.",
        "",
        "## Use",
        "",
        "```bash",
        use,
        "```",
        "",
        "```python",
        "from agrnet import Predictor",
        f'labels = Predictor.from_weights("{entry.name}")(image)  # or agrnet.weights.load("{entry.name}")',
        "```",
        "",
        *(["Both parse each face as it is and mirrored, and average the two (flip test-time augmentation, as every "
           "score below is measured); `--no-flip` or `flip=False` parses once.", ""] if entry.flip else []),
        "## Model",
        "",
        f"- `AGRNet({config})`" if entry.members == 1 else
        f"- `Ensemble` of {entry.members} `AGRNet({config})`, each trained with a seed of its own: it parses with the "
        f"mean of their class probabilities, {entry.members} forward passes per view (`agrnet.model.Ensemble`)",
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
        f"{'Each member t' if entry.members > 1 else 'T'}rained for {entry.step} steps by agrnet "
        f"{entry.agrnet_version} at commit `{entry.commit}`:",
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


def write_entry(entry: ModelWeights, data: bytes | None = None) -> None:
    """Write ``entry``'s model card and metadata (and its weights file, when ``data`` is given) atomically."""
    if data is not None:
        atomic_write(entry.path, lambda file: file.write(data))
    card = model_card(entry)
    atomic_write(entry.directory / f"{entry.name}.md", lambda file: file.write(card.encode()))
    write_json(entry.directory / f"{entry.name}.json", entry.to_dict())


def export_weights(
    checkpoint: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    name: str,
    terms: str,
    terms_url: str,
    training_data: str | None = None,
    command: str | None = None,
    commit: str | None = None,
    scores: Sequence[Mapping[str, Any]] = (),
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    flip: bool = False,
) -> ModelWeights:
    """Write registry entry ``name`` (safetensors, JSON metadata, model card) from an ``agrnet train`` checkpoint,
    or from several (trainings of one architecture and label schema, each its own seed) as one
    ``agrnet.model.Ensemble``; the training config and step are then the first checkpoint's, and ``command`` must
    say how to train them all.

    ``training_data`` defaults to the checkpoint's dataset and training split; ``command`` to the ``agrnet train``
    command that rebuilds its configuration (``train_command``); ``commit`` to this checkout's HEAD. ``scores`` (as
    the metadata records them: ``metrics_summary`` of ``agrnet evaluate --out`` reports) become the entry's scores,
    the first its ``metrics``; without them, the checkpoint's last validation is. ``flip``: the model parses with
    flip test-time augmentation by default (``ModelWeights.flip``). Returns the new entry.
    """
    from agrnet.checkpoint import load_model
    from agrnet.evaluate import check_model_schema, checkpoint_size, training_config
    from agrnet.model import AGRNetConfig, Ensemble, model_from_config

    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"--name {name!r}: expected lowercase letters, digits and hyphens, e.g. fasseg-resnet18")
    folder = weights_dir(out_dir)
    if (folder / f"{name}.json").exists() and not overwrite:
        raise FileExistsError(f"weights {name}: {folder / f'{name}.json'} exists; pass --force to replace it")
    scores = [dict(score) for score in scores]
    checkpoints = [checkpoint] if isinstance(checkpoint, str | os.PathLike) else list(checkpoint)
    if len(checkpoints) > 1 and command is None:
        raise ValueError(f"--command: an ensemble of {len(checkpoints)} checkpoints needs the command that trains "
                         "them all")  # fmt: skip
    loaded = [load_model(path) for path in checkpoints]
    (first, schema, payload), checkpoint = loaded[0], checkpoints[0]
    for path, (_, other, _) in zip(checkpoints[1:], loaded[1:], strict=True):
        if other != schema:
            raise ValueError(f"checkpoint {path}: predicts the {other.name!r} schema, {checkpoint} {schema.name!r}")
    reference = Ensemble([model for model, _, _ in loaded]) if len(loaded) > 1 else first
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
    architecture = AGRNetConfig(**reference.config)
    restored = model_from_config(architecture, len(loaded))
    restored.load_state_dict(state_from_bytes(data))
    size = checkpoint_size(payload)
    difference = max_logit_difference(reference, restored, size)
    entry = ModelWeights(
        name=name,
        file=f"{name}.safetensors",
        sha256=sha256(data),
        size_bytes=len(data),
        schema=schema.to_dict(),
        model_config=dataclasses.asdict(architecture),
        input_size=size,
        command=command or train_command(config),
        commit=commit or git_commit(strict=True),
        metrics=scores[0],
        training_data=training_data or f"{config['dataset']} ({config['train_split']} split)",
        terms=terms,
        terms_url=terms_url,
        train_config=json.loads(json.dumps({k: v for k, v in config.items() if k not in UNRECORDED_FIELDS})),
        step=int(payload.get("step", 0)),
        agrnet_version=str(payload.get("agrnet_version")),
        fp16_max_abs_logit_diff=difference,
        evaluations=scores[1:],
        flip=flip,
        members=len(loaded),
        directory=folder,
    )
    write_entry(entry, data)
    return entry


def check_reports(entry: ModelWeights, reports: Sequence[Mapping[str, Any]]) -> None:
    """Refuse, naming the first, ``agrnet evaluate --out`` reports that do not score ``entry``'s weights (by name
    and sha256) as it parses by default (with or without flip), and an empty list."""
    if not reports:
        raise ValueError("--metrics: give at least one `agrnet evaluate --out` report")
    for index, report in enumerate(reports):
        if report.get("weights") != entry.name or report.get("weights_sha256") != entry.sha256:
            raise ValueError(f"--metrics #{index + 1}: scores {report.get('weights') or report.get('checkpoint')}, "
                             f"not these weights of {entry.name} (sha256 {entry.sha256[:12]})")  # fmt: skip
        if bool(report.get("flip")) != entry.flip:
            measured = "with" if report.get("flip") else "without"
            raise ValueError(f"--metrics #{index + 1}: measured {measured} flip test-time augmentation, but "
                             f"{entry.name} parses {'with' if entry.flip else 'without'} it by default")  # fmt: skip


def score_key(score: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a score measures, whatever its numbers: dataset, split, labels read as another schema's, pipeline."""
    return score.get("dataset"), score.get("split"), score.get("labels_read_as"), score.get("pipeline", "resize")


def rescore(entry: ModelWeights, scores: Sequence[Mapping[str, Any]]) -> ModelWeights:
    """``entry`` with ``scores`` (as the metadata records them) recorded, its metadata and card written again: each
    replaces the entry's score with the same ``score_key`` where it stands, or is added after the others; the
    weights are not touched."""
    if not scores:
        raise ValueError(f"weights {entry.name}: no scores to record")
    recorded = entry.scores()
    for score in scores:
        keys = [score_key(old) for old in recorded]
        if score_key(score) in keys:
            recorded[keys.index(score_key(score))] = dict(score)
        else:
            recorded.append(dict(score))
    updated = dataclasses.replace(entry, metrics=recorded[0], evaluations=recorded[1:])
    write_entry(updated)
    return updated
