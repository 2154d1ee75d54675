"""Face parsing of your own photos: ``Predictor`` in Python, ``agrnet predict`` on image files and folders.

A ``Predictor`` holds a model and its label schema (both from a checkpoint, or from trained weights shipped with the
package: ``agrnet.weights``), resizes each image to the model's input size with ``EvalTransform``, runs the shared
inference path of ``agrnet.evaluate`` (optionally with flip test-time augmentation) and resizes the logits back, so
label maps always have the original size and aspect.

``agrnet predict`` writes files (``agrnet.prediction_files.predict_files``): by default every input is a whole
photo, whose faces are detected, aligned to the frame the model was trained in, parsed and pasted back
(``agrnet.faces``; ``Predictor.parse_photo`` for one photo in Python); images that already show one face in the
model's framing (``--aligned``) are resized whole. Large files cost little memory: a JPEG is decoded at a reduced
scale where only the model's input size is needed (``open_reduced``), labels are resized back in bands of rows
(``resize_labels``) and overlays blended in bands.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from agrnet.data.base import image_to_tensor, open_image
from agrnet.data.labels import LabelSchema
from agrnet.data.transforms import EvalTransform, check_input_size
from agrnet.evaluate import (
    DEFAULT_SIZE,
    check_model_schema,
    check_scales,
    checkpoint_size,
    labels_at_sizes,
    predict_logits,
    warn_on_version,
)
from agrnet.files import BadFileError
from agrnet.framing import CONTEXT
from agrnet.model import AGRNetOutput
from agrnet.model.agrnet import image_range
from agrnet.runtime import parse_device

if TYPE_CHECKING:
    from agrnet.faces import FaceDetector, FaceFrame, PhotoParsing

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
SINGLE_IMAGE = (Image.Image, np.ndarray, torch.Tensor, str, os.PathLike)
"""The types ``Predictor.parse`` takes as one image (anything else is a sequence of images)."""
DEFAULT_WEIGHTS = "fasseg-photo-ensemble-resnet18"
"""The shipped weights ``agrnet predict`` parses photos with when given neither a checkpoint nor ``--weights``: an
ensemble of the three seeds of the photo recipe at 320 px (``agrnet experiment fasseg-photo-long-320 --ensemble``),
every part of which was kept by a rule on FASSEG's ``val`` split (the book's "Faces from elsewhere").
``fasseg-photo-resnet18``, one training of the recipe at 256 px, makes one forward pass per view instead of three."""
EXIF_ORIENTATION = 0x0112
BAND_PIXELS = 2**20
"""Pixels per band where full-size labels and overlays are computed band by band (rows: this over the width)."""


def as_image_tensor(image: ImageLike) -> torch.Tensor:
    """A PIL image, an image file's path (``str`` or ``os.PathLike``; 16-bit files scaled to [0, 1]), a numpy array
    (H x W or H x W x 3/4, uint8 or float in [0, 1]) or a tensor (3 x H x W or H x W, uint8 or float in [0, 1]) as
    float32 3 x H x W in [0, 1] on the CPU. Other dtypes, floats outside [0, 1], NaN and inf are ValueErrors."""
    if isinstance(image, str | os.PathLike):
        image = open_image(Path(image), "RGB")
    if isinstance(image, Image.Image):
        return _check_pixels(image_to_tensor(image.convert("RGB")))
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
    return _check_pixels(tensor.expand(3, -1, -1).contiguous())


def _check_pixels(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (... x H x W), or a ValueError when it has no pixels."""
    if tensor.shape[-2] == 0 or tensor.shape[-1] == 0:
        raise ValueError(f"image: has no pixels ({tensor.shape[-2]} x {tensor.shape[-1]})")
    return tensor


