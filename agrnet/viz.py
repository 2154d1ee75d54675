"""Figures of what the model does and how well: parsing overlays, the selected vertices (Fig. 8), the learned
adjacency A (Fig. 7), response maps of the projection P (Fig. 11), the preliminary map Z0 against the final Y,
example predictions and their errors (Fig. 10), confusion matrices, per-class F1 and training curves; and
``chapter_model``, the trained model and the faces that the book's graph chapters picture.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

from agrnet.data.base import ParsingDataset, Sample
from agrnet.data.datasets import FASSEG
from agrnet.data.edges import label_edges
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.labels import LAPA, LabelSchema
from agrnet.data.synthetic import SyntheticFaces
from agrnet.diagnostics import curve_value, label_at_grid
from agrnet.evaluate import table_columns
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNet, AGRNetOutput
from agrnet.predict import ImageLike, Predictor, as_image_tensor, blend
from agrnet.weights import ModelWeights, available, weights_dir

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


def vertex_positions(
    output: AGRNetOutput, image_size: tuple[int, int], index: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) in the pixels of an image of ``image_size`` (H, W) of each vertex: the centre of its cell of the
    H1 x W1 map that ``vertex_index`` indexes, V values each, class-major like ``vertex_index``."""
    flat = _one(output.vertex_index, index, "vertex_index").long()
    height, width = image_size
    rows_1, cols_1 = feature_size(output, (height, width))
    y = ((flat // cols_1).float() + 0.5) * height / rows_1
    x = ((flat % cols_1).float() + 0.5) * width / cols_1
    return x, y


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
    x, y = vertex_positions(output, (height, width), index)
    top_k = x.numel() // schema.num_classes
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


@_book_styled
def paired_figure(results: Mapping[str, Any], split: str = "test") -> Figure:
    """A paired experiment's results file (``agrnet experiment``, with a ``reference`` variant): on the left the
    mean F1 of every variant, one line per seed joining its variants and the mean over seeds in black; on the right
    each other variant's paired difference to the reference on ``split`` with its 95 % interval (from the file's
    ``paired`` entry), against a line at zero. Variants with no run yet are left out."""
    trained = {run["variant"] for run in results["runs"]}
    variants = [name for name in results["variants"] if name in trained]
    reference = results["reference"]
    seeds = sorted({run["seed"] for run in results["runs"]})
    if not seeds:
        raise ValueError("results: no runs to draw")
    scores = {(run["variant"], run["seed"]): 100 * run["metrics"][split]["mean_f1"] for run in results["runs"]}
    figure = _figure(height=0.45 * len(variants) + 1.6)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    positions = np.arange(len(variants))
    for seed in seeds:
        values = [scores.get((variant, seed), np.nan) for variant in variants]
        left.plot(values, positions, "o-", color="0.65", markersize=4, linewidth=1)
    means = [np.nanmean([scores.get((v, s), np.nan) for s in seeds]) for v in variants]
    left.plot(means, positions, "D", color="black", label="mean over seeds")
    left.set_yticks(positions, variants)
    left.invert_yaxis()
    left.set_xlabel(f"mean F1 on {split} (%)")
    left.set_title(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}, one grey line each")
    paired = results.get("paired", {})
    for position, variant in enumerate(variants):
        difference = paired.get(variant, {}).get(split)
        if difference is None:
            continue
        mean = 100 * difference["mean"]
        if difference["low"] is None:
            right.plot(mean, position, "o", color="tab:blue")
            continue
        low, high = 100 * difference["low"], 100 * difference["high"]
        colour = "tab:green" if low > 0 else "tab:red" if high < 0 else "tab:blue"
        right.errorbar(mean, position, xerr=[[mean - low], [high - mean]], fmt="o", color=colour, capsize=3)
    right.axvline(0, color="0.3", linewidth=1)
    right.set_yticks(positions, [])
    right.set_ylim(left.get_ylim())
    right.set_xlabel(f"minus {reference}, same seed (points)")
    right.set_title("95 % interval")
    return figure


CURVE_PANELS: dict[str, str] = {
    "final": "L_final (Eq. 8 on Y)",
    "own_class": "vertices on their own class",
    "p_entropy": "entropy of P / log V",
    "grad_norm": "gradient norm",
}
"""The panels of ``curves_figure``: a loss term or a diagnostic of ``agrnet.diagnostics`` -> its axis label."""


@_book_styled
def curves_figure(results: Mapping[str, Any], panels: Mapping[str, str] = CURVE_PANELS) -> Figure:
    """The training curves an experiment's results file records (each run's ``curve``): one panel per entry of
    ``panels``, one colour per variant, one line per seed, against the step."""
    runs = [run for run in results["runs"] if run.get("curve")]
    if not runs:
        raise ValueError("results: no run records its curve")
    variants = [name for name in results["variants"] if any(run["variant"] == name for run in runs)]
    colours = dict(zip(variants, matplotlib.colormaps["tab10"](np.arange(len(variants))), strict=True))
    rows = math.ceil(len(panels) / 2)
    figure = _figure(height=2.4 * rows + 0.6)
    axes = np.atleast_1d(figure.subplots(rows, 2, sharex=True)).flatten()
    for ax, (key, title) in zip(axes, panels.items(), strict=False):
        for run in runs:
            points = [(p["step"], curve_value(p, key)) for p in run["curve"]]
            points = [(step, value) for step, value in points if value is not None]
            if points:
                ax.plot(*zip(*points, strict=True), color=colours[run["variant"]], linewidth=1, alpha=0.8)
        ax.set_title(title)
        if key in ("final", "grad_norm"):
            ax.set_yscale("log")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax in axes[-2:]:
        ax.set_xlabel("step")
    handles = [Line2D([], [], color=colours[name], label=name) for name in variants]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
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


# What the graph learned: vertices on their classes, the adjacency against its initialisation, P per pixel --------


def vertex_hits(output: AGRNetOutput, label: torch.Tensor, schema: LabelSchema, index: int = 0) -> torch.Tensor:
    """Whether each vertex lies on a pixel of its own class: Nc x K bool, row c for the K vertices of class c.

    ``label`` is the face's ground truth (H x W, at any size: it is read at the centre of each vertex's cell of the
    1/4 map, ``label_at_grid``). In a trained model nearly all of them should (Sec. V-C 4): the vertices are the
    pixels where Z0 is most confident.
    """
    flat = _one(output.vertex_index, index, "vertex_index").long()
    grid = feature_size(output, (int(label.shape[-2]), int(label.shape[-1])))
    under = label_at_grid(label.detach().cpu().long(), grid).flatten()[flat]
    top_k = flat.numel() // schema.num_classes
    return under.view(schema.num_classes, top_k) == torch.arange(schema.num_classes)[:, None]


def own_class_share(hits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The share of vertices on a pixel of their own class, per class (Nc floats), over the ``vertex_hits`` of
    several faces; ``.mean()`` of it is the share over all vertices (every class has K of them)."""
    if not hits:
        raise ValueError("hits: no faces")
    return torch.stack([h.float() for h in hits]).mean(dim=(0, 2))


@_book_styled
def vertices_faces_figure(
    faces: Sequence[tuple[str, ImageLike, AGRNetOutput]],
    schema: LabelSchema,
    per_row: int = 4,
    skip_background: bool = True,
) -> Figure:
    """Fig. 8 for several faces: each face with the K vertices of every class (all but the background by
    default) drawn at the centre of their cell of the 1/4 map and coloured by class, ``per_row`` faces to a row.

    ``faces`` holds (title, image, output) triples, the output the model's for that image (``Predictor.explain``);
    the image may be the face at its original size, positions scale with it. One legend below names the classes.
    """
    if not faces:
        raise ValueError("faces: nothing to draw")
    rows = math.ceil(len(faces) / per_row)
    aspect = max(as_image_tensor(image).shape[-2] / as_image_tensor(image).shape[-1] for _, image, _ in faces)
    figure = _figure(height=rows * (BOOK_WIDTH / per_row * aspect + 0.3) + 0.5)
    axes = np.atleast_1d(figure.subplots(rows, per_row)).ravel()
    colours = class_colours(schema)
    for ax in axes:
        ax.set_axis_off()
    for ax, (title, image, output) in zip(axes, faces, strict=False):
        picture = _image_array(image)
        x, y = vertex_positions(output, picture.shape[:2])
        classes = torch.arange(schema.num_classes).repeat_interleave(x.numel() // schema.num_classes)
        keep = classes > 0 if skip_background else torch.ones_like(classes, dtype=torch.bool)
        ax.imshow(picture)
        ax.scatter(x[keep], y[keep], c=colours[classes[keep]], s=28, edgecolors="black", linewidths=0.8)
        ax.set_title(title)
    shown = [c for c in range(schema.num_classes) if not (skip_background and c == 0)]
    figure.legend(
        handles=legend_handles(schema, shown), loc="outside lower center", ncols=min(len(shown), 6), frameon=False
    )
    return figure


#: The quantile of the random-initialisation spread that a class pair of A must pass to count as learned.
RANDOM_QUANTILE = 0.95


@dataclass(frozen=True)
class AdjacencyReading:
    """What the learned adjacency A says about pairs of classes, and whether it says more than its initialisation.

    ``blocks`` is Nc x Nc, the mean of each K x K block of A (row: receiving class, column: sending class);
    ``pairs`` its symmetric part (blocks + blocks^T) / 2, one value per unordered pair. ``strongest`` and
    ``weakest`` are (class, class, value) of the most positive and most negative pair of different classes.
    ``random_limit`` is the ``quantile`` quantile of the largest |pair| over ``draws`` random draws of A from its
    initialisation (``nn.Linear``'s, uniform in +-1/sqrt(V)), and ``std`` / ``random_std`` A's spread against the
    initialisation's: when no pair passes ``random_limit`` the pairs are what random weights give as well.
    """

    blocks: torch.Tensor
    pairs: torch.Tensor
    strongest: tuple[int, int, float]
    weakest: tuple[int, int, float]
    random_limit: float
    std: float
    random_std: float
    draws: int
    quantile: float

    @property
    def stands_out(self) -> bool:
        """Whether the strongest or weakest pair lies beyond what the random initialisation gives."""
        return max(abs(self.strongest[2]), abs(self.weakest[2])) > self.random_limit


def _pair_means(matrix: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blocks, symmetric pairs) of ... x V x V matrices, each ... x Nc x Nc."""
    vertices = matrix.shape[-1]
    top_k = vertices // num_classes
    blocks = matrix.reshape(*matrix.shape[:-2], num_classes, top_k, num_classes, top_k).mean(dim=(-3, -1))
    return blocks, (blocks + blocks.transpose(-1, -2)) / 2


def read_adjacency(
    adjacency: torch.Tensor, schema: LabelSchema, draws: int = 2000, seed: int = 0, quantile: float = RANDOM_QUANTILE
) -> AdjacencyReading:
    """Fig. 7 read by class pair (``AdjacencyReading``), with ``draws`` random initialisations of A (seeded) as the
    yardstick of what a pair's mean weight is without any training."""
    matrix = adjacency.detach().float().cpu()
    vertices = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] != vertices or vertices % schema.num_classes:
        raise ValueError(f"adjacency: expected V x V, V a multiple of {schema.num_classes}; got {tuple(matrix.shape)}")
    blocks, pairs = _pair_means(matrix, schema.num_classes)
    off = ~torch.eye(schema.num_classes, dtype=torch.bool)
    upper = torch.triu(off, diagonal=1)
    values = pairs[upper]
    rows, cols = upper.nonzero(as_tuple=True)
    high, low = int(values.argmax()), int(values.argmin())
    bound = 1 / math.sqrt(vertices)  # nn.Linear's default initialisation, which GraphReasoning keeps
    generator = torch.Generator().manual_seed(seed)
    random = (torch.rand(draws, vertices, vertices, generator=generator) * 2 - 1) * bound
    random_pairs = _pair_means(random, schema.num_classes)[1][:, upper].abs().amax(dim=1)
    return AdjacencyReading(
        blocks=blocks,
        pairs=pairs,
        strongest=(int(rows[high]), int(cols[high]), float(values[high])),
        weakest=(int(rows[low]), int(cols[low]), float(values[low])),
        random_limit=float(random_pairs.quantile(quantile)),
        std=float(matrix.std()),
        random_std=bound / math.sqrt(3),
        draws=draws,
        quantile=quantile,
    )


def boundary_band(label: torch.Tensor, radius: int = 0, ignore_index: int = 255) -> torch.Tensor:
    """Pixels within ``radius`` pixels (Chebyshev distance) of a boundary between two labels (``label_edges``):
    bool, the label's shape (H x W). ``radius=0`` gives the edge pixels themselves."""
    edges = label_edges(label.detach().cpu().long(), ignore_index)
    if radius <= 0:
        return edges
    grown = F.max_pool2d(edges[None, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].bool()


def boundary_distance(label: torch.Tensor, ignore_index: int = 255, image_border: bool = False) -> torch.Tensor:
    """Each pixel's Chebyshev distance in pixels to the nearest boundary pixel (``label_edges``; with
    ``image_border`` the outermost rows and columns count as boundary too): int64 H x W; the largest possible
    distance plus one everywhere when the map has no boundary."""
    edges = label_edges(label.detach().cpu().long(), ignore_index)
    if image_border:
        edges[..., [0, -1], :] = True
        edges[..., :, [0, -1]] = True
    distance = torch.full(edges.shape, max(edges.shape) + 1, dtype=torch.long)
    reached, step = edges.clone(), 0
    distance[reached] = 0
    while reached.any() and not reached.all():
        step += 1
        grown = F.max_pool2d(reached[None, None].float(), 3, stride=1, padding=1)[0, 0].bool()
        distance[grown & ~reached] = step
        reached = grown
    return distance


def edge_and_interior_pixels(
    output: AGRNetOutput, label: torch.Tensor, schema: LabelSchema, index: int = 0
) -> tuple[int, int]:
    """Two pixels of the 1/4 map (flat indices into H1 * W1, as P's columns) for Fig. 11, chosen from the face's
    ground truth ``label`` (any size, read with ``label_at_grid``): the **edge pixel**, on a boundary between two
    face components (two classes other than the background and ``ignore_index``) where the predicted edge map E
    is highest (the first such pixel without E); the **interior pixel**, the pixel of a face component farthest
    from any boundary and from the image's border. ValueError when the face has no such boundary."""
    grid_label = label_at_grid(label.detach().cpu().long(), feature_size(output, tuple(label.shape[-2:])))
    face = (grid_label != 0) & (grid_label != schema.ignore_index)
    between = torch.zeros_like(face)
    for shift, dim in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        neighbour = grid_label.roll(shift, dims=dim)
        other = face.roll(shift, dims=dim) & (neighbour != grid_label)
        edge_of_image = torch.zeros_like(face)  # roll wraps around: the wrapped row or column is no neighbour
        edge_of_image.select(dim, 0 if shift == 1 else -1).fill_(True)
        between |= face & other & ~edge_of_image
    if not between.any():
        raise ValueError("label: no boundary between two face components (classes other than the background)")
    if output.edge_logits is not None:
        edge = _one(output.edge_logits, index, "edge_logits").flatten()
        edge_pixel = int(edge.masked_fill(~between.flatten(), -math.inf).argmax())
    else:
        edge_pixel = int(between.flatten().nonzero()[0])
    distance = boundary_distance(grid_label, schema.ignore_index, image_border=True).masked_fill(~face, -1)
    return edge_pixel, int(distance.flatten().argmax())


@_book_styled
def pixel_projection_figure(
    image: ImageLike, output: AGRNetOutput, schema: LabelSchema, pixels: Mapping[str, int], index: int = 0
) -> Figure:
    """Fig. 11 pixel by pixel: for each of ``pixels`` (title -> flat index into the H1 x W1 map, e.g. from
    ``edge_and_interior_pixels``), which vertices it draws from, i.e. its column of P (Eq. 5).

    One row per pixel: on the left the face with the pixel marked (a white cross) and every vertex drawn at its
    cell, its area growing with the pixel's weight on it (class colours); on the right the column of P as bars
    over the V vertices, grouped by class, with the uniform weight 1/V dashed. A pixel whose edge-masked
    features Xe are near zero (an interior pixel, E near 0) gets about 1/V from every vertex.
    """
    projection = _one(output.projection, index, "projection")
    picture = _image_array(image)
    height, width = picture.shape[:2]
    rows_1, cols_1 = feature_size(output, (height, width))
    vertices = projection.shape[0]
    top_k = vertices // schema.num_classes
    classes = torch.arange(schema.num_classes).repeat_interleave(top_k)
    colours = class_colours(schema)
    x, y = vertex_positions(output, (height, width), index)
    edge = None if output.edge_logits is None else torch.sigmoid(_one(output.edge_logits, index, "edge_logits"))
    face_width = BOOK_WIDTH / 3.6
    figure = _figure(height=len(pixels) * (face_width * height / width + 0.45) + 0.3)
    axes = np.atleast_2d(figure.subplots(len(pixels), 2, width_ratios=(1, 2.6)))
    for (face_ax, bar_ax), (title, pixel) in zip(axes, pixels.items(), strict=True):
        weights = projection[:, pixel]
        face_ax.imshow(picture)
        face_ax.scatter(x, y, s=8 + 300 * weights, c=colours[classes], edgecolors="black", linewidths=0.6)
        row, col = divmod(int(pixel), cols_1)
        face_ax.scatter([(col + 0.5) * width / cols_1], [(row + 0.5) * height / rows_1], marker="X", s=140,
                        c="white", edgecolors="black", linewidths=1.2, zorder=3)  # fmt: skip
        face_ax.set_axis_off()
        face_ax.set_title(title if edge is None else f"{title}\nE = {float(edge.flatten()[pixel]):.2f}")
        bar_ax.bar(np.arange(vertices), weights.numpy(), width=0.85, color=colours[classes], edgecolor="0.3",
                   linewidth=0.4)  # fmt: skip
        bar_ax.axhline(1 / vertices, color="0.3", linestyle="--", linewidth=1, label="uniform, 1/V")
        for boundary in np.arange(1, schema.num_classes) * top_k - 0.5:
            bar_ax.axvline(boundary, color="0.8", linewidth=0.6)
        centres = np.arange(schema.num_classes) * top_k + (top_k - 1) / 2
        bar_ax.set_xticks(centres, schema.classes, rotation=45 if schema.num_classes > 6 else 0,
                          ha="right" if schema.num_classes > 6 else "center")  # fmt: skip
        bar_ax.set_xlim(-0.5, vertices - 0.5)
        bar_ax.set_ylim(0, max(float(weights.max()) * 1.1, 2 / vertices))
        bar_ax.set_ylabel("weight in P")
        effective = float(torch.exp(-(weights * weights.clamp_min(1e-30).log()).sum()))
        bar_ax.set_title(f"its column of P: about {effective:.1f} of {vertices} vertices")
        bar_ax.legend(loc="upper right")
    axes[-1, 1].set_xlabel(f"vertex ({top_k} per class, class-major)")
    return figure


# The preliminary map Z0 against the final Y, example predictions and their errors -------------------------------


def raw_and_final(output: AGRNetOutput, size: tuple[int, int], index: int = 0) -> dict[str, torch.Tensor]:
    """The label maps of the preliminary map Z0 (Eq. 3) and of the final Y (Eq. 7) at ``size`` (H, W, e.g. the
    ground truth's): their logits resized bilinearly, then the argmax, as ``agrnet.evaluate`` scores Y."""
    maps = {"Z0": _one(output.raw_logits, index, "raw_logits"), "Y": _one(output.logits, index, "logits")}
    return {
        name: F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False).argmax(1)[0]
        for name, logits in maps.items()
    }


def raw_and_final_scores(
    output: AGRNetOutput,
    label: torch.Tensor,
    schema: LabelSchema,
    index: int = 0,
    into: dict[str, ConfusionMatrix] | None = None,
) -> dict[str, ConfusionMatrix]:
    """A ``ConfusionMatrix`` each for Z0 and Y (``raw_and_final``) against the ground truth ``label`` (H x W), at
    the label's size. With ``into`` (an earlier result) this face is added to those matrices, which pools faces:
    ``scores = raw_and_final_scores(output, label, schema, into=scores)``."""
    scores = into if into is not None else {}
    for name, predicted in raw_and_final(output, (int(label.shape[-2]), int(label.shape[-1])), index).items():
        scores.setdefault(name, ConfusionMatrix(schema.num_classes, schema.ignore_index))
        scores[name].update(predicted, label.detach().cpu())
    return scores


def _scores_line(matrix: ConfusionMatrix) -> str:
    return f"accuracy {100 * matrix.pixel_accuracy():.1f} %\nmean F1 {100 * matrix.mean_f1():.1f} %"


@_book_styled
def raw_and_final_figure(
    image: ImageLike, label: torch.Tensor, output: AGRNetOutput, schema: LabelSchema, index: int = 0
) -> Figure:
    """Z0 against Y on one face: the ground truth, the preliminary map Z0 (Eq. 3, upsampled) and the final map Y
    (Eq. 7), each tinted over the image with its pixel accuracy and mean F1 on this face; and where Y changed
    Z0's label, white where that fixed a pixel, magenta where it broke one, on a dark grey copy of the image."""
    picture = as_image_tensor(image)
    label = label.detach().cpu().long()
    maps = raw_and_final(output, (int(label.shape[-2]), int(label.shape[-1])), index)
    scores = raw_and_final_scores(output, label, schema, index)
    valid = label != schema.ignore_index
    fixed = (maps["Z0"] != label) & (maps["Y"] == label) & valid
    broken = (maps["Z0"] == label) & (maps["Y"] != label) & valid
    changes = picture.mean(0, keepdim=True).expand(3, -1, -1).clone() * 0.5 + 0.1
    changes[:, fixed] = 1.0
    changes[:, broken] = torch.tensor([1.0, 0.0, 1.0])[:, None]
    height, width = label.shape
    figure = _figure(height=BOOK_WIDTH / 4 * height / width + 1.4)
    axes = figure.subplots(1, 4)
    panels = [
        ("ground truth\n", blend(picture, label, schema)),
        (f"Z0 (Eq. 3)\n{_scores_line(scores['Z0'])}", blend(picture, maps["Z0"], schema)),
        (f"Y (Eq. 7)\n{_scores_line(scores['Y'])}", blend(picture, maps["Y"], schema)),
        (f"Y against Z0: fixed {int(fixed.sum())} px\n(white), broke {int(broken.sum())} (magenta)", changes),
    ]
    for ax, (title, panel) in zip(axes, panels, strict=True):
        ax.imshow(panel.permute(1, 2, 0).numpy())
        ax.set_title(title)
        ax.set_axis_off()
    present = sorted(set(label.unique().tolist()) - {schema.ignore_index})
    figure.legend(handles=legend_handles(schema, present), loc="outside lower center", ncols=6, frameon=False)
    return figure


def wrong_pixels(image: ImageLike, prediction: torch.Tensor, label: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """A grey copy of the image with the wrongly labelled pixels in red: float 3 x H x W in [0, 1]."""
    picture = as_image_tensor(image)
    wrong = (prediction.cpu() != label.cpu()) & (label.cpu() != schema.ignore_index)
    errors = picture.mean(0, keepdim=True).expand(3, -1, -1).clone()
    errors[:, wrong] = torch.tensor([1.0, 0.0, 0.0])[:, None]
    return errors


@_book_styled
def predictions_figure(
    rows: Sequence[tuple[str, ImageLike, torch.Tensor, torch.Tensor]], schema: LabelSchema, errors: bool = False
) -> Figure:
    """Example predictions: one row per (title, image, ground truth, prediction), the maps at the image's size:
    the photograph, the ground truth and the prediction tinted over it, and with ``errors`` the wrong pixels in red
    on a grey copy (with their share). The title names the row on the left, the columns are named above the first
    row; one legend below."""
    if not rows:
        raise ValueError("rows: nothing to draw")
    columns = 4 if errors else 3
    aspect = max(label.shape[-2] / label.shape[-1] for _, _, label, _ in rows)
    figure = _figure(height=len(rows) * (BOOK_WIDTH / columns * aspect + 0.3) + 0.6)
    axes = np.atleast_2d(figure.subplots(len(rows), columns))
    present: set[int] = set()
    for number, (row, (title, image, label, prediction)) in enumerate(zip(axes, rows, strict=True)):
        picture = as_image_tensor(image)
        label, prediction = label.detach().cpu().long(), prediction.detach().cpu().long()
        panels = [("photograph", picture), ("ground truth", blend(picture, label, schema)),
                  ("prediction", blend(picture, prediction, schema))]  # fmt: skip
        if errors:
            valid = label != schema.ignore_index
            share = float(((prediction != label) & valid).sum() / valid.sum().clamp_min(1))
            panels.append((f"wrong ({100 * share:.1f} %)", wrong_pixels(picture, prediction, label, schema)))
        for ax, (name, panel) in zip(row, panels, strict=True):
            ax.imshow(panel.permute(1, 2, 0).numpy())
            if number == 0 or name.startswith("wrong"):
                ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(title)
        present |= set(label.unique().tolist()) - {schema.ignore_index}
    figure.legend(handles=legend_handles(schema, sorted(present)), loc="outside lower center", ncols=6, frameon=False)
    return figure


@dataclass(frozen=True)
class ErrorBreakdown:
    """Where a model's wrong pixels are, class by class (``error_breakdown``): Nc-long int64 counts of each ground-
    truth class's labelled pixels (``pixels``), of those mislabelled (``wrong``), of those within ``radius`` pixels
    of a boundary (``near``) and of the mislabelled ones there (``wrong_near``); ``confusion`` is the Nc x Nc
    confusion matrix (rows ground truth)."""

    pixels: torch.Tensor
    wrong: torch.Tensor
    near: torch.Tensor
    wrong_near: torch.Tensor
    confusion: torch.Tensor
    radius: int

    @property
    def error_rate(self) -> torch.Tensor:
        """Per class, the share of its pixels that are mislabelled (NaN for a class without pixels)."""
        return self.wrong.double() / self.pixels.double()

    @property
    def errors_near_boundary(self) -> float:
        """The share of all wrong pixels that lie within ``radius`` of a boundary."""
        return float(self.wrong_near.sum() / self.wrong.sum().clamp_min(1))

    @property
    def pixels_near_boundary(self) -> float:
        """The share of all labelled pixels that lie within ``radius`` of a boundary."""
        return float(self.near.sum() / self.pixels.sum().clamp_min(1))


def error_breakdown(
    predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], schema: LabelSchema, radius: int = 2
) -> ErrorBreakdown:
    """Count, over faces (predictions and ground truths of the same sizes), each class's pixels, its wrong pixels
    and how many of each lie within ``radius`` pixels of a boundary between two labels (``boundary_band``)."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"expected as many predictions as labels, at least one; got {len(predictions)}, {len(labels)}")
    keys = ("pixels", "wrong", "near", "wrong_near")
    counts = {key: torch.zeros(schema.num_classes, dtype=torch.long) for key in keys}
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    for prediction, label in zip(predictions, labels, strict=True):
        prediction, label = prediction.detach().cpu().long(), label.detach().cpu().long()
        if prediction.shape != label.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in size")
        valid = label != schema.ignore_index
        wrong = (prediction != label) & valid
        near = boundary_band(label, radius, schema.ignore_index) & valid
        for key, mask in (("pixels", valid), ("wrong", wrong), ("near", near), ("wrong_near", wrong & near)):
            counts[key] += torch.bincount(label[mask], minlength=schema.num_classes)[: schema.num_classes]
        confusion.update(prediction, label)
    return ErrorBreakdown(**counts, confusion=confusion.matrix.clone(), radius=radius)


@_book_styled
def class_errors_figure(breakdown: ErrorBreakdown, schema: LabelSchema) -> Figure:
    """Per-class errors (``error_breakdown``): (a) the share of each class's pixels that are mislabelled, split
    into those within ``radius`` pixels of a boundary (hatched) and farther; (b) each class's share of all
    labelled pixels, which shows how unbalanced the classes are."""
    figure = _figure(height=BOOK_WIDTH * 0.45)
    rate_ax, share_ax = figure.subplots(1, 2)
    positions = np.arange(schema.num_classes)
    colours = class_colours(schema)
    total = breakdown.pixels.double().clamp_min(1)
    near = (100 * breakdown.wrong_near.double() / total).numpy()
    far = (100 * (breakdown.wrong - breakdown.wrong_near).double() / total).numpy()
    rate_ax.bar(positions, near, color=colours, edgecolor="0.2", hatch="///", linewidth=0.6)
    rate_ax.bar(positions, far, bottom=near, color=colours, edgecolor="0.2", linewidth=0.6)
    rate_ax.set_ylabel("wrong pixels (% of the class)")
    rate_ax.set_title("(a) errors per ground-truth class")
    handles = [
        Patch(facecolor="white", edgecolor="0.2", hatch="///", label=f"within {breakdown.radius} px of a boundary"),
        Patch(facecolor="white", edgecolor="0.2", label="farther from any boundary"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    share = (100 * breakdown.pixels.double() / breakdown.pixels.sum().clamp_min(1)).numpy()
    share_ax.bar(positions, share, color=colours, edgecolor="0.2", linewidth=0.6)
    share_ax.set_ylabel("% of all labelled pixels")
    share_ax.set_title("(b) size of each class")
    for ax in (rate_ax, share_ax):
        ax.set_xticks(positions, schema.classes, rotation=45, ha="right")
    return figure


# The graph chapters' model ----------------------------------------------------------------------------------------

#: The shipped weights the graph chapters picture, on FASSEG's frontal02 test faces when those are there.
FASSEG_WEIGHTS = "fasseg-resnet18"
#: The shipped weights the graph chapters picture on synthetic faces (LaPa's classes) otherwise.
SYNTHETIC_WEIGHTS = "synthetic-resnet18"
#: The architecture of the random-weights stand-in when no trained weights fit: that of the shipped ResNet-18s.
UNTRAINED_CONFIG: dict[str, Any] = {"backbone": "resnet18", "channels": 64, "top_k": 4, "output_stride": 16}


@dataclass
class ChapterModel:
    """The model and the faces a graph chapter of the book pictures (made by ``chapter_model``).

    ``predictor`` runs the model (``predictor.explain(face["image"])`` for every field of ``AGRNetOutput``);
    ``weights`` is its registry entry, None for random weights (then ``trained`` is False and ``warning_html``
    says so); ``dataset`` holds the faces at their original size with their ground truth, ``images`` says which
    in words, and ``note`` why these weights (and not others) were chosen.
    """

    predictor: Predictor
    weights: ModelWeights | None
    dataset: ParsingDataset
    images: str
    note: str = ""

    @property
    def schema(self) -> LabelSchema:
        """The label schema the model predicts (that of the faces too)."""
        return self.predictor.schema

    @property
    def trained(self) -> bool:
        """Whether the weights are trained ones from the registry (not a random initialisation)."""
        return self.weights is not None

    @property
    def name(self) -> str:
        """The weights' registry name, or ``"random weights"``."""
        return self.weights.name if self.weights is not None else "random weights"

    def faces(self, count: int | None = None) -> list[Sample]:
        """The first ``count`` faces (all without it): dicts with ``image``, ``label``, ``edge``, ``name``."""
        count = len(self.dataset) if count is None else min(count, len(self.dataset))
        return [self.dataset[index] for index in range(count)]

    def describe(self, faces: int | Sequence[int] | None = None) -> str:
        """The weights and faces in words, e.g. ``fasseg-resnet18 on FASSEG frontal02 test faces 1-4``, a line
        for above a figure whose caption names them generically. ``faces`` is a number of first faces (all
        without it) or the indices of the faces shown; the text numbers them from 1."""
        count = len(self.dataset) if faces is None else faces
        indices = list(range(min(count, len(self.dataset)))) if isinstance(count, int) else list(count)
        return f"{self.name} on {self.images} {numbered_faces(indices)}"

    def summary(self) -> str:
        """One Markdown line: the weights, their registry score, architecture and input size, and the faces."""
        config = self.predictor.model.config
        architecture = (
            f"AGRNet({config['backbone']}, C = {config['channels']}, K = {config['top_k']}, output stride "
            f"{config['output_stride']}) at {self.predictor.size[0]} px"
        )
        faces = f"**Images:** {self.images}, {len(self.dataset)} faces."
        if self.weights is None:
            return f"**Weights:** none trained, random weights. {architecture}. {faces}"
        metrics = self.weights.metrics
        score = metrics.get("mean_f1")
        measured = (
            f"mean F1 {100 * score:.1f} % on the `{metrics.get('split')}` split of `{metrics.get('dataset')}`"
            if score is not None
            else "no score recorded"
        )
        steps = f"{self.weights.step} training step{'' if self.weights.step == 1 else 's'}"
        return f"**Weights:** `{self.weights.name}`, {measured} (registry metadata, {steps}). {architecture}. {faces}"

    def warning_html(self) -> str | None:
        """A warning box (the book theme's admonition markup) saying that the pictures show an untrained network
        and why; None for trained weights."""
        if self.weights is not None:
            return None
        return (
            '<div class="admonition warning"><p class="admonition-title">Warning: an untrained network</p>'
            "<p>No trained weights were found, so the pictures and numbers below come from <b>random weights</b>: "
            "the shapes and the mechanics are right, but the vertices, the adjacency, the response maps and the "
            f"parsing mean nothing. {self.note} <code>agrnet weights list</code> shows the installed weights."
            "</p></div>"
        )


def numbered_faces(indices: Sequence[int]) -> str:
    """Face indices (from 0) in words, numbered from 1: ``face 3``, ``faces 1-4``, ``faces 1, 7, 12``."""
    if not indices:
        raise ValueError("indices: no faces")
    numbers = [index + 1 for index in indices]
    if len(numbers) == 1:
        return f"face {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"faces {numbers[0]}-{numbers[-1]}"
    return "faces " + ", ".join(map(str, numbers))


def _registry(directory: str | os.PathLike[str] | None) -> dict[str, ModelWeights]:
    try:
        return available(directory)
    except FileNotFoundError:
        return {}


def _fasseg_test(data_root: str | os.PathLike[str] | None) -> FASSEG | None:
    if data_root is None or not Path(data_root).is_dir():
        return None
    try:
        dataset = FASSEG(data_root, "test")
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return dataset if len(dataset) else None


def chapter_model(
    data_root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    directory: str | os.PathLike[str] | None = None,
    num_synthetic: int = 50,
    seed: int = 0,
) -> ChapterModel:
    """The model and faces of a graph chapter: the trained ``FASSEG_WEIGHTS`` on FASSEG's frontal02 test faces
    when ``data_root`` holds FASSEG and the registry (``directory``, else ``$AGRNET_WEIGHTS_DIR``, else the
    package's) has them; else the trained ``SYNTHETIC_WEIGHTS`` on ``num_synthetic`` synthetic test faces; else
    random weights (``UNTRAINED_CONFIG``, drawn under ``seed`` without touching the global generator) on the
    FASSEG faces when they are there, synthetic ones otherwise, and ``ChapterModel.warning_html`` says so.

    Every model runs at the input size its weights were trained at (256 px on FASSEG, 128 px on synthetic faces
    for random weights).
    """
    entries = _registry(directory)
    fasseg = _fasseg_test(data_root)
    folder = weights_dir(directory)
    if fasseg is not None and FASSEG_WEIGHTS in entries:
        entry = entries[FASSEG_WEIGHTS]
        model, schema = entry.load()
        predictor = Predictor(model, schema, device=device, size=entry.input_size)
        return ChapterModel(predictor, entry, fasseg, "FASSEG frontal02 test", f"FASSEG found at {data_root}.")
    if SYNTHETIC_WEIGHTS in entries:
        entry = entries[SYNTHETIC_WEIGHTS]
        model, schema = entry.load()
        predictor = Predictor(model, schema, device=device, size=entry.input_size)
        faces = SyntheticFaces(num_synthetic, size=entry.input_size, split="test")
        why = "FASSEG is not at DATA_ROOT" if fasseg is None else f"{FASSEG_WEIGHTS} is not in {folder}"
        return ChapterModel(predictor, entry, faces, "synthetic test", f"{why}, so synthetic faces.")
    if fasseg is not None:
        schema, size, dataset, images = FASSEG_SCHEMA, 256, fasseg, "FASSEG frontal02 test"
    else:
        schema, size, images = LAPA, 128, "synthetic test"
        dataset = SyntheticFaces(num_synthetic, size=size, split="test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AGRNet(schema.num_classes, **UNTRAINED_CONFIG)
    wanted = f"{FASSEG_WEIGHTS} (with FASSEG at DATA_ROOT) or {SYNTHETIC_WEIGHTS}"
    found = ", ".join(entries) or "none"
    note = f"Looked for {wanted} in the weights folder {folder}; found: {found}."
    return ChapterModel(Predictor(model.eval(), schema, device=device, size=size), None, dataset, images, note)
