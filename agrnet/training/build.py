"""The parts of a training run, each built from its ``TrainConfig``: datasets, model, precision, loss, optimizer,
data loaders, and the seeding of the random streams.

Functions of the configuration (and, where it matters, of the process: its device, rank and world size); the
``Trainer`` calls them in order. ``model_config`` and ``choose_run_precision`` also serve code that needs a run's
model or precision without training it (``agrnet.experiments``).
"""

from __future__ import annotations

import random
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from agrnet.bench import probe_step
from agrnet.config import TrainConfig
from agrnet.data.datasets import build_dataset
from agrnet.data.labels import LabelSchema, get_schema
from agrnet.data.loading import CheckedLoader
from agrnet.data.transforms import Appearance, EvalTransform, TrainTransform
from agrnet.distributed import DistributedContext
from agrnet.losses import AGRNetLoss
from agrnet.model import AGRNet, AGRNetConfig
from agrnet.runtime import PrecisionChoice, choose_precision
from agrnet.weights import resolve_backbone


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's global and torch's random generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the global generator third-party code may use)
    torch.manual_seed(seed)


def set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """``model.train()``, with its BatchNorm layers left on their running statistics when ``freeze_bn``."""
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def model_config(config: TrainConfig) -> AGRNetConfig:
    """The architecture of a run of ``config`` (all but the initial weights): its fields of ``AGRNetConfig``'s
    names, and the number of classes of its dataset."""
    return AGRNetConfig.from_settings(config, num_classes=get_schema(config.dataset).num_classes)


def choose_run_precision(config: TrainConfig, device: torch.device, batch_size: int | None = None) -> PrecisionChoice:
    """``amp`` and ``channels_last`` of ``config`` made concrete: probed (when "auto") on a fresh copy of the
    architecture on a random batch of the run's shape (``batch_size`` per process, default the whole batch) with
    ``config.threads`` threads; ``agrnet.runtime.choose_precision``."""
    architecture, size = model_config(config), (config.size, config.size)
    batch = batch_size or config.batch_size
    key = {"model": asdict(architecture), "size": list(size), "batch_size": batch, "mode": "train"}
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        probe = probe_step(architecture, size, batch, device)
        return choose_precision(config.amp, config.channels_last, device, probe, key)
    finally:
        torch.set_num_threads(threads)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset, LabelSchema]:
    """The training set (with the augmentation of ``config``), the validation set and their label schema, each
    split cut to its first ``num_images`` / ``num_val_images`` images."""
    extra: dict[str, Any] = {}
    val_extra: dict[str, Any] = {}
    if config.dataset == "synthetic":
        extra = {"num_images": config.num_images or 1000, "size": config.size, "seed": config.seed}
        val_extra = {**extra, "num_images": config.num_val_images or 100}
    schema = get_schema(config.dataset)
    appearance = Appearance(schema, config.augment, config.augment_p) if config.augment else None
    augment = TrainTransform(
        config.size, schema, rotation=config.rotation, scale=config.scale, flip=config.flip, appearance=appearance
    )
    train_set = build_dataset(config.dataset, config.data_root, config.train_split, transform=augment, **extra)
    val_set = build_dataset(
        config.dataset, config.data_root, config.val_split, transform=EvalTransform(config.size), **val_extra
    )
    if config.num_images is not None and len(train_set) > config.num_images:
        train_set = Subset(train_set, range(config.num_images))
    if config.num_val_images is not None and len(val_set) > config.num_val_images:
        val_set = Subset(val_set, range(config.num_val_images))
    return train_set, val_set, schema


def build_model(config: TrainConfig, context: DistributedContext) -> AGRNet:
    """The model of ``config`` with its initial weights, on the process's device; BatchNorm synchronised over the
    processes of a multi-GPU run (unless ``freeze_bn``)."""
    model = AGRNet.from_config(model_config(config), resolve_backbone(config.pretrained_backbone))
    device = context.device
    if context.is_distributed and not config.freeze_bn:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif context.is_main:
            warnings.warn(
                "SyncBatchNorm needs CUDA: BatchNorm statistics are per process in this CPU run "
                "(freeze_bn=True makes it match a single process)",
                stacklevel=2,
            )
    return model.to(device)


def build_criterion(config: TrainConfig, schema: LabelSchema) -> AGRNetLoss:
    """The loss of Eq. (11) with the weights, margin and switches of ``config``."""
    return AGRNetLoss(
        config.loss_weights,
        delta=config.delta,
        ignore_index=schema.ignore_index,
        use_boundary=config.use_boundary,
        use_discriminative=config.use_discriminative,
    )


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the trainable parameters of ``model``."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def build_train_loader(
    config: TrainConfig, context: DistributedContext, dataset: Dataset, batch_size: int, sampler: Any
) -> DataLoader:
    """A ``CheckedLoader`` of whole batches of ``dataset`` in the order of ``sampler``, with ``config.workers``
    worker processes seeded from the run's seed and this process's rank."""
    workers = config.workers
    return CheckedLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=context.device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed + context.rank),
    )
