"""Figures of what the model does and how well: parsing overlays, the selected vertices (Fig. 8), the learned
adjacency A (Fig. 7), response maps of the projection P (Fig. 11), confusion matrices, per-class F1 and training
curves.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (nothing is shown or kept in global
state; a notebook displays the returned figure). Class colours are the label schema's palette throughout.

The book's figure style lives here, in one place: ``BOOK_RC`` (sizes and fonts), ``book_style()`` that makes it
matplotlib's default (each notebook calls it once; ``matplotlib.rc_context(BOOK_RC)`` applies it to a block only),
and ``figure_problems()`` that checks a figure against it. Figures are ``BOOK_WIDTH`` inches wide at ``BOOK_DPI``:
672 px, no wider than the content column of the book's theme in a 1280 px window (676 px), so the page shows them
at their own size; and at 96 dpi, the CSS pixel density, a point of matplotlib text is a point on the page, so
every text of at least ``MIN_FONT_PT`` points reads as at least that.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text

from agrnet.data.labels import LabelSchema
from agrnet.evaluate import table_columns
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNetOutput
from agrnet.predict import ImageLike, as_image_tensor, blend

#: Width of every book figure in inches; at ``BOOK_DPI`` that is 672 px, within the 676 px content column.
BOOK_WIDTH = 7.0
#: Dots per inch of the book's figures: the CSS pixel density, so matplotlib's points are the page's points.
BOOK_DPI = 96
#: The smallest text a book figure may hold, in points at its rendered size.
MIN_FONT_PT = 9.0
#: The book's matplotlib style: figure size and resolution, and fonts no smaller than ``MIN_FONT_PT``.
BOOK_RC: dict[str, Any] = {
    "figure.figsize": (BOOK_WIDTH, 0.5 * BOOK_WIDTH),
    "figure.dpi": BOOK_DPI,
    "figure.constrained_layout.use": True,
    "savefig.pad_inches": 0.02,  # notebooks save "tight" figures: a 672 px figure stays within 676 px
    "font.size": 10.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 10.0,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": 11.0,
    "figure.labelsize": 10.0,
}
LOG_META_KEYS = ("kind", "step", "epoch", "lr", "images_per_s", "time")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def book_style() -> None:
    """Make the book's figure style (``BOOK_RC``) matplotlib's default, e.g. once at the top of a notebook, after
    ``%matplotlib inline``: figures drawn with pyplot then have the book's width and fonts unless told otherwise.
    For one block only, use ``with matplotlib.rc_context(BOOK_RC):``. The figures of this module always use it."""
    matplotlib.rcParams.update(BOOK_RC)


def _book_styled(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a figure function under ``BOOK_RC``, whatever the caller's matplotlib defaults."""

    @functools.wraps(function)
    def styled(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(BOOK_RC):
            return function(*args, **kwargs)

    return styled


def small_texts(figure: Figure, minimum: float = MIN_FONT_PT) -> list[tuple[str, float]]:
    """The texts ``figure`` draws in less than ``minimum`` points, as (text, size): titles, labels, tick labels,
    legends, annotations. Lays the figure out first (ticks exist only then); ignores empty and hidden texts and
    the axis texts of axes drawn without axes (``set_axis_off``)."""
    figure.draw_without_rendering()
    hidden = {
        id(text) for ax in figure.axes if not ax.axison for axis in (ax.xaxis, ax.yaxis) for text in axis.findobj(Text)
    }
    found = []
    for text in figure.findobj(Text):
        if id(text) in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        if text.get_fontsize() < minimum - 1e-9:
            found.append((text.get_text(), float(text.get_fontsize())))
    return found


def figure_problems(figure: Figure, minimum: float = MIN_FONT_PT) -> list[str]:
    """What keeps ``figure`` from reading well in the book, one line each (none: it is fine): wider than
    ``BOOK_WIDTH`` inches at ``BOOK_DPI`` (the page would shrink it, and its text with it), or texts smaller than
    ``minimum`` points."""
    problems = []
    pixels = figure.get_size_inches()[0] * figure.dpi
    if pixels > BOOK_WIDTH * BOOK_DPI + 0.5:
        problems.append(f"{pixels:.0f} px wide, wider than the book's {BOOK_WIDTH * BOOK_DPI:.0f} px")
    problems += [f"text {text!r} at {size:g} pt, below {minimum:g} pt" for text, size in small_texts(figure, minimum)]
    return problems


def class_colours(schema: LabelSchema) -> np.ndarray:
    """The schema's palette as matplotlib colours, Nc x 3 floats in [0, 1]."""
    return schema.palette.astype(np.float64) / 255


def legend_handles(schema: LabelSchema, ids: Iterable[int]) -> list[Patch]:
    """Legend entries, a patch in the class colour and the class name, for the class ids ``ids`` of ``schema``
    (``figure.legend(handles=legend_handles(schema, ids))``)."""
    colours = class_colours(schema)
    return [Patch(facecolor=colours[i], edgecolor="0.3", label=schema.classes[i]) for i in ids]


def _image_array(image: ImageLike) -> np.ndarray:
    """H x W x 3 floats in [0, 1] for ``imshow``."""
    return as_image_tensor(image).permute(1, 2, 0).numpy()


def _figure(width: float = BOOK_WIDTH, height: float = BOOK_WIDTH * 0.6) -> Figure:
    return Figure(figsize=(width, height), dpi=BOOK_DPI, layout="constrained")


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


@_book_styled
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
    figure.legend(handles=legend_handles(schema, present), loc="outside right center", frameon=False)
    return figure


@_book_styled
def overlays_figure(
    samples: Sequence[tuple[str, ImageLike, torch.Tensor]],
    schema: LabelSchema,
    alpha: float = 0.5,
    per_row: int = 2,
) -> Figure:
    """Several images, each beside its label map tinted over it, ``per_row`` of them to a row: ``samples`` holds
    (title, image, label) triples of one schema. One legend, below, names the classes present in any label."""
    if not samples:
        raise ValueError("samples: nothing to draw")
    rows = math.ceil(len(samples) / per_row)
    aspect = max(label.shape[-2] / label.shape[-1] for _, _, label in samples)
    figure = _figure(height=rows * BOOK_WIDTH / (2 * per_row) * aspect + 0.9)
    axes = np.atleast_2d(figure.subplots(rows, 2 * per_row)).reshape(rows, 2 * per_row)
    present: set[int] = set()
    for ax in axes.flat:
        ax.set_axis_off()
    for index, (title, image, label) in enumerate(samples):
        picture, label = as_image_tensor(image), label.detach().cpu().long()
        left, right = axes[index // per_row, 2 * (index % per_row) : 2 * (index % per_row) + 2]
        left.imshow(picture.permute(1, 2, 0).numpy())
        left.set_title(title)
        right.imshow(blend(picture, label, schema, alpha).permute(1, 2, 0).numpy())
        right.set_title("label")
        present |= set(label.unique().tolist()) - {schema.ignore_index}
    figure.legend(handles=legend_handles(schema, sorted(present)), loc="outside lower center", ncols=6, frameon=False)
    return figure


@_book_styled
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
    figure.legend(handles=legend_handles(schema, shown), loc="outside right center", frameon=False)
    return figure


@_book_styled
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
    ax.set_xticks(centres, schema.classes, rotation=90)
    ax.set_yticks(centres, schema.classes, rotation=0)
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


@_book_styled
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
        ax.set_title(schema.classes[class_id])
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


@_book_styled
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
        annot_kws={"fontsize": MIN_FONT_PT}, xticklabels=schema.classes, yticklabels=schema.classes,
        cbar_kws={"label": "share of the row" if normalize else "pixels", "shrink": 0.8},
    )  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    return figure


def _f1_bars(ax: Axes, report: Mapping[str, Any], schema: LabelSchema, dataset: str | None) -> None:
    """Draw a report's per-class F1 bars, its mean and the paper's numbers (if any) into ``ax``."""
    dataset = dataset if dataset is not None else report.get("dataset")
    scores = report.get("f1", {})
    names = list(schema.classes[1:])
    values = [100 * (scores.get(name) if scores.get(name) is not None else math.nan) for name in names]
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
    ax.set_xticks(positions, names, rotation=60, ha="right")
    ax.set_ylim(0, 100)


@_book_styled
def f1_figure(report: Mapping[str, Any], schema: LabelSchema, dataset: str | None = None) -> Figure:
    """Per-class F1 (%) of a report as bars in the class colours, the mean as a line, and AGRNet's published
    Table II numbers as black markers when the report's dataset is one of the paper's."""
    figure = _figure(height=BOOK_WIDTH * 0.5)
    ax = figure.subplots()
    _f1_bars(ax, report, schema, dataset)
    ax.set_ylabel("F1 (%)")
    ax.set_title("F1 per class")
    ax.legend(loc="lower right")
    return figure


@_book_styled
def f1_runs_figure(reports: Mapping[str, Mapping[str, Any]], schema: LabelSchema, dataset: str | None = None) -> Figure:
    """``f1_figure`` for several reports side by side, one panel per entry of ``reports`` (title -> report),
    on one F1 axis, with one legend below: e.g. the seeds of one experiment."""
    if not reports:
        raise ValueError("reports: nothing to draw")
    figure = _figure(height=BOOK_WIDTH * 0.5)
    axes = np.atleast_1d(figure.subplots(1, len(reports), sharey=True))
    for ax, (title, report) in zip(axes, reports.items(), strict=True):
        _f1_bars(ax, report, schema, dataset)
        ax.set_title(title)
    axes[0].set_ylabel("F1 (%)")
    entries: dict[str, Any] = {}  # one legend entry per label, from whichever panel has it
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    figure.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=len(entries), frameon=False)
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


