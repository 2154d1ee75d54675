"""``AGRNetConfig``: the architecture of an AGRNet, the one list of its constructor's arguments (all but the initial
weights). Checkpoints, shipped weights and ONNX files record it as ``model_config`` (``dataclasses.asdict``), and
``AGRNetConfig(**model_config)`` reads it back, arguments added since it was written at their defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, fields
from typing import Any

from agrnet.model.backbone import BACKBONES

PROJECTIONS = ("adaptive", "spatial")


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class AGRNetConfig:
    """The arguments of ``AGRNet``, by position up to ``channels`` and by name after it.

    Args:
        num_classes: Nc, the number of parsing classes.
        backbone: a torchvision ResNet name (``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``).
        top_k: K, vertices per class (Table I(c)).
        projection: ``"adaptive"`` (this paper, Eq. 3) or ``"spatial"`` (the ECCV 2020 predecessor, Fig. 3(a)).
        use_edge: the edge perceiving module and the masking of Eq. (2) (Table I(a), "Edge").
        use_graph: projection, reasoning and reprojection; False gives the ResNet + pyramid pooling baseline
            (Table I(a), model 1).
        channels: C, the width of X0 and of the vertex features.
        use_reasoning: the graph reasoning of Eq. (4) (Table I(a), "Graph"); False reprojects XG unchanged.
        output_stride: 8 (the paper's dilated backbone, conv5 at 1/8) or 16 (ours, conv5 at 1/16: cheaper, for
            CPU training).
        edge_gate: the authors' code, not the paper: multiply each pixel's column of P by its edge probability E
            after the softmax of Eq. (5), so that XP reaches edge pixels only (``proj = proj * edge`` there).
        detach_edge: the authors' code, not the paper: no gradient flows from the graph into the edge map E
            through Eq. (2) (``edge.detach()`` there); E then learns from L_edge alone.
    """

    num_classes: int
    backbone: str = "resnet101"
    top_k: int = 4
    projection: str = "adaptive"
    use_edge: bool = True
    use_graph: bool = True
    channels: int = 256
    _: KW_ONLY
    use_reasoning: bool = True
    output_stride: int = 8
    edge_gate: bool = False
    detach_edge: bool = False

    def __post_init__(self) -> None:
        _check_positive_int("num_classes", self.num_classes, minimum=2)
        _check_positive_int("top_k", self.top_k)
        _check_positive_int("channels", self.channels)
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection: expected one of {PROJECTIONS}, got {self.projection!r}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | object, **given: Any) -> AGRNetConfig:
        """The architecture that ``settings`` describe among other things (a ``TrainConfig``, a ``BenchConfig``,
        an experiment's protocol, parsed arguments): each argument from the setting of the same name where there
        is one, else its default, and ``given`` on top."""
        values = settings if isinstance(settings, Mapping) else vars(settings)
        found = {item.name: values[item.name] for item in fields(cls) if item.name in values}
        return cls(**{**found, **given})
