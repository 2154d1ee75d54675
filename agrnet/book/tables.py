"""Tables a chapter shows of its data and settings, as Markdown (or HTML) text: the label schemas, the dataset
readers, a sample's fields, one schema's classes read as another's, the class areas of FASSEG, the weights of the
loss, a run's validations, and the training presets with their commands."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import torch

from agrnet.config import PRESETS, preset_config
from agrnet.data.base import ParsingDataset, Sample
from agrnet.data.fasseg import Fasseg
from agrnet.data.labels import FASSEG, LabelMapping, LabelSchema
from agrnet.data.prepare import EXPECTED_COUNTS
from agrnet.diagnostics import label_at_grid
from agrnet.losses import PAPER_WEIGHTS, TERMS


def _swatch(colour: np.ndarray) -> str:
    red, green, blue = (int(c) for c in colour)
    style = (
        "display:inline-block;width:1.2em;height:1.2em;margin-right:0.4em;"
        "vertical-align:middle;border:1px solid #555;"
        f"background:rgb({red},{green},{blue})"
    )
    return f'<span style="{style}"></span>'


def _class_cell(schema: LabelSchema, class_id: int) -> str:
    if class_id >= schema.num_classes:
        return "<td></td>"
    mirror = int(schema.flip_permutation()[class_id])
    pair = f" ↔ {mirror}" if mirror != class_id else ""
    name = escape(schema.classes[class_id])
    return f"<td>{_swatch(schema.palette[class_id])}{name}{pair}</td>"


def schemas_table(schemas: Sequence[LabelSchema]) -> str:
    """The classes of ``schemas`` side by side, by id, as an HTML table: each in its colour, with the id of its
    mirror image where it has one (left and right parts)."""
    rows = max(schema.num_classes for schema in schemas)
    header = "".join(f"<th>{schema.name} ({schema.num_classes})</th>" for schema in schemas)
    body = "".join(
        f"<tr><td>{class_id}</td>{''.join(_class_cell(s, class_id) for s in schemas)}</tr>" for class_id in range(rows)
    )
    return f'<table style="font-size:0.8em"><tr><th>id</th>{header}</tr>{body}</table>'


def _names(schema: LabelSchema, ids: Iterable[int]) -> str:
    return " + ".join(schema.classes[i] for i in ids)


def pairs_and_groups_table(schemas: Sequence[LabelSchema]) -> str:
    """Each schema's left/right pairs and the groups it scores as one class, as a Markdown table."""

    def pairs(schema: LabelSchema) -> str:
        return "; ".join(f"{schema.classes[a]} ↔ {schema.classes[b]}" for a, b in schema.flip_pairs)

    def groups(schema: LabelSchema) -> str:
        return "; ".join(f"{group}: {_names(schema, ids)}" for group, ids in schema.groups.items())

    return (
        "| schema | flip pairs (left ↔ right) | groups scored as one class |\n"
        "|---|---|---|\n"
        + "\n".join(f"| {s.name} | {pairs(s) or '-'} | {groups(s) or '-'} |" for s in schemas)
    )


def readers_table(readers: Mapping[str, type[ParsingDataset]]) -> str:
    """Each dataset name's reader, its label schema, number of classes and splits, as a Markdown table."""

    def splits(reader: type[ParsingDataset]) -> str:
        return ", ".join(getattr(reader, "splits", ("train", "val", "test")))

    return "| name | reader | schema | classes | splits |\n|---|---|---|---|---|\n" + "\n".join(
        f"| `{name}` | `{reader.__name__}` | {reader.schema.name} | {reader.schema.num_classes} | {splits(reader)} |"
        for name, reader in readers.items()
    )


def _describe(value: Any) -> str:
    if not torch.is_tensor(value):
        return f"{type(value).__name__} | - | {value!r}"
    low, high = value.min().item(), value.max().item()
    values = f"{low:.2f} ... {high:.2f}" if value.is_floating_point() else f"{low} ... {high}"
    return f"{value.dtype} | {' × '.join(map(str, value.shape))} | {values}"


def sample_table(sample: Sample) -> str:
    """A sample's fields: key, type, shape and range of values, as a Markdown table."""
    return "| key | type | shape | values |\n|---|---|---|---|\n" + "\n".join(
        f"| `{key}` | {_describe(value)} |" for key, value in sample.items()
    )


