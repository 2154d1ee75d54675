"""Several trainings of one AGRNet parsing as one model: a deep ensemble (Lakshminarayanan et al., NeurIPS 2017).

Trainings that differ only in their seed make different mistakes, most of all on faces unlike their training
faces; the mean of their class probabilities is a better-calibrated and usually more accurate parsing than any one
of them, at the cost of one forward pass per member. The paper trains one model; the ensemble is ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agrnet.model.agrnet import AGRNet, AGRNetOutput
from agrnet.model.config import AGRNetConfig


class Ensemble(nn.Module):
    """The mean of ``members``' class probabilities, each member an ``AGRNet`` of one architecture.

    ``forward`` returns an ``AGRNetOutput`` whose ``logits`` are the log of that mean (so a softmax of them gives
    it back, and their argmax is the ensemble's label) and whose ``edge_logits`` are the mean of the members' (None
    when they have none); the graph fields, one per member, are None. ``config`` is the members' architecture, as
    ``AGRNet.config``.
    """

    def __init__(self, members: Sequence[AGRNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"members: an ensemble needs at least two models, got {len(members)}")
        configs = [member.config for member in members]
        for index, config in enumerate(configs[1:], start=1):
            if config != configs[0]:
                raise ValueError(f"members: member {index}'s architecture {config} differs from member 0's "
                                 f"{configs[0]}")  # fmt: skip
        self.members = nn.ModuleList(members)
        self.config: dict[str, Any] = dict(configs[0])
        self.num_classes: int = members[0].num_classes

    @classmethod
    def from_config(cls, config: AGRNetConfig, members: int) -> Ensemble:
        """An ensemble of ``members`` freshly initialised AGRNets of architecture ``config`` (to load weights into)."""
        return cls([AGRNet.from_config(config) for _ in range(members)])

    def forward(self, images: torch.Tensor) -> AGRNetOutput:
        """Images N x 3 x H x W in [0, 1] -> the members' mean class probabilities, as log-probabilities."""
        outputs = [member(images) for member in self.members]
        log_probabilities = torch.stack([output.logits.float().log_softmax(1) for output in outputs])
        logits = torch.logsumexp(log_probabilities, 0) - math.log(len(outputs))
        edges = [output.edge_logits for output in outputs]
        edge_logits = None if edges[0] is None else torch.stack(edges).mean(0)
        return AGRNetOutput(logits=logits.to(outputs[0].logits.dtype), edge_logits=edge_logits)


def model_from_config(config: AGRNetConfig, members: int = 1) -> AGRNet | Ensemble:
    """A freshly initialised model of architecture ``config`` to load weights into: one ``AGRNet``, or an
    ``Ensemble`` of ``members`` of them when ``members`` > 1."""
    return Ensemble.from_config(config, members) if members > 1 else AGRNet.from_config(config)
