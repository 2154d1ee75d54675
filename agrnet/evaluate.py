"""Scoring a checkpoint the way the paper scores (Sec. V-A, Table II): at each image's original size, optionally with
flip test-time augmentation, from one confusion matrix summed over the whole split.

One inference path serves evaluation and prediction: ``predict_logits`` runs the model (and its mirrored twin with
``flip``), ``labels_at_sizes`` resizes the logits Y back to each image's original size and takes the argmax.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from agrnet.data.labels import LabelSchema
from agrnet.data.loading import CheckedLoader
from agrnet.data.transforms import MIN_INPUT_SIZE
from agrnet.distributed import all_gather_objects
from agrnet.metrics import ConfusionMatrix
from agrnet.paper import PAPER_INPUT_SIZE, PAPER_TABLE_II
from agrnet.runtime import parse_device
from agrnet.version import __version__

TABLE_COLUMNS_PER_BLOCK = 10


def flip_logits(logits: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """Mirror logits (N x Nc x H x W) horizontally and swap the schema's left/right channels.

    Applied to the logits of a flipped image, this gives logits aligned with the unflipped image and its labels.
    """
    permutation = schema.flip_permutation().to(logits.device)
    return logits.flip(-1).index_select(1, permutation)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    schema: LabelSchema,
    flip: bool = False,
    amp: torch.dtype | None = None,
    scales: Sequence[float] = (1.0,),
) -> torch.Tensor:
    """Y for images N x 3 x H x W in [0, 1], float32 N x Nc x H x W at the input size.

    With ``flip``, the flipped images run in the same batch and Y is the mean of the plain logits and the
    ``flip_logits`` of the flipped ones. With several ``scales`` (multi-scale test-time augmentation), the images
    are parsed resized by each factor and Y is the mean of the logits resized back to H x W. ``amp`` is an autocast
    dtype (torch.bfloat16, torch.float16) or None.
    """
    check_scales(scales, images.shape[-2:])
    return sum(_logits_at_scale(model, images, schema, flip, amp, scale) for scale in scales) / len(scales)


def _logits_at_scale(
    model: nn.Module, images: torch.Tensor, schema: LabelSchema, flip: bool, amp: torch.dtype | None, scale: float
) -> torch.Tensor:
    """``predict_logits`` at one scale: the images resized by ``scale``, parsed (with their mirror when ``flip``),
    and the logits resized back to the images' size."""
    size = images.shape[-2:]
    scaled = images if scale == 1 else F.interpolate(
        images, size=scaled_size(size, scale), mode="bilinear", align_corners=False, antialias=scale < 1
    )  # fmt: skip
    batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
    with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
        logits = model(batch).logits.float()
    if flip:
        plain, mirrored = logits.chunk(2)
        logits = (plain + flip_logits(mirrored, schema)) / 2
    return logits if scale == 1 else F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """(H, W) of an image of ``size`` resized by ``scale`` (rounded to whole pixels)."""
    return round(size[0] * scale), round(size[1] * scale)


def check_scales(
    scales: Sequence[float], size: Sequence[int] | None = None, name: str = "scales"
) -> tuple[float, ...]:
    """``scales`` as a tuple, or a ValueError naming ``name`` and what is wrong: none given, a factor not positive,
    or (with the input ``size``) one that shrinks the input below ``MIN_INPUT_SIZE`` pixels."""
    scales = tuple(float(scale) for scale in scales)
    if not scales or any(not math.isfinite(scale) or scale <= 0 for scale in scales):
        raise ValueError(f"{name}: expected one or more positive factors, got {list(scales)}")
    shrunk = [] if size is None else [scale for scale in scales if scale < 1]
    too_small = [scale for scale in shrunk if min(scaled_size(size, scale)) < MIN_INPUT_SIZE]
    if too_small:
        raise ValueError(f"{name}: {too_small[0]:g} shrinks the {size[0]} x {size[1]} input below {MIN_INPUT_SIZE} px")
    return scales


