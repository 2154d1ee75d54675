"""What the evaluation chapter shows of scores, as Markdown: F1 per image against pooled over images, F1 against
IoU, plain against flip test-time augmentation, the best and worst faces, and where the wrong pixels are."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from agrnet.analysis import ErrorBreakdown
from agrnet.data.base import Sample
from agrnet.data.labels import LabelSchema
from agrnet.metrics import ConfusionMatrix


def pooling_table(
    per_image: Sequence[torch.Tensor], average: torch.Tensor, pooled: ConfusionMatrix, schema: LabelSchema
) -> str:
    """F1 per class (%) of each of two images, their mean over the images and the F1 of the pooled confusion
    matrix (the one used), then that matrix."""
    rows = [
        f"| {name} | {100 * per_image[0][c]:.1f} | {100 * per_image[1][c]:.1f} | "
        f"{100 * average[c]:.1f} | **{100 * pooled.f1()[c]:.1f}** |"
        for c, name in enumerate(schema.classes)
    ]
    return (
        "| F1 (%) | image 1 | image 2 | mean over images | pooled (used) |\n"
        "|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nThe pooled confusion matrix:\n\n```\n{pooled.matrix.numpy()}\n```"
    )


def f1_and_iou_table(pooled: ConfusionMatrix, schema: LabelSchema) -> str:
    """F1 and IoU of each class and F1 computed back from IoU, then mean F1 without background and mean IoU."""
    f1, iou = pooled.f1(), pooled.iou()
    rows = [
        f"| {name} | {f1[c]:.3f} | {iou[c]:.3f} | {2 * iou[c] / (1 + iou[c]):.3f} |"
        for c, name in enumerate(schema.classes)
    ]
    return (
        "| class | F1 | IoU | 2 IoU / (1 + IoU) |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nmean F1 without background {pooled.mean_f1():.3f}; "
        f"mean IoU over all classes {pooled.miou():.3f}"
    )


def reports_table(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """Mean F1, mIoU and pixel accuracy (%) of each report of ``columns`` (name -> ``agrnet.evaluate`` report)."""
    keys = [("mean F1", "mean_f1"), ("mIoU", "miou"), ("pixel accuracy", "pixel_accuracy")]
    return (
        "| (%) | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
        + "\n".join(
            f"| {name} | " + " | ".join(f"{100 * result[key]:.1f}" for result in columns.values()) + " |"
            for name, key in keys
        )
    )  # fmt: skip


def ranked_rows(
    faces: Sequence[Sample], predictions: Sequence[torch.Tensor], scores: Sequence[float], shown: Sequence[int]
) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The rows of ``agrnet.viz.predictions_figure`` for the faces ``shown`` (the best first, then the worst), each
    titled with its rank and mean F1 (``scores``)."""
    return [
        (
            f"{'best' if row == 0 else f'worst {row}'}: face {index + 1}\nmean F1 {100 * scores[index]:.0f} %",
            faces[index]["image"],
            faces[index]["label"],
            predictions[index],
        )
        for row, index in enumerate(shown)
    ]


def errors_table(breakdown: ErrorBreakdown, schema: LabelSchema) -> str:
    """Per class: its share of all pixels, the share of its pixels that are wrong, the share of those near a
    boundary (``breakdown.radius`` pixels) and the class it is most often taken for."""
    rates = breakdown.error_rate
    sizes = breakdown.pixels.double() / breakdown.pixels.sum()
    near = breakdown.wrong_near.double() / breakdown.wrong.double().clamp_min(1)
    rows = []
    for c, name in enumerate(schema.classes):
        taken_for = breakdown.confusion[c].clone()
        taken_for[c] = 0
        most = schema.classes[int(taken_for.argmax())] if taken_for.sum() else "-"
        rows.append(f"| {name} | {100 * sizes[c]:.1f} | {100 * rates[c]:.1f} | {100 * near[c]:.0f} | {most} |")
    return (
        "| class | % of all pixels | % of its pixels wrong | % of those within "
        f"{breakdown.radius} px of a boundary | most often taken for |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
    )


def boundary_line(breakdown: ErrorBreakdown, name: str, count: int, images: str) -> str:
    """The share of the wrong pixels near a boundary against the share of all pixels there, in one line, for the
    weights ``name`` on ``count`` faces of ``images``."""
    return (
        f"{name}: {breakdown.errors_near_boundary:.0%} of the wrong pixels lie within {breakdown.radius} px of a "
        f"boundary, a band that holds {breakdown.pixels_near_boundary:.0%} of all pixels ({count} {images} faces)"
    )


