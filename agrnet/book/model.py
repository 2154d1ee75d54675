"""What the model chapters say of the model they run, as Markdown: the backbone's taps, where the vertices fall,
what the learned adjacency A reads, and the preliminary map Z0 against the final Y."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from agrnet.analysis import own_class_share, raw_and_final_scores, read_adjacency, vertex_hits
from agrnet.book.chapter import ChapterModel
from agrnet.data.labels import LabelSchema


def taps_table(image: torch.Tensor, taps: Any, model: nn.Module) -> str:
    """The backbone's taps for ``image`` (the model's input): role, channels, size and stride of each, and the
    dilation of conv5's and conv4's 3 x 3 convolutions."""
    roles = ("X1", "", "", "input of pyramid pooling")
    rows = [
        f"| {name} | {role} | {tap.shape[1]} | {tap.shape[2]} × {tap.shape[3]} | "
        f"1/{image.shape[-1] // tap.shape[-1]} |"
        for name, role, tap in zip(taps._fields, roles, taps, strict=True)
    ]
    conv5, conv4 = model.backbone.layer4[-1].conv2, model.backbone.layer3[-1].conv2
    return (
        "| tap | role | channels | size | stride |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nThe 3 × 3 convolutions of conv5 ({model.config['backbone']}) have dilation "
        f"{conv5.dilation[0]}, those of conv4 {conv4.dilation[0]}."
    )


def own_class_report(chapter: ChapterModel) -> tuple[str, str]:
    """Over every face of ``chapter``: the share of each class's vertices that lie on a pixel of their own class,
    as a Markdown table, and one line with the shares of all vertices and of the foreground classes'."""
    schema, predictor = chapter.schema, chapter.predictor
    hits = [vertex_hits(predictor.explain(face["image"])[1], face["label"], schema) for face in chapter.faces()]
    share = own_class_share(hits)
    rows = "\n".join(f"| {name} | {hit:.1%} |" for name, hit in zip(schema.classes, share.tolist(), strict=True))
    top_k = predictor.model.config["top_k"]
    line = (
        f"{chapter.name}: {share.mean():.1%} of the vertices lie on a pixel of their own "
        f"class ({share[1:].mean():.1%} of the foreground classes' vertices), over "
        f"{len(hits)} {chapter.images} faces × {top_k * schema.num_classes} vertices"
    )
    return f"| class | vertices on a pixel of their own class |\n|---|---|\n{rows}", line


def _trained_reading(reading: Any, schema: LabelSchema, yardstick: str) -> str:
    def pair(first: int, second: int, value: float) -> str:
        """'class – class (mean weight)' of a pair from ``read_adjacency``."""
        return f"{schema.classes[first]} – {schema.classes[second]} ({value:+.3f})"

    text = (
        "Averaging the two blocks between two classes (A_ij and A_ji), the most "
        f"positive pair of different classes is **{pair(*reading.strongest)}** and "
        f"the most negative **{pair(*reading.weakest)}**. As a yardstick, {yardstick}"
    )
    beyond = [pair(*found) for found in (reading.strongest, reading.weakest) if abs(found[2]) > reading.random_limit]
    largest = max(abs(reading.strongest[2]), abs(reading.weakest[2]))
    if beyond:
        text += f". Beyond that: {' and '.join(beyond)}"
        text += ", only just" if largest < 1.5 * reading.random_limit else ""
        text += "; any other pair is within what random weights give."
    else:
        text += (
            ": neither pair lies beyond what random weights give, so do not read them "
            "as relations the model learned."
        )
    return text


def adjacency_reading(adjacency: torch.Tensor, schema: LabelSchema, trained: bool) -> str:
    """What the learned adjacency A says (``agrnet.analysis.read_adjacency``), in sentences: its most positive and
    most negative pair of classes against what random weights give, and how far training moved it."""
    reading = read_adjacency(adjacency, schema)
    yardstick = (
        f"in {reading.quantile:.0%} of {reading.draws:,} random draws of A from its "
        f"initialisation (uniform in ±1/√V) no pair of classes reaches "
        f"±{reading.random_limit:.3f}"
    )
    spread = (
        f"A's entries spread with a standard deviation of {reading.std:.3f}, those of its "
        f"initialisation with {reading.random_std:.3f}"
    )
    if not trained:
        return (
            "These are random weights: A is its initialisation, and there is nothing "
            f"to interpret ({yardstick}; {spread})."
        )
    text = _trained_reading(reading, schema, yardstick)
    text += f" {spread}: training moved A "
    text += "little." if 0.8 < reading.std / reading.random_std < 1.25 else "a lot."
    if schema.name == "fasseg":
        text += (
            " FASSEG counts the eyebrows as hair and has no inner mouth, so the "
            "paper's pairs (Helen's two eyebrows; inner mouth and nose) have no "
            "counterpart here."
        )
    return text


def _raw_and_final_verdict(gain: float, accuracy_gain: float, trained: bool) -> str:
    if not trained:
        return "These are random weights: neither map means anything."
    if abs(gain) < 0.5:
        return (
            f"The difference is small: Y's mean F1 is {gain:+.2f} points from Z0's (pixel "
            f"accuracy {accuracy_gain:+.2f}), so the graph part barely changes this "
            "model's answer."
        )
    if gain < 0:
        return (
            f"Y is **worse** than Z0 here: {gain:+.2f} points of mean F1 (pixel accuracy "
            f"{accuracy_gain:+.2f}). The graph part does not improve on the preliminary "
            "map of this model."
        )
    return f"Y improves on Z0 by {gain:+.2f} points of mean F1 (pixel accuracy {accuracy_gain:+.2f})."


def raw_and_final_report(chapter: ChapterModel) -> str:
    """The preliminary map Z0 against the final Y over every face of ``chapter`` (``raw_and_final_scores``, pooled):
    pixel accuracy, mean F1 and mIoU of each as a Markdown table, and what the difference says."""
    pooled = None
    for face in chapter.faces():
        explained = chapter.predictor.explain(face["image"])[1]
        pooled = raw_and_final_scores(explained, face["label"], chapter.schema, into=pooled)
    rows = [
        f"| {name} | {100 * matrix.pixel_accuracy():.2f} | {100 * matrix.mean_f1():.2f} | "
        f"{100 * matrix.miou():.2f} |"
        for name, matrix in pooled.items()
    ]
    gain = 100 * (pooled["Y"].mean_f1() - pooled["Z0"].mean_f1())
    accuracy_gain = 100 * (pooled["Y"].pixel_accuracy() - pooled["Z0"].pixel_accuracy())
    verdict = _raw_and_final_verdict(gain, accuracy_gain, chapter.trained)
    return (
        f"{chapter.name} on {len(chapter.dataset)} {chapter.images} faces:\n\n"
        "| map | pixel accuracy (%) | mean F1, no background (%) | mIoU (%) |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + f"\n\n{verdict} Z0 against Y is not an "
        "ablation: a model trained without the graph would learn a different X0 (the "
        "paper's Table I and the real-faces chapter compare such models)."
    )
