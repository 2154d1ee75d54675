"""The configuration of a training run: ``TrainConfig``, the dataset presets, and ``--set key=value`` parsing.

Nothing here runs anything; ``agrnet.training`` runs a ``TrainConfig`` and ``agrnet.experiments`` builds them.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from agrnet.data.transforms import AUGMENTATIONS
from agrnet.losses import PAPER_WEIGHTS, TERMS
from agrnet.model.backbone import OUTPUT_STRIDES
from agrnet.runtime import AMP_CHOICES

OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are the paper's (Sec. V-B) on synthetic faces; the presets
    in ``PRESETS`` adapt them to each dataset, and ``preset_config`` applies one.

    Data: ``dataset`` is a name of ``agrnet.data.build_dataset``; ``data_root`` its folder (not needed for
    "synthetic"); ``num_images`` / ``num_val_images`` limit the splits to their first images (for synthetic faces:
    how many to draw); ``size`` is the square input side; ``rotation`` (degrees), ``scale`` and ``flip`` are the
    training augmentation, ``augment`` the appearance augmentations for faces from elsewhere (``agrnet.data.
    transforms.AUGMENTATIONS``: "photometric", "background", "glasses", ...), each applied with probability
    ``augment_p``.
    ``batch_size`` is the global batch, split evenly over DDP processes.

    Model: the fields of ``agrnet.model.AGRNetConfig`` but ``num_classes``, which the dataset gives
    (``agrnet.training.model_config`` reads them; ``output_stride`` 8 is the paper's, 16 ours for CPUs; ``edge_gate``
    and ``detach_edge`` are the authors' code's departures from the paper, off by default); ``pretrained_backbone``
    "imagenet" loads torchvision's weights (the paper initialises from ImageNet), "weights:NAME" the backbone of the
    shipped weights NAME (``agrnet.weights``; our stand-in for ImageNet offline), a path a ResNet state dict, None
    trains from scratch.
    ``freeze_bn`` keeps BatchNorm layers on their running statistics (for tiny per-device batches, or to make CPU
    DDP match a single process: SyncBatchNorm needs CUDA).

    Loss: lambda1 ... lambda5 of Eq. (11) in ``loss_weights`` (the paper's by default; ``agrnet.losses.
    AUTHORS_WEIGHTS`` are the authors' code's), the margin ``delta`` of Eq. (9), and the switches of Table I(b).

    Optimisation: ``optimizer`` "sgd" (momentum) or "adamw", base ``lr`` decayed by the poly schedule
    lr * (1 - step / steps) ** ``poly_power``, ``weight_decay``, optional gradient-norm clipping ``grad_clip``.

    Schedule: per-step numbers reach the host (and ``log.jsonl``, the progress bar and the NaN check) every
    ``log_every`` steps; validation every ``val_every`` steps (0: only at the end); ``last.pt`` every
    ``checkpoint_every`` steps; ``stop_after`` ends this invocation early at that step (the schedule still runs to
    ``steps``), to be continued with ``resume``. ``time_cap_s`` is a safety cap, not a schedule: the run ends
    cleanly (validation and checkpoints as at the last step) at the first step after that many seconds of its
    training loop, with the learning rate where the step schedule has it, and ``log.jsonl`` and the checkpoint
    record that the cap was hit. A run is defined by its steps; the cap only bounds its cost on a slow machine.

    System: ``device`` "auto", "cpu", "cuda", "cuda:1"...; ``amp`` "auto", "none", "bf16" or "fp16" (fp16 with a
    GradScaler, CUDA only) and ``channels_last`` (true, false or "auto"): "auto" is decided by a short timed
    probe of this model on this machine (``agrnet.runtime.choose_precision``), which keeps fp32 unless bf16 or
    channels_last is measurably faster, and the choice with its timings goes into ``config.json`` and the
    checkpoints; ``compile`` (torch.compile); ``deterministic`` turns on
    ``torch.use_deterministic_algorithms`` (exact resume needs it, on the CPU, with ``workers=0``); ``threads`` the
    CPU threads of each process (``torch.set_num_threads``; None keeps torch's default); ``out`` the run
    directory (default ``runs/<timestamp>``); ``resume`` a checkpoint path or "auto" (the run directory's
    ``last.pt`` when there is one).
    """

    preset: str | None = None
    dataset: str = "synthetic"
    data_root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    num_images: int | None = None
    num_val_images: int | None = None
    size: int = 473
    rotation: float = 30.0
    scale: tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    augment: tuple[str, ...] = ()
    augment_p: float = 0.5
    batch_size: int = 8
    val_batch_size: int = 8
    workers: int = 2

    backbone: str = "resnet101"
    pretrained_backbone: str | None = "imagenet"
    top_k: int = 4
    projection: str = "adaptive"
    use_edge: bool = True
    use_graph: bool = True
    use_reasoning: bool = True
    channels: int = 256
    output_stride: int = 8
    edge_gate: bool = False
    detach_edge: bool = False
    freeze_bn: bool = False

    loss_weights: tuple[float, ...] = PAPER_WEIGHTS
    delta: float = 1.0
    use_boundary: bool = True
    use_discriminative: bool = True

    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    grad_clip: float | None = None
    steps: int = 60_000

    log_every: int = 10
    val_every: int = 2_000
    checkpoint_every: int = 1_000
    stop_after: int | None = None
    time_cap_s: float | None = None

    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    threads: int | None = None
    out: str | None = None
    resume: str | None = None

    def __post_init__(self) -> None:
        self.scale = tuple(float(s) for s in self.scale)
        self.loss_weights = tuple(float(w) for w in self.loss_weights)
        positive = ("size", "batch_size", "val_batch_size", "steps", "log_every", "checkpoint_every", "top_k")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("threads", "num_images", "num_val_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer or None, got {getattr(self, name)}")
        for name in ("workers", "val_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {getattr(self, name)}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp: expected one of {AMP_CHOICES}, got {self.amp!r}")
        if self.channels_last not in (True, False, "auto"):
            raise ValueError(f"channels_last: expected true, false or 'auto', got {self.channels_last!r}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride: expected one of {OUTPUT_STRIDES}, got {self.output_stride!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if len(self.loss_weights) != len(TERMS):
            raise ValueError(f"loss_weights: expected {len(TERMS)} values for {TERMS}, got {self.loss_weights}")
        self.augment = tuple(str(kind) for kind in self.augment)
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"augment: unknown {unknown}; choose from {list(AUGMENTATIONS)}")
        if not 0 <= self.augment_p <= 1:
            raise ValueError(f"augment_p: expected a probability in [0, 1], got {self.augment_p}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale: expected (low, high) with 0 < low <= high, got {self.scale}")
        if not self.lr > 0:  # NaN too
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if not self.poly_power >= 0:  # NaN too
            raise ValueError(f"poly_power: expected a power >= 0 (0: a constant learning rate), got {self.poly_power}")
        for item in fields(self):
            value = getattr(self, item.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise ValueError(f"{item.name}: expected finite numbers, got {value}")
        if self.time_cap_s is not None and not self.time_cap_s > 0:
            raise ValueError(f"time_cap_s: expected a positive number of seconds or None, got {self.time_cap_s}")
        if self.stop_after is not None and not 1 <= self.stop_after <= self.steps:
            raise ValueError(f"stop_after: expected 1..steps ({self.steps}), got {self.stop_after}")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a run's ``config.json`` back (the ``precision`` the run chose is not a setting and is dropped)."""
        data = json.loads(Path(path).read_text())
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


PRESETS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "dataset": "synthetic",
        "num_images": 800,
        "num_val_images": 32,
        "size": 96,
        "batch_size": 4,
        "val_batch_size": 8,
        "workers": 0,
        "backbone": "resnet18",
        "pretrained_backbone": None,
        "channels": 64,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "steps": 200,
        "log_every": 10,
        "val_every": 100,
        "checkpoint_every": 100,
    },
    "lapa": {"dataset": "lapa", "steps": 113_600, "val_every": 5_000, "checkpoint_every": 1_000},
    "celebamask-hq": {"dataset": "celebamask-hq", "steps": 151_150, "val_every": 5_000, "checkpoint_every": 1_000},
    "helen": {"dataset": "helen", "steps": 62_500, "val_every": 2_500, "checkpoint_every": 1_000},
    "lip": {"dataset": "lip", "steps": 190_400, "val_every": 5_000, "checkpoint_every": 1_000},
    "fasseg": {
        "dataset": "fasseg", "train_split": "fit", "val_split": "val", "steps": 5_000, "val_every": 500,
        "checkpoint_every": 500,
    },  # fmt: skip
}
"""Overrides of the ``TrainConfig`` defaults for each dataset.

The real-data presets keep Sec. V-B (SGD, momentum 0.9, lr 1e-3, poly 0.9, weight decay 5e-4, batch 8, 473 px,
ResNet-101 from ImageNet). The paper gives no training length; the steps follow the authors' code (250 epochs
for Helen: 2,000 images / 8 x 250 = 62,500) and about 50 epochs of the larger sets (LaPa 18,176 images, CelebAMask-HQ
24,183, LIP 30,462), 5,000 steps for the small FASSEG. FASSEG publishes no val split: its preset trains on our ``fit``
split and validates (and keeps ``best.pt``) on our ``val`` split, 30 train images held out
(``agrnet.data.fasseg.Fasseg``), so that no choice rests on the test split.

``synthetic`` (the default of ``agrnet train``) is sized for a 2-core CPU: a from-scratch ResNet-18 at 96 px,
batch 4, 200 steps with AdamW at lr 2e-3. It deviates from the paper on purpose: SGD at 1e-3 suits an
ImageNet-initialised backbone, and learns too slowly from scratch to show a learning curve in minutes.
"""


