"""Training AGRNet (Algorithm 1): the training loop, DDP, checkpoints, logs and the ``agrnet train`` command.

``train(config)`` runs one training of a ``agrnet.config.TrainConfig`` and returns its run directory, which holds
``config.json`` (the configuration, and the ``precision`` the run chose with the probe's timings), ``log.jsonl``
(one line per step and one per validation), ``last.pt`` and ``best.pt``. The ``agrnet train`` command builds the
configuration from a preset, ``--set key=value`` overrides and flags.

No step waits for the device: each step's loss terms stay on it as one small tensor, and every ``log_every``
steps (and before each validation or checkpoint) they are stacked, averaged over DDP processes and copied to the
host in one transfer. That transfer is also where a NaN or inf is detected, naming the first bad step and its
terms. The trade-off: up to ``log_every - 1`` steps run on after a NaN before the run stops, on weights that are
already spoiled; they are never saved, because a checkpoint is only written right after a transfer that found
every pending step finite, so ``last.pt`` is always the last good state.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import shlex
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from agrnet import __version__
from agrnet.bench import probe_step
from agrnet.checkpoint import load_checkpoint, model_state, rng_state, save_checkpoint, set_rng_state
from agrnet.config import PRESETS, TrainConfig, parse_overrides, preset_config
from agrnet.data.datasets import build_dataset
from agrnet.data.labels import LabelSchema, get_schema
from agrnet.data.loading import CheckedLoader
from agrnet.data.transforms import Appearance, EvalTransform, TrainTransform
from agrnet.diagnostics import NAMES as GRAPH_DIAGNOSTICS
from agrnet.diagnostics import graph_diagnostics
from agrnet.distributed import (
    DistributedContext,
    ResumableSampler,
    all_gather_objects,
    all_reduce_mean,
    broadcast_object,
    cleanup_distributed,
    setup_distributed,
)
from agrnet.evaluate import evaluate
from agrnet.files import BadFileError, check_writable, remove_stale_temporaries, write_json
from agrnet.losses import AGRNetLoss
from agrnet.model import AGRNet
from agrnet.runtime import AMP_CHOICES, PrecisionChoice, choose_precision
from agrnet.weights import resolve_backbone

DIAGNOSTICS = (*GRAPH_DIAGNOSTICS, "grad_norm")
"""The per-step values logged under ``"diagnostics"`` (``agrnet.diagnostics``; the gradient norm before clipping)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the terms."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the training loop; the message names the step, the last checkpoint and the command
    that resumes the run."""


TRAINING_STATE = ("optimizer", "scheduler", "scaler", "rng", "step")
"""What a checkpoint needs beyond the model to be resumed (``agrnet.checkpoint.load_checkpoint`` checks the rest)."""


def _set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _clock(seconds: float) -> str:
    """Seconds as h:mm:ss or m:ss."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the global generator third-party code may use)
    torch.manual_seed(seed)


def model_options(config: TrainConfig) -> dict[str, Any]:
    """The ``AGRNet`` arguments of a run of ``config`` as ``AGRNet.config`` records them (all but the initial
    weights)."""
    return {
        "num_classes": get_schema(config.dataset).num_classes,
        "backbone": config.backbone,
        "top_k": config.top_k,
        "projection": config.projection,
        "use_edge": config.use_edge,
        "use_graph": config.use_graph,
        "channels": config.channels,
        "use_reasoning": config.use_reasoning,
        "output_stride": config.output_stride,
        "edge_gate": config.edge_gate,
        "detach_edge": config.detach_edge,
    }


def choose_run_precision(config: TrainConfig, device: torch.device, batch_size: int | None = None) -> PrecisionChoice:
    """``amp`` and ``channels_last`` of ``config`` made concrete: probed (when "auto") on a fresh copy of the
    architecture on a random batch of the run's shape (``batch_size`` per process, default the whole batch) with
    ``config.threads`` threads; ``agrnet.runtime.choose_precision``."""
    options, size = model_options(config), (config.size, config.size)
    batch = batch_size or config.batch_size
    key = {"model": options, "size": list(size), "batch_size": batch, "mode": "train"}
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return choose_precision(config.amp, config.channels_last, device, probe_step(options, size, batch, device), key)
    finally:
        torch.set_num_threads(threads)


