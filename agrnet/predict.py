"""Face parsing of your own photos: ``Predictor`` in Python, ``agrnet predict`` on image files and folders.

A ``Predictor`` holds a model and its label schema (both from a checkpoint, or from trained weights shipped with the
package: ``agrnet.weights``), resizes each image to the model's input size with ``EvalTransform``, runs the shared
inference path of ``agrnet.evaluate`` (optionally with flip test-time augmentation) and resizes the logits back, so
label maps always have the original size and aspect.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from agrnet.data.base import image_to_tensor, open_image
from agrnet.data.labels import LabelSchema
from agrnet.data.transforms import EvalTransform
from agrnet.evaluate import (
    DEFAULT_SIZE,
    check_model_schema,
    checkpoint_size,
    labels_at_sizes,
    predict_logits,
    warn_on_version,
)
from agrnet.model import AGRNetOutput
from agrnet.model.agrnet import image_range
from agrnet.runtime import parse_device

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ImageLike = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
SINGLE_IMAGE = (Image.Image, np.ndarray, torch.Tensor, str, os.PathLike)
"""The types ``Predictor.parse`` takes as one image (anything else is a sequence of images)."""


def as_image_tensor(image: ImageLike) -> torch.Tensor:
    """A PIL image, an image file's path (``str`` or ``os.PathLike``; 16-bit files scaled to [0, 1]), a numpy array
    (H x W or H x W x 3/4, uint8 or float in [0, 1]) or a tensor (3 x H x W or H x W, uint8 or float in [0, 1]) as
    float32 3 x H x W in [0, 1] on the CPU. Other dtypes, floats outside [0, 1], NaN and inf are ValueErrors."""
    if isinstance(image, str | os.PathLike):
        image = open_image(Path(image), "RGB")
    if isinstance(image, Image.Image):
        return image_to_tensor(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            image = image[..., :3].transpose(2, 0, 1)
        elif image.ndim != 2:
            raise ValueError(f"image: expected a numpy array H x W or H x W x 3, got shape {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image))
    elif isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if not (tensor.ndim == 2 or (tensor.ndim == 3 and tensor.shape[0] in (1, 3))):
            raise ValueError(f"image: expected a tensor 3 x H x W or H x W, got shape {tuple(tensor.shape)}")
    else:
        raise ValueError(
            f"image: expected a PIL image, a file path, a numpy array or a tensor, got {type(image).__name__}"
        )
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255
    elif tensor.is_floating_point():
        tensor = tensor.float()
        low, high = image_range(tensor) if tensor.numel() else (0.0, 0.0)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("image: holds NaN or infinite values")
        if low < 0 or high > 1:
            raise ValueError(
                f"image: float values must lie in [0, 1], these span {low:.4g} ... {high:.4g} (uint8 images may use "
                "0 ... 255)"
            )
    else:
        raise ValueError(f"image: expected uint8 or float values, got {tensor.dtype}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    return tensor.expand(3, -1, -1).contiguous()


def label_image(label: torch.Tensor, schema: LabelSchema) -> Image.Image:
    """A label map (H x W ids) as a paletted PNG-ready image (mode "P") with the schema's colours."""
    image = Image.fromarray(label.to(torch.uint8).cpu().numpy(), mode="P")
    image.putpalette(schema.palette.flatten().tolist())
    return image


