"""What the book's chapters need besides figures: ``chapter_model``, the trained model and the faces that the graph
chapters picture (``ChapterModel``), where FASSEG is (``find_fasseg``), ``source``, which shows the package's own code
in a chapter, and the results as the book states them (``results_at_a_glance``, ``experiments_table``)."""

from __future__ import annotations

import inspect
import os
import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agrnet.data.base import ParsingDataset, Sample
from agrnet.data.datasets import MappedLabels, build_dataset
from agrnet.data.fasseg import FASSEG
from agrnet.data.labels import CELEBAMASK_HQ_AS_FASSEG, LAPA, LabelSchema
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.data.transforms import EvalTransform
from agrnet.model import AGRNet
from agrnet.paper import PAPER_FULL_OVER_BASELINE, PAPER_MEAN_F1
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


def _registry(directory: str | os.PathLike[str] | None) -> dict[str, ModelWeights]:
    try:
        return available(directory)
    except FileNotFoundError:
        return {}


def _fasseg_test(data_root: str | os.PathLike[str] | None) -> FASSEG | None:
    if data_root is None or not Path(data_root).is_dir():
        return None
    try:
        dataset = FASSEG(data_root, "test")
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return dataset if len(dataset) else None


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
    entries = _registry(directory)
    fasseg = _fasseg_test(data_root)
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
        schema, size, dataset, images = FASSEG_SCHEMA, 256, fasseg, "FASSEG frontal02 test"
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
    found, sentence = _find("FASSEG", data_root, FASSEG_FOLDERS, lambda root: _fasseg_test(root) is not None, hint)
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


def source(obj: object) -> Markdown:
    """The package's own code for ``obj``, highlighted."""
    from IPython.display import Markdown  # IPython comes with the book's extra: agrnet.book imports without it

    return Markdown(f"```python\n{textwrap.dedent(inspect.getsource(obj))}```")


VERDICT_WORDS = {"helps": "is above", "hurts": "is below", "cannot be told apart": "cannot be told apart from"}


def _difference(results: dict[str, Any] | None, variant: str, reference: str) -> dict[str, Any] | None:
    from agrnet.experiments import paired

    if results is None:
        return None
    return paired(results["runs"], reference).get(variant, {}).get("test")


