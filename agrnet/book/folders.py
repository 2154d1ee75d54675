"""Where a chapter finds its data: FASSEG (``find_fasseg``, ``FASSEG_FOLDERS``) and CelebAMask-HQ
(``find_celebamask``, ``celebamask_as_fasseg``), each with the sentence a chapter prints about what it found."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agrnet.data.base import Sample
from agrnet.data.datasets import MappedLabels, build_dataset
from agrnet.data.fasseg import Fasseg
from agrnet.data.labels import CELEBAMASK_HQ_AS_FASSEG
from agrnet.data.transforms import EvalTransform


def fasseg_test_faces(data_root: str | os.PathLike[str] | None) -> Fasseg | None:
    """FASSEG's frontal02 test faces at ``data_root``; None when there are none to read there."""
    if data_root is None or not Path(data_root).is_dir():
        return None
    try:
        dataset = Fasseg(data_root, "test")
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return dataset if len(dataset) else None


def most_background_face(data_root: str | os.PathLike[str]) -> Sample:
    """Of FASSEG's ``val`` faces at ``data_root``, the one with the largest share of background pixels: the face a
    figure of a background augmentation shows."""
    faces = Fasseg(data_root, "val")
    return max((faces[i] for i in range(len(faces))), key=lambda face: (face["label"] == 0).float().mean().item())


FASSEG_FOLDERS = ("../data/fasseg", "data/fasseg", "../../shared/data/fasseg")
"""Where a chapter looks for FASSEG when ``DATA_ROOT`` is not set, in order: where ``agrnet download fasseg`` writes
(``data/fasseg`` of the repository, seen from ``book/``; or of the working folder, as in Colab), then this project's
test copy (``../shared/data``, beside the repository in its CI)."""
CELEBAMASK_FOLDERS = ("../data/celebamask-hq", "data/celebamask-hq", "../../shared/data/celebamask-hq-sean")
"""Where a chapter looks for CelebAMask-HQ (the release layout, or a folder of ``images/`` and ``labels/``): as for
FASSEG, ``data/celebamask-hq`` first (``data/README.md``), then this project's test samples."""


def _find(
    name: str, data_root: str | os.PathLike[str] | None, folders: Sequence[str], holds: Any, hint: str
) -> tuple[Path | None, str]:
    if data_root is not None:
        if not holds(data_root):
            return None, f"{name}: {str(data_root)!r} holds no {name} faces; {hint}"
        return Path(data_root), f"{name}: {str(data_root)!r}."
    for folder in folders:
        if holds(folder):
            return Path(folder), f"{name}: found at {folder}."
    return None, f"{name}: not found (looked in {', '.join(folders)}); {hint}"


def find_fasseg(data_root: str | os.PathLike[str] | None = None, download: bool = False) -> tuple[Path | None, str]:
    """The FASSEG folder a chapter uses (None: none, the chapter falls back to synthetic faces) and one sentence
    saying which and why.

    ``data_root`` when it holds FASSEG's test faces; else the first of ``FASSEG_FOLDERS`` that does; else, with
    ``download``, FASSEG fetched from its public repository into ``data/fasseg`` (``agrnet.download``, online);
    else None, and the sentence says how to get FASSEG."""
    hint = ("this chapter falls back to synthetic faces. Set DOWNLOAD_FASSEG = True in the parameters cell, or run "
            "`agrnet download fasseg`, to use real faces.")  # fmt: skip
    found, sentence = _find("FASSEG", data_root, FASSEG_FOLDERS, lambda root: fasseg_test_faces(root) is not None, hint)
    if found is None and download and data_root is None:
        from agrnet.download import DEFAULT_DIR, download_fasseg

        download_fasseg(DEFAULT_DIR)
        return DEFAULT_DIR, f"FASSEG: downloaded into {DEFAULT_DIR} (research use; cite Khan et al.)."
    return found, sentence


def find_celebamask(data_root: str | os.PathLike[str] | None = None) -> tuple[Path | None, str]:
    """The CelebAMask-HQ folder a chapter uses (None: none) and one sentence saying which and why: ``data_root``,
    else the first of ``CELEBAMASK_FOLDERS`` with faces in it. CelebAMask-HQ is not redistributable; its publisher
    hands it out for non-commercial research (``data/README.md``)."""

    def holds(root: str | os.PathLike[str]) -> bool:
        try:
            return len(build_dataset("celebamask-hq", root, "all")) > 0
        except (OSError, ValueError):
            return False

    hint = "the cross-dataset scores are left out. `data/README.md` says where to get it and how to lay it out."
    return _find("CelebAMask-HQ", data_root, CELEBAMASK_FOLDERS, holds, hint)


def celebamask_as_fasseg(root: str | os.PathLike[str], size: int | None = None) -> MappedLabels:
    """The CelebAMask-HQ faces at ``root`` with their labels read as FASSEG's classes (``CELEBAMASK_HQ_AS_FASSEG``):
    whole images at the label's size, or resized for a model of input ``size`` (``EvalTransform``)."""
    transform = EvalTransform(size) if size is not None else None
    return MappedLabels(build_dataset("celebamask-hq", root, "all"), CELEBAMASK_HQ_AS_FASSEG, transform)
