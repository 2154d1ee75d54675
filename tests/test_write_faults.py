"""Faults of the file system and of phone photos: a write that fails (disk full, file size limit) is one line
naming the file with nothing partial left; an EXIF orientation is applied wherever an image is read."""

from __future__ import annotations

import errno
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agrnet.data.base import open_image, read_image
from agrnet.files import WriteError, atomic_write

ORIENTATION = 0x0112  # the EXIF tag


def test_a_failing_write_names_the_file_and_keeps_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    atomic_write(path, lambda file: file.write(b"before"))

    def disk_full(file: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=rf"^cannot write {path}: No space left on device$") as caught:
        atomic_write(path, disk_full)
    assert caught.value.errno == errno.ENOSPC and "\n" not in str(caught.value)
    assert path.read_bytes() == b"before" and sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]

    def other_bug(file: object) -> None:
        raise RuntimeError("a bug, not the file system")

    with pytest.raises(RuntimeError, match="a bug") as caught:
        atomic_write(path, other_bug)
    assert not isinstance(caught.value, WriteError)


def test_a_checkpoint_past_the_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """torch.save really failing mid-file (RLIMIT_FSIZE makes the kernel refuse the bytes past 64 KiB)."""
    path = tmp_path / "last.pt"
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from agrnet.checkpoint import save_checkpoint
        save_checkpoint({str(path)!r}, {{"step": 1}})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            save_checkpoint({str(path)!r}, {{"model": torch.zeros(1_000_000)}})
        except OSError as error:
            print(type(error).__name__, error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"WriteError cannot write {path}: ") and result.stdout.count("\n") == 1
    assert torch.load(path, weights_only=True) == {"step": 1}, "the previous checkpoint is intact"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "no temporary file is left"


@pytest.mark.parametrize(("orientation", "upright"), [(1, (30, 40)), (6, (40, 30)), (8, (40, 30)), (3, (30, 40))])
def test_exif_orientation_is_applied_when_an_image_is_read(tmp_path: Path, orientation: int, upright: tuple) -> None:
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)  # stored 40 wide, 30 high, a bright top-left corner
    pixels[:10, :10] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = read_image(path)
    assert tuple(image.shape[1:]) == upright
    expected = np.asarray(Image.fromarray(pixels).transpose(
        {1: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270,
         8: Image.Transpose.ROTATE_90}[orientation]))  # fmt: skip
    if orientation == 1:
        expected = pixels
    assert np.abs(image.permute(1, 2, 0).numpy() * 255 - expected).mean() < 8
    assert open_image(path).getexif().get(ORIENTATION, 1) == 1, "the tag is applied, not left for a second turn"


def test_predict_on_a_full_disk_names_the_file_and_leaves_no_partial_png(tmp_path: Path) -> None:
    """The overlay of a noisy photo cannot be written past a 4 KiB file size limit (RLIMIT_FSIZE): one line naming
    the file, exit status 2, and no partial PNG."""
    rng = np.random.default_rng(0)
    photo = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "parsed"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from agrnet.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        sys.exit(main(["predict", "--weights", "fasseg-resnet18", "--aligned", {str(photo)!r}, "--out", {str(out)!r},
                       "--device", "cpu"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    errors = re.findall(r"agrnet predict: error: [^\n\r]*", result.stderr)  # beside the progress bar's lines
    assert len(errors) == 1 and errors[0].startswith(f"agrnet predict: error: cannot write {out}/"), result.stderr
    assert errors[0].endswith(".png: File too large")
    written = [path for path in out.rglob("*.png")]
    assert all(path.stat().st_size > 0 and Image.open(path).load() is not None for path in written)
    assert not [path for path in out.rglob("*.tmp")], "no temporary file is left"
