"""Figures of the data: synthetic faces above their label maps, the edge ground truth of a label map up close, what
a horizontal flip does to left and right, and random draws of the training augmentation. The faces are LaPa's
classes (synthetic faces), whose left eye is id 4 and right eye id 5, unless a figure takes a schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torchvision.transforms.v2 import functional as TF

from agrnet.data.base import Sample
from agrnet.data.edges import label_edges
from agrnet.data.labels import LAPA, LabelSchema
from agrnet.data.synthetic import SyntheticFaces
from agrnet.predict import blend
from agrnet.viz.style import BOOK_WIDTH, book_figure, book_styled, legend_handles

LEFT_EYE, RIGHT_EYE = 4, 5
"""LaPa's ids of the subject's left and right eye."""


@book_styled
def synthetic_faces_figure(faces: SyntheticFaces) -> Figure:
    """Every face of ``faces``, each above its label map, up to 6 in a row, with a legend of LaPa's classes."""
    count = len(faces)
    columns = min(count, 6)
    rows = 2 * -(-count // columns)  # an image row and a label row per group of faces
    side = BOOK_WIDTH / columns
    figure = book_figure(height=side * rows + 1.2)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for index in range(count):
        face = faces[index]
        top, column = 2 * (index // columns), index % columns
        axes[top, column].imshow(face["image"].permute(1, 2, 0))
        axes[top, column].set_title(f"face {index}")
        axes[top + 1, column].imshow(LAPA.colorize(face["label"]).permute(1, 2, 0))
    figure.legend(handles=legend_handles(LAPA, range(LAPA.num_classes)), loc="outside lower center", ncols=4,
                  frameon=False)  # fmt: skip
    height, width = faces.size
    figure.suptitle(f"{count} synthetic faces ({height} × {width}, seed {faces.seed}), each above its label map")
    return figure


@book_styled
def edge_closeup_figure(label: torch.Tensor) -> Figure:
    """A LaPa label map (square), its edge pixels (``label_edges``) and a close-up of the subject's left eye and
    brow where each square is one pixel and the dots mark the edge pixels."""
    edge = label_edges(label)
    rows, columns = torch.nonzero(label == LEFT_EYE, as_tuple=True)
    centre_y, centre_x = int(rows.float().mean()), int(columns.float().mean())
    half = max(6, label.shape[-1] // 16)
    top, left = max(centre_y - half, 0), max(centre_x - half, 0)
    crop = (slice(top, top + 2 * half), slice(left, left + 2 * half))
    figure = book_figure(height=3.3)
    axes = figure.subplots(1, 3)
    axes[0].imshow(LAPA.colorize(label).permute(1, 2, 0))
    axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), 2 * half, 2 * half, fill=False, edgecolor="white"))
    axes[0].set_title("label map\n(white box: close-up)")
    axes[1].imshow(edge, cmap="gray_r")
    axes[1].set_title(f"edge pixels\n({edge.float().mean():.1%} of the image)")
    crop_height, crop_width = label[crop].shape
    extent = (left - 0.5, left + crop_width - 0.5, top + crop_height - 0.5, top - 0.5)
    axes[2].imshow(LAPA.colorize(label[crop]).permute(1, 2, 0), extent=extent)
    edge_y, edge_x = torch.nonzero(edge[crop], as_tuple=True)
    axes[2].scatter(edge_x + left, edge_y + top, s=6, color="black", label="edge pixel")
    axes[2].set_title("close-up:\nleft eye and brow")
    for ax in axes:
        ax.set_xlabel("x (pixels)")
    axes[0].set_ylabel("y (pixels)")
    present = sorted(set(label[crop].unique().tolist()))
    handles = [*legend_handles(LAPA, present), *axes[2].get_legend_handles_labels()[0]]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)
    return figure


@book_styled
def flip_figure(image: torch.Tensor, label: torch.Tensor) -> Figure:
    """A LaPa face three times with its eyes' ids marked: as drawn, mirrored in its pixels only (the names stay on
    the wrong eyes), and mirrored and relabelled with ``mirror_ids`` (the names follow the eyes)."""
    flipped_image, flipped_label = TF.horizontal_flip(image), TF.horizontal_flip(label)
    versions = [
        ("original", image, label),
        ("pixels flipped only:\nwrong", flipped_image, flipped_label),
        ("flipped + mirror_ids:\nright", flipped_image, LAPA.mirror_ids(flipped_label)),
    ]
    figure = book_figure(height=3.1)
    for ax, (title, picture, labels) in zip(figure.subplots(1, 3), versions, strict=True):
        ax.imshow(blend(picture, labels, LAPA, alpha=0.6).permute(1, 2, 0))
        for class_id in (LEFT_EYE, RIGHT_EYE):
            y, x = torch.nonzero(labels == class_id, as_tuple=True)
            centre = (float(x.float().mean()), float(y.float().mean()))
            side = 0.8 if centre[0] > labels.shape[-1] / 2 else 0.2  # on the eye's side
            ax.annotate(f"id {class_id}", centre, xytext=(side, 0.08), textcoords="axes fraction", ha="center",
                        arrowprops={"arrowstyle": "->", "color": "black"},
                        bbox={"facecolor": LAPA.palette[class_id] / 255, "edgecolor": "black", "pad": 2})  # fmt: skip
        ax.set_title(title)
        ax.set_axis_off()
    figure.legend(handles=legend_handles(LAPA, [2, 3, 4, 5]), loc="outside lower center", ncols=4, frameon=False)
    return figure


@book_styled
def augmentations_figure(
    face: Sample,
    augment: Callable[[Sample], Sample],
    draws: int = 6,
    schema: LabelSchema = LAPA,
    legend: Sequence[int] = (2, 3, 4, 5),
) -> Figure:
    """``draws`` draws of the augmentation ``augment`` of a ``face`` of ``schema``, one per column: the image, its
    label and its edge ground truth; the legend names the classes ``legend``. The draws come from torch's global
    generator."""
    figure = book_figure(height=4.3)
    axes = figure.subplots(3, draws)
    for column in range(draws):
        drawn = augment(face)
        axes[0, column].imshow(drawn["image"].permute(1, 2, 0).clamp(0, 1))
        axes[1, column].imshow(schema.colorize(drawn["label"]).permute(1, 2, 0))
        axes[2, column].imshow(drawn["edge"], cmap="gray_r")
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[:, 0], ("image", "label", "edge"), strict=True):
        ax.set_ylabel(name)
    figure.legend(
        handles=legend_handles(schema, legend), loc="outside lower center", ncols=len(legend), frameon=False
    )
    return figure
