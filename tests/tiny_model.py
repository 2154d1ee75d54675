"""Small untrained models and checkpoints for the evaluation, prediction, export and figure tests."""

from __future__ import annotations

from pathlib import Path

import torch

from agrnet.checkpoint import model_state, save_checkpoint
from agrnet.data.labels import LAPA, LabelSchema
from agrnet.model import AGRNet

TOP_K = 2


def tiny_model(schema: LabelSchema = LAPA, **kwargs) -> AGRNet:
    """An untrained ResNet-18 AGRNet with 32 channels and K = 2, in eval mode."""
    torch.manual_seed(0)
    options = {"backbone": "resnet18", "channels": 32, "top_k": TOP_K} | kwargs
    return AGRNet(schema.num_classes, **options).eval()


def tiny_checkpoint(path: Path, schema: LabelSchema = LAPA, **extra) -> Path:
    """Write ``tiny_model(schema)`` as an agrnet checkpoint (plus ``extra`` entries) to ``path``."""
    return save_checkpoint(path, {**model_state(tiny_model(schema), schema), **extra})
