"""Continuing a run from its checkpoint: where the run lives, which checkpoint it resumes, the checks that the
checkpoint fits this run, and the restore of its weights, optimizer, schedule, scaler and random streams.

A run resumes with ``resume`` "auto" (the run directory's ``last.pt``, when there is one) or a checkpoint path. The
checkpoint must hold the training state (``TRAINING_STATE``), the model of this run, and a step no later than this
run's ``steps``; a run continued with other ``steps``, ``poly_power`` or ``lr`` gets its poly schedule rebuilt from
the checkpoint's step on. The settings that define what the steps compute (``RUN_SETTINGS``: data, augmentation,
loss, optimizer, seed) must be the checkpoint's: a resume with another ``size``, say, is refused, naming each
setting that differs, rather than continuing a run whose ``config.json`` no longer describes its checkpoint.
``interrupted_message`` is what a Ctrl-C prints: the command that resumes the run.
"""

from __future__ import annotations

import math
import secrets
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from agrnet.checkpoint import load_checkpoint, set_rng_state
from agrnet.config import TrainConfig
from agrnet.distributed import DistributedContext
from agrnet.model import AGRNetConfig
from agrnet.training.build import model_config, seed_everything
from agrnet.weights import train_command

TRAINING_STATE = ("optimizer", "scheduler", "scaler", "rng", "step")
"""What a checkpoint needs beyond the model to be resumed (``agrnet.checkpoint.load_checkpoint`` checks the rest)."""
RUN_SETTINGS = (
    "dataset", "train_split", "val_split", "num_images", "num_val_images", "size", "rotation", "scale", "flip",
    "augment", "augment_p", "batch_size", "freeze_bn", "loss_weights", "delta", "use_boundary", "use_discriminative",
    "optimizer", "momentum", "weight_decay", "grad_clip", "seed",
)  # fmt: skip
"""The ``TrainConfig`` fields a resumed run must share with its checkpoint besides the model's (``model_config``).
The others may change on resume: ``steps``, ``lr`` and ``poly_power`` (the schedule is rebuilt), the data's folder,
the system (device, precision, workers, threads) and the rhythm of logs, validations and checkpoints."""


class Progress(NamedTuple):
    """How far a run had got: its step, the seconds of its training loop, and its best validation mean F1."""

    step: int
    elapsed_s: float
    best_mean_f1: float


def resolve_run_dir(config: TrainConfig) -> Path:
    """The run directory: ``out``, else the folder of the ``resume`` checkpoint, else a new
    ``runs/<date>-<time>-<6 random hex digits>`` (no two runs started in the same second share it)."""
    if config.out is not None:
        return Path(config.out)
    if config.resume not in (None, "auto"):
        return Path(config.resume).parent
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / f"{stamp}-{secrets.token_hex(3)}"
    while folder.exists():
        folder = Path("runs") / f"{stamp}-{secrets.token_hex(3)}"
    return folder


