"""Training objectives of AGRNet: Eq. (8) to (11) of the paper.

Every function works on batched tensors on any device, without ``.item()`` or host round-trips, and computes in
float32 whatever the dtype of its inputs (mixed precision). Logits at a lower resolution than the labels are
upsampled bilinearly to the label size before they are compared with it, as the authors' code does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from agrnet.data.labels import IGNORE_INDEX
from agrnet.paper import PAPER_WEIGHTS

if TYPE_CHECKING:
    from agrnet.model import AGRNetOutput

TERMS = ("raw", "edge", "boundary", "final", "discriminative")
"""Names of the five terms of Eq. (11), in the order of the weights lambda1 ... lambda5."""
AUTHORS_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.5)
"""The weights of the authors' public code (``train.py``: l1 = 1 on both parsing terms, l2 = 1, l3 = 1, l4 = 0.5 on
the anchor distance term), in the order of ``TERMS``: L_final at 1 instead of 0.5, L_dis at 0.5 instead of 0.1."""


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear upsampling of N x C x h x w logits to ``size`` (H, W); unchanged when already that size."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def parsing_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L_raw / L_final: pixel-wise cross-entropy of N x Nc x h x w logits against the N x H x W label map Y.

    Averaged over the labelled pixels (``ignore_index`` pixels left out); zero, not NaN, when there are none.
    """
    logits = resize_logits(logits, target.shape[-2:]).float()
    target = target.long()
    summed = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return summed / (target != ignore_index).sum().clamp_min(1)


def edge_loss(
    edge_logits: torch.Tensor, edge: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """L_edge: balanced binary cross-entropy of the edge map E (N x 1 x h x w, before the sigmoid) against the
    edge ground truth e (N x H x W bool, from ``agrnet.data.edges.label_edges``).

    Edge pixels are weighted by #non-edge / #pixels and non-edge pixels by #edge / #pixels, counted over the
    labelled pixels of the batch (``target != ignore_index``), as in the authors' code; the weighted mean equals
    (mean BCE over edge pixels + mean BCE over non-edge pixels) / 2. The paper writes the unweighted mean, which
    the very rare edge pixels would dominate. Zero when the batch holds only one kind of pixel.
    """
    logits = resize_logits(edge_logits, edge.shape[-2:]).squeeze(1).float()
    edge = edge.bool()
    valid = target != ignore_index
    num_edge = (edge & valid).sum()
    num_valid = valid.sum()
    weight = torch.where(edge, num_valid - num_edge, num_edge) * valid / num_valid.clamp_min(1)
    pixel = F.binary_cross_entropy_with_logits(logits, edge.float(), reduction="none")
    return (weight * pixel).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)


def boundary_attention_loss(
    logits: torch.Tensor, target: torch.Tensor, edge: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """L_BA, Eq. (8): cross-entropy of the parsing logits (N x Nc x h x w) at the edge pixels e_i = 1 only.

    Averaged over the labelled edge pixels of the whole batch; zero, not NaN, when the batch has none.
    """
    logits = resize_logits(logits, target.shape[-2:]).float()
    target = target.long()
    pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    at_edge = edge.bool() & (target != ignore_index)
    return (pixel * at_edge).sum() / at_edge.sum().clamp_min(1)


def discriminative_loss(vertices: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """L_dis, Eq. (9) and (10), over all V = K * Nc vertices XG (N x V x C) of each sample.

    Vertex features are L2-normalised (Sec. V-B); phi(x_i, x_j) = max(delta - ||x_i - x_j||, 0)^2 is averaged over
    the V (V - 1) ordered pairs i != j and then over the batch. Distances come from the Gram matrix; the square
    root is only taken of positive squared distances, so identical vertices give a distance of exactly 0, the
    penalty delta^2 and a finite (zero) gradient instead of the NaN of d sqrt(s)/ds at s = 0.
    """
    if vertices.ndim != 3 or vertices.shape[1] < 2:
        raise ValueError(f"vertices: expected N x V x C with V >= 2, got shape {tuple(vertices.shape)}")
    x = F.normalize(vertices.float(), dim=-1)
    num_vertices = x.shape[1]
    squared_norm = x.square().sum(-1)
    squared = (squared_norm[:, :, None] + squared_norm[:, None, :] - 2 * x @ x.transpose(1, 2)).clamp_min(0)
    positive = squared > 0
    distance = torch.where(positive, squared.where(positive, 1.0).sqrt(), 0.0)
    penalty = (delta - distance).clamp_min(0).square()
    off_diagonal = ~torch.eye(num_vertices, dtype=torch.bool, device=x.device)
    per_sample = (penalty * off_diagonal).sum((1, 2)) / (num_vertices * (num_vertices - 1))
    return per_sample.mean()


class AGRNetLoss(nn.Module):
    """Eq. (11): L = lambda1 L_raw + lambda2 L_edge + lambda3 L_BA + lambda4 L_final + lambda5 L_dis.

    L_raw supervises Z0 (``raw_logits``) and L_final the final parsing Y (``logits``) with cross-entropy against
    the label map; L_edge supervises E (``edge_logits``) against the batch's ``edge``; L_BA is Eq. (8) on Y;
    L_dis is Eq. (10) on XG (``vertices``). A term whose input the model does not produce (None: no edge module,
    no graph, spatial projection without Z0) drops out. ``use_boundary`` and ``use_discriminative`` switch
    L_BA and L_dis off for the loss ablation of Table I(b).
    """

    def __init__(
        self,
        weights: Sequence[float] = PAPER_WEIGHTS,
        delta: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        use_boundary: bool = True,
        use_discriminative: bool = True,
    ) -> None:
        super().__init__()
        if len(weights) != len(TERMS):
            raise ValueError(f"weights: expected {len(TERMS)} values for {TERMS}, got {tuple(weights)}")
        if delta <= 0:
            raise ValueError(f"delta: expected a positive margin, got {delta}")
        self.weights = dict(zip(TERMS, (float(w) for w in weights), strict=True))
        self.delta = float(delta)
        self.ignore_index = ignore_index
        self.use_boundary = use_boundary
        self.use_discriminative = use_discriminative

    def forward(
        self, output: AGRNetOutput, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (L, {term name: detached value}) for a model output and a batch with ``label`` and ``edge``."""
        if "label" not in batch:
            raise ValueError("batch: missing 'label' (N x H x W class ids)")
        label = batch["label"]
        needs_edge = output.edge_logits is not None or self.use_boundary
        if needs_edge and "edge" not in batch:
            raise ValueError("batch: missing 'edge' (N x H x W edge ground truth) needed by L_edge and L_BA")
        terms: dict[str, torch.Tensor] = {}
        if output.raw_logits is not None:
            terms["raw"] = parsing_loss(output.raw_logits, label, self.ignore_index)
        if output.edge_logits is not None:
            terms["edge"] = edge_loss(output.edge_logits, batch["edge"], label, self.ignore_index)
        if self.use_boundary:
            terms["boundary"] = boundary_attention_loss(output.logits, label, batch["edge"], self.ignore_index)
        terms["final"] = parsing_loss(output.logits, label, self.ignore_index)
        if self.use_discriminative and output.vertices is not None:
            terms["discriminative"] = discriminative_loss(output.vertices, self.delta)
        total = torch.stack([self.weights[name] * value for name, value in terms.items()]).sum()
        return total, {name: value.detach() for name, value in terms.items()}
