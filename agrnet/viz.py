"""Figures of what the model does and how well: parsing overlays, the selected vertices (Fig. 8), the learned
adjacency A (Fig. 7), response maps of the projection P (Fig. 11), confusion matrices, per-class F1 and training
curves.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (nothing is shown or kept in global
state; a notebook displays the returned figure). Class colours are the label schema's palette throughout, and the
figures are sized for a ~700 px book column (``BOOK_WIDTH`` inches at 100 dpi).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from agrnet.data.labels import LabelSchema
from agrnet.evaluate import table_columns
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNetOutput
from agrnet.predict import ImageLike, as_image_tensor, blend

BOOK_WIDTH = 7.0
LOG_META_KEYS = ("kind", "step", "epoch", "lr", "images_per_s", "time")


def class_colours(schema: LabelSchema) -> np.ndarray:
    """The schema's palette as matplotlib colours, Nc x 3 floats in [0, 1]."""
    return schema.palette.astype(np.float64) / 255


def _legend_handles(schema: LabelSchema, ids: Iterable[int]) -> list[Patch]:
    colours = class_colours(schema)
    return [Patch(facecolor=colours[i], edgecolor="0.3", label=schema.classes[i]) for i in ids]


def _image_array(image: ImageLike) -> np.ndarray:
    """H x W x 3 floats in [0, 1] for ``imshow``."""
    return as_image_tensor(image).permute(1, 2, 0).numpy()


def _figure(width: float = BOOK_WIDTH, height: float = BOOK_WIDTH * 0.6) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _one(tensor: torch.Tensor | None, index: int, what: str) -> torch.Tensor:
    """Item ``index`` of a batched output field, on the CPU; a clear error when the model did not produce it."""
    if tensor is None:
        raise ValueError(f"output.{what} is None: the model was built without the graph projection it comes from")
    return tensor[index].detach().float().cpu() if tensor.ndim > 1 else tensor.detach().float().cpu()


