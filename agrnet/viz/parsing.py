"""Figures of label maps: label maps side by side, a face tinted with its labels (one or several), the preliminary
map Z0 against the final Y, and example predictions with their errors (Fig. 10)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from agrnet.analysis import image_scores, raw_and_final, raw_and_final_scores
from agrnet.data.labels import LabelSchema
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNetOutput
from agrnet.predict import ImageLike, as_image_tensor, blend
from agrnet.viz.style import BOOK_WIDTH, book_figure, book_styled, legend_handles


@book_styled
def label_maps_figure(
    panels: Sequence[tuple[str, torch.Tensor]], schema: LabelSchema, legend: Sequence[int], height: float
) -> Figure:
    """Label maps in their class colours side by side, each under its title, ``height`` inches tall, with a legend
    of the classes ``legend`` on the right."""
    figure = book_figure(height=height)
    for ax, (title, picture) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        ax.imshow(schema.colorize(picture).permute(1, 2, 0))
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.legend(handles=legend_handles(schema, legend), loc="outside right center", frameon=False)
    return figure


@book_styled
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
    figure = book_figure(height=BOOK_WIDTH * 0.45 * height / width + 0.6)
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


@book_styled
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
    figure = book_figure(height=rows * BOOK_WIDTH / (2 * per_row) * aspect + 0.9)
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


def _scores_line(matrix: ConfusionMatrix) -> str:
    return f"accuracy {100 * matrix.pixel_accuracy():.1f} %\nmean F1 {100 * matrix.mean_f1():.1f} %"


@book_styled
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
    figure = book_figure(height=BOOK_WIDTH / 4 * height / width + 1.4)
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


def _grey_with(image: ImageLike, marks: Sequence[tuple[torch.Tensor, Sequence[float]]]) -> torch.Tensor:
    """A grey copy of the image (float 3 x H x W in [0, 1]) with the pixels of each mask of ``marks`` painted in
    its RGB colour, in order."""
    picture = as_image_tensor(image)
    grey = picture.mean(0, keepdim=True).expand(3, -1, -1).clone()
    for mask, colour in marks:
        grey[:, mask] = torch.tensor(colour, dtype=grey.dtype)[:, None]
    return grey


def wrong_pixels(image: ImageLike, prediction: torch.Tensor, label: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """A grey copy of the image with the wrongly labelled pixels in red: float 3 x H x W in [0, 1]."""
    wrong = (prediction.cpu() != label.cpu()) & (label.cpu() != schema.ignore_index)
    return _grey_with(image, [(wrong, (1.0, 0.0, 0.0))])


@book_styled
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
    figure = book_figure(height=len(rows) * (BOOK_WIDTH / columns * aspect + 0.3) + 0.6)
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


WRONG_COLOURS = {"baseline only": (1.0, 0.55, 0.0), "AGRNet only": (0.55, 0.0, 1.0), "both": (0.0, 0.0, 0.0)}
"""The colours of ``paired_errors``: pixels only the baseline gets wrong, only AGRNet gets wrong, both get wrong."""


def paired_errors(image: ImageLike, baseline: torch.Tensor, agrnet: torch.Tensor, label: torch.Tensor,
                  schema: LabelSchema) -> torch.Tensor:  # fmt: skip
    """A grey copy of the image with the pixels that the baseline, AGRNet or both label wrongly in the colours of
    ``WRONG_COLOURS``: float 3 x H x W in [0, 1]."""
    label = label.cpu()
    valid = label != schema.ignore_index
    wrong_baseline, wrong_agrnet = (baseline.cpu() != label) & valid, (agrnet.cpu() != label) & valid
    masks = (wrong_baseline & ~wrong_agrnet, wrong_agrnet & ~wrong_baseline, wrong_baseline & wrong_agrnet)
    return _grey_with(image, list(zip(masks, WRONG_COLOURS.values(), strict=True)))


@book_styled
def baseline_and_agrnet_figure(
    rows: Sequence[tuple[str, ImageLike, torch.Tensor, torch.Tensor, torch.Tensor]], schema: LabelSchema
) -> Figure:
    """The paper's Fig. 5: one row per (title, image, ground truth, baseline's prediction, AGRNet's prediction),
    the maps tinted over the face, each prediction titled with its mean F1 on that face, and the wrong pixels of
    each model on a grey copy (``paired_errors``); the class legend and the error colours below."""
    if not rows:
        raise ValueError("rows: nothing to draw")
    aspect = max(label.shape[-2] / label.shape[-1] for _, _, label, _, _ in rows)
    figure = book_figure(height=len(rows) * (BOOK_WIDTH / 4 * aspect + 0.45) + 0.8)
    axes = np.atleast_2d(figure.subplots(len(rows), 4))
    present: set[int] = set()
    for number, (row, (title, image, label, baseline, agrnet)) in enumerate(zip(axes, rows, strict=True)):
        picture = as_image_tensor(image)
        label, baseline, agrnet = (t.detach().cpu().long() for t in (label, baseline, agrnet))
        scores = image_scores([baseline, agrnet], [label, label], schema).tolist()
        panels = [("ground truth", blend(picture, label, schema)),
                  (f"baseline {100 * scores[0]:.1f}", blend(picture, baseline, schema)),
                  (f"AGRNet {100 * scores[1]:.1f}", blend(picture, agrnet, schema)),
                  ("wrong", paired_errors(picture, baseline, agrnet, label, schema))]  # fmt: skip
        for column, (ax, (name, panel)) in enumerate(zip(row, panels, strict=True)):
            ax.imshow(panel.permute(1, 2, 0).numpy())
            ax.set_title(name if number == 0 or column in (1, 2) else "")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(title)
        present |= set(label.unique().tolist()) - {schema.ignore_index}
    handles = legend_handles(schema, sorted(present))
    handles += [Patch(color=colour, label=f"wrong: {name}") for name, colour in WRONG_COLOURS.items()]
    figure.legend(handles=handles, loc="outside lower center", ncols=5, frameon=False)
    return figure
