"""The model and the faces a graph chapter pictures (``chapter_model``, ``ChapterModel``), and ``source``, which
shows the package's own code in a chapter."""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from agrnet.book.folders import fasseg_test_faces
from agrnet.data.base import ParsingDataset, Sample
from agrnet.data.labels import FASSEG, LAPA, LabelSchema
from agrnet.data.synthetic import SyntheticFaces
from agrnet.model import AGRNet
from agrnet.predict import Predictor
from agrnet.weights import ModelWeights, available, weights_dir

if TYPE_CHECKING:
    from IPython.display import Markdown


#: The shipped weights the graph chapters picture, on FASSEG's frontal02 test faces when those are there.
FASSEG_WEIGHTS = "fasseg-resnet18"
#: The shipped weights the graph chapters picture on synthetic faces (LaPa's classes) otherwise.
SYNTHETIC_WEIGHTS = "synthetic-resnet18"
#: The architecture of the random-weights stand-in when no trained weights fit: that of the shipped ResNet-18s.
UNTRAINED_CONFIG: dict[str, Any] = {"backbone": "resnet18", "channels": 64, "top_k": 4, "output_stride": 16}


@dataclass
class ChapterModel:
    """The model and the faces a graph chapter of the book pictures (made by ``chapter_model``).

    ``predictor`` runs the model (``predictor.explain(face["image"])`` for every field of ``AGRNetOutput``);
    ``weights`` is its registry entry, None for random weights (then ``trained`` is False and ``warning_html``
    says so); ``dataset`` holds the faces at their original size with their ground truth, ``images`` says which
    in words, and ``note`` why these weights (and not others) were chosen.
    """

    predictor: Predictor
    weights: ModelWeights | None
    dataset: ParsingDataset
    images: str
    note: str = ""

    @property
    def schema(self) -> LabelSchema:
        """The label schema the model predicts (that of the faces too)."""
        return self.predictor.schema

    @property
    def trained(self) -> bool:
        """Whether the weights are trained ones from the registry (not a random initialisation)."""
        return self.weights is not None

    @property
    def name(self) -> str:
        """The weights' registry name, or ``"random weights"``."""
        return self.weights.name if self.weights is not None else "random weights"

    def faces(self, count: int | None = None) -> list[Sample]:
        """The first ``count`` faces (all without it): dicts with ``image``, ``label``, ``edge``, ``name``."""
        count = len(self.dataset) if count is None else min(count, len(self.dataset))
        return [self.dataset[index] for index in range(count)]

    def describe(self, faces: int | Sequence[int] | None = None) -> str:
        """The weights and faces in words, e.g. ``fasseg-resnet18 on FASSEG frontal02 test faces 1-4``, a line
        for above a figure whose caption names them generically. ``faces`` is a number of first faces (all
        without it) or the indices of the faces shown; the text numbers them from 1."""
        count = len(self.dataset) if faces is None else faces
        indices = list(range(min(count, len(self.dataset)))) if isinstance(count, int) else list(count)
        return f"{self.name} on {self.images} {numbered_faces(indices)}"

    def summary(self) -> str:
        """One Markdown line: the weights, their registry score, architecture and input size, and the faces."""
        config = self.predictor.model.config
        architecture = (
            f"AGRNet({config['backbone']}, C = {config['channels']}, K = {config['top_k']}, output stride "
            f"{config['output_stride']}) at {self.predictor.size[0]} px"
        )
        faces = f"**Images:** {self.images}, {len(self.dataset)} faces."
        if self.weights is None:
            return f"**Weights:** none trained, random weights. {architecture}. {faces}"
        metrics = self.weights.metrics
        score = metrics.get("mean_f1")
        measured = (
            f"mean F1 {100 * score:.1f} % on the `{metrics.get('split')}` split of `{metrics.get('dataset')}`"
            if score is not None
            else "no score recorded"
        )
        steps = f"{self.weights.step} training step{'' if self.weights.step == 1 else 's'}"
        return f"**Weights:** `{self.weights.name}`, {measured} (registry metadata, {steps}). {architecture}. {faces}"

    def warning_html(self) -> str | None:
        """A warning box (the book theme's admonition markup) saying that the pictures show an untrained network
        and why; None for trained weights."""
        if self.weights is not None:
            return None
        return untrained_warning(self.note)


