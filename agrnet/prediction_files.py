"""``agrnet predict`` on image files and folders (``predict_files``): find the images (each folder once, never
``agrnet predict``'s own output), parse each as a whole photo (``agrnet.faces``) or as an aligned face, and write
one label map and one overlay per image at its own size, band by band for large ones."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from agrnet.data.base import IMAGE_SUFFIXES, image_to_tensor
from agrnet.evaluate import (
    predict_logits,
)
from agrnet.files import atomic_write
from agrnet.framing import CONTEXT
from agrnet.predict import Predictor, label_image, open_reduced, overlay_in_place, resize_labels

if TYPE_CHECKING:
    from agrnet.faces import FaceDetector, FaceFrame

OUTPUT_MARKER = ".agrnet-predict"
"""The file ``predict_files`` leaves in its output folder; a folder search skips every folder that holds one."""
READ_ERRORS = (RuntimeError, FileNotFoundError, ValueError)
"""What reading an input file may raise (``BadFileError`` is a RuntimeError)."""


@dataclass
class PredictionFiles:
    """What ``predict_files`` wrote (label PNG, overlay PNG per image) and the inputs it could not read (each with
    the reason, which does not repeat the path); for photos also the faces parsed, the crops written and the images
    without a face (with what was found)."""

    written: list[tuple[Path, Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    faces: int = 0
    crops: list[Path] = field(default_factory=list)
    no_face: list[tuple[Path, str]] = field(default_factory=list)


def _identity(path: Path) -> tuple[int, int]:
    """The folder or file ``path`` leads to (device, inode), whichever symlinks lead there."""
    status = path.stat()
    return status.st_dev, status.st_ino


def _search(root: Path, skip: set[tuple[int, int]]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files below folder ``root`` and the symlinks refused on the way. Every folder is searched once:
    the real folders first, then those that only symlinks lead to; a symlink that leads back to a folder above it
    is a loop, and folders in ``skip`` or holding ``OUTPUT_MARKER`` are left out."""
    files: list[Path] = []
    refused: list[tuple[Path, str]] = []
    visited = {_identity(root)}
    stack = [(root, (_identity(root),))]
    linked: list[tuple[Path, tuple[tuple[int, int], ...]]] = []
    while stack or linked:
        if not stack:
            path, above = linked.pop(0)
            identity = _identity(path)
            if identity not in visited:
                visited.add(identity)
                stack.append((path, (*above, identity)))
            continue
        folder, above = stack.pop()
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            path = folder / name
            try:
                status = path.stat()
            except OSError as error:  # a broken symlink, or one that leads to itself
                if error.errno == errno.ELOOP:
                    refused.append((path, "symlink loop (it leads to itself); not followed"))
                continue
            if stat.S_ISDIR(status.st_mode):
                identity = (status.st_dev, status.st_ino)
                if identity in above:
                    refused.append((path, f"symlink loop (it leads back to {path.resolve()}, a folder above it); "
                                          "not followed"))  # fmt: skip
                elif identity in skip or (path / OUTPUT_MARKER).exists():
                    continue
                elif path.is_symlink():
                    linked.append((path, above))
                elif identity not in visited:
                    visited.add(identity)
                    stack.append((path, (*above, identity)))
            elif stat.S_ISREG(status.st_mode) and path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(path)
    return sorted(files), sorted(refused)


