"""Predictor and ``agrnet predict``: any input type and size, batches, written files, bad files, bad devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_model import tiny_checkpoint

from agrnet.cli import main
from agrnet.data.labels import LAPA
from agrnet.predict import (
    Predictor,
    as_image_tensor,
    blend,
    label_image,
    open_reduced,
    overlay_image,
    overlay_in_place,
    resize_labels,
)
from agrnet.prediction_files import OUTPUT_MARKER, find_images, predict_files

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
                 "--device", "cpu", "--aligned"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png" in captured.err and "parsed 2 image(s)" in captured.out
    assert (out / "labels" / "a.png").is_file() and (out / "overlays" / "more" / "b.png").is_file()


def test_cli_succeeds_on_good_files(checkpoint, image_folder, tmp_path):
    args = ["predict", str(checkpoint), str(image_folder / "a.png"), "--out", str(tmp_path / "ok"), "--size", "32",
            "--aligned"]
    assert main([*args, "--device", "cpu", "--flip", "--batch-size", "1"]) == 0
    assert Image.open(tmp_path / "ok" / "labels" / "a.png").size == (60, 40)


def test_multi_scale_parsing_is_the_argmax_of_its_probabilities_at_the_original_size(checkpoint):
    multi = Predictor.from_checkpoint(checkpoint, device="cpu", size=SIZE, scales=(0.5, 1, 1.5))
    image = as_image_tensor(photo(50, 70, 4))
    probabilities = multi.probabilities(image)
    assert probabilities.shape == (LAPA.num_classes, 50, 70)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(50, 70))
    assert torch.equal(multi.parse(image), probabilities.argmax(0))
    single = Predictor.from_checkpoint(checkpoint, device="cpu", size=SIZE)
    assert multi.scales == (0.5, 1.0, 1.5) and single.scales == (1.0,)
    assert not torch.allclose(single.probabilities(image), probabilities)
    with pytest.raises(ValueError, match="^scales: 0.25 shrinks the 64 x 64 input below 32 px"):
        Predictor.from_checkpoint(checkpoint, device="cpu", size=SIZE, scales=(0.25, 1))


def test_cli_parses_at_several_scales_and_refuses_a_bad_one(checkpoint, image_folder, tmp_path, capsys):
    args = ["predict", str(checkpoint), str(image_folder / "a.png"), "--size", "64", "--aligned", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "ok"), "--scales", "0.5", "1"]) == 0
    assert Image.open(tmp_path / "ok" / "labels" / "a.png").size == (60, 40)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--scales", "0"]) == 2
    error = "agrnet predict: error: --scales: expected one or more positive factors, got [0.0]"
    assert capsys.readouterr().err.strip() == error


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


def test_a_size_the_network_cannot_take_is_refused(checkpoint):
    with pytest.raises(ValueError, match="^size: 7 is too small for the network; the smallest valid size is 32"):
        Predictor.from_checkpoint(checkpoint, device="cpu", size=7)


def test_a_checkpoint_from_another_version_warns(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "old.pt", agrnet_version="0.0.1")
    with pytest.warns(UserWarning, match="0.0.1"):
        Predictor.from_checkpoint(checkpoint, device="cpu", size=32)


# Issue 23: what predict wrote is never parsed again, symlinks, messages, memory ----------------------------------


def test_a_later_run_does_not_parse_what_predict_wrote(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo(40, 60, 1)).save(photos / "a.png")
    common = [str(checkpoint), str(photos), "--size", str(SIZE), "--device", "cpu", "--aligned"]
    for out in ("parsed", "parsed", "again"):  # --out inside the input folder, the same again, then another
        assert main(["predict", *common, "--out", str(photos / out)]) == 0
        assert f"parsed 1 image(s) into {photos / out}" in capsys.readouterr().out
    assert (photos / "parsed" / OUTPUT_MARKER).is_file()
    assert sorted(p.relative_to(photos / "again").as_posix() for p in (photos / "again").rglob("*.png")) == [
        "labels/a.png", "overlays/a.png",
    ]  # fmt: skip


def test_symlinked_folders_are_searched_once_and_loops_are_refused(predictor, tmp_path):
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    Image.fromarray(photo(40, 60, 1)).save(photos / "more" / "b.png")
    Image.fromarray(photo(30, 30, 2)).save(tmp_path / "elsewhere" / "c.png")
    (photos / "a-link").symlink_to(photos / "more")  # sorts first, yet the real folder names the image
    (photos / "outside").symlink_to(tmp_path / "elsewhere")
    (photos / "more" / "up").symlink_to(photos)  # a loop
    (photos / "self").symlink_to(photos / "self")  # a link to itself
    found, refused = find_images([photos])
    assert [name.as_posix() for _, name in found] == ["more/b", "outside/c"]
    assert refused == [
        (photos / "more" / "up", f"symlink loop (it leads back to {photos}, a folder above it); not followed"),
        (photos / "self", "symlink loop (it leads to itself); not followed"),
    ]


def test_a_bad_file_is_named_once_and_nothing_parsed_says_nothing_was_written(checkpoint, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(broken), "--out", str(out), "--device", "cpu", "--aligned"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip() == "nothing was written: no image was parsed"
    assert captured.err.strip().splitlines()[-1] == f"  {broken}: not a readable image file"
    assert captured.err.count(str(broken)) == 1
    assert not out.exists()


def test_a_jpeg_is_decoded_at_the_scale_the_model_needs(tmp_path):
    path = tmp_path / "large.jpg"
    Image.fromarray(photo(1200, 2000, 3)).save(path)
    image, size = open_reduced(path, (64, 96))
    assert size == (1200, 2000) and image.size == (250, 150), "1/8 of each side"
    image, size = open_reduced(path, 500)
    assert size == (1200, 2000) and image.size == (500, 300), "1/4: the longer side reaches 500"
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned by 90 degrees
    Image.fromarray(photo(1200, 2000, 3)).save(turned, exif=exif)
    image, size = open_reduced(turned, (64, 96))
    assert size == (2000, 1200) and image.size == (150, 250)
    png = tmp_path / "large.png"
    Image.fromarray(photo(120, 200, 3)).save(png)
    assert open_reduced(png, (8, 8))[0].size == (200, 120), "other formats come whole"


def test_labels_and_overlays_come_out_the_same_band_by_band():
    logits = torch.randn(5, 13, 17)
    expected = torch.nn.functional.interpolate(logits[None], size=(100, 61), mode="bilinear", align_corners=False)
    labels = resize_labels(logits, (100, 61), rows=7)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels.long(), expected[0].argmax(0))
    rgb = photo(100, 61, 4)
    assert np.array_equal(np.asarray(overlay_in_place(Image.fromarray(rgb), labels, LAPA, 0.3, rows=9)),
                          np.asarray(overlay_image(rgb, labels.long(), LAPA, 0.3)))  # fmt: skip


def test_a_large_jpeg_gets_labels_at_its_own_size(predictor, tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(photo(700, 900, 5)).save(path)
    result = predict_files(predictor, [path], tmp_path / "out")
    (_, label_path, overlay_path), = result.written
    assert Image.open(label_path).size == (900, 700) and Image.open(overlay_path).size == (900, 700)
