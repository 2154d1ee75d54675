"""Edge ground truth from a label map (AGRNet Sec. V-B)."""

from __future__ import annotations

import torch

from agrnet.data.labels import IGNORE_INDEX


def label_edges(label: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Edge mask of a label map (... x H x W): True where a pixel's label differs from any of its four neighbours.

    This is the edge ground truth e_i of the boundary-attention and edge losses (Eq. 8, 10). Neighbours outside
    the image do not count. ``ignore_index`` pixels carry no label, so they are never edge pixels and a labelled
    pixel is not an edge pixel merely because it touches one: the border of augmentation padding or of an
    unlabelled area is not a boundary between two classes. Returns a bool tensor of the label's shape.
    """
    if label.dim() < 2:
        raise ValueError(f"label must have at least 2 dimensions (H x W), got shape {tuple(label.shape)}")
    valid = label != ignore_index
    edges = torch.zeros_like(valid)
    horizontal = (label[..., :, 1:] != label[..., :, :-1]) & valid[..., :, 1:] & valid[..., :, :-1]
    vertical = (label[..., 1:, :] != label[..., :-1, :]) & valid[..., 1:, :] & valid[..., :-1, :]
    edges[..., :, 1:] |= horizontal
    edges[..., :, :-1] |= horizontal
    edges[..., 1:, :] |= vertical
    edges[..., :-1, :] |= vertical
    return edges