class Trainer:
    """One training run of ``config``: build everything in ``__init__``, train in ``run``.

    Attributes useful from outside: ``model`` (the plain module, not the DDP or compiled wrapper), ``schema``,
    ``run_dir``, ``step``, ``context`` (rank, world size, device).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.context: DistributedContext = setup_distributed(config.device)
        try:
            self._build()
        except BaseException:
            cleanup_distributed(self.context)
            raise

    def _build(self) -> None:
        config = self.config
        device = self.context.device
        if config.amp == "fp16" and device.type != "cuda":
            raise ValueError(f"amp: fp16 needs a CUDA device (this run uses {device}); use auto, bf16 or none")
        if config.batch_size % self.context.world_size:
            raise ValueError(
                f"batch_size: the global batch {config.batch_size} does not split evenly over "
                f"{self.context.world_size} processes"
            )
        self.per_rank_batch = config.batch_size // self.context.world_size
        self.run_dir = Path(broadcast_object(self._resolve_run_dir() if self.context.is_main else None))
        check_writable(self.run_dir, "--out" if config.out is not None else "run directory", folder=True)
        checkpoint = self._resume_checkpoint()
        self.saved_step: int | None = None if checkpoint is None else int(checkpoint["step"])

        _seed_everything(config.seed)
        self.train_set, self.val_set, self.schema = self._datasets()
        self.model = self._build_model()
        self.precision = self._choose_precision()
        if self.precision.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = AGRNetLoss(
            config.loss_weights,
            delta=config.delta,
            ignore_index=self.schema.ignore_index,
            use_boundary=config.use_boundary,
            use_discriminative=config.use_discriminative,
        )
        self.optimizer = self._build_optimizer()
        self.elapsed_s = 0.0
        self.stopped_by: str | None = None
        self.scheduler = torch.optim.lr_scheduler.PolynomialLR(
            self.optimizer, total_iters=config.steps, power=config.poly_power
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.amp == "fp16")
        _seed_everything(config.seed + self.context.rank)

        self.sampler = ResumableSampler(
            self.train_set, self.context.world_size, self.context.rank, shuffle=True, seed=config.seed
        )
        self.train_loader = self._loader(self.train_set, self.per_rank_batch, self.sampler, drop_last=True)
        if len(self.train_loader) == 0:
            raise ValueError(
                f"dataset {config.dataset!r} split {config.train_split!r}: {len(self.train_set)} images are fewer "
                f"than one batch of {self.per_rank_batch} per process"
            )
        self.steps_per_epoch = len(self.train_loader)

        self.step = 0
        self.best_mean_f1 = -math.inf
        if checkpoint is not None:
            self._restore(checkpoint)
        self.network: nn.Module = self.model
        if self.context.is_distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        if config.compile:
            self.network = torch.compile(self.network)

    # Construction -------------------------------------------------------------------------------------------

    def _resolve_run_dir(self) -> Path:
        config = self.config
        if config.out is not None:
            return Path(config.out)
        if config.resume not in (None, "auto"):
            return Path(config.resume).parent
        return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")

    def _resume_checkpoint(self) -> dict[str, Any] | None:
        resume = self.config.resume
        last = self.run_dir / "last.pt"
        if resume is None:
            if last.exists():
                raise FileExistsError(
                    f"{last}: the run directory already holds a checkpoint; pass --resume auto to continue it or "
                    "choose another --out"
                )
            return None
        path = last if resume == "auto" else Path(resume)
        if resume == "auto" and not path.exists():
            return None
        checkpoint = load_checkpoint(path, map_location=self.context.device)
        self._check_resumable(path, checkpoint)
        return checkpoint

    def _check_resumable(self, path: Path, checkpoint: Mapping[str, Any]) -> None:
        """Refuse, naming the checkpoint and what is wrong, a checkpoint that this run cannot continue."""
        missing = [key for key in TRAINING_STATE if key not in checkpoint]
        if missing:
            raise ValueError(
                f"checkpoint {path}: holds weights but no training state (no {', '.join(missing)}), so it cannot be "
                "resumed; start a new run instead"
            )
        defaults = {name: option.default for name, option in inspect.signature(AGRNet).parameters.items()}
        recorded = {**defaults, **checkpoint["model_config"]}  # arguments added since it was written: their defaults
        differ = [
            f"{key}={recorded.get(key)!r} (this run: {value!r})"
            for key, value in model_options(self.config).items()
            if recorded.get(key) != value
        ]
        if differ:
            raise ValueError(
                f"checkpoint {path}: its model differs from this run's in {', '.join(differ)}; resume with the "
                "settings it was trained with, or start a new run instead"
            )
        step = int(checkpoint["step"])
        if step > self.config.steps:
            raise ValueError(
                f"steps: this run has {self.config.steps} but checkpoint {path} is at step {step} already; resume "
                f"with --set steps=N for some N >= {step}"
            )

    def _datasets(self) -> tuple[Dataset, Dataset, LabelSchema]:
        config = self.config
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

    def _build_model(self) -> AGRNet:
        config = self.config
        model = AGRNet(**model_options(config), pretrained_backbone=resolve_backbone(config.pretrained_backbone))
        device = self.context.device
        if self.context.is_distributed and not config.freeze_bn:
            if device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif self.context.is_main:
                warnings.warn(
                    "SyncBatchNorm needs CUDA: BatchNorm statistics are per process in this CPU run "
                    "(freeze_bn=True makes it match a single process)",
                    stacklevel=2,
                )
        return model.to(device)

    def _choose_precision(self) -> PrecisionChoice:
        """``amp`` and ``channels_last`` made concrete on rank 0 (``choose_run_precision``) and shared with every
        process."""
        choice = None
        if self.context.is_main:
            choice = choose_run_precision(self.config, self.context.device, self.per_rank_batch)
        return broadcast_object(choice)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        config = self.config
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        if config.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Any, drop_last: bool) -> DataLoader:
        workers = self.config.workers
        return CheckedLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.context.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.config.seed + self.context.rank),
        )

    # Checkpoints --------------------------------------------------------------------------------------------

    def _payload(self, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            **model_state(self.model, self.schema),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": all_gather_objects(rng_state()),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "stopped_by": self.stopped_by,
            "precision": self.precision.to_dict(),
            "best_mean_f1": self.best_mean_f1,
            "metrics": dict(metrics or {}),
            "config": asdict(self.config),
            "world_size": self.context.world_size,
        }

    def save(self, *names: str, metrics: Mapping[str, Any] | None = None) -> None:
        """Write the current state as checkpoint(s) ``names`` (e.g. "last.pt") into the run directory (rank 0).

        Every process must call it: they all take part in gathering the RNG states."""
        payload = self._payload(metrics)
        if self.context.is_main:
            for name in names:
                save_checkpoint(self.run_dir / name, payload)
        if "last.pt" in names:
            self.saved_step = self.step

    def _restore(self, checkpoint: Mapping[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(self._schedule_state(checkpoint["scheduler"]))
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = int(checkpoint["step"])
        self.elapsed_s = float(checkpoint.get("elapsed_s", 0.0))
        self.best_mean_f1 = float(checkpoint.get("best_mean_f1", -math.inf))
        states = checkpoint["rng"]
        if len(states) == self.context.world_size:
            set_rng_state(states[self.context.rank])
        else:
            _seed_everything(self.config.seed + self.context.rank + self.step)
            if self.context.is_main:
                warnings.warn(
                    f"resuming {len(states)}-process RNG states in a {self.context.world_size}-process run: "
                    "random streams are reseeded, the continuation is not bit-identical",
                    stacklevel=2,
                )

    def _schedule_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The checkpoint's scheduler state, rebuilt when this run's ``steps``, ``poly_power`` or ``lr`` differ
        from the checkpoint's (a finished run continued with more steps): the poly schedule of this run,
        lr * (1 - step / steps) ** poly_power, from the checkpoint's step on. Sets the optimizer's rates too."""
        config, state = self.config, dict(state)
        step, groups = int(state["last_epoch"]), self.optimizer.param_groups
        recorded = {"steps": state["total_iters"], "poly_power": state["power"], "lr": state["base_lrs"][0]}
        wanted = {"steps": config.steps, "poly_power": config.poly_power, "lr": config.lr}
        if recorded == wanted:
            return state
        rate = config.lr * (1 - step / config.steps) ** config.poly_power
        for group in groups:
            group.update(lr=rate, initial_lr=config.lr)
        if self.context.is_main:
            changed = ", ".join(f"{key} {old} -> {wanted[key]}" for key, old in recorded.items() if old != wanted[key])
            warnings.warn(
                f"resuming at step {step} with {changed}: the poly schedule is rebuilt for this run, lr {rate:.4g} "
                f"for step {step + 1}",
                stacklevel=3,
            )
        rebuilt = {"total_iters": config.steps, "power": config.poly_power, "base_lrs": [config.lr] * len(groups)}
        return {**state, **rebuilt, "_last_lr": [rate] * len(groups)}

    def _interrupted(self) -> str:
        """What a Ctrl-C says: the step reached, the last checkpoint, and the command that resumes the run."""
        from agrnet.weights import train_command

        saved = "no checkpoint written yet"
        if self.saved_step is not None:
            saved = f"last checkpoint at step {self.saved_step} ({self.run_dir / 'last.pt'})"
        command = f"{train_command(asdict(self.config))} {shlex.join(['--out', str(self.run_dir), '--resume', 'auto'])}"
        return f"interrupted at step {self.step}; {saved}; resume with: {command}"

    # Logging ------------------------------------------------------------------------------------------------

    def _open_log(self) -> Any:
        path = self.run_dir / "log.jsonl"
        if self.step > 0 and path.exists():  # drop lines written after the checkpoint we resume from
            kept = [line for line in path.read_text().splitlines() if json.loads(line).get("step", 0) <= self.step]
            path.write_text("".join(line + "\n" for line in kept))
        return path.open("a", buffering=1)

    def _write_log(self, log: Any, record: Mapping[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(record, allow_nan=False) + "\n")

    # Training -----------------------------------------------------------------------------------------------

    def _train_step(
        self, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """One step of Algorithm 1: (total loss, its terms, the step's ``DIAGNOSTICS`` as one tensor), all on the
        device."""
        config, device = self.config, self.context.device
        images = batch["image"].to(device, non_blocking=True)
        if self.precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = {key: batch[key].to(device, non_blocking=True) for key in ("label", "edge")}
        dtype = self.precision.precision.dtype
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            output = self.network(images)
            total, terms = self.criterion(output, target)
        graph = graph_diagnostics(output, target["label"], config.top_k, self.schema.ignore_index)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        gradients = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = nn.utils.get_total_norm(gradients) if gradients else torch.zeros((), device=device)
        if config.grad_clip is not None:
            nn.utils.clip_grads_with_norm_(self.model.parameters(), config.grad_clip, grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return total.detach(), terms, torch.cat([graph, grad_norm.float().reshape(1)])

    def validate(self) -> dict[str, Any]:
        """``agrnet.evaluate.evaluate`` of the current model on the validation split: scored at each label's
        original size, summed over processes. The random streams of training are left as they were."""
        device = self.context.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            report = evaluate(
                self.model,
                self.val_set,
                self.schema,
                device=device,
                batch_size=self.config.val_batch_size,
                num_workers=self.config.workers,
                amp=self.precision.precision.dtype,
            )
        _set_train_mode(self.model, self.config.freeze_bn)
        return report

    def _flush(
        self, pending: list[tuple[int, float, torch.Tensor]], names: list[str], log: Any, bar: Any, started: float
    ) -> None:
        """Bring the pending steps' numbers to the host (one sync), log them, and stop on a non-finite loss."""
        if not pending:
            return
        values = all_reduce_mean(torch.stack([v for _, _, v in pending])).cpu().tolist()
        elapsed = max(time.perf_counter() - started, 1e-9)
        images_per_s = len(pending) * self.config.batch_size / elapsed
        for (step, lr, _), everything in zip(pending, values, strict=True):
            row, diagnostics = everything[: 1 + len(names)], everything[1 + len(names) :]
            if not all(math.isfinite(v) for v in row):
                bad = [name for name, v in zip(["loss", *names], row, strict=True) if not math.isfinite(v)]
                bad_terms = [name for name in bad if name != "loss"] or ["loss"]
                self._write_log(log, {"kind": "error", "step": step, "non_finite": bad_terms})
                last = self.run_dir / "last.pt"
                kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
                raise NonFiniteLossError(
                    f"step {step}: the loss is not finite in term(s) {', '.join(bad_terms)} "
                    f"({', '.join(f'{n}={v}' for n, v in zip(['loss', *names], row, strict=True))}); "
                    f"training stopped, {kept}"
                )
            record = {"kind": "train", "step": step, "epoch": (step - 1) // self.steps_per_epoch, "lr": lr}
            record.update(zip(["loss", *names], row, strict=True))
            record["images_per_s"] = images_per_s
            record["diagnostics"] = {
                name: value if math.isfinite(value) else None
                for name, value in zip(DIAGNOSTICS, diagnostics, strict=True)
            }
            self._write_log(log, record)
        cap = self.config.time_cap_s
        bar.set_postfix(
            {name: f"{v:.3f}" for name, v in zip(["loss", *names], values[-1], strict=False)}
            | {"lr": f"{pending[-1][1]:.2e}", "img/s": f"{images_per_s:.1f}"}
            | ({"time/cap": f"{_clock(self.elapsed_s)}/{_clock(cap)}"} if cap is not None else {})
        )
        pending.clear()

    def _validate_and_save(self, log: Any) -> None:
        metrics = self.validate()
        keys = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy", "group_f1", "f1", "pixels")
        self._write_log(log, {"kind": "val", "step": self.step, **{k: metrics[k] for k in keys if k in metrics}})
        mean_f1 = metrics["mean_f1"] if metrics["mean_f1"] is not None else -math.inf
        improved = mean_f1 > self.best_mean_f1
        if improved:
            self.best_mean_f1 = mean_f1
        self.save("last.pt", *(["best.pt"] if improved else []), metrics=metrics)

    def run(self) -> Path:
        """Train from ``step`` to ``steps`` (or ``stop_after``); returns the run directory."""
        config, context = self.config, self.context
        end = config.stop_after or config.steps
        log = None
        if context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for name in ("last.pt", "best.pt", "config.json"):
                remove_stale_temporaries(self.run_dir / name)
            write_json(self.run_dir / "config.json", {**asdict(self.config), "precision": self.precision.to_dict()})
            log = self._open_log()
            self._write_log(log, {
                "kind": "start", "step": self.step, "device": str(context.device), "world_size": context.world_size,
                "agrnet_version": __version__, "torch_version": torch.__version__, "time": time.time(),
                "precision": self.precision.precision.name, "precision_reason": self.precision.reason,
            })  # fmt: skip
        bar = tqdm(total=config.steps, initial=self.step, desc="train", disable=not context.is_main, dynamic_ncols=True)
        pending: list[tuple[int, float, torch.Tensor]] = []
        names: list[str] = []
        _set_train_mode(self.model, config.freeze_bn)
        was_deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=context.device.type != "cpu")
            torch.backends.cudnn.benchmark = False
        started = time.perf_counter()
        clock = started - self.elapsed_s
        out_of_time = False
        try:
            while self.step < end and not out_of_time:
                epoch, batch_in_epoch = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_position(epoch, batch_in_epoch * self.per_rank_batch)
                for batch in self.train_loader:
                    lr = self.scheduler.get_last_lr()[0]
                    self.elapsed_s = time.perf_counter() - clock
                    total, terms, diagnostics = self._train_step(batch)
                    self.step += 1
                    names = list(terms)
                    pending.append((self.step, lr, torch.cat([torch.stack([total, *terms.values()]), diagnostics])))
                    bar.update(1)
                    self.elapsed_s = time.perf_counter() - clock
                    out_of_time = config.time_cap_s is not None and self.elapsed_s >= config.time_cap_s
                    if out_of_time and self.step < end:
                        self.stopped_by = "time_cap"
                        self._write_log(log, {"kind": "stop", "step": self.step, "reason": "time_cap",
                                              "elapsed_s": self.elapsed_s, "time_cap_s": config.time_cap_s})
                    final = self.step == end or out_of_time
                    validating = (
                        (config.val_every and self.step % config.val_every == 0)
                        or self.step == config.steps
                        or out_of_time
                    )
                    saving = self.step % config.checkpoint_every == 0 or final
                    if self.step % config.log_every == 0 or validating or saving:
                        self._flush(pending, names, log, bar, started)
                        if validating:
                            self._validate_and_save(log)
                        elif saving:
                            self.save("last.pt")
                        started = time.perf_counter()
                    if final:
                        break
        except KeyboardInterrupt as error:
            raise TrainingInterrupted(self._interrupted()) from error
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)
            bar.close()
            if log is not None:
                log.close()
            cleanup_distributed(context)
        return self.run_dir


def train(config: TrainConfig) -> Path:
    """Run one training of ``config`` (single process or one rank of ``torchrun``); returns the run directory."""
    return Trainer(config).run()


# Command line ---------------------------------------------------------------------------------------------------

FLAGS: dict[str, tuple[str, type, str]] = {
    "--steps": ("steps", int, "number of optimisation steps"),
    "--batch-size": ("batch_size", int, "global batch size (split over DDP processes)"),
    "--size": ("size", int, "square input size in pixels"),
    "--lr": ("lr", float, "base learning rate of the poly schedule"),
    "--backbone": ("backbone", str, "ResNet backbone (resnet18 ... resnet152)"),
    "--data-root": ("data_root", str, "dataset folder (not needed for synthetic faces)"),
    "--out": ("out", str, "run directory (default runs/<timestamp>)"),
    "--resume": ("resume", str, "checkpoint to continue from, or 'auto' for the run directory's last.pt"),
    "--device": ("device", str, "auto, cpu, cuda, cuda:N"),
    "--seed": ("seed", int, "random seed"),
    "--val-every": ("val_every", int, "validate every N steps (0: only at the end)"),
    "--workers": ("workers", int, "data-loading worker processes per training process"),
}
SWITCHES: dict[str, tuple[str, str]] = {
    "--channels-last": ("channels_last", "channels-last memory format"),
    "--compile": ("compile", "torch.compile the model"),
    "--deterministic": ("deterministic", "deterministic algorithms (exact resume on the CPU with --workers 0)"),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet train``."""
    parser.add_argument("--preset", default="synthetic", choices=sorted(PRESETS), help="named configuration")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any TrainConfig field (repeatable), e.g. --set optimizer=sgd --set scale=0.75,1.25",
    )  # fmt: skip
    for flag, (name, kind, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=name, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--amp", choices=AMP_CHOICES, default=None,
        help="mixed precision (default auto: bf16 only where a short probe on this machine shows it faster than fp32)",
    )  # fmt: skip
    for flag, (name, help_text) in SWITCHES.items():
        parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Preset, then ``--set`` overrides, then explicit flags."""
    overrides = parse_overrides(args.overrides)
    names = [name for name, _, _ in FLAGS.values()] + [name for name, _ in SWITCHES.values()] + ["amp"]
    overrides.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    return preset_config(args.preset, **overrides)


def run(args: argparse.Namespace) -> int:
    """``agrnet train``: train and print the run directory. Exit status 0, 1 on an error (one line, naming the
    setting or file), 130 on Ctrl-C (saying how to resume)."""
    try:
        config = config_from_args(args)
        run_dir = train(config)
    except (ValueError, OSError, BadFileError, NonFiniteLossError) as error:
        print(f"agrnet train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:  # TrainingInterrupted from the loop, plain before it
        print(f"agrnet train: {str(error) or 'interrupted before the first step'}", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(run_dir)
    return 0


__all__ = [
    "PRESETS",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "choose_run_precision",
    "configure_parser",
    "model_options",
    "preset_config",
    "run",
    "train",
]
