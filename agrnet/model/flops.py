"""The cost of each part of AGRNet in FLOPs and parameters, beside the paper's Table I(d).

FLOPs are counted by ``torch.utils.flop_counter`` at batch 1 (one multiply-add = 2 FLOPs; convolutions and matrix
products only, as is usual). ``agrnet complexity`` prints the table.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from agrnet.model.agrnet import AGRNet
from agrnet.paper import PAPER_INPUT_SIZE, PAPER_TABLE_1D

#: The children of AGRNet, grouped into the parts the paper's Table I(d) reports.
PARTS: dict[str, tuple[str, ...]] = {
    "backbone": ("backbone",),
    "pyramid pooling and fusion": ("pyramid_pooling", "fusion"),
    "edge perceiving": ("edge",),
    "graph projection": ("projection",),
    "graph reasoning": ("reasoning",),
    "reprojection and decoder": ("reprojection", "decoder"),
}


def _module_flops(counts: dict[str, dict], child: str) -> int:
    """Total FLOPs the counter attributed to the top-level child ``child`` (keys look like 'AGRNet.child')."""
    return sum(sum(ops.values()) for name, ops in counts.items() if name.split(".")[1:] == [child])


def complexity(
    model: AGRNet, size: tuple[int, int] = (PAPER_INPUT_SIZE, PAPER_INPUT_SIZE)
) -> dict[str, dict[str, float]]:
    """FLOPs (G) and parameters (M) of each part of ``model`` for one image of ``size``.

    Returns ``{part: {"gflops": ..., "mparams": ...}}`` for the parts of ``PARTS`` (absent parts count zero), plus
    ``"baseline"`` (backbone, pyramid pooling, fusion and decoder: Table I(a), model 1) and ``"total"``.
    """
    device = next(model.parameters()).device
    images = torch.zeros(1, 3, *size, device=device)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images)
    model.train(was_training)
    counts = counter.get_flop_counts()
    children = dict(model.named_children())

    def cost(names: tuple[str, ...]) -> dict[str, float]:
        modules: list[nn.Module] = [children[name] for name in names if children.get(name) is not None]
        params = sum(p.numel() for module in modules for p in module.parameters())
        flops = sum(_module_flops(counts, name) for name in names)
        return {"gflops": flops / 1e9, "mparams": params / 1e6}

    table = {part: cost(names) for part, names in PARTS.items()}
    table["baseline"] = cost(("backbone", "pyramid_pooling", "fusion", "decoder"))
    table["total"] = {
        "gflops": counter.get_total_flops() / 1e9,
        "mparams": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A plain-text table of ``complexity`` beside the paper's Table I(d)."""
    paper = {"baseline": PAPER_TABLE_1D["baseline (ResNet)"], **PAPER_TABLE_1D}
    lines = [f"{'part':28s} {'GFLOPs':>9s} {'M params':>9s}   {'paper GFLOPs':>12s} {'paper M':>8s}"]
    for part, row in table.items():
        ref = paper.get(part)
        ref_text = f"{ref[0]:12.3f} {ref[1]:8.2f}" if ref else f"{'':12s} {'':8s}"
        lines.append(f"{part:28s} {row['gflops']:9.3f} {row['mparams']:9.3f}   {ref_text}")
    return "\n".join(lines)