def preset_config(name: str = "synthetic", **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name`` with ``overrides`` (field name -> value) applied on top."""
    if name not in PRESETS:
        raise ValueError(f"preset: unknown {name!r}; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; see TrainConfig")
    return TrainConfig(**{**PRESETS[name], "preset": name, **overrides})


def _field_type(name: str) -> Any:
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        raise ValueError(f"--set: unknown config field {name!r}; choose one of {', '.join(hints)}")
    return hints[name]


def coerce_value(name: str, text: str) -> Any:
    """Convert the text of ``--set name=text`` to the type of ``TrainConfig.name``."""
    kind = _field_type(name)
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) and type(None) in args:
        if text.strip().lower() in ("none", "null", ""):
            return None
        kind = next(a for a in args if a is not type(None))
    if name == "channels_last" and text.strip().lower() == "auto":
        return "auto"
    if kind == bool | str:
        kind = bool
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            return tuple(element(part) for part in text.strip("()[] ").split(",") if part.strip())
        return kind(text)
    except ValueError as error:
        raise ValueError(f"--set {name}={text}: not a valid {getattr(kind, '__name__', kind)}") from error


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> {field: typed value}."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        overrides[name.strip().replace("-", "_")] = coerce_value(name.strip().replace("-", "_"), text)
    return overrides


__all__ = ["OPTIMIZERS", "PRESETS", "TrainConfig", "coerce_value", "parse_overrides", "preset_config"]
