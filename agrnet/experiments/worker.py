"""One training of an experiment, in a worker process of its own: train, score the last checkpoint, measure.

``run_pool`` spawns each process fresh (the "spawn" context), and a spawned process imports what it runs by name:
everything the pool runs is a module-level function (``train_and_score`` and the initializer here, and
``agrnet.training.choose_run_precision`` for the precision probe).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from agrnet.bench import peak_rss_mib
from agrnet.checkpoint import load_model
from agrnet.config import TrainConfig
from agrnet.data.datasets import build_dataset
from agrnet.data.labels import FASSEG
from agrnet.data.transforms import EvalTransform, LowResolution, RaisedHand
from agrnet.evaluate import evaluate
from agrnet.experiments.results import load_average
from agrnet.experiments.spec import Evaluation
from agrnet.faces import FaceDetector, score_photos
from agrnet.framing import require_frame
from agrnet.losses import TERMS
from agrnet.metrics import ConfusionMatrix
from agrnet.predict import Predictor
from agrnet.training import read_log, train


def score(model: torch.nn.Module, root: Path, evaluation: Evaluation, size: int, flip: bool = False) -> dict[str, Any]:
    """``evaluate`` of ``model`` on ``evaluation.split`` at original size, the split as published: pairs whose files
    are bad (FASSEG's multipose test split has four image/label pairs of different sizes) are left out and listed
    under ``skipped`` (``evaluate(..., skip_bad=True)``).

    With ``by_yaw``, each head pose is scored on its own (``by_yaw`` maps the yaw in degrees, as text, to its
    report) and the split's report is that of the summed confusion matrices, so no image is run twice. With
    ``photos``, the split goes through the photo pipeline (``agrnet.faces.score_photos``), each photo shrunk
    ``evaluation.shrink`` times in detail, or with a hand over its face (``evaluation.hands``).
    """
    if evaluation.photos:
        if evaluation.hands:
            changed = RaisedHand(FASSEG)
        else:
            changed = LowResolution(evaluation.shrink) if evaluation.shrink > 1 else None
        dataset = build_dataset("fasseg", root, evaluation.split, transform=changed)
        predictor = Predictor(model, dataset.schema, device="cpu", size=size, flip=flip)
        report = score_photos(predictor, dataset, FaceDetector(), require_frame(dataset.schema))
        return {**report, "flip": flip, "skipped": []}
    dataset = build_dataset("fasseg", root, evaluation.split, transform=EvalTransform(size))
    schema = dataset.schema
    if not evaluation.by_yaw:
        return evaluate(model, dataset, schema, device="cpu", flip=flip, batch_size=8, skip_bad=True)
    yaws = [int(pose) for pose, *_ in dataset.items]  # the ``yaw`` of each sample, read without decoding it
    by_yaw = {
        yaw: evaluate(
            model, Subset(dataset, [i for i, y in enumerate(yaws) if y == yaw]), schema, "cpu", flip, 8, skip_bad=True
        )
        for yaw in sorted(set(yaws))
    }
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    confusion.matrix = torch.tensor([report["confusion_matrix"] for report in by_yaw.values()]).sum(0)
    report = confusion.to_dict(schema.classes, schema.groups)
    report.update(
        schema=schema.name, num_images=sum(r["num_images"] for r in by_yaw.values()), flip=flip,
        confusion_matrix=confusion.matrix.tolist(), skipped=[s for r in by_yaw.values() for s in r["skipped"]],
        by_yaw={str(yaw): report for yaw, report in by_yaw.items()},
    )  # fmt: skip
    return report


def training_curve(log: Path) -> list[dict[str, Any]]:
    """The logged training steps of a run's ``log.jsonl`` (every ``log_every`` steps): step, learning rate, the
    loss and its terms, and the diagnostics of ``agrnet.diagnostics`` (4 significant digits)."""

    def rounded(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: rounded(item) for key, item in value.items()}
        return float(f"{value:.4g}") if isinstance(value, float) else value

    keep = ("step", "lr", "loss", *TERMS, "diagnostics")
    return [{key: rounded(r[key]) for key in keep if key in r} for r in read_log(log) if r.get("kind") == "train"]


def train_and_score(
    config: TrainConfig, evaluations: Sequence[Evaluation], root: Path, flip: bool
) -> dict[str, Any]:
    """Train ``config`` and score its last checkpoint on ``evaluations`` (and with flip TTA when ``flip``): the
    part of a run's record that the run itself measures, with this process's CPU time (all its threads) and peak
    memory."""
    load_start, started, cpu = load_average(), time.perf_counter(), time.process_time()
    run_dir = train(config)
    train_s = time.perf_counter() - started
    model, _, payload = load_model(run_dir / "last.pt", map_location="cpu")
    metrics = {e.key: score(model, root, e, config.size) for e in evaluations}
    if flip:
        metrics |= {e.flip_key: score(model, root, e, config.size, True) for e in evaluations}
    return {
        "curve": training_curve(run_dir / "log.jsonl"),
        "run_dir": str(run_dir), "steps": payload["step"], "steps_planned": config.steps,
        "stopped_by": payload.get("stopped_by"), "seconds_per_step": payload["elapsed_s"] / max(payload["step"], 1),
        "train_loop_s": payload["elapsed_s"], "train_wall_s": train_s, "precision": payload.get("precision"),
        "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "load_average_start": load_start,
        "load_average_end": load_average(), "peak_rss_mib": peak_rss_mib(), "metrics": metrics,
    }  # fmt: skip


def _start_run_process(parent: int, threads: int | None) -> None:
    """Initializer of a run's process: on Linux, the kernel ends it (SIGTERM) when the experiment's process
    ``parent`` dies, so that killing an experiment never leaves its training running on its own; ``threads`` (when
    given) are its torch CPU threads."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    if threads is not None:
        torch.set_num_threads(threads)


def run_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes, each spawned fresh for one task: every training of an experiment
    starts from a clean heap and gives all its memory back when it ends, however many run one after another.
    With ``jobs`` > 1 and no ``OMP_NUM_THREADS`` set, the CPU's cores are shared out among the workers."""
    threads = None
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    return ProcessPoolExecutor(
        jobs, multiprocessing.get_context("spawn"), _start_run_process, (os.getpid(), threads), max_tasks_per_child=1
    )