def labels_at_sizes(logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Resize logits (N x Nc x h x w) bilinearly to each image's size (H_i, W_i) and take the argmax: N label maps.

    Images that share a size are resized together.
    """
    if len(sizes) != logits.shape[0]:
        raise ValueError(f"sizes: expected {logits.shape[0]} sizes, one per image, got {len(sizes)}")
    labels: dict[int, torch.Tensor] = {}
    for size in dict.fromkeys(tuple(map(int, s)) for s in sizes):
        index = [i for i, s in enumerate(sizes) if tuple(map(int, s)) == size]
        resized = F.interpolate(logits[index], size=size, mode="bilinear", align_corners=False).argmax(1)
        labels.update(zip(index, resized, strict=True))
    return [labels[i] for i in range(len(sizes))]


def collate_eval(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch evaluation samples: images stacked (they share the model input size), labels kept as a list at their
    original sizes."""
    shapes = {tuple(sample["image"].shape) for sample in samples}
    if len(shapes) > 1:
        raise ValueError(
            f"images in one batch differ in size {sorted(shapes)}: resize them with EvalTransform or use batch_size=1"
        )
    return {
        "image": torch.stack([sample["image"] for sample in samples]),
        "label": [sample["label"] for sample in samples],
        "name": [sample["name"] for sample in samples],
    }


def check_schemas(model_schema: LabelSchema, data_schema: LabelSchema, source: str = "the checkpoint") -> None:
    """Raise ValueError when a model's classes are not the dataset's (a checkpoint from another schema)."""
    if model_schema.classes != data_schema.classes:
        raise ValueError(
            f"{source} predicts the {model_schema.name!r} schema ({model_schema.num_classes} classes) but the "
            f"dataset uses {data_schema.name!r} ({data_schema.num_classes} classes: {', '.join(data_schema.classes)})"
        )


def check_model_schema(model: nn.Module, schema: LabelSchema) -> None:
    """Raise ValueError when ``model`` predicts a different number of classes than ``schema`` has."""
    num_classes = getattr(model, "num_classes", schema.num_classes)
    if num_classes != schema.num_classes:
        raise ValueError(f"model predicts {num_classes} classes but schema {schema.name!r} has {schema.num_classes}")


def _shard(dataset: Dataset) -> Dataset:
    """This process's share of ``dataset`` under ``torch.distributed`` (every index exactly once overall)."""
    if not (dist.is_available() and dist.is_initialized()):
        return dataset
    return Subset(dataset, range(dist.get_rank(), len(dataset), dist.get_world_size()))  # type: ignore[arg-type]


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    schema: LabelSchema,
    device: str | torch.device | None = None,
    flip: bool = False,
    batch_size: int = 1,
    num_workers: int = 0,
    amp: torch.dtype | None = None,
    progress: bool = False,
    skip_bad: bool = False,
    scales: Sequence[float] = (1.0,),
) -> dict[str, Any]:
    """Score ``model`` on ``dataset`` at each image's original size; returns the report (``ConfusionMatrix.to_dict``
    plus ``schema``, ``num_images`` (the images scored), ``flip``, ``scales``, ``confusion_matrix`` and ``skipped``).
    ``flip`` and ``scales`` are the test-time augmentations of ``predict_logits``.

    A sample that fails to load raises its error (naming the file), from worker processes too. With ``skip_bad``
    the samples whose files are bad (``agrnet.data.loading.BAD_DATA``: missing, undecodable, image and label of
    different sizes, ids outside the schema) are left out instead, and ``skipped`` lists each one's message; it is
    a ValueError when no image is left.

    Samples are dicts with ``image`` (3 x h x w in [0, 1], the model's input, e.g. from ``EvalTransform``) and
    ``label`` (H x W ids at the original size). Logits are resized back to the label's size before the argmax, and
    the confusion matrix is summed over the whole split (and over processes under ``torch.distributed``).
    ``device`` None keeps the model where it is; the model is left in eval mode on ``device``.
    """
    check_model_schema(model, schema)
    scales = check_scales(scales)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = parse_device(device)
    model = model.eval().to(device)
    shard = _shard(dataset)
    loader = CheckedLoader(
        shard,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_eval,
        pin_memory=device.type == "cuda",
        skip_bad=skip_bad,
    )
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        images = batch["image"].to(device, non_blocking=True)
        targets = [label.to(device, non_blocking=True) for label in batch["label"]]
        logits = predict_logits(model, images, schema, flip=flip, amp=amp, scales=scales)
        predictions = labels_at_sizes(logits, [tuple(target.shape[-2:]) for target in targets])
        confusion.update(torch.cat([p.flatten() for p in predictions]), torch.cat([t.flatten() for t in targets]))
    confusion.all_reduce()
    skipped = [message for messages in all_gather_objects(loader.skipped) for message in messages]
    num_images = torch.tensor(len(shard) - len(loader.skipped), device=device)  # type: ignore[arg-type]
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(num_images)
    if skipped and int(num_images) == 0:
        raise ValueError(f"no image could be scored: all {len(skipped)} were skipped (the first: {skipped[0]})")
    report = confusion.to_dict(schema.classes, schema.groups)
    report.update(
        schema=schema.name,
        num_images=int(num_images),
        flip=flip,
        scales=list(scales),
        confusion_matrix=confusion.matrix.cpu().tolist(),
        skipped=skipped,
    )
    return report


