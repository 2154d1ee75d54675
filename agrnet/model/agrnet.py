"""AGRNet (Fig. 2 and 4): backbone -> pyramid pooling -> fusion (Eq. 1) -> edge masking (Eq. 2) -> adaptive graph
projection (Eq. 3) -> graph reasoning (Eq. 4) -> reprojection (Eq. 5, 6) -> decoding (Eq. 7)."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agrnet.model.backbone import ResNetBackbone
from agrnet.model.config import AGRNetConfig
from agrnet.model.context import FeatureFusion, PyramidPooling
from agrnet.model.edge import EdgePerceivingModule
from agrnet.model.graph import (
    AdaptiveGraphProjection,
    GraphReasoning,
    GraphReprojection,
    SpatialGraphProjection,
    edge_masking,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AGRNetOutput:
    """What one forward pass produces, named after the paper's symbols.

    logits: Y, N x Nc x H x W at the input size (Eq. 7).
    raw_logits: Z0, N x Nc x H1 x W1 at 1/4 of the input (Eq. 3); None without the adaptive projection.
    edge_logits: the edge map E before the sigmoid, N x 1 x H1 x W1; None when ``use_edge=False``.
    vertices: XG, N x V x C with V = K * Nc, class-major (rows c*K ... c*K+K-1 belong to class c).
    vertex_index: N x V flat indices into H1 * W1 of the pixels chosen as vertices, in the same order.
    projection: P, N x V x (H1 * W1) (Eq. 5).
    adjacency: A, V x V (Eq. 4); None when ``use_reasoning=False``.
    Graph fields are None when ``use_graph=False``.
    """

    logits: torch.Tensor
    raw_logits: torch.Tensor | None = None
    edge_logits: torch.Tensor | None = None
    vertices: torch.Tensor | None = None
    vertex_index: torch.Tensor | None = None
    projection: torch.Tensor | None = None
    adjacency: torch.Tensor | None = None


class Decoder(nn.Module):
    """Eq. (7): Y = conv(X0 + XP), a 1x1 conv to Nc classes, upsampled to the input size."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Pixel features N x C x H1 x W1 -> logits N x Nc x H x W."""
        return F.interpolate(self.classifier(features), size, mode="bilinear", align_corners=False)


PARTS = ("backbone", "pyramid_pooling", "fusion", "edge", "projection", "reasoning", "decoder")
"""The parts with parameters, in the order ``AGRNet`` builds them."""


