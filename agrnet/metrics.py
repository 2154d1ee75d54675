"""Parsing metrics from a confusion matrix accumulated over a whole dataset (Sec. V-A).

Rows of the matrix are ground-truth classes and columns predicted classes; every score is computed from the
matrix summed over all images, not averaged over images. Per class c, with TP = M[c, c], GT = row sum and
PRED = column sum:

- F1 = 2 TP / (GT + PRED), IoU = TP / (GT + PRED - TP), accuracy (recall) = TP / GT;
- a class absent from both the prediction and the ground truth (GT + PRED = 0) has no F1 or IoU: NaN, left out
  of the means (nanmean); accuracy is NaN for a class absent from the ground truth;
- grouped F1 (``group_f1``) follows the face-parsing literature (Liu et al. 2015, Lin et al. 2019 and the
  authors' evaluation code): the classes of a group are merged into one by summing their rows and their columns,
  so the intersection is the sum of the group's block of the matrix. Helen's "eyes" is left + right eye as one
  class, and the "overall" F1 of Table II(a) is the F1 of the merged foreground brows + eyes + nose + mouth
  (a pixel of the left eye predicted as nose counts as correct for "overall"). It is *not* the average of the
  four component scores that Sec. V-C's wording suggests: Table II(a)'s numbers (e.g. 93.2 overall for
  components 85.0 / 90.1 / 95.9 / 96.2) only fit the merged definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

from agrnet.data.labels import IGNORE_INDEX


def _nanmean(values: torch.Tensor) -> float:
    """Mean of the non-NaN entries, NaN when there are none."""
    return float(values.nanmean()) if values.numel() else math.nan


class ConfusionMatrix:
    """A num_classes x num_classes confusion matrix (rows: ground truth, columns: prediction), int64.

    ``update`` accepts batched tensors on any device and counts them there with one ``torch.bincount``; the
    matrix follows the device of the first update. Pixels whose target is ``ignore_index`` are not counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes: expected a positive integer, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        """Set every count back to zero."""
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count a batch: ``pred`` class ids of ``target``'s shape, or logits with a class dimension at dim 1."""
        if pred.ndim == target.ndim + 1 and pred.is_floating_point():
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred, target = pred.flatten().long(), target.flatten().long()
        valid = target != self.ignore_index
        if pred.device != self.matrix.device:
            self.matrix = self.matrix.to(pred.device)
        labelled = target.masked_select(valid)
        predicted = pred.masked_select(valid)
        index = labelled * self.num_classes + predicted
        inside = (labelled >= 0) & (labelled < self.num_classes) & (predicted >= 0) & (predicted < self.num_classes)
        if not bool(inside.all()):
            raise ValueError(f"pred or target holds ids outside 0..{self.num_classes - 1} (and target's ignore)")
        counts = torch.bincount(index, minlength=self.num_classes**2)
        self.matrix += counts.view(self.num_classes, self.num_classes)

    def all_reduce(self) -> None:
        """Sum the matrix over all processes of a DDP run (no-op outside ``torch.distributed``)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def _counts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        matrix = self.matrix.double()
        return matrix.diagonal(), matrix.sum(1), matrix.sum(0)

    def f1(self) -> torch.Tensor:
        """Per-class F1 = 2 TP / (GT + PRED) (float64, NaN for a class absent from prediction and target)."""
        tp, gt, pred = self._counts()
        return 2 * tp / (gt + pred)

    def iou(self) -> torch.Tensor:
        """Per-class IoU = TP / (GT + PRED - TP) (NaN for a class absent from prediction and target)."""
        tp, gt, pred = self._counts()
        return tp / (gt + pred - tp)

    def accuracy(self) -> torch.Tensor:
        """Per-class accuracy (recall) = TP / GT (NaN for a class absent from the target)."""
        tp, gt, _ = self._counts()
        return tp / gt

    def _mean(self, values: torch.Tensor, exclude: Iterable[int]) -> float:
        keep = torch.ones(self.num_classes, dtype=torch.bool)
        keep[list(exclude)] = False
        return _nanmean(values.cpu()[keep])

    def mean_f1(self, exclude: Iterable[int] = (0,)) -> float:
        """Mean F1 over the classes, background (id 0) excluded by default as in Table II."""
        return self._mean(self.f1(), exclude)

    def miou(self, exclude: Iterable[int] = ()) -> float:
        """Mean IoU over the classes (all classes by default, as in the authors' evaluation)."""
        return self._mean(self.iou(), exclude)

    def pixel_accuracy(self) -> float:
        """Correct labelled pixels / labelled pixels (NaN before any update)."""
        total = self.matrix.sum()
        return float(self.matrix.diagonal().sum().double() / total) if bool(total > 0) else math.nan

    def mean_accuracy(self, exclude: Iterable[int] = ()) -> float:
        """Mean per-class accuracy over the classes present in the target."""
        return self._mean(self.accuracy(), exclude)

    def group_f1(self, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
        """F1 of each group of classes merged into one (summed rows and columns; see the module docstring)."""
        matrix = self.matrix.double()
        scores = {}
        for name, ids in groups.items():
            index = torch.as_tensor(list(ids), dtype=torch.long, device=matrix.device)
            if index.numel() == 0 or bool((index < 0).any() | (index >= self.num_classes).any()):
                raise ValueError(f"group {name!r}: ids {list(ids)} not within 0..{self.num_classes - 1}")
            intersection = matrix[index][:, index].sum()
            gt, pred = matrix[index].sum(), matrix[:, index].sum()
            scores[name] = float(2 * intersection / (gt + pred))
        return scores

    def to_dict(
        self, class_names: Sequence[str] | None = None, groups: Mapping[str, Sequence[int]] | None = None
    ) -> dict[str, Any]:
        """JSON-ready summary: means, per-class scores keyed by class name, grouped F1; NaN becomes None."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"class_names: expected {self.num_classes} names, got {len(names)}")

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        def per_class(values: torch.Tensor) -> dict[str, float | None]:
            return {name: clean(float(v)) for name, v in zip(names, values.tolist(), strict=True)}

        report: dict[str, Any] = {
            "mean_f1": clean(self.mean_f1()),
            "miou": clean(self.miou()),
            "pixel_accuracy": clean(self.pixel_accuracy()),
            "mean_accuracy": clean(self.mean_accuracy()),
            "f1": per_class(self.f1()),
            "iou": per_class(self.iou()),
            "accuracy": per_class(self.accuracy()),
        }
        if groups:
            report["group_f1"] = {name: clean(v) for name, v in self.group_f1(groups).items()}
        report["pixels"] = int(self.matrix.sum())
        return report
