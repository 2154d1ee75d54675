"""The edge perceiving module (Sec. III-A and V-B): conv2, conv3 and conv4 -> the edge map E at 1/4."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agrnet.model.context import conv_bn_relu


class EdgePerceivingModule(nn.Module):
    """Each of conv2, conv3, conv4 goes through a 1x1 conv (with BatchNorm and ReLU) to ``mid_channels``; the three
    are upsampled to the size of conv2, concatenated, and a 1x1 conv predicts one edge logit per pixel.

    With ``mid_channels=16`` and ResNet-101 the module has about 0.03 M parameters, the size the paper's
    Table I(d) reports.
    """

    def __init__(self, in_channels: tuple[int, int, int], mid_channels: int = 16) -> None:
        super().__init__()
        self.reduce = nn.ModuleList(conv_bn_relu(channels, mid_channels) for channels in in_channels)
        self.classifier = nn.Conv2d(mid_channels * len(in_channels), 1, 1)

    def forward(self, conv2: torch.Tensor, conv3: torch.Tensor, conv4: torch.Tensor) -> torch.Tensor:
        """Taps conv2 (1/4), conv3, conv4 -> edge logits N x 1 x H1 x W1 (E before the sigmoid)."""
        size = conv2.shape[-2:]
        reduced = [
            F.interpolate(reduce(tap), size, mode="bilinear", align_corners=False)
            for reduce, tap in zip(self.reduce, (conv2, conv3, conv4), strict=True)
        ]
        return self.classifier(torch.cat(reduced, dim=1))
