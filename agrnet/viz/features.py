"""Figures of the feature maps before the graph: the backbone's taps, pyramid pooling and fusion (Eq. 1), the edge
map E against its ground truth, and the masking of X0 by E (Eq. 2). Maps are drawn in the face's proportions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from agrnet.data.base import Sample
from agrnet.model import AGRNetOutput
from agrnet.viz.style import book_figure, book_styled


@book_styled
def feature_maps_figure(sample: Sample, image: torch.Tensor, recorded: Mapping[str, Any]) -> Figure:
    """The face and, each scaled to its maximum, the mean absolute activation of X1 (conv2), conv5, X2 (pyramid
    pooling) and X0 (fusion): ``recorded`` holds what the modules ``backbone`` (its taps), ``pyramid_pooling`` and
    ``fusion`` returned for ``image``, the face resized to the model's input."""
    taps = recorded["backbone"]
    maps = {
        "X1 = conv2": taps.conv2,
        "conv5": taps.conv5,
        "X2 (pyramid\npooling)": recorded["pyramid_pooling"],
        "X0 (fusion,\nEq. 1)": recorded["fusion"],
    }
    height, width = sample["label"].shape
    stretch = (height / width) / (image.shape[-2] / image.shape[-1])  # the face's aspect
    figure = book_figure(height=3.3)
    axes = figure.subplots(1, 5)
    axes[0].imshow(sample["image"].permute(1, 2, 0))
    axes[0].set_title("input\n")
    axes[0].set_axis_off()
    for ax, (name, tensor) in zip(axes[1:], maps.items(), strict=True):
        activation = tensor[0].abs().mean(0).cpu()
        shown = ax.imshow(activation / activation.max(), cmap="viridis", vmin=0, vmax=1, aspect=stretch)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(" × ".join(map(str, tensor.shape[1:])))
    figure.colorbar(shown, ax=axes[1:].tolist(), shrink=0.8, label="share of the\nmap's maximum")
    return figure


@book_styled
def edge_map_figure(sample: Sample, output: AGRNetOutput) -> Figure:
    """The face, its edge ground truth and the predicted edge probability E resized to the face's size."""
    edge_probability = torch.sigmoid(output.edge_logits)
    size = sample["label"].shape
    edge_full = F.interpolate(edge_probability, size=size, mode="bilinear", align_corners=False)
    figure = book_figure(height=4.1)
    axes = figure.subplots(1, 3)
    axes[0].imshow(sample["image"].permute(1, 2, 0))
    axes[0].set_title("image\n")
    axes[1].imshow(sample["edge"], cmap="gray_r")
    axes[1].set_title(f"edge ground truth\n({sample['edge'].float().mean():.0%} of pixels)")
    shown = axes[2].imshow(edge_full[0, 0], cmap="magma", vmin=0, vmax=1)
    h1, w1 = output.edge_logits.shape[-2:]
    axes[2].set_title(f"predicted E\n({h1} × {w1} map)")
    figure.colorbar(shown, ax=axes[2], shrink=0.8, label="edge probability")
    for ax in axes:
        ax.set_xlabel("x (pixels)")
    axes[0].set_ylabel("y (pixels)")
    return figure


@book_styled
def masking_figure(
    face_size: tuple[int, int], x0: torch.Tensor, edge: torch.Tensor, xe: torch.Tensor, xne: torch.Tensor
) -> Figure:
    """Eq. (2) on one face: X0, the edge map E, Xe = X0 ∘ E and Xne = X0 ∘ (1 − E), each the mean absolute value
    over its channels (the features scaled to X0's largest), drawn in the proportions of a face of ``face_size``."""
    h1, w1 = x0.shape[-2:]
    height, width = face_size
    stretch = (height / width) / (h1 / w1)  # drawn in the face's proportions
    panels = {"X0": x0, "E": edge, "Xe = X0 ∘ E": xe, "Xne = X0 ∘ (1 − E)": xne}
    figure = book_figure(height=3.0)
    for ax, (name, tensor) in zip(figure.subplots(1, 4), panels.items(), strict=True):
        values = tensor[0].abs().mean(0)
        if name != "E":  # features: scaled to the largest of X0, Xe and Xne
            values = values / x0[0].abs().mean(0).max()
        cmap = "magma" if name == "E" else "viridis"
        ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect=stretch)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{h1} × {w1} map")
    return figure
