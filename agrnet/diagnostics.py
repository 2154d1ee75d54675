"""What a training step's graph looks like, in a few numbers per step: the curves that explain a failed seed.

``graph_diagnostics`` reads one forward pass (an ``AGRNetOutput``) against its labels; the trainer logs its values
with each step in ``log.jsonl`` (under ``"diagnostics"``), beside the loss terms and the gradient norm. All values
stay on the device (no host round-trip per step) and are cheap next to the step itself.

- ``p_entropy``: the entropy of each pixel's column of P (Eq. 5), averaged over pixels, as a fraction of its
  largest value log V. 1 means a pixel draws equally from every vertex (P is uninformative), 0 means it draws from
  a single vertex (the softmax of XG Xe^T has saturated).
- ``p_max``: the largest entry of each pixel's column of P, averaged over pixels (1/V for a uniform P).
- ``own_class``: the share of vertices that sit on a pixel of their own class (the ground truth at the 1/4 grid of
  Z0), among the vertices on labelled pixels: how well the top-K selection of Eq. (3) finds each component.
- ``edge_mean``: the mean edge probability E over pixels (the edge pixels of the ground truth are a few percent).
- ``grad_norm``: the global L2 norm of the gradients of the step (logged by the trainer).

Values a variant does not have (no graph, no edge module) are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from agrnet.data.labels import IGNORE_INDEX
from agrnet.model import AGRNetOutput
from agrnet.model.graph import grid_cell_centres

NAMES = ("p_entropy", "p_max", "own_class", "edge_mean")
"""The values of ``graph_diagnostics``, in this order."""


def projection_entropy(projection: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy of P's columns (N x V x HW, each column sums to one) over log V."""
    entropy = -(projection * projection.clamp_min(1e-12).log()).sum(dim=1)
    return entropy.mean() / math.log(projection.shape[1])


def label_at_grid(label: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The label map (... x H x W, any size) read at the centre of each cell of an H1 x W1 ``grid``: ... x H1 x W1,
    the ground truth under each pixel of the 1/4 map that ``vertex_index`` and P index (the cell centres
    ``agrnet.viz.vertex_positions`` draws the vertices at)."""
    height, width = label.shape[-2:]
    centres = grid_cell_centres(*grid, height, width, label.device)
    return label.flatten(-2)[..., centres].unflatten(-1, grid)


def vertices_on_own_class(
    vertex_index: torch.Tensor, label: torch.Tensor, grid: tuple[int, int], top_k: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """The share of vertices (N x V flat indices into the ``grid``, class-major with ``top_k`` per class) whose
    pixel has their class in ``label`` (N x H x W, read at the grid's cell centres, ``label_at_grid``); vertices on
    ``ignore_index`` pixels are left out. NaN when every vertex is on an ignored pixel."""
    at_vertex = label_at_grid(label.long(), grid).flatten(1).gather(1, vertex_index)
    own = torch.arange(vertex_index.shape[1], device=label.device) // top_k
    valid = at_vertex != ignore_index
    return ((at_vertex == own) & valid).sum() / valid.sum()


def graph_diagnostics(
    output: AGRNetOutput, label: torch.Tensor, top_k: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``NAMES`` of one forward pass as one float32 tensor (NaN where the model lacks the part)."""
    nan = torch.tensor(float("nan"), device=output.logits.device)
    values = [nan, nan, nan, nan]
    with torch.no_grad():
        if output.projection is not None:
            projection = output.projection.float()
            values[0] = projection_entropy(projection)
            values[1] = projection.amax(dim=1).mean()
        if output.vertex_index is not None and output.raw_logits is not None:
            grid = tuple(output.raw_logits.shape[-2:])
            values[2] = vertices_on_own_class(output.vertex_index, label, grid, top_k, ignore_index)
        if output.edge_logits is not None:
            values[3] = torch.sigmoid(output.edge_logits.float()).mean()
    return torch.stack([value.float() for value in values])


SUMMARY_TERMS = ("final", "own_class", "p_entropy", "edge_mean", "grad_norm")
"""What ``curve_summary`` reads from the end of each training curve: L_final and the diagnostics above."""


def curve_value(point: Mapping[str, Any], key: str) -> float | None:
    """A loss term or diagnostic of one point of a results file's training curve; None where absent or NaN."""
    value = point.get(key, point.get("diagnostics", {}).get(key))
    return None if value is None or math.isnan(value) else float(value)


def curve_summary(results: Mapping[str, Any], split: str = "test", tail: float = 0.1) -> list[dict[str, Any]]:
    """One row per variant of an experiment's results file: its seeds, the lowest, mean and highest mean F1 on
    ``split`` over them, and the mean over seeds of each ``SUMMARY_TERMS`` value averaged over the last ``tail``
    share of the training curve (None where the variant lacks the part). A variant that learns unstably shows a
    wide F1 range beside an L_final, a share of own-class vertices or an entropy of P unlike the others'."""
    rows = []
    for variant in results["variants"]:
        runs = [run for run in results["runs"] if run["variant"] == variant and split in run["metrics"]]
        if not runs:
            continue
        scores = [run["metrics"][split]["mean_f1"] for run in runs]
        row: dict[str, Any] = {"variant": variant, "seeds": [run["seed"] for run in runs],
                               "mean_f1": (min(scores), sum(scores) / len(scores), max(scores))}  # fmt: skip
        for key in SUMMARY_TERMS:
            ends = []
            for run in runs:
                curve = run.get("curve") or []
                start = len(curve) - max(1, round(tail * len(curve)))
                end = curve[max(0, start):]
                values = [v for v in (curve_value(point, key) for point in end) if v is not None]
                ends += [sum(values) / len(values)] if values else []
            row[key] = sum(ends) / len(ends) if ends else None
        rows.append(row)
    return rows