def _fig10_text(breakdown: ErrorBreakdown, names: Sequence[str]) -> str:
    rates = breakdown.error_rate
    sizes = breakdown.pixels.double() / breakdown.pixels.sum()
    foreground = list(range(1, len(names)))
    worst_class = max(foreground, key=lambda c: float(rates[c]))
    smallest = min(foreground, key=lambda c: float(sizes[c]))
    order = torch.tensor(foreground)
    size_rank = sizes[order].argsort().argsort().double()
    rate_rank = rates[order].argsort().argsort().double()
    rank_correlation = float(torch.corrcoef(torch.stack([size_rank, rate_rank]))[0, 1])
    near_wrong, near_all, band = breakdown.errors_near_boundary, breakdown.pixels_near_boundary, breakdown.radius
    density = near_wrong / max(near_all, 1e-9)
    return (
        f"**Boundaries.** {near_wrong:.0%} of the wrong pixels lie within {band} px of "
        f"a boundary, which holds {near_all:.0%} of the pixels: errors are "
        f"{density:.1f} times as dense there as on average"
        + (
            ", and most errors are boundary errors, as in the paper's Fig. 10."
            if near_wrong > 0.5
            else ", but fewer than half of them are boundary errors, unlike the paper."
        )
        + " **Class sizes.** The face class with the highest error rate is "
        f"{names[worst_class]} ({100 * rates[worst_class]:.1f} % of its pixels wrong, "
        f"{100 * sizes[worst_class]:.1f} % of all pixels)"
        + (
            ", also the smallest."
            if smallest == worst_class
            else f"; the smallest is {names[smallest]} ({100 * rates[smallest]:.1f} % wrong)."
        )
        + f" Over the {len(foreground)} face classes the rank correlation of size and "
        f"error rate is {rank_correlation:+.2f}"
        + (
            " (smaller classes fare worse, as the paper's imbalance explanation expects; "
            if rank_correlation < 0
            else " (no sign that smaller classes fare worse; "
        )
        + f"with {len(foreground)} classes, weak evidence either way)."
    )  # fmt: skip


def errors_text(breakdown: ErrorBreakdown, schema: LabelSchema, trained: bool, count: int) -> str:
    """What ``breakdown`` (of ``count`` test faces) says against the paper's Fig. 10, in sentences: whether most
    errors lie at boundaries, whether small classes fare worse, and what cannot be checked here."""
    if not trained:
        return "These are random weights: there is nothing to compare with Fig. 10."
    names = schema.classes
    text = _fig10_text(breakdown, names)
    if not any(name in names for name in ("earring", "necklace")):
        text += (
            " **Accessories.** These faces have no accessory classes, so that part "
            f"of Fig. 10 cannot be checked; and {count} test faces are far "
            "fewer than CelebAMask-HQ's 2,824."
        )
    return text


def context_table(
    names: Sequence[str], data_root: str | os.PathLike[str], factors: Sequence[float], split: str = "val"
) -> str:
    """The shipped weights ``names`` on FASSEG ``split`` through the photo pipeline, with each context view of
    ``factors`` (``agrnet.faces.parse_photo``; 1: the crop alone): F1 (%) per class and the mean, as Markdown."""
    from agrnet.data.fasseg import Fasseg
    from agrnet.experiments.tables import f1_cells
    from agrnet.faces import FaceDetector, score_photos
    from agrnet.predict import Predictor

    faces, detector = Fasseg(data_root, split), FaceDetector()
    classes = faces.schema.classes
    lines = ["| weights | context | " + " | ".join(classes) + " | mean F1 |", "|---" * (len(classes) + 3) + "|"]
    for name in names:
        predictor = Predictor.from_weights(name, device="cpu")
        for factor in factors:
            report = score_photos(predictor, faces, detector, context=factor)
            view = "none" if factor == 1 else f"{factor:g} x"
            lines.append(f"| `{name}` | {view} | {f1_cells(report, classes)} |")
    return "\n".join(lines)


def cross_dataset_table(
    names: Sequence[str], celeba_root: str | os.PathLike[str], device: str = "cpu"
) -> tuple[str, str]:
    """Table IV across datasets: each of the shipped FASSEG-schema weights ``names`` on FASSEG frontal02 test (from
    its card), on the CelebAMask-HQ faces at ``celeba_root`` read as FASSEG resized whole and through the photo
    pipeline, beside the paper's rows between Helen and CelebAMask-HQ; F1 (%) of the five parts and the mean, as
    Markdown, and a line saying in how many faces the last pipeline found a face."""
    from agrnet.book.folders import celebamask_as_fasseg
    from agrnet.evaluate import evaluate
    from agrnet.experiments.tables import f1_cells
    from agrnet.faces import FaceDetector, score_photos
    from agrnet.paper import PAPER_TABLE_IV
    from agrnet.predict import Predictor
    from agrnet.weights import get

    classes = ["skin", "hair", "eyes", "nose", "mouth"]
    lines = ["| model, faces | " + " | ".join(classes) + " | mean F1 |", "|---" * (len(classes) + 2) + "|"]
    detector, photos, scored = FaceDetector(), celebamask_as_fasseg(celeba_root), []
    for name in names:
        predictor = Predictor.from_weights(name, device=device)
        resized = celebamask_as_fasseg(celeba_root, predictor.size[0])
        scored += [
            (f"{name}, FASSEG frontal02 test (in domain)", get(name).metrics),
            (f"{name}, CelebAMask-HQ, resized whole", evaluate(predictor.model, resized, predictor.schema, device)),
            (f"{name}, CelebAMask-HQ, photo pipeline", score_photos(predictor, photos, detector)),
        ]
    lines += [f"| {title} | {f1_cells(report, classes)} |" for title, report in scored]
    for (trained, tested), row in PAPER_TABLE_IV.items():
        if trained.startswith(("Helen-Train", "CelebAMask")):
            cells = " | ".join(str(row.get(c, "–")) for c in classes)
            lines.append(f"| AGRNet (paper), {trained} → {tested} | {cells} | {row['overall']} (overall) |")
    last = scored[-1][1]
    found = sum(count > 0 for count in last["faces_per_image"])
    return "\n".join(lines), f"{last['num_images']} CelebAMask-HQ faces; the detector found a face in {found} of them"
