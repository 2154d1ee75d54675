"""The training loop of AGRNet (Algorithm 1): ``Trainer`` builds a run, takes its steps and runs its loop;
``train(config)`` is the whole of it in one call.

Read top to bottom: building (the parts come from ``agrnet.training.build``, a resumed run's state from
``agrnet.training.resume``), one step, validation and checkpoints, then the loop (its numbers reach the host, the
log and the NaN check through ``agrnet.training.monitor``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from agrnet.checkpoint import model_state, rng_state, save_checkpoint
from agrnet.config import TrainConfig
from agrnet.data.labels import LabelSchema
from agrnet.data.transforms import check_input_size
from agrnet.diagnostics import graph_diagnostics
from agrnet.distributed import (
    DistributedContext,
    ResumableSampler,
    all_gather_objects,
    broadcast_object,
    cleanup_distributed,
    setup_distributed,
)
from agrnet.evaluate import evaluate
from agrnet.files import FolderLock, check_writable, lock_folder, remove_stale_temporaries, write_json
from agrnet.runtime import PrecisionChoice
from agrnet.training.build import (
    build_criterion,
    build_datasets,
    build_model,
    build_optimizer,
    build_train_loader,
    choose_run_precision,
    seed_everything,
    set_train_mode,
)
from agrnet.training.monitor import StepMonitor
from agrnet.training.resume import interrupted_message, resolve_run_dir, restore_training_state, resume_checkpoint
from agrnet.training.runlog import RunLog
from agrnet.version import __version__


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the training loop; the message names the step, the last checkpoint and the command
    that resumes the run."""


