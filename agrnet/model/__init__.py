"""The AGRNet model: each step of Fig. 2 and 4 is a small module or function of its own."""

from agrnet.model.agrnet import AGRNet, AGRNetOutput, Decoder
from agrnet.model.backbone import BACKBONES, BackboneFeatures, ResNetBackbone
from agrnet.model.config import AGRNetConfig
from agrnet.model.context import FeatureFusion, PyramidPooling
from agrnet.model.edge import EdgePerceivingModule
from agrnet.model.ensemble import Ensemble, model_from_config
from agrnet.model.flops import complexity
from agrnet.model.graph import (
    AdaptiveGraphProjection,
    GraphReasoning,
    GraphReprojection,
    SpatialGraphProjection,
    edge_masking,
    gather_vertices,
    reprojection_matrix,
    select_vertices,
)

__all__ = [
    "AGRNet",
    "AGRNetConfig",
    "AGRNetOutput",
    "AdaptiveGraphProjection",
    "BACKBONES",
    "BackboneFeatures",
    "Decoder",
    "EdgePerceivingModule",
    "Ensemble",
    "FeatureFusion",
    "GraphReasoning",
    "GraphReprojection",
    "PyramidPooling",
    "ResNetBackbone",
    "SpatialGraphProjection",
    "complexity",
    "edge_masking",
    "gather_vertices",
    "model_from_config",
    "reprojection_matrix",
    "select_vertices",
]