def feature_size(output: AGRNetOutput, image_size: tuple[int, int]) -> tuple[int, int]:
    """(H1, W1), the size of the 1/4-resolution map that ``vertex_index`` and P index, for an input of
    ``image_size`` (H, W): read from Z0 or E, else the factorisation of H1 * W1 closest to the image's aspect."""
    for field in (output.raw_logits, output.edge_logits):
        if field is not None:
            return int(field.shape[-2]), int(field.shape[-1])
    if output.projection is None:
        raise ValueError("output.projection is None: the model was built without the graph projection")
    pixels = int(output.projection.shape[-1])
    aspect = image_size[0] / image_size[1]
    height = min((h for h in range(1, pixels + 1) if pixels % h == 0), key=lambda h: abs(h / (pixels // h) - aspect))
    return height, pixels // height


def overlay_figure(
    image: ImageLike,
    label: torch.Tensor,
    schema: LabelSchema,
    alpha: float = 0.5,
    title: str | None = None,
    all_classes: bool = False,
) -> Figure:
    """The image tinted with a label map (``agrnet.predict.blend``) beside the plain image, with a legend of the
    classes present (all of the schema's with ``all_classes``)."""
    picture = as_image_tensor(image)
    label = label.detach().cpu().long()
    mixed = blend(picture, label, schema, alpha).permute(1, 2, 0).numpy()
    height, width = label.shape[-2:]
    figure = _figure(height=BOOK_WIDTH * 0.45 * height / width + 0.6)
    axes = figure.subplots(1, 2)
    axes[0].imshow(picture.permute(1, 2, 0).numpy())
    axes[0].set_title("image")
    axes[1].imshow(mixed)
    axes[1].set_title(title or "parsing")
    for ax in axes:
        ax.set_axis_off()
    present = range(schema.num_classes) if all_classes else sorted(set(label.unique().tolist()) - {schema.ignore_index})
    figure.legend(handles=_legend_handles(schema, present), loc="outside right center", fontsize=8, frameon=False)
    return figure


def vertices_figure(
    image: ImageLike, output: AGRNetOutput, schema: LabelSchema, index: int = 0, skip_background: bool = True
) -> Figure:
    """Fig. 8: the K vertices of each class (``vertex_index`` into H1 x W1) drawn on the model's input image.

    ``image`` is the image the model saw (e.g. the first item of ``Predictor.explain``); vertex (row, col) of the
    H1 x W1 map is drawn at the centre of its cell in image coordinates, coloured by class.
    """
    picture = _image_array(image)
    height, width = picture.shape[:2]
    flat = _one(output.vertex_index, index, "vertex_index").long()
    rows_1, cols_1 = feature_size(output, (height, width))
    top_k = flat.numel() // schema.num_classes
    y = ((flat // cols_1).float() + 0.5) * height / rows_1
    x = ((flat % cols_1).float() + 0.5) * width / cols_1
    classes = torch.arange(schema.num_classes).repeat_interleave(top_k)
    keep = classes > 0 if skip_background else torch.ones_like(classes, dtype=torch.bool)
    colours = class_colours(schema)
    figure = _figure(height=BOOK_WIDTH * 0.75 * height / width)
    ax = figure.subplots()
    ax.imshow(picture)
    ax.scatter(x[keep], y[keep], c=colours[classes[keep]], s=60, marker="o", edgecolors="black", linewidths=1)
    ax.set_title(f"selected vertices: top-{top_k} pixels of each class")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    shown = [c for c in range(schema.num_classes) if not (skip_background and c == 0)]
    figure.legend(handles=_legend_handles(schema, shown), loc="outside right center", fontsize=8, frameon=False)
    return figure


def adjacency_figure(adjacency: torch.Tensor, schema: LabelSchema, aggregate: bool = False) -> Figure:
    """Fig. 7: the learned adjacency A (V x V, vertices class-major, K per class) as a heatmap.

    Ticks name the class of each K x K block; with ``aggregate`` every block is averaged into one cell
    (Nc x Nc, the mean weight between the vertices of two classes).
    """
    matrix = adjacency.detach().float().cpu()
    vertices = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] != vertices or vertices % schema.num_classes:
        raise ValueError(f"adjacency: expected V x V, V a multiple of {schema.num_classes}; got {tuple(matrix.shape)}")
    top_k = vertices // schema.num_classes
    if aggregate:
        matrix = matrix.view(schema.num_classes, top_k, schema.num_classes, top_k).mean(dim=(1, 3))
    figure = _figure(height=BOOK_WIDTH * 0.85)
    ax = figure.subplots()
    limit = float(matrix.abs().max()) or 1.0
    sns.heatmap(
        matrix.numpy(), ax=ax, cmap="RdBu_r", vmin=-limit, vmax=limit, square=True, xticklabels=False,
        yticklabels=False, cbar_kws={"label": "A (mean over blocks)" if aggregate else "A", "shrink": 0.8},
    )  # fmt: skip
    step = 1 if aggregate else top_k
    centres = np.arange(schema.num_classes) * step + step / 2
    ax.set_xticks(centres, schema.classes, rotation=90, fontsize=8)
    ax.set_yticks(centres, schema.classes, rotation=0, fontsize=8)
    if not aggregate:
        for edge in np.arange(1, schema.num_classes) * top_k:
            ax.axhline(edge, color="0.5", linewidth=0.4)
            ax.axvline(edge, color="0.5", linewidth=0.4)
    unit = "class" if aggregate else f"vertex ({top_k} per class)"
    ax.set_xlabel(f"source {unit}")
    ax.set_ylabel(f"target {unit}")
    ax.set_title("learned adjacency A" + (", class blocks averaged" if aggregate else ""))
    return figure


def response_maps(
    output: AGRNetOutput, schema: LabelSchema, image_size: tuple[int, int], index: int = 0
) -> torch.Tensor:
    """Fig. 11's maps: P (V x H1*W1) summed over each class's K vertices and resized to ``image_size``: Nc x H x W.

    Each pixel's column of P sums to one over the vertices, so the maps sum to one over the classes.
    """
    projection = _one(output.projection, index, "projection")
    rows_1, cols_1 = feature_size(output, image_size)
    top_k = projection.shape[0] // schema.num_classes
    maps = projection.view(schema.num_classes, top_k, rows_1, cols_1).sum(1)
    return F.interpolate(maps[None], size=image_size, mode="bilinear", align_corners=False)[0]


def response_maps_figure(
    image: ImageLike,
    output: AGRNetOutput,
    schema: LabelSchema,
    classes: Sequence[int] | None = None,
    index: int = 0,
    columns: int = 4,
) -> Figure:
    """Fig. 11: for each class (all but background by default), how strongly each pixel is reprojected from that
    class's vertices (``response_maps``), drawn over the model's input image."""
    picture = _image_array(image)
    height, width = picture.shape[:2]
    maps = response_maps(output, schema, (height, width), index).numpy()
    classes = list(range(1, schema.num_classes)) if classes is None else list(classes)
    rows = math.ceil(len(classes) / columns)
    figure = _figure(height=rows * BOOK_WIDTH / columns * height / width + 0.8)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    colours = class_colours(schema)
    top = float(maps[classes].max()) if classes else 1.0
    last = None
    for ax in axes[len(classes) :]:
        ax.set_axis_off()
    for ax, class_id in zip(axes, classes, strict=False):
        ax.imshow(picture)
        last = ax.imshow(maps[class_id], cmap="magma", alpha=0.65, vmin=0, vmax=top)
        ax.set_title(schema.classes[class_id], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a frame in the class colour
            spine.set_edgecolor(colours[class_id])
            spine.set_linewidth(3)
    if last is not None:
        figure.colorbar(last, ax=axes.tolist(), shrink=0.8, label="response: P summed over the class's vertices")
    return figure


def _confusion_array(matrix: ConfusionMatrix | torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    if isinstance(matrix, ConfusionMatrix):
        matrix = matrix.matrix
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    return np.asarray(matrix, dtype=np.float64)


def confusion_figure(
    matrix: ConfusionMatrix | torch.Tensor | np.ndarray | Sequence[Sequence[int]],
    schema: LabelSchema,
    normalize: bool = True,
) -> Figure:
    """The confusion matrix (rows ground truth, columns prediction) as a heatmap; with ``normalize`` each row is
    divided by its sum (the share of a class's pixels given each label). Takes a ``ConfusionMatrix``, a tensor or
    a report's ``confusion_matrix``."""
    counts = _confusion_array(matrix)
    if counts.shape != (schema.num_classes, schema.num_classes):
        raise ValueError(f"matrix: expected {schema.num_classes} x {schema.num_classes}, got {counts.shape}")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        counts = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure = _figure(height=BOOK_WIDTH * 0.85)
    ax = figure.subplots()
    annotate = schema.num_classes <= 12
    sns.heatmap(
        counts, ax=ax, cmap="Blues", square=True, annot=annotate, fmt=".2f" if normalize else ".0f", vmin=0,
        vmax=1 if normalize else None,
        annot_kws={"fontsize": 6}, xticklabels=schema.classes, yticklabels=schema.classes,
        cbar_kws={"label": "share of the row" if normalize else "pixels", "shrink": 0.8},
    )  # fmt: skip
    ax.tick_params(labelsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    return figure


def f1_figure(report: Mapping[str, Any], schema: LabelSchema, dataset: str | None = None) -> Figure:
    """Per-class F1 (%) of a report as bars in the class colours, the mean as a line, and AGRNet's published
    Table II numbers as black markers when the report's dataset is one of the paper's."""
    dataset = dataset if dataset is not None else report.get("dataset")
    scores = report.get("f1", {})
    names = list(schema.classes[1:])
    values = [100 * (scores.get(name) if scores.get(name) is not None else math.nan) for name in names]
    figure = _figure(height=BOOK_WIDTH * 0.5)
    ax = figure.subplots()
    positions = np.arange(len(names))
    ax.bar(positions, values, color=class_colours(schema)[1:], edgecolor="0.3", linewidth=0.6, label="this run")
    paper = {key.removeprefix("f1/"): value for _, key, value in table_columns(schema, dataset)}
    published = [paper.get(name, math.nan) if paper.get(name) is not None else math.nan for name in names]
    if not all(math.isnan(v) for v in published):
        ax.scatter(
            positions, published, color="black", marker="_", s=200, linewidths=2, label="AGRNet (paper)", zorder=3
        )
    if report.get("mean_f1") is not None:
        ax.axhline(100 * report["mean_f1"], color="0.4", linestyle="--", linewidth=1, label="mean F1 (this run)")
    ax.set_xticks(positions, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("F1 per class")
    ax.legend(fontsize=8, loc="lower right")
    return figure


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (a run directory or the file itself)."""
    path = Path(path)
    path = path / "log.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found (agrnet train writes <run folder>/log.jsonl)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error})") from error
    return records


def training_curves_figure(log: str | os.PathLike[str] | Sequence[Mapping[str, Any]]) -> Figure:
    """Training curves of a run: the loss and each term of Eq. (11), the learning rate, and validation mean F1 and
    mIoU against the step. Takes a run directory, its ``log.jsonl`` or the records themselves."""
    records = read_log(log) if isinstance(log, str | os.PathLike) else list(log)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    if not train and not val:
        raise ValueError("log: no training or validation records (kind 'train' or 'val')")
    figure = _figure(height=BOOK_WIDTH * 0.4)
    loss_ax, lr_ax, val_ax = figure.subplots(1, 3)
    terms = [k for k in train[0] if k not in LOG_META_KEYS and isinstance(train[0][k], int | float)] if train else []
    steps = [r["step"] for r in train]
    for term in terms:
        values = [r.get(term) if r.get(term) is not None else math.nan for r in train]
        loss_ax.plot(steps, values, label=term, linewidth=2 if term == "loss" else 1)
    _label(loss_ax, "training loss", "loss")
    if terms:
        loss_ax.set_yscale("log")
        loss_ax.legend(fontsize=7)
    lr_ax.plot(steps, [r.get("lr", math.nan) for r in train], color="0.3")
    _label(lr_ax, "learning rate", "lr")
    for key, name in (("mean_f1", "mean F1"), ("miou", "mIoU")):
        values = [100 * r[key] if r.get(key) is not None else math.nan for r in val]
        val_ax.plot([r["step"] for r in val], values, marker="o", label=name)
    _label(val_ax, "validation", "%")
    if val:
        val_ax.legend(fontsize=7)
    return figure


def _label(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.tick_params(labelsize=8)
