"""Training and evaluation transforms on sample dicts (AGRNet Sec. V-B), built on ``torchvision.transforms.v2``.

Randomness comes from torch's global generator only (``torch.manual_seed`` makes a run reproducible; a
DataLoader seeds it differently in each worker from its base seed, so seeded loaders replay exactly).
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from agrnet.data.base import Sample
from agrnet.data.edges import label_edges
from agrnet.data.labels import LabelSchema

GEOMETRIC_EXTRAS = ("landmarks",)


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(height), int(width)


class TrainTransform:
    """Random rotation in (-``rotation``, ``rotation``) degrees and scale in ``scale`` about the centre, a horizontal
    flip with probability 1/2 followed by the schema's left/right id swap, and a fit to ``size``.

    The image is resized to ``size`` (bilinear, antialiased; label nearest), exactly as ``EvalTransform`` resizes
    it, so that training and evaluation see faces with the same aspect; then it is rotated and scaled (uncovered
    pixels: image 0, label ``ignore_index``). ``edge`` is recomputed from the transformed label. Other keys
    (``name``, ``yaw``, ...) pass through.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        schema: LabelSchema,
        rotation: float = 30.0,
        scale: tuple[float, float] = (0.75, 1.25),
        flip: bool = True,
    ) -> None:
        self.size = _size_pair(size)
        self.schema = schema
        self.flip = flip
        fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: schema.ignore_index}
        self.geometry = v2.Compose(
            [
                v2.Resize(self.size, antialias=True),
                v2.RandomAffine(degrees=rotation, scale=scale, interpolation=v2.InterpolationMode.BILINEAR, fill=fill),
            ]
        )

    def __call__(self, sample: Sample) -> Sample:
        present = [key for key in GEOMETRIC_EXTRAS if key in sample]
        if present:
            raise ValueError(f"TrainTransform cannot move {present}; load the dataset without them")
        image, label = self.geometry(tv_tensors.Image(sample["image"]), tv_tensors.Mask(sample["label"]))
        if self.flip and torch.rand(()) < 0.5:
            image = TF.horizontal_flip(image)
            label = self.schema.mirror_ids(TF.horizontal_flip(label))
        image = image.as_subclass(torch.Tensor).clamp_(0.0, 1.0)
        label = label.as_subclass(torch.Tensor)
        edge = label_edges(label, self.schema.ignore_index)
        return {**sample, "image": image, "label": label, "edge": edge}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, schema={self.schema.name!r}, flip={self.flip}, {self.geometry})"
        )


class EvalTransform:
    """Resize the image to ``size`` (bilinear, antialiased) and keep the label and edge at full resolution.

    Adds ``original_size`` (H, W) so that a prediction at ``size`` can be resized back and scored against the
    untouched label.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size_pair(size)

    def __call__(self, sample: Sample) -> Sample:
        image = sample["image"]
        resized = TF.resize(tv_tensors.Image(image), list(self.size), antialias=True).as_subclass(torch.Tensor)
        return {**sample, "image": resized.clamp_(0.0, 1.0), "original_size": tuple(image.shape[-2:])}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"