def untrained_warning(note: str) -> str:
    """The warning box (the book theme's admonition markup) of a chapter that runs random weights; ``note`` says
    why no trained weights were used."""
    return (
        '<div class="admonition warning"><p class="admonition-title">Warning: an untrained network</p>'
        "<p>No trained weights were found, so the pictures and numbers below come from <b>random weights</b>: "
        "the shapes and the mechanics are right, but the vertices, the adjacency, the response maps and the "
        f"parsing mean nothing. {note} <code>agrnet weights list</code> shows the installed weights."
        "</p></div>"
    )


def numbered_faces(indices: Sequence[int]) -> str:
    """Face indices (from 0) in words, numbered from 1: ``face 3``, ``faces 1-4``, ``faces 1, 7, 12``."""
    if not indices:
        raise ValueError("indices: no faces")
    numbers = [index + 1 for index in indices]
    if len(numbers) == 1:
        return f"face {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"faces {numbers[0]}-{numbers[-1]}"
    return "faces " + ", ".join(map(str, numbers))


def installed_weights(directory: str | os.PathLike[str] | None) -> dict[str, ModelWeights]:
    """The registry's entries (``agrnet.weights.available``), none when its folder is missing."""
    try:
        return available(directory)
    except FileNotFoundError:
        return {}


def chapter_model(
    data_root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    directory: str | os.PathLike[str] | None = None,
    num_synthetic: int = 50,
    seed: int = 0,
) -> ChapterModel:
    """The model and faces of a graph chapter: the trained ``FASSEG_WEIGHTS`` on FASSEG's frontal02 test faces
    when ``data_root`` holds FASSEG and the registry (``directory``, else ``$AGRNET_WEIGHTS_DIR``, else the
    package's) has them; else the trained ``SYNTHETIC_WEIGHTS`` on ``num_synthetic`` synthetic test faces; else
    random weights (``UNTRAINED_CONFIG``, drawn under ``seed`` without touching the global generator) on the
    FASSEG faces when they are there, synthetic ones otherwise, and ``ChapterModel.warning_html`` says so.

    Every model runs at the input size its weights were trained at (256 px on FASSEG, 128 px on synthetic faces
    for random weights).
    """
    entries = installed_weights(directory)
    fasseg = fasseg_test_faces(data_root)
    folder = weights_dir(directory)
    if fasseg is not None and FASSEG_WEIGHTS in entries:
        entry = entries[FASSEG_WEIGHTS]
        model, schema = entry.load()
        predictor = Predictor(model, schema, device=device, size=entry.input_size)
        return ChapterModel(predictor, entry, fasseg, "FASSEG frontal02 test", f"FASSEG found at {data_root}.")
    if SYNTHETIC_WEIGHTS in entries:
        entry = entries[SYNTHETIC_WEIGHTS]
        model, schema = entry.load()
        predictor = Predictor(model, schema, device=device, size=entry.input_size)
        faces = SyntheticFaces(num_synthetic, size=entry.input_size, split="test")
        why = "FASSEG is not at DATA_ROOT" if fasseg is None else f"{FASSEG_WEIGHTS} is not in {folder}"
        return ChapterModel(predictor, entry, faces, "synthetic test", f"{why}, so synthetic faces.")
    if fasseg is not None:
        schema, size, dataset, images = FASSEG, 256, fasseg, "FASSEG frontal02 test"
    else:
        schema, size, images = LAPA, 128, "synthetic test"
        dataset = SyntheticFaces(num_synthetic, size=size, split="test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AGRNet(schema.num_classes, **UNTRAINED_CONFIG)
    wanted = f"{FASSEG_WEIGHTS} (with FASSEG at DATA_ROOT) or {SYNTHETIC_WEIGHTS}"
    found = ", ".join(entries) or "none"
    note = f"Looked for {wanted} in the weights folder {folder}; found: {found}."
    return ChapterModel(Predictor(model.eval(), schema, device=device, size=size), None, dataset, images, note)


def source(obj: object) -> Markdown:
    """The package's own code for ``obj``, highlighted."""
    from IPython.display import Markdown  # IPython comes with the book's extra: agrnet.book imports without it

    return Markdown(f"```python\n{textwrap.dedent(inspect.getsource(obj))}```")
