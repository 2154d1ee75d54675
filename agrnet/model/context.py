"""Pyramid pooling on conv5 (Sec. V-B; PSPNet, Zhao et al. [47]) and the fusion of Eq. (1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """Convolution without bias, BatchNorm, ReLU: the building block of every head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PyramidPooling(nn.Module):
    """Spatial pyramid pooling: average-pool conv5 into bins x bins cells for each bin, project each with a 1x1
    conv, upsample, concatenate with conv5 and reduce with a 3x3 conv to ``out_channels``: the high-level map X2.

    The pooled branches use a biased conv and ReLU without BatchNorm, so training works at any batch size
    (BatchNorm over a 1 x 1 map fails for a batch of one).
    """

    def __init__(self, in_channels: int, out_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        branch_channels = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(bin_size), nn.Conv2d(in_channels, branch_channels, 1), nn.ReLU())
            for bin_size in bins
        )
        self.bottleneck = conv_bn_relu(in_channels + branch_channels * len(bins), out_channels, kernel_size=3)

    def forward(self, conv5: torch.Tensor) -> torch.Tensor:
        """conv5 N x C5 x H2 x W2 -> X2 N x out_channels x H2 x W2."""
        size = conv5.shape[-2:]
        pooled = [F.interpolate(stage(conv5), size, mode="bilinear", align_corners=False) for stage in self.stages]
        return self.bottleneck(torch.cat([conv5, *pooled], dim=1))


class FeatureFusion(nn.Module):
    """Eq. (1): X0 = conv([X1, upsample(X2)]), a 1x1 conv to C channels (with BatchNorm and ReLU)."""

    def __init__(self, low_channels: int, high_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(low_channels + high_channels, channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """X1 N x C1 x H1 x W1 and X2 N x C2 x H2 x W2 -> X0 N x C x H1 x W1."""
        x2_up = F.interpolate(x2, x1.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x1, x2_up], dim=1))