def blend(image: torch.Tensor, label: torch.Tensor, schema: LabelSchema, alpha: float = 0.5) -> torch.Tensor:
    """Image (3 x H x W in [0, 1]) with each labelled pixel tinted by its class colour: uint8 3 x H x W.

    Background (id 0) and ignored pixels keep the image's own colour.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    if tuple(image.shape[-2:]) != tuple(label.shape[-2:]):
        raise ValueError(f"image {tuple(image.shape[-2:])} and label {tuple(label.shape[-2:])} differ in size")
    label = label.to(image.device)
    colours = schema.colorize(label).to(image.dtype) / 255
    tinted = (label > 0) & (label != schema.ignore_index)
    mixed = torch.where(tinted, (1 - alpha) * image + alpha * colours, image)
    return (mixed * 255).round().clamp(0, 255).to(torch.uint8)


def overlay_image(image: ImageLike, label: torch.Tensor, schema: LabelSchema, alpha: float = 0.5) -> Image.Image:
    """``blend`` as an RGB PIL image."""
    mixed = blend(as_image_tensor(image), label.cpu(), schema, alpha)
    return Image.fromarray(mixed.permute(1, 2, 0).numpy(), mode="RGB")


class Predictor:
    """Parse images with a trained AGRNet: ``Predictor.from_checkpoint(path)(image)`` -> label map H x W.

    Args:
        model: an ``AGRNet`` (or anything returning an object with ``logits``).
        schema: its label schema (class names, colours, left/right pairs for ``flip``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        size: model input size, an int or (H, W); images are resized to it and predictions back.
        flip: flip test-time augmentation.
        batch_size: images per forward pass.
        amp: an autocast dtype (torch.bfloat16, torch.float16) for mixed precision, or None.
    """

    def __init__(
        self,
        model: nn.Module,
        schema: LabelSchema,
        device: str | torch.device = "auto",
        size: int | tuple[int, int] = DEFAULT_SIZE,
        flip: bool = False,
        batch_size: int = 4,
        amp: torch.dtype | None = None,
    ) -> None:
        check_model_schema(model, schema)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        self.device = parse_device(device)
        self.model = model.eval().to(self.device)
        self.schema = schema
        self.transform = EvalTransform(size)
        self.flip = flip
        self.batch_size = batch_size
        self.amp = amp

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        size: int | tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Load the model and schema of an ``agrnet train`` checkpoint once. ``size`` defaults to the size the
        checkpoint was trained at; other ``kwargs`` go to ``Predictor``."""
        from agrnet.checkpoint import load_model

        model, schema, payload = load_model(path, map_location="cpu")
        warn_on_version(payload, path)
        return cls(model, schema, device=device, size=checkpoint_size(payload) if size is None else size, **kwargs)

    @classmethod
    def from_weights(
        cls,
        name: str,
        device: str | torch.device = "auto",
        size: int | tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Load the shipped trained weights ``name`` (see ``agrnet weights list``), checksum verified. ``size``
        defaults to the size they were trained at; other ``kwargs`` go to ``Predictor``."""
        from agrnet import weights

        entry = weights.get(name)
        model, schema = entry.load()
        return cls(model, schema, device=device, size=entry.input_size if size is None else size, **kwargs)

    @property
    def size(self) -> tuple[int, int]:
        """The model input size (H, W)."""
        return self.transform.size

    def explain(self, image: ImageLike) -> tuple[torch.Tensor, AGRNetOutput]:
        """The image resized to the model input (3 x H x W) and the model's whole output for it (batch of one, on
        the CPU): vertices, adjacency and projection for the figures of ``agrnet.viz``."""
        resized = self.transform({"image": as_image_tensor(image).to(self.device)})["image"]
        with torch.inference_mode():
            output = self.model(resized[None])
        fields = {name: None if value is None else value.cpu() for name, value in vars(output).items()}
        return resized.cpu(), AGRNetOutput(**fields)

    def parse(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor | list[torch.Tensor]:
        """Label maps (int64 H x W on the CPU, at each image's original size): one for one image, a list for a list."""
        single = isinstance(images, SINGLE_IMAGE) or not isinstance(images, Iterable)
        batch = [images] if single else list(images)
        tensors = [as_image_tensor(image) for image in batch]
        labels: list[torch.Tensor] = []
        for start in range(0, len(tensors), self.batch_size):
            chunk = tensors[start : start + self.batch_size]
            resized = torch.stack([self.transform({"image": t.to(self.device)})["image"] for t in chunk])
            logits = predict_logits(self.model, resized, self.schema, flip=self.flip, amp=self.amp)
            labels += [label.cpu() for label in labels_at_sizes(logits, [tuple(t.shape[-2:]) for t in chunk])]
        return labels[0] if single else labels

    __call__ = parse

    def overlay(self, image: ImageLike, label: torch.Tensor | None = None, alpha: float = 0.5) -> Image.Image:
        """The image tinted with its parsing (computed when ``label`` is not given), as an RGB PIL image."""
        label = self.parse(image) if label is None else label
        return overlay_image(image, label, self.schema, alpha)


@dataclass
class PredictionFiles:
    """What ``predict_files`` wrote (label PNG, overlay PNG per image) and the inputs it could not read."""

    written: list[tuple[Path, Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def find_images(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders (searched recursively for image suffixes) into (path, output name without suffix)
    pairs, plus the inputs that do not exist. Output names keep the path below a folder input."""
    found: list[tuple[Path, Path]] = []
    missing: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found += [(p, p.relative_to(item).with_suffix("")) for p in files]
            if not files:
                missing.append((item, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
        elif item.is_file():
            found.append((item, Path(item.stem)))
        else:
            missing.append((item, "no such file or folder"))
    names = [name for _, name in found]
    duplicates = sorted({str(name) for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"inputs: several images would write the same output names {duplicates}; pass them separately")
    return found, missing


def _chunks(items: Sequence[tuple[Path, Path]], size: int) -> Iterator[Sequence[tuple[Path, Path]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_files(
    predictor: Predictor,
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    alpha: float = 0.5,
    progress: bool = False,
) -> PredictionFiles:
    """Parse image files and folders; write ``labels/<name>.png`` (paletted ids) and ``overlays/<name>.png`` under
    ``out_dir``. Unreadable files are skipped and listed in ``failed`` with the reason."""
    found, missing = find_images(inputs)
    result = PredictionFiles(failed=list(missing))
    out_dir = Path(out_dir)
    bar = tqdm(total=len(found), desc="predict", unit="image", disable=not progress)
    for chunk in _chunks(found, predictor.batch_size):
        images, names = [], []
        for path, name in chunk:
            try:
                images.append(open_image(path, "RGB"))
                names.append((path, name))
            except (RuntimeError, FileNotFoundError, ValueError) as error:
                result.failed.append((path, str(error)))
        if images:
            for image, label, (path, name) in zip(images, predictor.parse(images), names, strict=True):
                label_path = out_dir / "labels" / name.with_suffix(".png")
                overlay_path = out_dir / "overlays" / name.with_suffix(".png")
                label_path.parent.mkdir(parents=True, exist_ok=True)
                overlay_path.parent.mkdir(parents=True, exist_ok=True)
                label_image(label, predictor.schema).save(label_path)
                predictor.overlay(image, label, alpha).save(overlay_path)
                result.written.append((path, label_path, overlay_path))
        bar.update(len(chunk))
    bar.close()
    return result
