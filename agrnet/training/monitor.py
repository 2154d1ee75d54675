"""The host side of the training loop: the steps' numbers, brought from the device in one transfer every
``log_every`` steps, checked for NaN, logged, and shown on the progress bar.

No step waits for the device: each step's loss terms stay on it as one small tensor, and every ``log_every``
steps (and before each validation or checkpoint) they are stacked, averaged over DDP processes and copied to the
host in one transfer. That transfer is also where a NaN or inf is detected, naming the first bad step and its
terms. The trade-off: up to ``log_every - 1`` steps run on after a NaN before the run stops, on weights that are
already spoiled; they are never saved, because a checkpoint is only written right after a transfer that found
every pending step finite, so ``last.pt`` is always the last good state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from agrnet.config import TrainConfig
from agrnet.diagnostics import NAMES as GRAPH_DIAGNOSTICS
from agrnet.distributed import all_reduce_mean
from agrnet.training.runlog import RunLog

DIAGNOSTICS = (*GRAPH_DIAGNOSTICS, "grad_norm")
"""The per-step values logged under ``"diagnostics"`` (``agrnet.diagnostics``; the gradient norm before clipping)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the terms."""


def _clock(seconds: float) -> str:
    """Seconds as h:mm:ss or m:ss."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StepMonitor:
    """The steps of a run of ``config`` since the last transfer, their numbers still on the device, and the
    progress bar (shown when ``show``: on rank 0) from ``first_step`` to ``config.steps``.

    ``add`` keeps a step's numbers; ``flush`` (every process at once: it averages over them) brings them to the
    host, writes them to ``log`` and raises ``NonFiniteLossError`` on a NaN or infinite loss; ``restart`` starts
    timing the next steps.
    """

    def __init__(
        self, config: TrainConfig, run_dir: Path, steps_per_epoch: int, log: RunLog, first_step: int, show: bool
    ) -> None:
        self.config, self.run_dir, self.steps_per_epoch, self.log = config, run_dir, steps_per_epoch, log
        self.bar = tqdm(total=config.steps, initial=first_step, desc="train", disable=not show, dynamic_ncols=True)
        self.pending: list[tuple[int, float, torch.Tensor]] = []
        self.names: list[str] = []
        self.started = time.perf_counter()

    def add(
        self, step: int, lr: float, total: torch.Tensor, terms: Mapping[str, torch.Tensor], diagnostics: torch.Tensor
    ) -> None:
        """Keep the numbers of step ``step`` (its learning rate, loss, loss terms and ``DIAGNOSTICS``) until the next
        ``flush``, and count it on the progress bar."""
        self.names = list(terms)
        self.pending.append((step, lr, torch.cat([torch.stack([total, *terms.values()]), diagnostics])))
        self.bar.update(1)

    def restart(self) -> None:
        """Start timing the next steps (the images per second of a flush count the time since)."""
        self.started = time.perf_counter()

    def flush(self, elapsed_s: float) -> None:
        """Bring the pending steps' numbers to the host (one sync), log them, and stop on a non-finite loss.
        ``elapsed_s``, the run's time so far, goes on the progress bar when the run has a ``time_cap_s``."""
        if not self.pending:
            return
        values = all_reduce_mean(torch.stack([v for _, _, v in self.pending])).cpu().tolist()
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        images_per_s = len(self.pending) * self.config.batch_size / elapsed
        names = ["loss", *self.names]
        for (step, lr, _), everything in zip(self.pending, values, strict=True):
            row, diagnostics = everything[: len(names)], everything[len(names) :]
            self._check_finite(step, names, row)
            record = {"kind": "train", "step": step, "epoch": (step - 1) // self.steps_per_epoch, "lr": lr}
            record.update(zip(names, row, strict=True))
            record["images_per_s"] = images_per_s
            record["diagnostics"] = {
                name: value if math.isfinite(value) else None
                for name, value in zip(DIAGNOSTICS, diagnostics, strict=True)
            }
            self.log.write(record)
        cap = self.config.time_cap_s
        self.bar.set_postfix(
            {name: f"{v:.3f}" for name, v in zip(names, values[-1], strict=False)}
            | {"lr": f"{self.pending[-1][1]:.2e}", "img/s": f"{images_per_s:.1f}"}
            | ({"time/cap": f"{_clock(elapsed_s)}/{_clock(cap)}"} if cap is not None else {})
        )
        self.pending.clear()

    def _check_finite(self, step: int, names: Sequence[str], row: Sequence[float]) -> None:
        """Log an error record and raise ``NonFiniteLossError`` when the loss or a term of ``step`` is not finite."""
        if all(math.isfinite(v) for v in row):
            return
        bad = [name for name, v in zip(names, row, strict=True) if not math.isfinite(v)]
        bad_terms = [name for name in bad if name != "loss"] or ["loss"]
        self.log.write({"kind": "error", "step": step, "non_finite": bad_terms})
        last = self.run_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"step {step}: the loss is not finite in term(s) {', '.join(bad_terms)} "
            f"({', '.join(f'{n}={v}' for n, v in zip(names, row, strict=True))}); "
            f"training stopped, {kept}"
        )

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()