def open_reduced(
    path: str | os.PathLike[str], at_least: int | tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int]]:
    """The RGB image in the file at ``path``, upright (EXIF orientation applied), decoded no larger than needed,
    and the (H, W) of the whole picture. ``at_least``: the (H, W) the decoded image must reach, the length its
    longer side must reach (the aspect kept), or None for the whole picture. A JPEG is decoded at the smallest of
    its reduced scales (1/2, 1/4, 1/8) that does so (``Image.draft``: a fraction of the memory and time of the
    whole picture), without further copies; other files in full (``open_image``, whose errors these are)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file is missing")
    try:
        opened = Image.open(path)
    except UnidentifiedImageError as error:
        raise BadFileError(f"{path}: not a readable image file") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadFileError(f"{path}: cannot decode image, the file is truncated or corrupt ({error})") from error
    if opened.format != "JPEG":
        opened.close()
        image = open_image(path, "RGB")
        return image, (image.height, image.width)
    try:
        turned = opened.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # shown turned by 90 degrees
        width, height = opened.size[::-1] if turned else opened.size
        if at_least is not None:
            if isinstance(at_least, int):
                scale = min(1.0, at_least / max(height, width))
                needed = (math.ceil(width * scale), math.ceil(height * scale))
            else:
                needed = (at_least[1], at_least[0])
            opened.draft("RGB", needed[::-1] if turned else needed)
        opened.load()  # reads and closes the file
        ImageOps.exif_transpose(opened, in_place=True)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        opened.close()
        raise BadFileError(f"{path}: cannot decode image, the file is truncated or corrupt ({error})") from error
    return (opened if opened.mode == "RGB" else opened.convert("RGB")), (height, width)


def resize_labels(logits: torch.Tensor, size: tuple[int, int], rows: int | None = None) -> torch.Tensor:
    """The label map of ``logits`` (Nc x h x w) at ``size`` (H, W): the argmax of the logits resized bilinearly
    (as ``F.interpolate`` with ``align_corners=False``), ``rows`` output rows at a time (default: ``BAND_PIXELS``
    pixels), so that memory holds one band of logits rather than the whole picture's. uint8 on the CPU (int64 for
    more than 256 classes)."""
    classes, height, width = logits.shape
    out_height, out_width = size
    rows = rows or max(1, BAND_PIXELS // out_width)
    labels = torch.empty(size, dtype=torch.uint8 if classes <= 256 else torch.long)
    logits = logits.float()
    for start in range(0, out_height, rows):
        stop = min(out_height, start + rows)
        source = ((torch.arange(start, stop, dtype=torch.float64) + 0.5) * height / out_height - 0.5).clamp_(min=0)
        low = source.floor().long().clamp_(max=height - 1)
        high = (low + 1).clamp_(max=height - 1)
        weight = (source - low).to(logits.device, torch.float32)[:, None]
        low, high = low.to(logits.device), high.to(logits.device)
        band = logits[:, low] * (1 - weight) + logits[:, high] * weight  # rows resized, Nc x band x w
        band = F.interpolate(band[None], size=(stop - start, out_width), mode="bilinear", align_corners=False)
        labels[start:stop] = band[0].argmax(0).cpu().to(labels.dtype)
    return labels


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


def overlay_in_place(
    picture: Image.Image, label: torch.Tensor, schema: LabelSchema, alpha: float = 0.5, rows: int | None = None
) -> Image.Image:
    """``overlay_image`` of an RGB PIL picture, blended into the picture itself (returned) ``rows`` rows at a
    time (default: ``BAND_PIXELS`` pixels): the same pixels without a float copy of the whole picture."""
    if (picture.height, picture.width) != tuple(label.shape):
        raise ValueError(f"image {(picture.height, picture.width)} and label {tuple(label.shape)} differ in size")
    rows = rows or max(1, BAND_PIXELS // picture.width)
    for start in range(0, picture.height, rows):
        box = (0, start, picture.width, min(picture.height, start + rows))
        band = torch.from_numpy(np.array(picture.crop(box))).permute(2, 0, 1).float().div_(255.0)
        mixed = blend(band, label[box[1] : box[3]], schema, alpha).permute(1, 2, 0).numpy()
        picture.paste(Image.fromarray(mixed, mode="RGB"), box)
    return picture


class Predictor:
    """Parse images with a trained AGRNet: ``Predictor.from_checkpoint(path)(image)`` -> label map H x W.

    Args:
        model: an ``AGRNet`` (or anything returning an object with ``logits``).
        schema: its label schema (class names, colours, left/right pairs for ``flip``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        size: model input size, an int or (H, W), at least ``MIN_INPUT_SIZE`` (32); images are resized to it and
            predictions back.
        flip: flip test-time augmentation.
        scales: multi-scale test-time augmentation, the factors each image is parsed at after resizing it to
            ``size`` (``agrnet.evaluate.predict_logits``); (1,) parses at ``size`` only.
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
        scales: Sequence[float] = (1.0,),
    ) -> None:
        check_model_schema(model, schema)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        self.device = parse_device(device)
        self.model = model.eval().to(self.device)
        self.schema = schema
        self.transform = EvalTransform(check_input_size(size, "size"))
        self.flip = flip
        self.scales = check_scales(scales, self.size)
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
        flip: bool | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Load the shipped trained weights ``name`` (see ``agrnet weights list``), checksum verified. ``size``
        defaults to the size they were trained at, ``flip`` to the entry's own (``ModelWeights.flip``); other
        ``kwargs`` go to ``Predictor``."""
        from agrnet import weights

        entry = weights.get(name)
        model, schema = entry.load()
        size = entry.input_size if size is None else size
        return cls(model, schema, device=device, size=size, flip=entry.flip if flip is None else flip, **kwargs)

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
            logits = predict_logits(self.model, resized, self.schema, self.flip, self.amp, self.scales)
            labels += [label.cpu() for label in labels_at_sizes(logits, [tuple(t.shape[-2:]) for t in chunk])]
        return labels[0] if single else labels

    __call__ = parse

    def overlay(self, image: ImageLike, label: torch.Tensor | None = None, alpha: float = 0.5) -> Image.Image:
        """The image tinted with its parsing (computed when ``label`` is not given), as an RGB PIL image."""
        label = self.parse(image) if label is None else label
        return overlay_image(image, label, self.schema, alpha)

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities Nc x H x W (on the CPU) of one image 3 x H x W, at the image's size: the model's
        logits resized back bilinearly, then the softmax (what ``agrnet.faces`` pastes back onto a photo)."""
        resized = self.transform({"image": image.to(self.device)})["image"]
        logits = predict_logits(self.model, resized[None], self.schema, self.flip, self.amp, self.scales)
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return logits.softmax(1)[0].cpu()

    def parse_photo(
        self, image: ImageLike, detector: FaceDetector | None = None, frame: FaceFrame | None = None,
        crop_height: int = 512, context: float = CONTEXT,
    ) -> PhotoParsing:  # fmt: skip
        """Parse every face of a whole photo (``agrnet.faces.parse_photo``): detect the faces, align each to
        ``frame``, parse it and its context view (``context`` times wider; 1: none) and paste the parsing back;
        ``label`` of the result has the photo's size.
        ``detector`` defaults to YuNet's shipped model, ``frame`` to the one of the model's schema
        (``agrnet.faces.frame_for``): a ValueError for a schema without one (parse aligned images with ``parse``)."""
        from agrnet.faces import FaceDetector, parse_photo, require_frame

        frame = frame or require_frame(self.schema)
        detector = detector or FaceDetector()
        return parse_photo(self, as_image_tensor(image), detector, frame, crop_height, context=context)