def find_images(
    inputs: Iterable[str | os.PathLike[str]], skip: Iterable[str | os.PathLike[str]] = ()
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders into (path, output name without suffix) pairs, plus the inputs that cannot be used
    (with the reason). Output names keep the path below a folder input.

    Folders are searched recursively for image suffixes. The search leaves out the folders in ``skip`` (the output
    folder) and every folder that ``agrnet predict`` wrote (it holds ``OUTPUT_MARKER``), searches each folder once
    however many symlinks lead to it, and refuses a symlink that loops back to a folder above it (listed).
    """
    skipped = {_identity(Path(folder)) for folder in skip if Path(folder).is_dir()}
    found: list[tuple[Path, Path]] = []
    missing: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            if _identity(item) in skipped:
                missing.append((item, "is the output folder; not searched"))
                continue
            files, refused = _search(item, skipped)
            found += [(p, p.relative_to(item).with_suffix("")) for p in files]
            missing += refused
            if not files and not refused:
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


def _reason(path: Path, error: BaseException) -> str:
    """The message of a read error without the path it starts with (the listing names the path)."""
    message = str(error)
    return message.removeprefix(f"{path}: ")


class _Writer:
    """Writes the files of ``predict_files`` under ``out_dir`` (creating it, with its ``OUTPUT_MARKER``, on the
    first write) and records them in ``result``."""

    def __init__(self, predictor: Predictor, out_dir: Path, alpha: float, result: PredictionFiles) -> None:
        self.predictor, self.out_dir, self.alpha, self.result = predictor, out_dir, alpha, result

    def _path(self, kind: str, name: Path) -> Path:
        path = self.out_dir / kind / name.with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = self.out_dir / OUTPUT_MARKER
        if not marker.exists():
            marker.write_text("written by agrnet predict, whose folder searches skip this folder\n")
        return path

    def parsing(self, path: Path, name: Path, label: torch.Tensor, picture: Image.Image) -> None:
        """The label map and the overlay of one input image (RGB; the overlay is blended into it)."""
        schema = self.predictor.schema
        label_path, overlay_path = self._path("labels", name), self._path("overlays", name)
        save_png(label_image(label, schema), label_path)
        save_png(overlay_in_place(picture, label, schema, self.alpha), overlay_path)
        self.result.written.append((path, label_path, overlay_path))

    def crop(self, name: Path, index: int, crop: torch.Tensor, label: torch.Tensor) -> None:
        """One face's aligned crop (3 x h x w in [0, 1]) and its parsing."""
        stem = f"{name.name}-face{index}"
        image_path = self._path("crops", name.with_name(stem))
        label_path = self._path("crops", name.with_name(f"{stem}-labels"))
        save_png(Image.fromarray((crop * 255).round().byte().permute(1, 2, 0).numpy(), mode="RGB"), image_path)
        save_png(label_image(label, self.predictor.schema), label_path)
        self.result.crops += [image_path, label_path]


def save_png(image: Image.Image, path: Path) -> None:
    """``image`` written to ``path`` as PNG atomically: a full disk is one ``agrnet.files.WriteError`` naming the
    file, and no partial file is left."""
    atomic_write(path, lambda file: image.save(file, format="PNG"), clean=False)


def _full_picture(path: Path, decoded: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The RGB picture at ``path`` at its full ``size`` (H, W): ``decoded`` when it is whole."""
    return decoded if (decoded.height, decoded.width) == tuple(size) else open_reduced(path, None)[0]


def _parse_aligned(predictor: Predictor, chunk: Sequence[tuple[Path, Path]], writer: _Writer) -> None:
    """Parse each image of ``chunk`` whole, resized to the model's input, in one batch."""
    opened = []
    for path, name in chunk:
        try:
            opened.append((path, name, *open_reduced(path, predictor.size)))
        except READ_ERRORS as error:
            writer.result.failed.append((path, _reason(path, error)))
    if not opened:
        return
    resized = [predictor.transform({"image": image_to_tensor(image).to(predictor.device)})["image"]
               for _, _, image, _ in opened]  # fmt: skip
    logits = predict_logits(
        predictor.model, torch.stack(resized), predictor.schema, predictor.flip, predictor.amp, predictor.scales
    )
    for (path, name, image, size), item in zip(opened, logits, strict=True):
        label = resize_labels(item, size)
        try:
            picture = _full_picture(path, image, size)
        except READ_ERRORS as error:
            writer.result.failed.append((path, _reason(path, error)))
            continue
        writer.parsing(path, name, label, picture)


def _parse_photo(
    predictor: Predictor, path: Path, name: Path, writer: _Writer, detector: FaceDetector, frame: FaceFrame,
    crops: bool, whole_if_no_face: bool, context: float,
) -> None:  # fmt: skip
    """Detect, align, parse (with a context view ``context`` times wider) and paste back every face of the photo at
    ``path``."""
    from agrnet.faces import DETECTION_SIDE, MIN_PHOTO_SIDE, parse_photo

    try:
        small, size = open_reduced(path, DETECTION_SIDE)
    except READ_ERRORS as error:
        writer.result.failed.append((path, _reason(path, error)))
        return
    if min(size) < MIN_PHOTO_SIDE:
        faces, reason = [], f"{size[1]} x {size[0]} pixels, too small to hold a face"
    else:
        faces, reason = detector(np.asarray(small), size), "no face found"
    if not faces:
        writer.result.no_face.append((path, reason))
        if whole_if_no_face:
            _parse_aligned(predictor, [(path, name)], writer)
        return
    try:
        picture = _full_picture(path, small, size)
    except READ_ERRORS as error:
        writer.result.failed.append((path, _reason(path, error)))
        return
    parsing = parse_photo(predictor, picture, detector, frame, faces=faces, context=context)
    writer.parsing(path, name, parsing.label, picture)
    writer.result.faces += len(faces)
    if crops:
        for index, (crop, label) in enumerate(zip(parsing.crops, parsing.crop_labels, strict=True), start=1):
            writer.crop(name, index, crop, label)


def predict_files(
    predictor: Predictor,
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    alpha: float = 0.5,
    progress: bool = False,
    detector: FaceDetector | None = None,
    frame: FaceFrame | None = None,
    crops: bool = False,
    whole_if_no_face: bool = False,
    context: float = CONTEXT,
) -> PredictionFiles:
    """Parse image files and folders; write ``labels/<name>.png`` (paletted ids) and ``overlays/<name>.png``, both
    at the image's size, under ``out_dir``, and ``OUTPUT_MARKER`` there.

    Without ``detector`` each image is taken to show one face in the model's framing and is resized whole to the
    model's input. With a ``detector`` (``agrnet.faces.FaceDetector``) each image is a photo: every face is
    detected, aligned to ``frame`` (default: the one of the model's schema, ``agrnet.faces.frame_for``), parsed and
    pasted back (each face with a context view ``context`` times wider: ``agrnet.framing.CONTEXT``); ``crops`` also
    writes ``crops/<name>-face<i>.png`` (the aligned crop, i from 1, best detection first) and
    ``crops/<name>-face<i>-labels.png`` (its parsing). A photo without a face is listed in ``no_face``; nothing is
    written for it, unless ``whole_if_no_face`` parses it whole instead.

    Folders are searched as ``find_images`` does, leaving out ``out_dir``. Unreadable files are skipped and listed
    in ``failed`` with the reason.
    """
    out_dir = Path(out_dir)
    if detector is not None and frame is None:
        from agrnet.faces import require_frame

        frame = require_frame(predictor.schema)
    found, missing = find_images(inputs, skip=[out_dir])
    result = PredictionFiles(failed=list(missing))
    writer = _Writer(predictor, out_dir, alpha, result)
    bar = tqdm(total=len(found), desc="predict", unit="image", disable=not progress)
    for chunk in _chunks(found, predictor.batch_size if detector is None else 1):
        if detector is None:
            _parse_aligned(predictor, chunk, writer)
        else:
            for path, name in chunk:
                _parse_photo(predictor, path, name, writer, detector, frame, crops, whole_if_no_face, context)
        bar.update(len(chunk))
    bar.close()
    return result