def _report_value(report: Mapping[str, Any], key: str) -> float | None:
    """The score at ``key`` ("mean_f1", "f1/<class>", "group_f1/<group>") in a report, None when absent or NaN."""
    section, _, name = key.partition("/")
    value = report.get(section)
    if name:
        value = value.get(name) if isinstance(value, Mapping) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def table_columns(schema: LabelSchema, dataset: str | None = None) -> list[tuple[str, str, float | None]]:
    """(header, report key, paper F1 or None) for each column of the Table II layout.

    The paper's own columns for helen, lapa and celebamask-hq; otherwise every class but background, each group,
    and the mean.
    """
    if dataset is not None and dataset.lower() in PAPER_TABLE_II:
        return list(PAPER_TABLE_II[dataset.lower()])
    columns = [(name, f"f1/{name}", None) for name in schema.classes[1:]]
    columns += [(f"[{name}]", f"group_f1/{name}", None) for name in schema.groups]
    return [*columns, ("Mean", "mean_f1", None)]


def format_table(report: Mapping[str, Any], schema: LabelSchema, dataset: str | None = None) -> str:
    """F1 (%) per class laid out like Table II: one row for this run, one for AGRNet's published numbers when the
    dataset is one of the paper's; wide tables are split into blocks. mIoU and pixel accuracy follow."""
    dataset = dataset if dataset is not None else report.get("dataset")
    columns = table_columns(schema, dataset)
    has_paper = any(paper is not None for _, _, paper in columns)

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    blocks = []
    for start in range(0, len(columns), TABLE_COLUMNS_PER_BLOCK):
        chunk = columns[start : start + TABLE_COLUMNS_PER_BLOCK]
        rows = [["F1 (%)", *(header for header, _, _ in chunk)]]
        ours = [_report_value(report, key) for _, key, _ in chunk]
        rows.append(["this run", *(cell(None if v is None else 100 * v) for v in ours)])
        if has_paper:
            rows.append(["AGRNet (paper)", *(cell(paper) for _, _, paper in chunk)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        blocks.append("\n".join(_table_line(row, widths) for row in rows))
    groups = "; group F1 merges its classes, see agrnet.metrics" if schema.groups else ""
    scales = list(report.get("scales", [1.0]))
    scales_text = "" if scales == [1.0] else "  scales " + ", ".join(f"{scale:g}" for scale in scales)
    summary = (
        f"mIoU {cell(_percent(report.get('miou')))}  pixel accuracy {cell(_percent(report.get('pixel_accuracy')))}  "
        f"images {report.get('num_images', '-')}  flip {'on' if report.get('flip') else 'off'}{scales_text}{groups}"
    )
    return "\n\n".join([*blocks, summary])


def _table_line(row: Sequence[str], widths: Sequence[int]) -> str:
    """First cell left-aligned, the numbers right-aligned, two spaces apart."""
    cells = [row[0].ljust(widths[0])] + [text.rjust(width) for text, width in zip(row[1:], widths[1:], strict=True)]
    return "  ".join(cells).rstrip()


def _percent(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else 100 * value


DEFAULT_SIZE = PAPER_INPUT_SIZE
"""The input size of a checkpoint that does not record its own: the paper's."""


def training_config(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TrainConfig`` a checkpoint was trained with, as a dict (empty when it does not say)."""
    config = payload.get("config")
    return dict(config) if isinstance(config, Mapping) else {}


def checkpoint_size(payload: Mapping[str, Any]) -> int:
    """The input size a checkpoint was trained at (``DEFAULT_SIZE``, the paper's 473, when it does not say)."""
    return int(training_config(payload).get("size") or DEFAULT_SIZE)


def warn_on_version(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Warn when a checkpoint was written by another agrnet version (it loaded, but results may differ)."""
    version = payload.get("agrnet_version")
    if version != __version__:
        warnings.warn(f"checkpoint {path} was written by agrnet {version}, this is agrnet {__version__}", stacklevel=2)


def check_positive(option: str, value: int | None) -> None:
    """Raise ValueError naming ``option`` when ``value`` is given (not None) and below 1."""
    if value is not None and value < 1:
        raise ValueError(f"{option}: expected a positive integer, got {value}")


def stack_images(samples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """A batch of the samples' ``image`` tensors (all of one size, e.g. from ``EvalTransform``)."""
    return torch.stack([sample["image"] for sample in samples])


def reestimate_batchnorm(
    model: nn.Module, dataset: Dataset, device: str | torch.device | None = None, batch_size: int = 8
) -> nn.Module:
    """BatchNorm's running statistics recomputed over one pass of ``dataset``'s images (the training images, resized
    for the model), the weights unchanged: each statistic becomes the mean over the batches of the batch statistic
    (``torch.optim.swa_utils.update_bn``, momentum None). Training keeps running averages that lag weights which
    move fast, as at a high learning rate; a model scored in eval mode uses them. Returns the model, in eval mode."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=stack_images)
    update_bn(loader, model, device=torch.device(device) if device is not None else None)
    return model.eval()