def results_at_a_glance(folder: str | os.PathLike[str]) -> str:
    """The book's results in one Markdown table (what was run, our number with its 95 % interval, the paper's,
    the chapter that shows it) and two sentences of verdict, read from the results files in ``folder`` and the
    shipped weights' metadata; what is not in them yet is left out."""
    from agrnet.experiments import interval_text, load_results
    from agrnet.stats import verdict

    folder = Path(folder)
    main, ablation, topk, pretrained = (
        load_results(folder, name) for name in ("fasseg-main", "fasseg-ablation", "fasseg-topk", "fasseg-pretrained")
    )
    rows = []
    if main is not None:
        f1 = main["summary"]["full"]["test"]["mean_f1"]
        rows.append(f"| AGRNet from scratch on 202 FASSEG faces (ResNet-18, 256 px, 800 steps), {f1['n']} seeds, "
                    f"frontal02 test | {100 * f1['mean']:.1f} ± {100 * f1['std']:.1f} | {PAPER_MEAN_F1['full']} "
                    "(ResNet-101 from ImageNet, LaPa) | {doc}`real_faces` |")  # fmt: skip
    entries = _registry(None)
    if FASSEG_WEIGHTS in entries:
        scores = {score["split"]: score["mean_f1"] for score in entries[FASSEG_WEIGHTS].scores()}
        if {"test", "test-unseen"} <= set(scores):
            rows.append(f"| the shipped `{FASSEG_WEIGHTS}` on frontal02 test / on its faces not in train | "
                        f"{100 * scores['test']:.1f} / {100 * scores['test-unseen']:.1f} | – | {{doc}}`real_faces` |")
    contrasts = (
        ("full AGRNet minus the paper's baseline (cross-entropy only), paired", "full", "paper-baseline",
         PAPER_FULL_OVER_BASELINE, ablation),
        ("full AGRNet minus a baseline trained with L_BA too, paired", "full", "baseline", None, ablation),
        ("the edge module (Eq. 2): +edge minus +adaptive projection, paired", "+edge", "+adaptive projection",
         PAPER_MEAN_F1["+edge"] - PAPER_MEAN_F1["+adaptive projection"], ablation),
        ("1 vertex per class instead of 4, paired", "top-1", "top-4",
         PAPER_MEAN_F1["top-1"] - PAPER_MEAN_F1["top-4"], topk),
        ("full AGRNet minus the paper's baseline, both from a backbone pretrained on the synthetic faces, paired",
         "full", "paper-baseline", PAPER_FULL_OVER_BASELINE, pretrained),
    )  # fmt: skip
    read: dict[str, str] = {}
    for text, variant, reference, paper, results in contrasts:
        difference = _difference(results, variant, reference)
        if difference is None or difference["low"] is None:
            continue
        reads = verdict(difference["low"], difference["high"])
        read.setdefault(variant + "/" + reference, reads)
        setting = results["protocol"]
        protocol = f"{difference['n']} seeds, {setting['steps']} steps at {setting['size']} px"
        printed = "–" if paper is None else f"{paper:+.1f}"
        rows.append(f"| {text} ({protocol}) | {interval_text(difference)}: {reads} | {printed} | "
                    "{doc}`ablations` |")  # fmt: skip
    if not rows:
        return "No results files yet: `agrnet experiment fasseg-main` makes the first."
    table = "| what was run | ours, FASSEG: mean F1 (%) or difference (points) | the paper, LaPa | shown in |\n"
    table += "|---|---|---|---|\n" + "\n".join(rows)
    sentences = []
    if "full/paper-baseline" in read:
        difference = _difference(ablation, "full", "paper-baseline")
        sentences.append(
            f"**Verdict.** At the scale run here (a ResNet-18 trained from scratch on 202 real faces), the full AGRNet "
            f"{VERDICT_WORDS[read['full/paper-baseline']]} the paper's baseline ({interval_text(difference)} "
            f"points, where Table I(a) has {PAPER_FULL_OVER_BASELINE:+.1f}): the paper's central claim is "
            + ("reproduced here." if read["full/paper-baseline"] == "helps" else "not reproduced at this scale.")
        )
    pretrained_difference = _difference(pretrained, "full", "paper-baseline")
    if sentences and pretrained_difference is not None and pretrained_difference["low"] is not None:
        reads = verdict(pretrained_difference["low"], pretrained_difference["high"])
        sentences.append(
            f"From a backbone pretrained on the synthetic faces it still "
            f"{VERDICT_WORDS[reads]} that baseline ({interval_text(pretrained_difference)})."
        )
    if "+edge/+adaptive projection" in read:
        edge = _difference(ablation, "+edge", "+adaptive projection")
        phrase = {"helps": "helps", "hurts": "hurts"}.get(read["+edge/+adaptive projection"], "cannot be told apart")
        sentences.append(
            f"Of its parts, the edge module {phrase} ({interval_text(edge)}); whether ImageNet weights, 473 px and "
            "LaPa's 18,176 faces bring the graph's gain back is what the paper's own setting tests "
            "({doc}`reproducing`)."
        )
    return table + ("\n\n" + " ".join(sentences) if sentences else "")


DROPPED_OPTIONS = ("--data-root", "--runs-dir", "--out", "--jobs", "--variants", "--seeds")
"""Options of a recorded ``agrnet experiment`` command that a reader leaves out to make or continue the whole file:
folders of the machine that ran it, how many trainings ran at once, and the part of the plan one invocation did."""


def portable_command(command: str) -> str:
    """A recorded ``agrnet experiment`` command without ``DROPPED_OPTIONS`` (each with all its values): what a
    reader runs from the repository root, with FASSEG in ``data/fasseg``, to make or continue the whole file."""
    kept: list[str] = []
    dropping = False
    for word in shlex.split(command):
        if word.startswith("--"):
            dropping = word.split("=")[0] in DROPPED_OPTIONS
        if not dropping:
            kept.append(word)
    return shlex.join(kept)


def experiments_table(folder: str | os.PathLike[str]) -> str:
    """Every experiment of ``agrnet.experiments.EXPERIMENTS`` as a Markdown table: the command that makes (or
    continues) it, its variants, seeds and steps, its results file and what that file holds ("not yet run" when
    there is none): the one place where the book names what has not been run."""
    from agrnet.experiments import EXPERIMENTS, PROTOCOL, load_results, progress

    rows = []
    for name, experiment in EXPERIMENTS.items():
        results = load_results(Path(folder), name)
        command = portable_command(results["command"]) if results else shlex.join(["agrnet", "experiment", name])
        steps = {**PROTOCOL, **experiment.settings}["steps"]
        rows.append(f"| `{command}` | {len(experiment.variants)} | {list(experiment.seeds)} | {steps} | "
                    f"`{Path(experiment.out).name}` | {progress(results)} |")  # fmt: skip
    header = "| command | variants | seeds | steps | results file | status |\n|---|---|---|---|---|---|\n"
    return header + "\n".join(rows)
