"""Figures of the losses of Eq. (8) to (11): a toy label map with its prediction, edge and wrong pixels; the
discriminative loss φ of Eq. (9) against the distance of two vertices; and the terms of a batch's loss."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure

from agrnet.losses import PAPER_WEIGHTS, TERMS, discriminative_loss
from agrnet.viz.style import book_figure, book_styled


@book_styled
def loss_example_figure(
    label: torch.Tensor, prediction: torch.Tensor, edge: torch.Tensor, wrong: torch.Tensor
) -> Figure:
    """A toy label map (ids 0, 1, 2), a prediction of it, its edge pixels and the wrong pixels, side by side."""
    pictures = (
        ("label map Y\n(ids 0, 1, 2)", label, "viridis"),
        ("prediction\n(argmax)", prediction, "viridis"),
        (f"edge pixels e\n({int(edge.sum())})", edge, "gray_r"),
        (f"wrong pixels\n({int(wrong.sum())})", wrong, "Reds"),
    )
    figure = book_figure(height=2.3)
    for ax, (title, picture, cmap) in zip(figure.subplots(1, 4), pictures, strict=True):
        ax.imshow(picture, cmap=cmap, vmin=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


@book_styled
def discriminative_figure(deltas: Sequence[float] = (0.5, 1.0, 1.5)) -> Figure:
    """φ of Eq. (9) for two unit vertices against their distance, one line per margin δ of ``deltas``."""
    angles = torch.linspace(0, math.pi, 61)
    first = torch.stack([torch.ones_like(angles), torch.zeros_like(angles)], -1)
    second = torch.stack([angles.cos(), angles.sin()], -1)
    pairs = torch.stack([first, second], dim=1)  # 61 samples x 2 vertices x 2 channels
    distance = 2 * torch.sin(angles / 2)
    figure = book_figure(height=3.2)
    ax = figure.subplots()
    for delta in deltas:
        phi = torch.stack([discriminative_loss(pair[None], delta=delta) for pair in pairs])
        ax.plot(distance, phi, label=f"δ = {delta}")
    ax.set_xlabel("distance between the two normalised vertices")
    ax.set_ylabel("φ, Eq. (9)")
    ax.legend()
    return figure


@book_styled
def loss_terms_figure(
    terms: Mapping[str, torch.Tensor], total: torch.Tensor, which: str, weights: Sequence[float] = PAPER_WEIGHTS
) -> Figure:
    """Each term of Eq. (11) of a batch (``terms``) as it is and weighted by its λ (``weights``, in the order of
    ``agrnet.losses.TERMS``), under the total loss L of ``which`` model."""
    weight = dict(zip(TERMS, weights, strict=True))
    names = list(terms)
    figure = book_figure(height=3.0)
    ax = figure.subplots()
    ax.bar(names, [float(terms[n]) for n in names], color="0.75", label="term")
    ax.bar(names, [weight[n] * float(terms[n]) for n in names], width=0.5, color="tab:blue", label="λ × term")
    ax.set_ylabel("loss")
    ax.set_xlabel("term of Eq. (11)")
    ax.set_title(f"L = {float(total):.3f} ({which})")
    ax.legend()
    return figure