class Trainer:
    """One training run of ``config``: build everything in ``__init__``, train in ``run``.

    Attributes useful from outside: ``model`` (the plain module, not the DDP or compiled wrapper), ``schema``,
    ``run_dir``, ``step``, ``context`` (rank, world size, device).

    A run directory belongs to one training at a time: rank 0 holds its lock (``agrnet.files.lock_folder``) from
    the build, when the folder exists then (a resume, or another run's folder), or else from the start of ``run``,
    which creates it, to the end of ``run``; a second training into a held folder fails at once, naming the holder.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.lock: FolderLock | None = None
        self.context: DistributedContext = setup_distributed(config.device)
        try:
            self._build()
        except BaseException:
            self._release()
            cleanup_distributed(self.context)
            raise

    # Building -----------------------------------------------------------------------------------------------

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
        check_input_size(config.size, "size")
        self.run_dir = Path(broadcast_object(resolve_run_dir(config) if self.context.is_main else None))
        check_writable(self.run_dir, self._run_dir_name, folder=True)
        if self.context.is_main and self.run_dir.is_dir():
            self.lock = lock_folder(self.run_dir, self._run_dir_name)
        checkpoint = resume_checkpoint(config, self.run_dir, device)
        self.saved_step: int | None = None if checkpoint is None else int(checkpoint["step"])

        seed_everything(config.seed)
        self.train_set, self.val_set, self.schema = self._datasets()
        self.model = build_model(config, self.context)
        self.precision = self._choose_precision()
        if self.precision.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = build_criterion(config, self.schema)
        self.optimizer = build_optimizer(config, self.model)
        self.elapsed_s = 0.0
        self.stopped_by: str | None = None
        self.scheduler = torch.optim.lr_scheduler.PolynomialLR(
            self.optimizer, total_iters=config.steps, power=config.poly_power
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.amp == "fp16")
        seed_everything(config.seed + self.context.rank)

        self.sampler = ResumableSampler(
            self.train_set, self.context.world_size, self.context.rank, shuffle=True, seed=config.seed
        )
        self.train_loader = build_train_loader(config, self.context, self.train_set, self.per_rank_batch, self.sampler)
        if len(self.train_loader) == 0:
            raise ValueError(
                f"dataset {config.dataset!r} split {config.train_split!r}: {len(self.train_set)} images are fewer "
                f"than one batch of {self.per_rank_batch} per process"
            )
        self.steps_per_epoch = len(self.train_loader)

        self.step = 0
        self.best_mean_f1 = -math.inf
        if checkpoint is not None:
            self.step, self.elapsed_s, self.best_mean_f1 = restore_training_state(
                checkpoint,
                config=config,
                context=self.context,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
            )
        self.network: nn.Module = self.model
        if self.context.is_distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        if config.compile:
            self.network = torch.compile(self.network)

    @property
    def _run_dir_name(self) -> str:
        """How messages name the run directory: by the option that chose it, if one did."""
        return "--out" if self.config.out is not None else "run directory"

    def _release(self) -> None:
        """Drop the run directory's lock, if this process holds it."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _datasets(self) -> tuple[Dataset, Dataset, LabelSchema]:
        """The training and validation sets of this run and their label schema (``build_datasets``)."""
        return build_datasets(self.config)

    def _choose_precision(self) -> PrecisionChoice:
        """``amp`` and ``channels_last`` made concrete on rank 0 (``choose_run_precision``) and shared with every
        process."""
        choice = None
        if self.context.is_main:
            choice = choose_run_precision(self.config, self.context.device, self.per_rank_batch)
        return broadcast_object(choice)

    # One step -----------------------------------------------------------------------------------------------

    def _train_step(
        self, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """One step of Algorithm 1: (total loss, its terms, the step's ``agrnet.training.monitor.DIAGNOSTICS`` as one
        tensor), all on the device."""
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

    # Validation and checkpoints -----------------------------------------------------------------------------

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
        set_train_mode(self.model, self.config.freeze_bn)
        return report

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

    def _validate_and_save(self, log: RunLog) -> None:
        metrics = self.validate()
        keys = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy", "group_f1", "f1", "pixels")
        log.write({"kind": "val", "step": self.step, **{k: metrics[k] for k in keys if k in metrics}})
        mean_f1 = metrics["mean_f1"] if metrics["mean_f1"] is not None else -math.inf
        improved = mean_f1 > self.best_mean_f1
        if improved:
            self.best_mean_f1 = mean_f1
        self.save("last.pt", *(["best.pt"] if improved else []), metrics=metrics)

    # The loop -----------------------------------------------------------------------------------------------

    def run(self) -> Path:
        """Train from ``step`` to ``steps`` (or ``stop_after``); returns the run directory."""
        config, context = self.config, self.context
        try:
            log = self._open_run_dir() if context.is_main else RunLog(None)
        except BaseException:
            self._release()
            cleanup_distributed(context)
            raise
        set_train_mode(self.model, config.freeze_bn)
        was_deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=context.device.type != "cpu")
            torch.backends.cudnn.benchmark = False
        monitor = StepMonitor(config, self.run_dir, self.steps_per_epoch, log, self.step, show=context.is_main)
        try:
            self._loop(monitor, log)
        except KeyboardInterrupt as error:
            raise TrainingInterrupted(interrupted_message(config, self.run_dir, self.step, self.saved_step)) from error
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)
            monitor.close()
            log.close()
            self._release()
            cleanup_distributed(context)
        return self.run_dir

    def _open_run_dir(self) -> RunLog:
        """Rank 0 at the start of ``run``: create the run directory and take its lock (unless held since the build),
        clear what an interrupted write left there, write ``config.json`` (with the precision chosen) and open the
        log with its "start" record."""
        context = self.context
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.lock is None:
            self.lock = lock_folder(self.run_dir, self._run_dir_name)
        for name in ("last.pt", "best.pt", "config.json"):
            remove_stale_temporaries(self.run_dir / name)
        write_json(self.run_dir / "config.json", {**asdict(self.config), "precision": self.precision.to_dict()})
        log = RunLog.open(self.run_dir, self.step)
        log.write({
            "kind": "start", "step": self.step, "device": str(context.device), "world_size": context.world_size,
            "agrnet_version": __version__, "torch_version": torch.__version__, "time": time.time(),
            "precision": self.precision.precision.name, "precision_reason": self.precision.reason,
        })  # fmt: skip
        return log

    def _loop(self, monitor: StepMonitor, log: RunLog) -> None:
        """The steps from ``step`` on, epoch after epoch, until the last step, ``stop_after`` or ``time_cap_s``;
        numbers reach the host every ``log_every`` steps and before each validation and checkpoint."""
        config = self.config
        end = config.stop_after or config.steps
        clock = monitor.started - self.elapsed_s
        out_of_time = False
        while self.step < end and not out_of_time:
            epoch, batch_in_epoch = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_position(epoch, batch_in_epoch * self.per_rank_batch)
            for batch in self.train_loader:
                lr = self.scheduler.get_last_lr()[0]
                self.elapsed_s = time.perf_counter() - clock
                total, terms, diagnostics = self._train_step(batch)
                self.step += 1
                monitor.add(self.step, lr, total, terms, diagnostics)
                self.elapsed_s = time.perf_counter() - clock
                out_of_time = config.time_cap_s is not None and self.elapsed_s >= config.time_cap_s
                if out_of_time and self.step < end:
                    self.stopped_by = "time_cap"
                    log.write({"kind": "stop", "step": self.step, "reason": "time_cap",
                               "elapsed_s": self.elapsed_s, "time_cap_s": config.time_cap_s})
                final = self.step == end or out_of_time
                validating = (
                    (config.val_every and self.step % config.val_every == 0) or self.step == config.steps or out_of_time
                )
                saving = self.step % config.checkpoint_every == 0 or final
                if self.step % config.log_every == 0 or validating or saving:
                    monitor.flush(self.elapsed_s)
                    if validating:
                        self._validate_and_save(log)
                    elif saving:
                        self.save("last.pt")
                    monitor.restart()
                if final:
                    break


def train(config: TrainConfig) -> Path:
    """Run one training of ``config`` (single process or one rank of ``torchrun``); returns the run directory."""
    return Trainer(config).run()
