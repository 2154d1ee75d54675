"""Dilated torchvision ResNets and their taps conv2 ... conv5 (Sec. III-A and V-B).

The paper takes the outputs of conv2 (X1, 1/4 of the input) and conv5 (1/8 after dilation) as the low- and
high-level feature maps, and conv2 ... conv4 feed the edge perceiving module. Dilation in the last two stages keeps
the high-level map at 1/8 of the input (output stride 8, the paper's setting). Output stride 16 (only the last
stage dilated, as torchvision's DeepLabV3 allows) is ours: about a third of the backbone's FLOPs at the same input
size, which the CPU experiments use (``agrnet.experiments``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torchvision import models

_RESNETS: dict[str, tuple[Callable[..., models.ResNet], type[models.WeightsEnum]]] = {
    "resnet18": (models.resnet18, models.ResNet18_Weights),
    "resnet34": (models.resnet34, models.ResNet34_Weights),
    "resnet50": (models.resnet50, models.ResNet50_Weights),
    "resnet101": (models.resnet101, models.ResNet101_Weights),
    "resnet152": (models.resnet152, models.ResNet152_Weights),
}
BACKBONES: tuple[str, ...] = tuple(_RESNETS)
OUTPUT_STRIDES: tuple[int, ...] = (8, 16)


class BackboneFeatures(NamedTuple):
    """The four taps of the ResNet: conv2 (1/4), conv3 (1/8), conv4 and conv5 (1/8 each at output stride 8; 1/16
    each at output stride 16)."""

    conv2: torch.Tensor
    conv3: torch.Tensor
    conv4: torch.Tensor
    conv5: torch.Tensor


def _dilate_basic_blocks(layer: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Turn a strided stage of BasicBlocks into a dilated one, as torchvision does for Bottlenecks.

    torchvision's BasicBlock refuses ``dilation > 1`` at construction, so ResNet-18/34 are dilated afterwards: the
    first block keeps ``previous_dilation`` in its first 3x3 conv and loses its stride; every other 3x3 conv gets
    ``dilation`` (padding = dilation keeps the size).
    """
    for index, block in enumerate(layer):
        for conv in (block.conv1, block.conv2):
            rate = previous_dilation if index == 0 and conv is block.conv1 else dilation
            conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


def _load_backbone_weights(net: models.ResNet, name: str, pretrained: str | os.PathLike[str]) -> None:
    """Load ImageNet weights through torchvision's weights enum, or a local state dict."""
    if str(pretrained) == "imagenet":
        weights = _RESNETS[name][1].DEFAULT
        try:
            state = weights.get_state_dict(progress=True)
        except OSError as error:
            raise RuntimeError(
                f"could not download the ImageNet weights of {name} ({weights.url}): {error}. Download that file "
                f"on a machine with internet access and pass its path as pretrained_backbone='/path/to/file.pth', "
                f"or put it in $TORCH_HOME/hub/checkpoints/."
            ) from error
    else:
        path = os.fspath(pretrained)
        if not os.path.isfile(path):
            raise ValueError(f"pretrained_backbone: no such file: {path!r} (use None, 'imagenet' or a path)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"pretrained_backbone: {path!r} is not a readable PyTorch state dict: {error}") from error
        if not isinstance(state, dict):
            raise ValueError(f"pretrained_backbone: {path!r} holds a {type(state).__name__}, not a state dict")
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(f"pretrained_backbone: the weights do not fit a {name}: {error}") from error
    missing = [key for key in missing if not key.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"pretrained_backbone: the weights do not fit a {name}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier head, dilated to ``output_stride`` 8 (layer3 and layer4
    dilated, the paper's) or 16 (layer4 only)."""

    def __init__(
        self, name: str = "resnet101", pretrained: str | os.PathLike[str] | None = None, output_stride: int = 8
    ) -> None:
        super().__init__()
        if name not in _RESNETS:
            raise ValueError(f"backbone: unknown {name!r}; choose one of {', '.join(BACKBONES)}")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride: expected one of {OUTPUT_STRIDES}, got {output_stride!r}")
        builder = _RESNETS[name][0]
        if name in ("resnet18", "resnet34"):
            net = builder(weights=None)
            if output_stride == 8:
                _dilate_basic_blocks(net.layer3, dilation=2, previous_dilation=1)
            _dilate_basic_blocks(net.layer4, dilation=32 // output_stride, previous_dilation=16 // output_stride)
        else:
            net = builder(weights=None, replace_stride_with_dilation=[False, output_stride == 8, True])
        if pretrained is not None:
            _load_backbone_weights(net, name, pretrained)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        expansion = 4 if name not in ("resnet18", "resnet34") else 1
        self.channels = BackboneFeatures(64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)

    def forward(self, images: torch.Tensor) -> BackboneFeatures:
        """Normalised images N x 3 x H x W -> conv2 (N x C2 x H/4 x W/4) ... conv5 (N x C5 x H/s x W/s), s the
        output stride."""
        conv2 = self.layer1(self.stem(images))
        conv3 = self.layer2(conv2)
        conv4 = self.layer3(conv3)
        conv5 = self.layer4(conv4)
        return BackboneFeatures(conv2, conv3, conv4, conv5)
