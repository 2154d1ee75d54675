"""Adaptive graph projection, graph reasoning and reprojection: Eq. (2) to (6) of the paper.

Shapes: N images, C channels, H1 x W1 pixels of the low-level map, Nc classes, K vertices per class and
V = K * Nc vertices. Feature maps are N x C x H1 x W1; vertex features are N x V x C.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def edge_masking(x0: torch.Tensor, edge_probability: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (2): Xe = X0 * E and Xne = X0 * (1 - E), with E the edge probability N x 1 x H1 x W1."""
    return x0 * edge_probability, x0 * (1 - edge_probability)


def select_vertices(z0: torch.Tensor, top_k: int) -> torch.Tensor:
    """The top-K pixels of each class in the preliminary map Z0 (N x Nc x H1 x W1), in one top-k over all classes.

    Returns N x (K * Nc) flat indices into H1 * W1, class-major: entries c*K ... c*K + K - 1 belong to class c.
    """
    return z0.flatten(2).topk(top_k, dim=2).indices.flatten(1)


def gather_vertices(features: torch.Tensor, vertex_index: torch.Tensor) -> torch.Tensor:
    """Eq. (3), the selection {.}: the feature vectors of ``features`` (N x C x H1 x W1) at ``vertex_index``
    (N x V) -> XG, N x V x C."""
    flat = features.flatten(2)
    index = vertex_index.unsqueeze(1).expand(-1, flat.shape[1], -1)
    return flat.gather(2, index).transpose(1, 2)


class AdaptiveGraphProjection(nn.Module):
    """Eq. (3): Z0 = conv(X0); XG = Xne{ ||_i topk(Z0[:, i]) }, K vertices per class from non-edge pixels."""

    def __init__(self, channels: int, num_classes: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(
        self, x0: torch.Tensor, xne: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """X0 and Xne (N x C x H1 x W1) -> (Z0 N x Nc x H1 x W1, XG N x V x C, vertex_index N x V)."""
        z0 = self.classifier(x0)
        vertex_index = select_vertices(z0, self.top_k)
        return z0, gather_vertices(xne, vertex_index), vertex_index


def grid_shape(num_vertices: int) -> tuple[int, int]:
    """The most nearly square rows x cols grid with exactly ``num_vertices`` cells (rows <= cols)."""
    rows = max(d for d in range(1, math.isqrt(num_vertices) + 1) if num_vertices % d == 0)
    return rows, num_vertices // rows


def grid_cell_centres(rows: int, cols: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat indices into height * width of the centre pixel of each cell of a rows x cols grid (row-major)."""
    ys = ((torch.arange(rows, device=device) + 0.5) * height / rows).long().clamp_max(height - 1)
    xs = ((torch.arange(cols, device=device) + 0.5) * width / cols).long().clamp_max(width - 1)
    return (ys[:, None] * width + xs[None, :]).flatten()


class SpatialGraphProjection(nn.Module):
    """The projection of the predecessor (Te et al., ECCV 2020 [10]; Fig. 3(a)): each vertex is the average of
    Xne over one cell of a fixed grid, so vertices follow image position rather than facial components.

    The grid has exactly V = K * Nc cells so that the ablation compares graphs of the same size. There is no
    preliminary map Z0; ``vertex_index`` holds the centre pixel of each cell.
    """

    def __init__(self, num_vertices: int) -> None:
        super().__init__()
        self.grid = grid_shape(num_vertices)

    def forward(self, x0: torch.Tensor, xne: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        """Xne (N x C x H1 x W1) -> (None, XG N x V x C, vertex_index N x V). X0 is unused."""
        pooled = nn.functional.adaptive_avg_pool2d(xne, self.grid)
        centres = grid_cell_centres(*self.grid, *xne.shape[-2:], device=xne.device)
        return None, pooled.flatten(2).transpose(1, 2), centres.expand(xne.shape[0], -1)


class GraphReasoning(nn.Module):
    """Eq. (4) with the residual of Sec. III-C: X^G = XG + ReLU((I - A) XG WG).

    A (V x V) is randomly initialised and learned as a linear layer over the vertex axis; WG (C x C) mixes
    channels.
    """

    def __init__(self, num_vertices: int, channels: int) -> None:
        super().__init__()
        self.adjacency = nn.Linear(num_vertices, num_vertices, bias=False)
        self.weight = nn.Linear(channels, channels, bias=False)

    @property
    def A(self) -> torch.Tensor:  # noqa: N802 - the paper's symbol
        """The learned adjacency matrix A, V x V."""
        return self.adjacency.weight

    def forward(self, xg: torch.Tensor) -> torch.Tensor:
        """XG N x V x C -> reasoned vertex features X^G, N x V x C."""
        propagated = xg - torch.matmul(self.A, xg)
        return xg + torch.relu(self.weight(propagated))


def reprojection_matrix(vertices: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
    """Eq. (5): P = softmax(XG Xe^T), normalised over the vertices for each pixel.

    XG is N x V x C (before reasoning) and Xe is N x C x H1 x W1; P is N x V x (H1 * W1) and each pixel's column
    sums to one.
    """
    return torch.bmm(vertices, xe.flatten(2)).softmax(dim=1)


class GraphReprojection(nn.Module):
    """Eq. (5) and (6): P = softmax(XG Xe^T); XP = P^T X^G, back on the pixel grid as N x C x H1 x W1.

    With a ``gate`` (the edge probability E, N x 1 x H1 x W1), each pixel's column of P is multiplied by its E
    after the softmax, as the authors' code does (not the paper): only edge pixels then receive XP.
    """

    def forward(
        self, vertices: torch.Tensor, reasoned: torch.Tensor, xe: torch.Tensor, gate: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """XG, X^G (N x V x C) and Xe (N x C x H1 x W1) -> (XP N x C x H1 x W1, P N x V x H1*W1)."""
        projection = reprojection_matrix(vertices, xe)
        if gate is not None:
            projection = projection * gate.flatten(1).unsqueeze(1)
        xp = torch.bmm(reasoned.transpose(1, 2), projection)
        return xp.view_as(xe), projection
