"""Evaluation throughput: parse a folder of images with ``agrnet.Predictor`` and print images/s.

    python benchmarks/bench_evaluate.py [--checkpoint CKPT] [--images DIR] [--size 473] [--batch-size 4]
                                        [--flip] [--amp none|bf16|fp16] [--device auto] [--repeats 3]

Without ``--checkpoint`` an untrained AGRNet (``--backbone``, default resnet101, LaPa's 11 classes) is timed;
without ``--images``, the real samples in ``../shared/data/celebamask-hq-sean/images`` when present, else 16
synthetic faces. Images are decoded once, before timing; each repeat parses them all (resize, forward, resize back,
argmax) and the best repeat is reported, after one warm-up batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from agrnet.data.base import read_image
from agrnet.data.labels import LAPA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.model import AGRNet
from agrnet.predict import Predictor
from agrnet.prediction_files import find_images
from agrnet.runtime import AMP_DTYPES, parse_device

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebamask-hq-sean" / "images"


def load_images(folder: Path | None) -> tuple[list[torch.Tensor], str]:
    """The images to parse (3 x H x W in [0, 1]) and where they came from."""
    folder = folder or (SAMPLES if SAMPLES.is_dir() else None)
    if folder is None:
        faces = SyntheticFaces(num_images=16, size=256, split="test")
        return [faces.load(i)["image"] for i in range(len(faces))], "16 synthetic faces, 256 x 256"
    found, missing = find_images([folder])
    if missing or not found:
        raise SystemExit(f"bench_evaluate: no images in {folder}")
    return [read_image(path) for path, _ in found], f"{len(found)} images from {folder}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--backbone", default="resnet101", help="for the untrained model (no --checkpoint)")
    parser.add_argument("--size", type=int, default=473)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="none")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = parse_device(args.device)
    options = {"device": device, "size": args.size, "batch_size": args.batch_size, "flip": args.flip,
               "amp": AMP_DTYPES[args.amp]}  # fmt: skip
    if args.checkpoint is not None:
        predictor = Predictor.from_checkpoint(args.checkpoint, **options)
        model_name = str(args.checkpoint)
    else:
        predictor = Predictor(AGRNet(LAPA.num_classes, backbone=args.backbone), LAPA, **options)
        model_name = f"untrained AGRNet-{args.backbone}"
    images, source = load_images(args.images)
    predictor.parse(images[: args.batch_size])
    best = float("inf")
    for _ in range(args.repeats):
        synchronize(device)
        started = time.perf_counter()
        predictor.parse(images)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    print(f"model: {model_name}; {source}; device {device}, input {args.size} px, batch {args.batch_size}, "
          f"flip {'on' if args.flip else 'off'}, amp {args.amp}")  # fmt: skip
    print(f"evaluation throughput: {len(images) / best:.2f} images/s (best of {args.repeats})")


if __name__ == "__main__":
    main()
