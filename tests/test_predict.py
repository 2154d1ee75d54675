"""Predictor and ``agrnet predict``: any input type and size, batches, written files, bad files, bad devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_model import tiny_checkpoint

from agrnet.cli import main
from agrnet.data.labels import LAPA
from agrnet.predict import Predictor, as_image_tensor, blend, find_images, label_image, predict_files

SIZE = 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("predict") / "tiny.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor.from_checkpoint(checkpoint, device="cpu", size=SIZE, batch_size=2)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_checkpoint_carries_its_schema(predictor):
    assert predictor.schema == LAPA
    assert predictor.size == (SIZE, SIZE)
    assert predictor.device == torch.device("cpu")


def test_labels_have_the_original_size_for_every_input_type(predictor):
    array = photo(50, 70)
    from_pil = predictor(Image.fromarray(array))
    from_numpy = predictor(array)
    from_tensor = predictor(torch.from_numpy(array).permute(2, 0, 1).float() / 255)
    assert from_pil.shape == (50, 70) and from_pil.dtype == torch.int64
    assert torch.equal(from_pil, from_numpy) and torch.equal(from_pil, from_tensor)
    assert 0 <= int(from_pil.min()) and int(from_pil.max()) < LAPA.num_classes


def test_batches_give_the_same_labels_as_single_images(predictor):
    images = [photo(40, 30, 1), photo(64, 96, 2), photo(33, 33, 3)]  # three sizes, two batches of two
    together = predictor.parse(images)
    assert [tuple(label.shape) for label in together] == [(40, 30), (64, 96), (33, 33)]
    for image, label in zip(images, together, strict=True):
        assert torch.equal(predictor.parse(image), label)


def test_as_image_tensor_rejects_bad_arrays():
    assert as_image_tensor(np.zeros((5, 6), dtype=np.uint8)).shape == (3, 5, 6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_image_tensor(torch.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="shape"):
        as_image_tensor(np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="PIL"):
        as_image_tensor(42)
    with pytest.raises(FileNotFoundError, match="photo.jpg: file is missing"):
        as_image_tensor("photo.jpg")  # a path


def test_blend_tints_labelled_pixels_only():
    image = torch.full((3, 1, 2), 0.5)
    label = torch.tensor([[0, 1]])
    mixed = blend(image, label, LAPA, alpha=0.25)
    assert mixed[:, 0, 0].tolist() == [128, 128, 128]  # background keeps the image
    expected = [round(255 * (0.75 * 0.5 + 0.25 * c / 255)) for c in LAPA.palette[1]]
    assert mixed[:, 0, 1].tolist() == expected


def test_label_image_is_paletted_with_the_schema_colours():
    picture = label_image(torch.tensor([[0, 4], [10, 1]]), LAPA)
    assert picture.mode == "P"
    assert np.asarray(picture).tolist() == [[0, 4], [10, 1]]
    assert picture.convert("RGB").getpixel((1, 0)) == tuple(LAPA.palette[4])


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    Image.fromarray(photo(40, 60, 1)).save(folder / "a.png")
    Image.fromarray(photo(30, 30, 2)).save(folder / "more" / "b.jpg")
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_files_writes_labels_and_overlays_and_lists_bad_files(predictor, image_folder, tmp_path):
    out = tmp_path / "out"
    result = predict_files(predictor, [image_folder, tmp_path / "nowhere.jpg"], out)
    assert sorted(path.name for path, _, _ in result.written) == ["a.png", "b.jpg"]
    assert sorted(path.name for path, _ in result.failed) == ["broken.png", "nowhere.jpg"]
    for name, size in (("a", (60, 40)), ("more/b", (30, 30))):
        label = Image.open(out / "labels" / f"{name}.png")
        overlay = Image.open(out / "overlays" / f"{name}.png")
        assert (label.mode, label.size) == ("P", size)
        assert (overlay.mode, overlay.size) == ("RGB", size)
        assert label.getpalette()[:6] == LAPA.palette[:2].flatten().tolist()
        assert int(np.asarray(label).max()) < LAPA.num_classes


def test_find_images_refuses_clashing_output_names(tmp_path):
    for name in ("x.png", "x.jpg"):
        Image.fromarray(photo(8, 8)).save(tmp_path / name)
    with pytest.raises(ValueError, match="same output names"):
        find_images([tmp_path])


def test_cli_parses_the_good_files_and_lists_the_bad_ones(checkpoint, image_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["predict", str(checkpoint), str(image_folder), "--out", str(out), "--size", str(SIZE),
                 "--device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png" in captured.err and "parsed 2 image(s)" in captured.out
    assert (out / "labels" / "a.png").is_file() and (out / "overlays" / "more" / "b.png").is_file()


def test_cli_succeeds_on_good_files(checkpoint, image_folder, tmp_path):
    args = ["predict", str(checkpoint), str(image_folder / "a.png"), "--out", str(tmp_path / "ok"), "--size", "32"]
    assert main([*args, "--device", "cpu", "--flip", "--batch-size", "1"]) == 0
    assert Image.open(tmp_path / "ok" / "labels" / "a.png").size == (60, 40)


@pytest.mark.parametrize("device", ["banana", "cuda:7"])
def test_cli_rejects_a_wrong_device(checkpoint, image_folder, tmp_path, capsys, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert main(["predict", str(checkpoint), str(image_folder), "--device", device]) == 2
    assert "--device" in capsys.readouterr().err


def test_cli_reports_an_unreadable_checkpoint(image_folder, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["predict", str(bad), str(image_folder), "--device", "cpu"]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_a_checkpoint_from_another_version_warns(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "old.pt", agrnet_version="0.0.1")
    with pytest.warns(UserWarning, match="0.0.1"):
        Predictor.from_checkpoint(checkpoint, device="cpu", size=32)
