"""Figures of the graph: the selected vertices (Fig. 8, on one face or several, and against the spatial projection's
grid), the learned adjacency A (Fig. 7), what the reasoning of Eq. (4) does to the vertices, the response maps of
the projection P (Fig. 11) and P's column for single pixels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from agrnet.analysis import cell_centres, feature_size, output_item, response_maps, vertex_positions
from agrnet.data.base import Sample
from agrnet.data.labels import LabelSchema
from agrnet.model import AGRNetOutput
from agrnet.model.graph import grid_shape
from agrnet.predict import ImageLike, as_image_tensor
from agrnet.viz.style import BOOK_WIDTH, book_figure, book_styled, class_colours, image_array, legend_handles


@book_styled
def vertices_figure(
    image: ImageLike, output: AGRNetOutput, schema: LabelSchema, index: int = 0, skip_background: bool = True
) -> Figure:
    """Fig. 8: the K vertices of each class (``vertex_index`` into H1 x W1) drawn on the model's input image.

    ``image`` is the image the model saw (e.g. the first item of ``Predictor.explain``); vertex (row, col) of the
    H1 x W1 map is drawn at the centre of its cell in image coordinates, coloured by class.
    """
    picture = image_array(image)
    height, width = picture.shape[:2]
    x, y = vertex_positions(output, (height, width), index)
    top_k = x.numel() // schema.num_classes
    classes = torch.arange(schema.num_classes).repeat_interleave(top_k)
    keep = classes > 0 if skip_background else torch.ones_like(classes, dtype=torch.bool)
    colours = class_colours(schema)
    figure = book_figure(height=BOOK_WIDTH * 0.75 * height / width)
    ax = figure.subplots()
    ax.imshow(picture)
    ax.scatter(x[keep], y[keep], c=colours[classes[keep]], s=60, marker="o", edgecolors="black", linewidths=1)
    ax.set_title(f"selected vertices: top-{top_k} pixels of each class")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    shown = [c for c in range(schema.num_classes) if not (skip_background and c == 0)]
    figure.legend(handles=legend_handles(schema, shown), loc="outside right center", frameon=False)
    return figure


@book_styled
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
    figure = book_figure(height=BOOK_WIDTH * 0.85)
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


@book_styled
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
    picture = image_array(image)
    height, width = picture.shape[:2]
    maps = response_maps(output, schema, (height, width), index).numpy()
    classes = list(range(1, schema.num_classes)) if classes is None else list(classes)
    rows = math.ceil(len(classes) / columns)
    figure = book_figure(height=rows * 0.85 * BOOK_WIDTH / columns * height / width + 0.6)  # 0.85: the colour bar
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


@book_styled
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
    figure = book_figure(height=rows * (BOOK_WIDTH / per_row * aspect + 0.3) + 0.5)
    axes = np.atleast_1d(figure.subplots(rows, per_row)).ravel()
    colours = class_colours(schema)
    for ax in axes:
        ax.set_axis_off()
    for ax, (title, image, output) in zip(axes, faces, strict=False):
        picture = image_array(image)
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


@book_styled
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
    projection = output_item(output.projection, index, "projection")
    picture = image_array(image)
    height, width = picture.shape[:2]
    rows_1, cols_1 = feature_size(output, (height, width))
    vertices = projection.shape[0]
    top_k = vertices // schema.num_classes
    classes = torch.arange(schema.num_classes).repeat_interleave(top_k)
    colours = class_colours(schema)
    x, y = vertex_positions(output, (height, width), index)
    edge = None if output.edge_logits is None else torch.sigmoid(output_item(output.edge_logits, index, "edge_logits"))
    face_width = BOOK_WIDTH / 3.6
    figure = book_figure(height=len(pixels) * (face_width * height / width + 0.45) + 0.3)
    axes = np.atleast_2d(figure.subplots(len(pixels), 2, width_ratios=(1, 2.6)))
    for (face_ax, bar_ax), (title, pixel) in zip(axes, pixels.items(), strict=True):
        weights = projection[:, pixel]
        face_ax.imshow(picture)
        face_ax.scatter(x, y, s=8 + 300 * weights, c=colours[classes], edgecolors="black", linewidths=0.6)
        centre_x, centre_y = cell_centres(torch.tensor([int(pixel)]), (rows_1, cols_1), (height, width))
        face_ax.scatter(centre_x, centre_y, marker="X", s=140, c="white", edgecolors="black", linewidths=1.2,
                        zorder=3)  # fmt: skip
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


@book_styled
def spatial_and_adaptive_figure(sample: Sample, output: AGRNetOutput, schema: LabelSchema, top_k: int) -> Figure:
    """Fig. 3 on one face (a sample at its own size): (a) the grid of the spatial projection, one vertex per cell;
    (b) the adaptive projection's vertices, the top-``top_k`` pixels of each foreground class in its colour."""
    rows_grid, cols_grid = grid_shape(top_k * schema.num_classes)
    height, width = sample["label"].shape
    colours = schema.palette / 255
    figure = book_figure(height=5.4)
    axes = figure.subplots(1, 2)
    for ax in axes:
        ax.imshow(sample["image"].permute(1, 2, 0))
        ax.set_xlabel("x (pixels)")
    axes[0].set_ylabel("y (pixels)")
    for row in range(1, rows_grid):
        axes[0].axhline(row * height / rows_grid, color="white", linewidth=1)
    for col in range(1, cols_grid):
        axes[0].axvline(col * width / cols_grid, color="white", linewidth=1)
    axes[0].set_title(f"(a) spatial: {rows_grid} × {cols_grid} cells,\none vertex each")
    classes = torch.arange(schema.num_classes).repeat_interleave(top_k)
    x, y = vertex_positions(output, (height, width))
    foreground = classes > 0
    axes[1].scatter(x[foreground], y[foreground], c=colours[classes[foreground]], s=40, edgecolors="white")
    axes[1].set_title(f"(b) adaptive: top-{top_k} pixels\nof each class")
    return figure


@book_styled
def reasoning_update_figure(ratio: torch.Tensor, cosine: torch.Tensor, schema: LabelSchema) -> Figure:
    """Per class, bars in its colour: the size of the reasoning update relative to XG (``ratio``) and the cosine of
    X̂G and XG (``cosine``), as ``agrnet.analysis.reasoning_update`` measures them."""
    figure = book_figure(height=3.3)
    axes = figure.subplots(1, 2)
    positions = range(schema.num_classes)
    panels = (
        (axes[0], ratio, r"$\|$update$\|$ / $\|X_G\|$"),
        (axes[1], cosine, r"cosine($\hat{X}_G$, $X_G$)"),
    )
    for ax, values, ylabel in panels:
        ax.bar(positions, values, color=schema.palette / 255, edgecolor="0.3")
        ax.set_xticks(positions, schema.classes, rotation=60, ha="right")
        ax.set_xlabel("class of the vertices")
        ax.set_ylabel(ylabel)
    axes[0].set_title("size of the reasoning update")
    axes[1].set_title("direction kept by the residual")
    axes[1].set_ylim(0, 1.05)
    return figure
