"""Peak memory of ``agrnet predict`` on one large JPEG: the whole-picture path against the one ``agrnet predict``
takes.

    python benchmarks/bench_predict_memory.py [--side 10000] [--weights fasseg-resnet18] [--keep DIR]

Writes a ``--side`` x ``--side`` JPEG (a smooth random picture, quality 90) with Grace Hopper's portrait (matplotlib's
sample photo) scaled to half its height in the middle, then runs each mode in a fresh process and prints its peak
resident set size (``ru_maxrss``) and wall time:

- ``whole picture``: what ``agrnet predict`` did before issue 23 (and what ``Predictor.parse`` and
  ``overlay_image`` still do in memory): decode the whole file, resize it to the model's input, resize the logits
  back to the whole picture, argmax, blend the overlay at full size in float;
- ``--aligned``: ``agrnet predict --aligned``: the JPEG decoded at the reduced scale the model needs
  (``Image.draft``), labels resized back and the overlay blended in bands of rows;
- ``photo``: ``agrnet predict`` (detection on a reduced decode, the face cut out of the whole picture, its parsing
  pasted back);
- ``start-up``: ``agrnet predict --aligned`` on a 64 x 64 JPEG, the cost of the process, torch and the model alone.

Each mode writes a label map and an overlay at the picture's size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.cbook
import numpy as np
from PIL import Image

WHOLE_PICTURE = """
import json, sys
from pathlib import Path
from agrnet.data.base import open_image
from agrnet.predict import Predictor, label_image
path, out, weights = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
predictor = Predictor.from_weights(weights, device="cpu")
image = open_image(path, "RGB")
label = predictor.parse(image)
label_image(label, predictor.schema).save(out / "label.png")
predictor.overlay(image, label).save(out / "overlay.png")
"""


def write_picture(path: Path, side: int) -> None:
    """A ``side`` x ``side`` JPEG: smooth random colours with the portrait, half the picture tall, in the middle."""
    coarse = np.random.default_rng(0).integers(0, 256, (max(2, side // 100),) * 2 + (3,), dtype=np.uint8)
    picture = Image.fromarray(coarse).resize((side, side), Image.BICUBIC)
    portrait = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    height = side // 2
    portrait = portrait.resize((round(portrait.width * height / portrait.height), height), Image.LANCZOS)
    picture.paste(portrait, ((side - portrait.width) // 2, (side - height) // 2))
    picture.save(path, quality=90)


def measure(command: list[str]) -> dict[str, float]:
    """Peak RSS (MiB) and wall time (s) of ``command`` run in a fresh process (``getrusage`` of children reports
    the largest child so far, so each mode runs from a fresh parent)."""
    probe = (
        "import resource, subprocess, sys, time, json; start = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'code': done.returncode, 'err': done.stderr[-400:], 's': time.perf_counter() - start, "
        "'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    result = json.loads(subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True,
                                       check=True).stdout)  # fmt: skip
    if result["code"] != 0:
        raise SystemExit(f"bench_predict_memory: {' '.join(command)} failed: {result['err']}")
    return {"peak_mib": result["peak_mib"], "s": result["s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000, help="picture side in pixels (default: 10000)")
    parser.add_argument("--weights", default="fasseg-resnet18", help="shipped weights (default: fasseg-resnet18)")
    parser.add_argument("--keep", type=Path, default=None, help="write the picture and the outputs here")
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None  # this script's own picture is no decompression bomb

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        picture = folder / f"large-{args.side}.jpg"
        if not picture.is_file():
            write_picture(picture, args.side)
        print(f"{picture}: {args.side} x {args.side} JPEG, {picture.stat().st_size / 2**20:.1f} MiB; "
              f"weights {args.weights}, CPU")  # fmt: skip
        small = folder / "small-64.jpg"
        Image.open(picture).resize((64, 64)).save(small)
        agrnet = [sys.executable, "-m", "agrnet", "predict", "--weights", args.weights, "--device", "cpu"]
        modes = {
            "whole picture": [sys.executable, "-c", WHOLE_PICTURE, str(picture), str(folder), args.weights],
            "--aligned": [*agrnet, str(picture), "--aligned", "--out", str(folder / "aligned")],
            "photo": [*agrnet, str(picture), "--out", str(folder / "photo")],
            "start-up": [*agrnet, str(small), "--aligned", "--out", str(folder / "small")],
        }
        rows = {name: measure(command) for name, command in modes.items()}
    width = max(map(len, rows))
    print(f"{'mode':<{width}}  peak RSS MiB  wall s")
    for name, row in rows.items():
        print(f"{name:<{width}}  {row['peak_mib']:12.0f}  {row['s']:6.1f}")


if __name__ == "__main__":
    main()