def resume_checkpoint(config: TrainConfig, run_dir: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint this run continues (``check_resumable``), or None for a fresh run. Without ``resume``, a
    ``last.pt`` already in ``run_dir`` is refused rather than overwritten."""
    resume = config.resume
    last = run_dir / "last.pt"
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
    checkpoint = load_checkpoint(path, map_location=device)
    check_resumable(path, checkpoint, config)
    return checkpoint


def check_resumable(path: Path, checkpoint: Mapping[str, Any], config: TrainConfig) -> None:
    """Refuse, naming the checkpoint and what is wrong, a checkpoint that this run cannot continue."""
    missing = [key for key in TRAINING_STATE if key not in checkpoint]
    if missing:
        raise ValueError(
            f"checkpoint {path}: holds weights but no training state (no {', '.join(missing)}), so it cannot be "
            "resumed; start a new run instead"
        )
    defaults = {item.name: item.default for item in fields(AGRNetConfig)}
    recorded = {**defaults, **checkpoint["model_config"]}  # arguments added since it was written: their defaults
    differ = [
        f"{key}={recorded.get(key)!r} (this run: {value!r})"
        for key, value in asdict(model_config(config)).items()
        if recorded.get(key) != value
    ]
    if differ:
        raise ValueError(
            f"checkpoint {path}: its model differs from this run's in {', '.join(differ)}; resume with the "
            "settings it was trained with, or start a new run instead"
        )
    recorded_settings = checkpoint.get("config") or {}
    changed = [
        key
        for key in RUN_SETTINGS
        if key in recorded_settings and _setting(recorded_settings[key]) != _setting(getattr(config, key))
    ]
    if changed:
        trained = ", ".join(f"{key}={_setting(recorded_settings[key])!r}" for key in changed)
        this = ", ".join(f"{key}={_setting(getattr(config, key))!r}" for key in changed)
        words = " ".join(f"--set {key}={_set_text(recorded_settings[key])}" for key in changed)
        raise ValueError(
            f"checkpoint {path}: its run was trained with {trained} but this run has {this}; resume with {words}, "
            "or start a new run with another --out"
        )
    step = int(checkpoint["step"])
    if step > config.steps:
        raise ValueError(
            f"steps: this run has {config.steps} but checkpoint {path} is at step {step} already; resume "
            f"with --set steps=N for some N >= {step}"
        )


def _setting(value: Any) -> Any:
    """A setting as compared on resume: sequences as tuples (a JSON round trip makes lists of them)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def _set_text(value: Any) -> str:
    """``value`` as ``--set key=TEXT`` writes it (``agrnet.config.coerce_value`` reads it back)."""
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def restore_training_state(
    checkpoint: Mapping[str, Any],
    *,
    config: TrainConfig,
    context: DistributedContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> Progress:
    """Load the checkpoint's model, optimizer, schedule (``schedule_state``), scaler and this process's random
    streams; returns how far the run had got. Random streams saved by a different number of processes cannot be
    matched to these: they are reseeded, with a warning."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(schedule_state(checkpoint["scheduler"], config, optimizer, context.is_main))
    scaler.load_state_dict(checkpoint["scaler"])
    progress = Progress(
        step=int(checkpoint["step"]),
        elapsed_s=float(checkpoint.get("elapsed_s", 0.0)),
        best_mean_f1=float(checkpoint.get("best_mean_f1", -math.inf)),
    )
    states = checkpoint["rng"]
    if len(states) == context.world_size:
        set_rng_state(states[context.rank])
    else:
        seed_everything(config.seed + context.rank + progress.step)
        if context.is_main:
            warnings.warn(
                f"resuming {len(states)}-process RNG states in a {context.world_size}-process run: "
                "random streams are reseeded, the continuation is not bit-identical",
                stacklevel=2,
            )
    return progress


def schedule_state(
    state: Mapping[str, Any], config: TrainConfig, optimizer: torch.optim.Optimizer, is_main: bool
) -> dict[str, Any]:
    """The checkpoint's scheduler state, rebuilt when this run's ``steps``, ``poly_power`` or ``lr`` differ
    from the checkpoint's (a finished run continued with more steps): the poly schedule of this run,
    lr * (1 - step / steps) ** poly_power, from the checkpoint's step on. Sets the optimizer's rates too (and warns,
    on the main process)."""
    state = dict(state)
    step, groups = int(state["last_epoch"]), optimizer.param_groups
    recorded = {"steps": state["total_iters"], "poly_power": state["power"], "lr": state["base_lrs"][0]}
    wanted = {"steps": config.steps, "poly_power": config.poly_power, "lr": config.lr}
    if recorded == wanted:
        return state
    rate = config.lr * (1 - step / config.steps) ** config.poly_power
    for group in groups:
        group.update(lr=rate, initial_lr=config.lr)
    if is_main:
        changed = ", ".join(f"{key} {old} -> {wanted[key]}" for key, old in recorded.items() if old != wanted[key])
        warnings.warn(
            f"resuming at step {step} with {changed}: the poly schedule is rebuilt for this run, lr {rate:.4g} "
            f"for step {step + 1}",
            stacklevel=3,
        )
    rebuilt = {"total_iters": config.steps, "power": config.poly_power, "base_lrs": [config.lr] * len(groups)}
    return {**state, **rebuilt, "_last_lr": [rate] * len(groups)}


def interrupted_message(config: TrainConfig, run_dir: Path, step: int, saved_step: int | None) -> str:
    """What a Ctrl-C says: the step reached, the last checkpoint (written at ``saved_step``), and the command that
    resumes the run."""
    saved = "no checkpoint written yet"
    if saved_step is not None:
        saved = f"last checkpoint at step {saved_step} ({run_dir / 'last.pt'})"
    command = f"{train_command(asdict(config))} {shlex.join(['--out', str(run_dir), '--resume', 'auto'])}"
    return f"interrupted at step {step}; {saved}; resume with: {command}"