def image_range(images: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a non-empty tensor from one reduction and one copy to the host; both NaN when a value is NaN."""
    low, high = torch.aminmax(images.detach())
    low, high = torch.stack([low, high]).float().tolist()
    return low, high


def _tracing() -> bool:
    """Whether the forward pass is being traced, compiled or exported (no values to look at)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw a part's initial weights from a CPU generator seeded with ``seed``, then restore the global one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class AGRNet(nn.Module):
    """Adaptive Graph Representation learning and reasoning Network for face parsing (Te et al., TIP 2021).

    Args: those of ``AGRNetConfig`` (``agrnet.model.config``), the architecture, which ``self.config`` records as a
    dict; and ``pretrained_backbone``, the initial weights of the backbone: None, ``"imagenet"`` (torchvision's
    weights), or a path to a ResNet state dict. ``AGRNet.from_config`` builds one from an ``AGRNetConfig``.

    ``forward`` takes RGB images in [0, 1], N x 3 x H x W, and normalises them with the ImageNet statistics.

    Initial weights: one draw from torch's global generator gives a seed to each of ``PARTS``, and each part
    draws its weights from its own seed. So under one ``torch.manual_seed``, every variant of the model (without
    the edge module, without the graph, another K...) starts with the same weights in every part it shares with
    the full model, which is what a paired ablation needs, and leaves the global generator in the same state.
    """

    def __init__(self, *args: Any, pretrained_backbone: str | os.PathLike[str] | None = None, **options: Any) -> None:
        super().__init__()
        architecture = AGRNetConfig(*args, **options)
        num_classes, top_k, channels = architecture.num_classes, architecture.top_k, architecture.channels
        use_graph = architecture.use_graph
        self.num_classes = num_classes
        self._warned_range = False
        self.config: dict[str, Any] = asdict(architecture)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        seeds = iter(torch.randint(0, 2**62, (len(PARTS),), device="cpu").tolist())
        with _seeded(next(seeds)):
            self.backbone = ResNetBackbone(architecture.backbone, pretrained_backbone, architecture.output_stride)
        taps = self.backbone.channels
        with _seeded(next(seeds)):
            self.pyramid_pooling = PyramidPooling(taps.conv5, 2 * channels)
        with _seeded(next(seeds)):
            self.fusion = FeatureFusion(taps.conv2, 2 * channels, channels)
        with _seeded(next(seeds)):
            self.edge = EdgePerceivingModule((taps.conv2, taps.conv3, taps.conv4)) if architecture.use_edge else None
        num_vertices = top_k * num_classes
        self.projection: AdaptiveGraphProjection | SpatialGraphProjection | None = None
        self.reasoning: GraphReasoning | None = None
        self.reprojection: GraphReprojection | None = None
        with _seeded(next(seeds)):
            if use_graph:
                self.projection = (
                    AdaptiveGraphProjection(channels, num_classes, top_k)
                    if architecture.projection == "adaptive"
                    else SpatialGraphProjection(num_vertices)
                )
        with _seeded(next(seeds)):
            if use_graph and architecture.use_reasoning:
                self.reasoning = GraphReasoning(num_vertices, channels)
        self.reprojection = GraphReprojection() if use_graph else None
        with _seeded(next(seeds)):
            self.decoder = Decoder(channels, num_classes)

    @classmethod
    def from_config(
        cls, config: AGRNetConfig, pretrained_backbone: str | os.PathLike[str] | None = None
    ) -> AGRNet:
        """The AGRNet of architecture ``config``, with its backbone's initial weights from ``pretrained_backbone``."""
        return cls(**asdict(config), pretrained_backbone=pretrained_backbone)

    def forward(self, images: torch.Tensor) -> AGRNetOutput:
        """Images N x 3 x H x W in [0, 1] -> AGRNetOutput (Algorithm 1, forward part).

        Inputs are checked where it costs nothing per training step: the shape and a floating-point dtype always
        (a ValueError otherwise: uint8 images would be normalised as if 255 were 1); values only in eval mode
        (inference, evaluation, validation), and not on meta tensors or while tracing, compiling or exporting: one
        ``aminmax`` reduction and one copy of two numbers to the host, a ValueError for NaN or inf, and a warning,
        once per model, for values outside [0, 1] (an image in 0 ... 255). Training batches skip the value check,
        which would make every step wait for the device; their data come from the readers, which give [0, 1], and a
        NaN there stops the run at the loss check of ``agrnet.training``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected N x 3 x H x W, got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(
                f"images: expected floating-point values in [0, 1], got {images.dtype} (pass uint8 images as "
                "images.float() / 255)"
            )
        if not self.training and images.numel() and images.device.type != "meta" and not _tracing():
            self._check_values(images)
        size = (images.shape[-2], images.shape[-1])
        taps = self.backbone((images - self.mean) / self.std)
        x2 = self.pyramid_pooling(taps.conv5)
        x0 = self.fusion(taps.conv2, x2)
        edge_logits = self.edge(taps.conv2, taps.conv3, taps.conv4) if self.edge is not None else None
        if self.projection is None or self.reprojection is None:
            return AGRNetOutput(logits=self.decoder(x0, size), edge_logits=edge_logits)

        edge_probability = None if edge_logits is None else torch.sigmoid(edge_logits)
        if edge_probability is not None and self.config["detach_edge"]:
            edge_probability = edge_probability.detach()
        xe, xne = (x0, x0) if edge_probability is None else edge_masking(x0, edge_probability)
        z0, vertices, vertex_index = self.projection(x0, xne)
        reasoned = vertices if self.reasoning is None else self.reasoning(vertices)
        gate = edge_probability if self.config["edge_gate"] else None
        xp, projection = self.reprojection(vertices, reasoned, xe, gate)
        return AGRNetOutput(
            logits=self.decoder(x0 + xp, size),
            raw_logits=z0,
            edge_logits=edge_logits,
            vertices=vertices,
            vertex_index=vertex_index,
            projection=projection,
            adjacency=None if self.reasoning is None else self.reasoning.A,
        )

    def _check_values(self, images: torch.Tensor) -> None:
        low, high = image_range(images)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("images: hold NaN or infinite values")
        if (low < 0 or high > 1) and not self._warned_range:
            self._warned_range = True
            warnings.warn(
                f"images: values span {low:.4g} ... {high:.4g}, outside the [0, 1] the model expects (an image in "
                "0 ... 255? divide it by 255); this model warns once",
                stacklevel=3,
            )