def class_areas_table(data_root: str | os.PathLike[str], size: int) -> str:
    """Per class of FASSEG's frontal02 test faces at ``data_root``: the cells of X0 (a ``size // 4`` square grid,
    ``label_at_grid``) it covers per face, its share of X0 and its share of the boundary pixels e_i of Eq. (8)."""
    test = Fasseg(data_root, "test")
    side = size // 4  # X0 is at 1/4 of the input
    classes = len(FASSEG.classes)
    cells = torch.stack([
        torch.bincount(label_at_grid(sample["label"], (side, side)).flatten(), minlength=256) for sample in test
    ])[:, :classes].float().mean(0)  # fmt: skip
    # e_i of Eq. (8): pixels whose label differs from a neighbour's, by their label
    edges = torch.stack([
        torch.bincount(sample["label"][sample["edge"]], minlength=256) for sample in test
    ])[:, :classes].float().sum(0)  # fmt: skip
    return (
        f"| class | cells of X0 per test face ({side} × {side}) | share of X0 (%) "
        "| share of the boundary pixels e_i (%) |\n|---|---|---|---|\n"
        + "\n".join(
            f"| {name} | {cells[index]:.1f} | {100 * cells[index] / cells.sum():.1f} "
            f"| {100 * edges[index] / edges.sum():.1f} |"
            for index, name in enumerate(FASSEG.classes)
        )
    )


def mapping_table(mapping: LabelMapping, titles: tuple[str, str]) -> str:
    """Each target class of ``mapping`` with the source classes read as it (those left out of the score and the
    unnamed ones, background, last), under the column ``titles`` (target, source)."""
    rows: dict[str, list[str]] = {}
    for name, target in mapping.classes.items():
        rows.setdefault(target or "left out", []).append(name)
    others = set(mapping.source.classes) - set(mapping.classes)
    rows.setdefault("background", []).extend(sorted(others))
    return f"| {titles[0]} | {titles[1]} |\n|---|---|\n" + "\n".join(
        f"| {target} | {', '.join(names)} |" for target, names in rows.items()
    )


def loss_weights_table(weights: Sequence[float] = PAPER_WEIGHTS) -> str:
    """λ1 ... λ5 of Eq. (11), one row per term of ``agrnet.losses.TERMS``."""
    return "| term | weight |\n|---|---|\n" + "\n".join(
        f"| {name} | λ{index} = {weight} |"
        for index, (name, weight) in enumerate(zip(TERMS, weights, strict=True), start=1)
    )


def validations_table(log: Sequence[Mapping[str, Any]]) -> str:
    """Every validation of a run's log (``agrnet.training.read_log``): step, mean F1, mIoU and pixel accuracy."""
    return "| step | mean F1 (%) | mIoU (%) | pixel accuracy (%) |\n|---|---|---|---|\n" + "\n".join(
        f"| {r['step']} | {100 * r['mean_f1']:.1f} | {100 * r['miou']:.1f} | {100 * r['pixel_accuracy']:.1f} |"
        for r in log
        if r["kind"] == "val"
    )


def presets_table() -> str:
    """Every training preset (``agrnet.config.PRESETS``): its splits, input and batch, optimiser and learning rate,
    backbone and its initialisation, steps, and the epochs of images those steps make."""
    rows = []
    for name in PRESETS:
        preset = preset_config(name)
        splits = f"{preset.train_split} / {preset.val_split}"
        if preset.dataset != name:
            splits += f" of {preset.dataset}"
        images = EXPECTED_COUNTS.get((preset.dataset, preset.train_split))
        epochs = f"{preset.steps * preset.batch_size / images:.0f} of {images:,}" if images else "-"
        init = preset.pretrained_backbone or "scratch"
        rows.append(
            f"| `{name}` | {splits} | {preset.size}², {preset.batch_size} | "
            f"{preset.optimizer}, {preset.lr:g} | {preset.backbone} ({init}) | "
            f"{preset.steps:,} | {epochs} |"
        )
    return (
        "| preset | splits (train / val) | input, batch | optimiser, lr | backbone (init) | steps "
        "| epochs of images |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


PRESET_FOLDERS = {
    "lapa": "data/LaPa",
    "celebamask-hq": "data/CelebAMask-HQ",
    "helen": "data/SmithCVPR2013_dataset_resized",
    "lip": "data/LIP",
    "fasseg": "data/FASSEG",
}
"""Where the commands of ``preset_commands`` expect each dataset."""


def _command(head: str, arguments: str) -> str:
    """``head`` and its arguments, on two lines where one would pass 88 columns."""
    line = f"{head} {arguments}"
    return line if len(line) <= 88 else f"{head} \\\n    {arguments}"


def preset_commands() -> str:
    """A Markdown bash block with, for every real-data preset, the commands that check its dataset, train it on one
    process and on 4 GPUs (``torchrun``)."""
    lines = []
    for name in PRESETS:
        if name == "synthetic":
            continue
        dataset = preset_config(name).dataset
        root = PRESET_FOLDERS[dataset]
        arguments = f"--preset {name} --data-root {root} --out runs/{name}"
        lines += [
            f"# {name}",
            f"agrnet prepare {dataset} {root}",
            _command("agrnet train", arguments),
            _command("torchrun --nproc_per_node=4 -m agrnet train", arguments),
            "",
        ]
    return "```bash\n" + "\n".join(lines).strip() + "\n```"