@_book_styled
def training_curves_figure(log: str | os.PathLike[str] | Sequence[Mapping[str, Any]]) -> Figure:
    """Training curves of a run: the loss and each term of Eq. (11), the learning rate, and validation mean F1 and
    mIoU against the step. Takes a run directory, its ``log.jsonl`` or the records themselves."""
    records = read_log(log) if isinstance(log, str | os.PathLike) else list(log)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    if not train and not val:
        raise ValueError("log: no training or validation records (kind 'train' or 'val')")
    figure = _figure(height=BOOK_WIDTH * 0.5)
    loss_ax, lr_ax, val_ax = figure.subplots(1, 3)
    terms = [k for k in train[0] if k not in LOG_META_KEYS and isinstance(train[0][k], int | float)] if train else []
    steps = [r["step"] for r in train]
    for term in terms:
        values = [r.get(term) if r.get(term) is not None else math.nan for r in train]
        loss_ax.plot(steps, values, label=term, linewidth=2 if term == "loss" else 1)
    _label(loss_ax, "training loss", "loss")
    if terms:  # the loss terms' legend goes below the panels, where it hides no curve
        loss_ax.set_yscale("log")
        figure.legend(*loss_ax.get_legend_handles_labels(), loc="outside lower center", ncols=6, frameon=False)
    lr_ax.plot(steps, [r.get("lr", math.nan) for r in train], color="0.3")
    _label(lr_ax, "learning rate", "lr")
    for key, name in (("mean_f1", "mean F1"), ("miou", "mIoU")):
        values = [100 * r[key] if r.get(key) is not None else math.nan for r in val]
        val_ax.plot([r["step"] for r in val], values, marker="o", label=name)
    _label(val_ax, "validation", "%")
    if val:
        val_ax.legend()
    return figure


def _label(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
