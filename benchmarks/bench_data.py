"""Throughput of the data pipelines: synthetic faces, and the share of data loading in a FASSEG training step.

Prints images per second through a ``DataLoader`` with 0, 1 and 2 worker processes, for raw ``SyntheticFaces``
and for ``SyntheticFaces`` + ``TrainTransform`` (rotation, scale, flip with left/right swap, edges). The issue's
target is at least 100 images/s at 128 x 128. Usage:
``python benchmarks/bench_data.py [--size 128] [--images 300] [--workers 0 1 2] [--threads N]``.

``--fasseg ROOT`` instead measures what the experiments' training loop does (``agrnet.experiments.PROTOCOL``: the
``train+multipose-train`` split with its augmentation at the protocol's size, batch 8, no workers): seconds per
batch of loading on the first pass (every file decoded) and on later passes (decoded files from the process's
cache, ``agrnet.data.base.DECODED``), seconds per training step of the protocol's model on such batches, and the
share of loading in a step; the target is at most 10 %.

Workers run torch with one thread each (DataLoader's default); ``--threads`` sets the main process's torch threads
for the 0-worker case (default: torch's own choice), which matters on a busy machine. Wall-clock rates depend
on what else runs; the last line also gives images per CPU-second of the main process, which does not.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from agrnet.data import LAPA, SyntheticFaces, TrainTransform


def images_per_second(dataset: SyntheticFaces, workers: int, batch_size: int) -> float:
    """Images per second of one full pass over ``dataset`` (worker start-up included)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return len(dataset) / (time.perf_counter() - start)


def images_per_cpu_second(dataset: SyntheticFaces) -> float:
    """Images per second of this process's CPU time, in-process: independent of other load on the machine."""
    start = time.process_time()
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset) / (time.process_time() - start)


def fasseg_step_share(root: str, batches: int, steps: int) -> dict[str, float]:
    """Seconds per batch of FASSEG loading (cold, then from the decode cache) and per protocol training step."""
    from agrnet.bench import model_steps
    from agrnet.data.base import DECODED
    from agrnet.data.datasets import build_dataset
    from agrnet.data.labels import FASSEG
    from agrnet.experiments import PROTOCOL
    from agrnet.model import AGRNet, AGRNetConfig
    from agrnet.runtime import FP32

    size, batch_size = PROTOCOL["size"], PROTOCOL["batch_size"]
    augment = TrainTransform(size, FASSEG, rotation=PROTOCOL["rotation"], scale=PROTOCOL["scale"])
    dataset = build_dataset("fasseg", root, PROTOCOL["train_split"], transform=augment)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    DECODED.clear()

    def load_pass(limit: int) -> tuple[float, list]:
        kept, start = [], time.perf_counter()
        for index, batch in enumerate(loader):
            kept.append(batch)
            if index + 1 == limit:
                break
        return (time.perf_counter() - start) / len(kept), kept

    cold, _ = load_pass(len(loader))  # one epoch: every file decoded once
    warm, kept = load_pass(batches)
    model = AGRNet.from_config(AGRNetConfig.from_settings(PROTOCOL, num_classes=dataset.schema.num_classes))
    step = model_steps(model, kept[0], FP32)["train"]
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    train = (time.perf_counter() - start) / steps
    return {"load_cold_s": cold, "load_cached_s": warm, "train_step_s": train,
            "share_cached": warm / (warm + train), "share_cold": cold / (cold + train)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--images", type=int, default=300, help="images per measurement (default 300)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--fasseg", metavar="ROOT", help="measure loading's share of a FASSEG training step instead")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed with --fasseg (default 3)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.fasseg:
        share = fasseg_step_share(args.fasseg, batches=10, steps=args.steps)
        if args.json:
            print(json.dumps(share))
            return
        print(f"FASSEG, protocol size, batch 8, torch threads {torch.get_num_threads()}: loading "
              f"{share['load_cold_s']:.3f} s per batch on the first pass, {share['load_cached_s']:.3f} s from the "
              f"decode cache; a training step {share['train_step_s']:.2f} s; loading's share of a step "
              f"{100 * share['share_cached']:.1f} % (first pass {100 * share['share_cold']:.1f} %)")  # fmt: skip
        return
    pipelines = {
        "synthetic": SyntheticFaces(args.images, args.size, seed=0),
        "synthetic+augment": SyntheticFaces(args.images, args.size, seed=0, transform=TrainTransform(args.size, LAPA)),
    }
    SyntheticFaces(2, args.size)[0]  # warm the coordinate-grid caches before timing
    results = {
        name: {workers: images_per_second(dataset, workers, args.batch_size) for workers in args.workers}
        for name, dataset in pipelines.items()
    }
    cpu = {name: images_per_cpu_second(dataset) for name, dataset in pipelines.items()}
    if args.json:
        report = {
            "size": args.size,
            "images": args.images,
            "torch_threads": torch.get_num_threads(),
            "images_per_second": results,
            "images_per_cpu_second": cpu,
        }
        print(json.dumps(report))
        return
    print(
        f"{args.size}x{args.size}, {args.images} images, batch {args.batch_size}, "
        f"main-process torch threads {torch.get_num_threads()}"
    )
    print(f"{'pipeline':<20}" + "".join(f"{f'{w} workers':>14}" for w in args.workers))
    for name, row in results.items():
        print(f"{name:<20}" + "".join(f"{row[w]:>10.1f} im/s" for w in args.workers))
    rates = ", ".join(f"{name} {rate:.1f} im/s" for name, rate in cpu.items())
    print(f"per CPU-second of the main process, 0 workers (independent of other load): {rates}")


if __name__ == "__main__":
    main()
