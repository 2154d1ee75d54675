"""Bad input and faults (issue 16), as a new user meets them: each case ends in one line that names the argument or
file and the problem, with the exit code the command documents (train: 1 for errors, 130 for Ctrl-C; evaluate,
predict, export: 2 for errors), and loses nothing.

Tiny sizes throughout (ResNet-18 with 8 channels at 64 px, 2 images, 1-2 steps), so the module runs in well under a
minute on two cores. ``CLI_CASES`` is the table of command lines; the cases that need more than a command line
(inputs in Python, a killed writer, a resume, Ctrl-C) follow it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_model import tiny_model

import agrnet.files
from agrnet.checkpoint import load_checkpoint, model_state, save_checkpoint
from agrnet.cli import main
from agrnet.config import TrainConfig, preset_config
from agrnet.data.base import read_image
from agrnet.data.labels import FASSEG, LAPA, LabelSchema
from agrnet.files import atomic_write, remove_stale_temporaries
from agrnet.predict import Predictor
from agrnet.training import Trainer, train
from agrnet.training.resume import resolve_run_dir
from agrnet.weights import train_command

REPO = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {
    "size": 64, "batch_size": 2, "val_batch_size": 2, "num_images": 2, "num_val_images": 2, "channels": 8,
    "top_k": 2, "optimizer": "sgd", "steps": 2, "log_every": 1, "val_every": 0, "checkpoint_every": 100,
    "device": "cpu", "workers": 0, "threads": 1, "amp": "none", "channels_last": False,
}  # fmt: skip
"""A training of seconds: SGD keeps the checkpoint at two copies of the weights."""


def train_argv(out: Path, **overrides: Any) -> list[str]:
    """``agrnet train`` arguments for the ``TINY`` run in ``out`` (``overrides`` replace settings)."""
    settings = {**TINY, **overrides}
    return ["train", "--out", str(out), *(word for k, v in settings.items() for word in ("--set", f"{k}={v}"))]


def tiny_config(out: Path, **overrides: Any) -> TrainConfig:
    return preset_config("synthetic", **{**TINY, "out": str(out), **overrides})


def write_checkpoint(path: Path, schema: LabelSchema = LAPA, channels: int = 8, **extra: Any) -> Path:
    """A checkpoint of an untrained tiny model (``extra``: more entries, e.g. training state)."""
    model = tiny_model(schema, channels=channels)
    return save_checkpoint(path, {**model_state(model, schema), "config": {"size": 64}, **extra})


def fake_training_state() -> dict[str, Any]:
    """Entries that make a weights-only checkpoint look resumable (the checks refuse it before using them)."""
    return {"optimizer": {}, "scheduler": {}, "scaler": {}, "rng": [], "step": 1}


def palette_label(schema: LabelSchema, height: int, width: int, seed: int) -> np.ndarray:
    """A colour-coded label (FASSEG style) of random blocks of the schema's classes."""
    ids = np.random.default_rng(seed).integers(0, schema.num_classes, (height // 8 + 1, width // 8 + 1))
    return schema.palette[np.kron(ids, np.ones((8, 8), np.int64))[:height, :width]].astype(np.uint8)


def photo(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


MISMATCHED = "+30/personne15248+0+30"
"""The name of one of FASSEG's mismatched pairs (there: image 366 x 512, label 373 x 512)."""
TRUNCATED = Path("V2/Train_RGB/2.png")


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def fasseg_root(root: Path) -> Path:
    """FASSEG with frontal train/test splits of 3 pairs (the second train image, ``TRUNCATED``, cut short) and a
    multipose-test split of 3 pairs at yaws 0 and +30, one of which (``MISMATCHED``) has a label 1 pixel wider than
    its image."""
    for split in ("Train", "Test"):
        for n in range(1, 4):
            save_png(root / "V2" / f"{split}_RGB" / f"{n}.png", photo(40, 32, n))
            save_png(root / "V2" / f"{split}_Labels" / f"{n}.png", palette_label(FASSEG, 40, 32, n))
    truncated = root / TRUNCATED
    truncated.write_bytes(truncated.read_bytes()[:-60])
    for name, width in (("0/personne15248+0+0", 32), ("+30/personne15249+0+30", 32), (MISMATCHED, 33)):
        save_png(root / "V3" / "Test_RGB" / f"{name}.png", photo(64, 32, width))
        save_png(root / "V3" / "Test_labels" / f"{name}.png", palette_label(FASSEG, 64, width, 1))
    return root


def pil_reason(path: Path) -> str:
    """PIL's own words for why the file at ``path`` does not decode."""
    try:
        with Image.open(path) as image:
            image.load()
    except OSError as error:
        return str(error)
    raise AssertionError(f"{path} decodes")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only material of the module: checkpoints (LaPa, FASSEG), a FASSEG folder, a finished 2-step run."""
    root = tmp_path_factory.mktemp("faults")
    fasseg = fasseg_root(root / "fasseg")
    return {
        "fasseg": fasseg,
        "lapa_checkpoint": write_checkpoint(root / "lapa.pt"),
        "fasseg_checkpoint": write_checkpoint(
            root / "fasseg.pt", FASSEG, config={"size": 64, "dataset": "fasseg", "data_root": str(fasseg)}
        ),
        "finished": train(tiny_config(root / "finished")),
    }


@pytest.fixture
def unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder that refuses new files: read-only, and for root (who may write anywhere) refusing as it would a
    user, at the only place agrnet creates files (``tempfile.mkstemp``)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = tempfile.mkstemp

        def refuse(*args: Any, dir: Any = None, **kwargs: Any) -> tuple[int, str]:  # noqa: A002 (mkstemp's name)
            if dir is not None and Path(dir) == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(agrnet.files.tempfile, "mkstemp", refuse)
    yield folder
    folder.chmod(0o755)


# The table of command lines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A command line (built in a fresh folder ``tmp`` from the module's ``shared`` material and the folder of
    ``unwritable``) that must exit with ``code`` and end its stderr with ``line`` (exactly; a ``re.Pattern`` only
    where torch's own words are quoted)."""

    name: str
    build: Callable[[Path, dict[str, Path], Path], tuple[list[str], str | re.Pattern[str]]]
    code: int


def _resume_of(write: Callable[[Path], object], message: str):
    """A case: ``agrnet train --resume auto`` in a run folder whose last.pt ``write(path)`` writes; ``message``
    names it as ``{last}``."""

    def build(tmp: Path, shared: dict[str, Path], unwritable: Path) -> tuple[list[str], str]:
        run = tmp / "run"
        run.mkdir()
        write(run / "last.pt")
        return [*train_argv(run), "--resume", "auto"], "agrnet train: " + message.format(last=run / "last.pt")

    return build


def _truncated_copy(path: Path) -> None:
    path.write_bytes(write_checkpoint(path).read_bytes()[:4096])


def _truncated_training_image(workers: int):
    def build(tmp: Path, shared: dict[str, Path], unwritable: Path) -> tuple[list[str], str]:
        root, bad = shared["fasseg"], shared["fasseg"] / TRUNCATED
        argv = train_argv(tmp / "run", dataset="fasseg", data_root=root, val_split="test", workers=workers)
        return argv, f"agrnet train: {bad}: cannot decode image, the file is truncated or corrupt ({pil_reason(bad)})"

    return build


def _mismatched_pair(workers: int):
    def build(tmp: Path, shared: dict[str, Path], unwritable: Path) -> tuple[list[str], str]:
        root = shared["fasseg"] / "V3"
        label, image = root / "Test_labels" / f"{MISMATCHED}.png", root / "Test_RGB" / f"{MISMATCHED}.png"
        argv = ["evaluate", str(shared["fasseg_checkpoint"]), "--dataset", "fasseg", "--data-root",
                str(shared["fasseg"]), "--split", "multipose-test", "--device", "cpu",
                "--workers", str(workers)]  # fmt: skip
        return argv, (
            f"agrnet evaluate: error: {label}: label is 33x64 (WxH) but its image {image} is 32x64; pass --skip-bad "
            "to score the other images and list the bad ones"
        )

    return build


def _evaluate(*words: str):
    return lambda shared: ["evaluate", str(shared["lapa_checkpoint"]), "--device", "cpu", "--num-images", "2", *words]


TOO_SMALL = "{option}: {size} is too small for the network; the smallest valid size is 32 (32 x 32 pixels)"
"""What ``agrnet.data.transforms.check_input_size``, shared by train, evaluate, predict and export, says."""


def _resume_with_other_settings(tmp: Path, shared: dict[str, Path], unwritable: Path) -> tuple[list[str], str]:
    """The finished run resumed at another size and batch size: refused, naming each setting."""
    run = copy_run(shared["finished"], tmp / "run")
    argv = [*train_argv(run, size=96, batch_size=4, steps=4), "--resume", "auto"]
    return argv, (
        f"agrnet train: checkpoint {run / 'last.pt'}: its run was trained with size=64, batch_size=2 but this run "
        "has size=96, batch_size=4; resume with --set size=64 --set batch_size=2, or start a new run with another --out"
    )


def _detector_file(content: bytes | None):
    """A case: predict a photo with a FASSEG checkpoint and a detector file that is missing (None) or holds
    ``content``."""

    def build(tmp: Path, shared: dict[str, Path], unwritable: Path) -> tuple[list[str], str | re.Pattern[str]]:
        detector = tmp / "yunet.onnx"
        if content is not None:
            detector.write_bytes(content)
        argv = ["predict", str(shared["fasseg_checkpoint"]), str(shared["fasseg"] / "V2" / "Test_RGB"), "--out",
                str(tmp / "out"), "--device", "cpu", "--detector", str(detector)]  # fmt: skip
        if content is None:
            return argv, f"agrnet predict: error: {detector}: face detector model not found"
        return argv, re.compile(
            re.escape(f"agrnet predict: error: {detector}: not a readable YuNet ONNX model (") + r"[^\n]+\)"
        )

    return build

CLI_CASES = [
    # 1. A finished run resumed with fewer steps than it has done.
    Case("train: resume with fewer steps than done", lambda tmp, shared, ro: (
        [*train_argv(shared["finished"], steps=1), "--resume", "auto"],
        f"agrnet train: steps: this run has 1 but checkpoint {shared['finished'] / 'last.pt'} is at step 2 already; "
        "resume with --set steps=N for some N >= 2",
    ), 1),
    # 4. Output paths, checked before any work.
    Case("train: --out in an unwritable folder", lambda tmp, shared, ro: (
        train_argv(ro / "run"), f"agrnet train: --out {ro / 'run'}: cannot write into {ro} (Permission denied)",
    ), 1),
    Case("train: --out is a file", lambda tmp, shared, ro: (
        train_argv(shared["lapa_checkpoint"]),
        f"agrnet train: --out {shared['lapa_checkpoint']}: is a file; expected a folder",
    ), 1),
    Case("evaluate: --out is a folder", lambda tmp, shared, ro: (
        _evaluate("--out", str(tmp))(shared), f"agrnet evaluate: error: --out {tmp}: is a folder; expected a file name",
    ), 2),
    Case("evaluate: --out in an unwritable folder", lambda tmp, shared, ro: (
        _evaluate("--out", str(ro / "r" / "report.json"))(shared),
        f"agrnet evaluate: error: --out {ro / 'r' / 'report.json'}: cannot write into {ro} (Permission denied)",
    ), 2),
    Case("evaluate: --out below a file", lambda tmp, shared, ro: (
        _evaluate("--out", str(shared["lapa_checkpoint"] / "report.json"))(shared),
        f"agrnet evaluate: error: --out {shared['lapa_checkpoint'] / 'report.json'}: {shared['lapa_checkpoint']} is a "
        "file, not a folder",
    ), 2),
    Case("predict: --out is a file", lambda tmp, shared, ro: (
        ["predict", str(shared["lapa_checkpoint"]), str(shared["fasseg"] / "V2" / "Test_RGB"), "--out",
         str(shared["lapa_checkpoint"]), "--device", "cpu"],
        f"agrnet predict: error: --out {shared['lapa_checkpoint']}: is a file; expected a folder",
    ), 2),
    Case("export: --out is a folder", lambda tmp, shared, ro: (
        ["export", str(shared["lapa_checkpoint"]), "--out", str(tmp)],
        f"agrnet export: error: --out {tmp}: is a folder; expected a file name",
    ), 2),
    # 5. Tracebacks before: data errors (also from a worker process), devices, checkpoints that cannot be resumed.
    Case("train: truncated image in the training set", _truncated_training_image(workers=0), 1),
    Case("train: truncated image, read in a worker process", _truncated_training_image(workers=1), 1),
    Case("train: --device foo", lambda tmp, shared, ro: (
        [*train_argv(tmp / "run"), "--device", "foo"],
        "agrnet train: --device 'foo': not a device name (use auto, cpu, cuda, cuda:N or mps)",
    ), 1),
    Case("train: resume a checkpoint of another width", _resume_of(
        lambda path: write_checkpoint(path, channels=16, **fake_training_state()),
        "checkpoint {last}: its model differs from this run's in channels=16 (this run: 8); resume with the "
        "settings it was trained with, or start a new run instead",
    ), 1),
    Case("train: resume a checkpoint of another class count", _resume_of(
        lambda path: write_checkpoint(path, FASSEG, **fake_training_state()),
        "checkpoint {last}: its model differs from this run's in num_classes=6 (this run: 11); resume with the "
        "settings it was trained with, or start a new run instead",
    ), 1),
    Case("train: resume a checkpoint of weights only", _resume_of(
        write_checkpoint,
        "checkpoint {last}: holds weights but no training state (no optimizer, scheduler, scaler, rng, step), so it "
        "cannot be resumed; start a new run instead",
    ), 1),
    Case("train: resume a raw state_dict dump", _resume_of(
        lambda path: torch.save(tiny_model(channels=8).state_dict(), path),
        "checkpoint {last}: not an agrnet checkpoint (missing model, model_config, schema)",
    ), 1),
    Case("train: resume a truncated last.pt", _resume_of(
        _truncated_copy,
        "checkpoint {last}: cannot be read as a torch checkpoint (truncated, corrupt, or holding objects the safe "
        "loader refuses): PytorchStreamReader failed reading zip archive: failed finding central directory",
    ), 1),
    # 6. Misleading or noisy before. Sizes the network cannot take: one check for every command (issue 23).
    Case("train: size=7", lambda tmp, shared, ro: (
        train_argv(tmp / "run", size=7), "agrnet train: " + TOO_SMALL.format(option="size", size="7"),
    ), 1),
    Case("evaluate: --size 7", lambda tmp, shared, ro: (
        _evaluate("--size", "7")(shared), "agrnet evaluate: error: " + TOO_SMALL.format(option="--size", size="7"),
    ), 2),
    Case("predict: --size 7", lambda tmp, shared, ro: (
        ["predict", str(shared["lapa_checkpoint"]), str(shared["fasseg"] / "V2" / "Test_RGB"), "--out", str(tmp),
         "--size", "7", "--aligned"],
        "agrnet predict: error: " + TOO_SMALL.format(option="--size", size="7"),
    ), 2),
    Case("export: --size 64 7", lambda tmp, shared, ro: (
        ["export", str(shared["lapa_checkpoint"]), "--out", str(tmp / "m.onnx"), "--size", "64", "7"],
        "agrnet export: error: " + TOO_SMALL.format(option="--size", size="64 x 7"),
    ), 2),
    # Issue 23: resuming with other settings; whole photos for a schema without a known face framing; the detector.
    Case("train: resume with another size and batch size", _resume_with_other_settings, 1),
    Case("predict: photos with a schema of no known face framing", lambda tmp, shared, ro: (
        ["predict", str(shared["lapa_checkpoint"]), str(shared["fasseg"] / "V2" / "Test_RGB"), "--out", str(tmp),
         "--device", "cpu"],
        f"agrnet predict: error: checkpoint {shared['lapa_checkpoint']} predicts the 'lapa' schema, for which no face "
        "framing is known, so faces in whole photos cannot be aligned for it; pass --aligned if each image already "
        "shows one face in the model's framing",
    ), 2),
    Case("predict: the detector's model file is missing", _detector_file(None), 2),
    Case("predict: the detector's model file is corrupt", _detector_file(b"not an onnx model"), 2),
    Case("download: a missing --archive", lambda tmp, shared, ro: (
        ["download", "fasseg", str(tmp / "fasseg"), "--archive", str(tmp / "master.zip")],
        f"agrnet download: error: {tmp / 'master.zip'}: no such file (--archive)",
    ), 1),
    Case("evaluate: 6-class checkpoint without --dataset", lambda tmp, shared, ro: (
        ["evaluate", str(shared["fasseg_checkpoint"]), "--device", "cpu"],
        f"agrnet evaluate: error: checkpoint {shared['fasseg_checkpoint']} predicts the 'fasseg' schema (6 classes) "
        f"but no --dataset was given, and the default synthetic faces use 'lapa' (11 classes): pass --dataset fasseg "
        f"--data-root {shared['fasseg']}",
    ), 2),
    Case("evaluate: --num-images 0", lambda tmp, shared, ro: (
        _evaluate("--num-images", "0")(shared),
        "agrnet evaluate: error: --num-images: expected a positive integer, got 0",
    ), 2),
    Case("evaluate: --size 0", lambda tmp, shared, ro: (
        _evaluate("--size", "0")(shared), "agrnet evaluate: error: --size: expected a positive integer, got 0",
    ), 2),
    Case("predict: --size 0", lambda tmp, shared, ro: (
        ["predict", str(shared["lapa_checkpoint"]), str(shared["fasseg"] / "V2" / "Test_RGB"), "--out", str(tmp),
         "--size", "0"],
        "agrnet predict: error: --size: expected a positive integer, got 0",
    ), 2),
    Case("predict: --alpha 2", lambda tmp, shared, ro: (
        ["predict", str(shared["lapa_checkpoint"]), str(tmp), "--alpha", "2"],
        "agrnet predict: error: --alpha: expected a value in [0, 1], got 2.0",
    ), 2),
    Case("train: lr=nan", lambda tmp, shared, ro: (
        train_argv(tmp / "run", lr="nan"), "agrnet train: lr: expected a positive learning rate, got nan",
    ), 1),
    Case("train: poly_power=-1", lambda tmp, shared, ro: (
        train_argv(tmp / "run", poly_power="-1"),
        "agrnet train: poly_power: expected a power >= 0 (0: a constant learning rate), got -1.0",
    ), 1),
    Case("train: momentum=inf", lambda tmp, shared, ro: (
        train_argv(tmp / "run", momentum="inf"), "agrnet train: momentum: expected finite numbers, got inf",
    ), 1),
    # 7. FASSEG's published multipose test split, without --skip-bad (with it: test_skip_bad_scores_the_rest...).
    Case("evaluate: an image and label of different sizes", _mismatched_pair(workers=0), 2),
    Case("evaluate: the same pair, read in a worker process", _mismatched_pair(workers=1), 2),
]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.name for case in CLI_CASES])
def test_a_bad_command_line_ends_in_one_line(
    case: Case, tmp_path: Path, shared: dict[str, Path], unwritable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, line = case.build(tmp_path, shared, unwritable)
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Caught " not in err
    last = err.strip().splitlines()[-1]
    if isinstance(line, re.Pattern):
        assert line.fullmatch(last), last
    else:
        assert last == line
    assert code == case.code
    assert len(out) + len(err) < 5_000, "no graph dumps or progress floods"


@pytest.mark.parametrize("cuda", ["cuda", "cuda:0"])
def test_a_cuda_device_on_a_machine_without_cuda(
    cuda: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*train_argv(tmp_path / "run"), "--device", cuda]) == 1
    expected = f"agrnet train: --device '{cuda}': CUDA is not available on this machine (use --device cpu or auto)"
    assert capsys.readouterr().err.strip().splitlines()[-1] == expected
    assert not (tmp_path / "run").exists(), "nothing was started"


def test_evaluate_writes_nothing_before_checking_out(tmp_path: Path, shared: dict[str, Path]) -> None:
    """The folder --out names is not created when the command fails before the work (here: a bad --size)."""
    out = tmp_path / "reports" / "r.json"
    assert main(_evaluate("--size", "0", "--out", str(out))(shared)) == 2
    assert not out.parent.exists()


# 7. Datasets as published -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1])
def test_skip_bad_scores_the_rest_and_lists_each_skipped_pair(
    workers: int, tmp_path: Path, shared: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared["fasseg"] / "V3"
    label, image = root / "Test_labels" / f"{MISMATCHED}.png", root / "Test_RGB" / f"{MISMATCHED}.png"
    reason = f"{label}: label is 33x64 (WxH) but its image {image} is 32x64"
    out = tmp_path / "report.json"
    code = main(["evaluate", str(shared["fasseg_checkpoint"]), "--dataset", "fasseg", "--data-root",
                 str(shared["fasseg"]), "--split", "multipose-test", "--device", "cpu", "--skip-bad", "--out",
                 str(out), "--workers", str(workers)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    assert err[err.index("skipped 1 image(s) whose files are bad:") + 1] == f"  {reason}"
    report = json.loads(out.read_text())
    assert report["skipped"] == [reason] and report["num_images"] == 2
    assert report["command"].endswith("--skip-bad")
    assert sum(map(sum, report["confusion_matrix"])) == 2 * 64 * 32, "the two good pairs are scored, whole"


def test_the_readme_lists_fassegs_mismatched_pairs_and_the_policy() -> None:
    text = (REPO / "data" / "README.md").read_text()
    assert "personne15248+0+30" in text and "--skip-bad" in text


# 2. Inputs in the wrong range ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model(LAPA, channels=8)


def _with_nan(images: torch.Tensor) -> torch.Tensor:
    images = images.clone()
    images.view(-1)[:16] = math.nan
    return images


INPUT_CASES = [
    ("uint8 tensor", lambda x: (x * 255).to(torch.uint8),
     "images: expected floating-point values in [0, 1], got torch.uint8 (pass uint8 images as images.float() / 255)"),
    ("int64 tensor", lambda x: (x * 255).long(),
     "images: expected floating-point values in [0, 1], got torch.int64 (pass uint8 images as images.float() / 255)"),
    ("16 NaN pixels", _with_nan, "images: hold NaN or infinite values"),
    ("an inf", lambda x: x.index_put((torch.tensor([0]),), torch.tensor(math.inf)),
     "images: hold NaN or infinite values"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_agrnet_rejects_inputs_it_cannot_normalise(model: torch.nn.Module, change: Callable, message: str) -> None:
    images = change(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError) as caught:
        model(images)
    assert str(caught.value) == message


def test_agrnet_warns_once_about_an_image_in_0_to_255(model: torch.nn.Module) -> None:
    images = torch.rand(1, 3, 64, 64) * 255
    model._warned_range = False
    with pytest.warns(UserWarning) as caught:
        model(images)
        model(images)
    (warning,) = [w for w in caught if "outside the [0, 1]" in str(w.message)]
    low, high = images.min().item(), images.max().item()
    assert str(warning.message) == (
        f"images: values span {low:.4g} ... {high:.4g}, outside the [0, 1] the model expects (an image in 0 ... 255? "
        "divide it by 255); this model warns once"
    )


def test_training_steps_skip_the_value_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host sync per training step: in train mode the values are not looked at."""
    model, calls = tiny_model(LAPA, channels=8).train(), []
    monkeypatch.setattr(type(model), "_check_values", lambda self, images: calls.append(images))
    model(torch.rand(2, 3, 64, 64))
    assert calls == []
    model.eval()(torch.rand(1, 3, 64, 64))
    assert len(calls) == 1


@pytest.fixture(scope="module")
def predictor(model: torch.nn.Module) -> Predictor:
    return Predictor(model, LAPA, device="cpu", size=64)


PREDICTOR_CASES = [
    ("16 NaN pixels", lambda: _with_nan(torch.rand(3, 40, 30)), "image: holds NaN or infinite values"),
    ("float in 0 ... 255", lambda: torch.full((3, 8, 8), 200.0),
     "image: float values must lie in [0, 1], these span 200 ... 200 (uint8 images may use 0 ... 255)"),
    ("int32 tensor", lambda: torch.zeros(3, 8, 8, dtype=torch.int32),
     "image: expected uint8 or float values, got torch.int32"),
    ("a number", lambda: 42, "image: expected a PIL image, a file path, a numpy array or a tensor, got int"),
    ("a 0 x 0 array", lambda: np.zeros((0, 0, 3), np.uint8), "image: has no pixels (0 x 0)"),
    ("a 5 x 0 PIL image", lambda: Image.new("RGB", (0, 5)), "image: has no pixels (5 x 0)"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in PREDICTOR_CASES], ids=[c[0] for c in PREDICTOR_CASES])
def test_predictor_rejects_bad_images(predictor: Predictor, make: Callable, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        predictor(make())
    assert str(caught.value) == message


def test_predictor_takes_paths_as_str_and_pathlike(predictor: Predictor, tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    Image.fromarray(photo(40, 30, 5)).save(path)
    expected = predictor(Image.open(path))
    for given in (str(path), path):
        assert torch.equal(predictor(given), expected)
    assert [label.shape for label in predictor([path, str(path)])] == [(40, 30)] * 2


def sixteen_bit_pair(folder: Path) -> tuple[Path, Path]:
    """The same grayscale gradient as a 16-bit PNG (v * 257) and as an 8-bit one (v)."""
    folder.mkdir(parents=True, exist_ok=True)
    values = (np.arange(48 * 40).reshape(48, 40) % 256).astype(np.uint16)
    Image.fromarray(values * 257).save(folder / "wide.png")
    Image.fromarray(values.astype(np.uint8)).save(folder / "narrow.png")
    assert Image.open(folder / "wide.png").mode == "I;16"
    return folder / "wide.png", folder / "narrow.png"


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path, shared: dict[str, Path]) -> None:
    wide, narrow = sixteen_bit_pair(tmp_path / "in")
    assert torch.equal(read_image(wide), read_image(narrow))
    assert main(["predict", str(shared["lapa_checkpoint"]), str(wide), str(narrow), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--size", "64", "--aligned"]) == 0  # fmt: skip
    overlays = [np.asarray(Image.open(tmp_path / "out" / "overlays" / f"{n}.png")) for n in ("wide", "narrow")]
    assert np.array_equal(*overlays)


# 3. Killed writers, 6. permissions ----------------------------------------------------------------------------------

KILLED_WRITER = """
import sys, time, torch
from agrnet.files import atomic_write
def write(file):
    torch.save({"model": torch.zeros(256, 256)}, file)
    file.flush()
    print("saving", flush=True)
    time.sleep(600)
atomic_write(sys.argv[1], write)
"""


def kill_mid_save(path: Path) -> Path:
    """Run a real writer of ``path`` in a subprocess, SIGKILL it in the middle of the save; its temporary file."""
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "saving\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    (temporary,) = path.parent.glob(f".{path.name}.*.tmp")
    assert temporary.stat().st_size > 0
    return temporary


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process probes are POSIX")
def test_a_writer_killed_mid_save_leaves_nothing_after_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"previous")
    temporary = kill_mid_save(path)
    assert path.read_bytes() == b"previous", "the previous file is intact"
    atomic_write(path, lambda file: file.write(b"next"))
    assert not temporary.exists() and path.read_bytes() == b"next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_stale_temporaries_go_and_live_writers_keep_theirs(tmp_path: Path) -> None:
    path, host = tmp_path / "last.pt", socket.gethostname()
    names = {
        "dead writer": f".last.pt.{dead_pid()}@{host}.abcd1234.tmp",
        "earlier version": ".last.pt.k3j2h1g0.tmp",
        "live writer": f".last.pt.{os.getpid()}@{host}.abcd1234.tmp",
        "other host": f".last.pt.{dead_pid()}@not-{host}.abcd1234.tmp",
        "other target": f".best.pt.{dead_pid()}@{host}.abcd1234.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale_temporaries(path)
    assert sorted(p.name for p in removed) == sorted([names["dead writer"], names["earlier version"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        names[k] for k in ("live writer", "other host", "other target")
    )


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "report.json", lambda file: file.write(b"{}"))
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


# 1. Resuming with more steps; 5. Ctrl-C ------------------------------------------------------------------------------


def copy_run(source: Path, target: Path) -> Path:
    """A run folder holding ``source``'s config.json, log.jsonl and last.pt (best.pt is not needed to resume)."""
    target.mkdir(parents=True)
    for name in ("config.json", "log.jsonl", "last.pt"):
        shutil.copy(source / name, target / name)
    return target


def train_lrs(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {line["step"]: line["lr"] for line in lines if line["kind"] == "train"}


def test_resuming_a_finished_run_with_more_steps_follows_the_new_schedule(
    tmp_path: Path, shared: dict[str, Path]
) -> None:
    run = copy_run(shared["finished"], tmp_path / "run")
    assert train_lrs(run)[2] > 0 and load_checkpoint(run / "last.pt")["scheduler"]["total_iters"] == 2
    host = socket.gethostname()
    stale = [run / f".last.pt.{dead_pid()}@{host}.abcd1234.tmp", run / ".best.pt.k3j2h1g0.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    previous = os.umask(0o022)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(tiny_config(run, steps=4, resume="auto"))
        # best.pt is written only when validation improves, which the resumed run need not do: a fresh run's
        # first validation always does, so its best.pt shows the mode of that file.
        fresh = train(tiny_config(tmp_path / "fresh"))
    finally:
        os.umask(previous)
    lrs, lr = train_lrs(run), preset_config("synthetic").lr
    for step in (3, 4):
        assert lrs[step] == pytest.approx(lr * (1 - (step - 1) / 4) ** 0.9, rel=1e-6), step
    rebuilt = f"resuming at step 2 with steps 2 -> 4: the poly schedule is rebuilt for this run, lr {lrs[3]:.4g} "
    rebuilt += "for step 3"
    assert rebuilt in [str(w.message) for w in caught]
    last = load_checkpoint(run / "last.pt")
    assert last["step"] == 4 and last["scheduler"]["total_iters"] == 4
    assert not any(path.exists() for path in stale)
    assert not list(run.glob(".*.tmp"))
    for path in (run / "last.pt", run / "config.json", fresh / "last.pt", fresh / "best.pt", fresh / "config.json"):
        assert path.stat().st_mode & 0o777 == 0o644, path



def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume_it(
    tmp_path: Path, shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(shared["finished"], tmp_path / "run")
    real_step = Trainer._train_step

    def interrupted_in_step_4(self: Trainer, batch: Any) -> Any:
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", interrupted_in_step_4)
    try:
        with pytest.warns(UserWarning, match="rebuilt"):
            code = main([*train_argv(run, steps=4), "--resume", "auto"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended in a traceback")
    assert code == 130
    command = f"{train_command(asdict(tiny_config(run, steps=4)))} --out {shlex.quote(str(run))} --resume auto"
    expected = (
        f"agrnet train: interrupted at step 3; last checkpoint at step 2 ({run / 'last.pt'}); resume with: {command}"
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == expected
    assert load_checkpoint(run / "last.pt")["step"] == 2

    monkeypatch.undo()
    words = shlex.split(command)
    assert words[:2] == ["agrnet", "train"]
    with pytest.warns(UserWarning, match="rebuilt"):
        assert main(words[1:]) == 0, "the printed command resumes the run"
    assert load_checkpoint(run / "last.pt")["step"] == 4


def test_ctrl_c_before_training_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(self: Trainer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_datasets", interrupted)
    try:
        code = main(train_argv(tmp_path / "run"))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended in a traceback")
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "agrnet train: interrupted before the first step"


def test_a_checkpoint_from_before_newer_model_options_still_resumes(tmp_path: Path, shared: dict[str, Path]) -> None:
    """Model options added since a checkpoint was written count as their defaults, not as a different model."""
    run = copy_run(shared["finished"], tmp_path / "run")
    payload = load_checkpoint(run / "last.pt")
    for newer in ("edge_gate", "detach_edge"):
        del payload["model_config"][newer]
    save_checkpoint(run / "last.pt", payload)
    assert Trainer(tiny_config(run, resume="auto")).step == 2


# Issue 23: one training per run folder, run names that never collide, a refused resume changes nothing ----------

HOLD_LOCK = """
import sys, time
from agrnet.files import lock_folder
lock = lock_folder(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="fcntl.flock and SIGKILL are POSIX")
def test_a_run_folder_in_use_is_refused_at_once_and_freed_when_its_holder_dies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert main(train_argv(run)) == 1
        lock = run / agrnet.files.LOCK_NAME
        expected = (
            f"agrnet train: --out {run}: in use by pid {holder.pid} on {socket.gethostname()} (lock file {lock}); "
            "wait for it to end or choose another folder"
        )
        assert capsys.readouterr().err.strip().splitlines()[-1] == expected
        assert sorted(p.name for p in run.iterdir()) == [agrnet.files.LOCK_NAME], "nothing written"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(train_argv(run)) == 0, "the kernel dropped the lock of the killed holder"
    assert (run / "last.pt").is_file()


def test_a_training_holds_its_run_folder_from_build_to_the_end(tmp_path: Path, shared: dict[str, Path]) -> None:
    run = copy_run(shared["finished"], tmp_path / "run")
    with pytest.warns(UserWarning, match="rebuilt"):
        first = Trainer(tiny_config(run, steps=3, resume="auto"))
    in_use = rf"--out {re.escape(str(run))}: in use by pid {os.getpid()} "
    with pytest.raises(agrnet.files.FolderLockedError, match=in_use):
        Trainer(tiny_config(run, steps=3, resume="auto"))
    first.run()
    assert load_checkpoint(run / "last.pt")["step"] == 3
    assert Trainer(tiny_config(run, steps=3, resume="auto")).step == 3, "released at the end of the run"


def test_default_run_folders_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path)
    config.out = None
    folders = {resolve_run_dir(config) for _ in range(50)}
    assert len(folders) == 50, "started in the same second, each gets its own folder"
    assert all(re.fullmatch(r"runs/\d{8}-\d{6}-[0-9a-f]{6}", str(folder)) for folder in folders)


def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path: Path, shared: dict[str, Path]) -> None:
    run = copy_run(shared["finished"], tmp_path / "run")
    before = {name: (run / name).read_bytes() for name in ("config.json", "log.jsonl", "last.pt")}
    with pytest.raises(ValueError, match=r"trained with size=64 but this run has size=96"):
        train(tiny_config(run, size=96, steps=4, resume="auto"))
    assert {name: (run / name).read_bytes() for name in before} == before
    assert json.loads((run / "config.json").read_text())["size"] == 64
