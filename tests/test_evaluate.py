"""Evaluation: scoring at original size on mixed sizes, flip TTA's left/right swap, Table II, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from tiny_model import tiny_checkpoint, tiny_model
from torch import nn

from agrnet.cli import main
from agrnet.data.labels import CELEBAMASK_HQ, FASSEG, HELEN, LAPA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.data.transforms import EvalTransform
from agrnet.evaluate import (
    PAPER_TABLE_II,
    check_scales,
    evaluate,
    flip_logits,
    format_table,
    parse_device,
    predict_logits,
)
from agrnet.model import AGRNetOutput

LEFT_EYE, RIGHT_EYE = 4, 5


class PositionModel(nn.Module):
    """Predicts from the horizontal position alone: ``right_class`` on the image's right half, ``left_class`` on
    its left half, with logits linear in x (bilinear resizing keeps the boundary exactly in the middle). It is
    mirror-equivariant when the two classes are a flip pair."""

    def __init__(self, num_classes: int, left_class: int, right_class: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.left_class, self.right_class = left_class, right_class

    def forward(self, images: torch.Tensor) -> AGRNetOutput:
        n, _, height, width = images.shape
        x = (torch.arange(width, dtype=images.dtype) + 0.5) / width - 0.5
        logits = torch.full((n, self.num_classes, height, width), -10.0, dtype=images.dtype)
        logits[:, self.right_class] = 4 * x
        logits[:, self.left_class] = -4 * x
        return AGRNetOutput(logits=logits)


class HalvesDataset(torch.utils.data.Dataset):
    """Images of different sizes, labelled ``left_class`` on the left half and ``right_class`` on the right half
    (even widths); the first row of each label is ignored (255)."""

    def __init__(self, sizes, left_class: int, right_class: int, transform=None) -> None:
        self.sizes, self.transform = sizes, transform
        self.left_class, self.right_class = left_class, right_class

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> dict:
        height, width = self.sizes[index]
        label = torch.full((height, width), self.left_class, dtype=torch.long)
        label[:, width // 2 :] = self.right_class
        label[0] = 255
        image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(index))
        sample = {"image": image, "label": label, "name": f"halves-{index}"}
        return self.transform(sample) if self.transform else sample


SIZES = [(48, 80), (72, 56), (64, 64), (50, 90)]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_scores_at_original_size_on_mixed_sizes(batch_size):
    dataset = HalvesDataset(SIZES, 1, 2, transform=EvalTransform(32))
    report = evaluate(PositionModel(FASSEG.num_classes, 1, 2), dataset, FASSEG, batch_size=batch_size)
    labelled = sum((h - 1) * w for h, w in SIZES)  # every pixel but the ignored first row, at original size
    assert report["pixels"] == labelled
    assert report["num_images"] == len(SIZES)
    matrix = torch.tensor(report["confusion_matrix"])
    assert matrix[1, 1] == matrix[2, 2] == labelled // 2
    assert matrix.sum() == matrix.diagonal().sum()
    assert report["f1"]["skin"] == report["f1"]["hair"] == 1.0


def test_batched_mixed_sizes_match_one_by_one():
    model = tiny_model(LAPA)
    dataset = HalvesDataset(SIZES, 1, 10, transform=EvalTransform(64))
    one = evaluate(model, dataset, LAPA, batch_size=1)
    batched = evaluate(model, dataset, LAPA, batch_size=4)
    assert one["confusion_matrix"] == batched["confusion_matrix"]


def test_flip_logits_mirrors_and_swaps_left_and_right():
    logits = torch.arange(LAPA.num_classes * 2, dtype=torch.float).view(1, LAPA.num_classes, 1, 2)
    out = flip_logits(logits, LAPA)
    assert out[0, LEFT_EYE, 0].tolist() == logits[0, RIGHT_EYE, 0].flip(0).tolist()
    assert out[0, RIGHT_EYE, 0].tolist() == logits[0, LEFT_EYE, 0].flip(0).tolist()
    assert out[0, 2, 0].tolist() == logits[0, 3, 0].flip(0).tolist()  # eyebrows swap too
    assert out[0, 6, 0].tolist() == logits[0, 6, 0].flip(0).tolist()  # the nose only mirrors
    torch.testing.assert_close(flip_logits(out, LAPA), logits)


def test_flip_tta_keeps_left_eye_on_the_image_right():
    # Annotators' convention: the subject's left eye is on the image's right. The model gets it right; the flipped
    # image shows that eye on the left, where the model says "right eye": TTA must swap it back.
    model = PositionModel(LAPA.num_classes, left_class=RIGHT_EYE, right_class=LEFT_EYE)
    images = torch.rand(2, 3, 16, 24)
    torch.testing.assert_close(predict_logits(model, images, LAPA, flip=True), model(images).logits)
    naive = (model(images).logits + model(images.flip(-1)).logits.flip(-1)) / 2  # a TTA that forgets the swap
    torch.testing.assert_close(naive[:, LEFT_EYE], naive[:, RIGHT_EYE])  # cannot tell the eyes apart anywhere

    dataset = HalvesDataset([(30, 40), (20, 64)], RIGHT_EYE, LEFT_EYE, transform=EvalTransform(32))
    report = evaluate(model, dataset, LAPA, flip=True)
    assert report["flip"] is True
    assert report["f1"]["left eye"] == report["f1"]["right eye"] == 1.0
    assert report["group_f1"]["eyes"] == 1.0


def test_multi_scale_logits_are_the_mean_of_each_scale_resized_back():
    model = tiny_model(FASSEG).eval()
    images = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(predict_logits(model, images, FASSEG, scales=(1,)), model(images).logits)
        small = F.interpolate(images, size=(32, 40), mode="bilinear", antialias=True)
        large = F.interpolate(images, size=(96, 120), mode="bilinear")
        each = [F.interpolate(model(x).logits, size=(64, 80), mode="bilinear") for x in (small, images, large)]
        expected = torch.stack(each).mean(0)
        torch.testing.assert_close(predict_logits(model, images, FASSEG, scales=(0.5, 1, 1.5)), expected)
        flipped = predict_logits(model, images, FASSEG, flip=True, scales=(0.5, 1))
        halves = [predict_logits(model, images, FASSEG, flip=True, scales=(s,)) for s in (0.5, 1)]
        torch.testing.assert_close(flipped, (halves[0] + halves[1]) / 2)


@pytest.mark.parametrize(
    ("scales", "message"),
    [((), "one or more positive"), ((1, 0), "one or more positive"), ((float("nan"),), "positive"),
     ((0.25, 1), "0.25 shrinks the 64 x 64 input below 32 px")],
)  # fmt: skip
def test_bad_scales_are_refused_by_name(scales, message):
    with pytest.raises(ValueError, match=f"--scales: .*{message}"):
        check_scales(scales, (64, 64), "--scales")


def test_report_of_a_real_model_names_classes_and_groups():
    model = tiny_model(LAPA)
    dataset = HalvesDataset([(40, 48), (56, 40)], 1, 10, transform=EvalTransform(64))
    report = evaluate(model, dataset, LAPA, flip=True)
    assert set(report["f1"]) == set(LAPA.classes) == set(report["iou"]) == set(report["accuracy"])
    assert set(report["group_f1"]) == set(LAPA.groups)
    assert report["schema"] == "lapa" and report["num_images"] == 2
    assert 0 <= report["pixel_accuracy"] <= 1
    json.dumps(report, allow_nan=False)


def test_model_and_schema_must_agree():
    with pytest.raises(ValueError, match="classes"):
        evaluate(tiny_model(LAPA), HalvesDataset([(32, 32)], 1, 2), CELEBAMASK_HQ)


@pytest.mark.parametrize(("dataset", "schema"), [("helen", HELEN), ("lapa", LAPA), ("celebamask-hq", CELEBAMASK_HQ)])
def test_paper_table_columns_name_real_classes_and_groups(dataset, schema):
    for header, key, value in PAPER_TABLE_II[dataset]:
        section, _, name = key.partition("/")
        assert section in ("f1", "group_f1", "mean_f1"), header
        assert name in (schema.classes if section == "f1" else schema.groups if section == "group_f1" else ("",))
        assert 0 < value < 100


@pytest.mark.parametrize("dataset", ["lapa", "celebamask-hq"])
def test_paper_means_are_the_means_of_the_transcribed_classes(dataset):
    classes = [value for _, key, value in PAPER_TABLE_II[dataset] if key.startswith("f1/")]
    (mean,) = [value for _, key, value in PAPER_TABLE_II[dataset] if key == "mean_f1"]
    assert sum(classes) / len(classes) == pytest.approx(mean, abs=0.051)


def test_format_table_puts_the_paper_beside_ours():
    report = {
        "f1": dict.fromkeys(HELEN.classes, 0.5),
        "group_f1": {"eyes": 0.25, "brows": 0.5, "nose": 0.5, "mouth": 0.5, "overall": 0.75},
        "mean_f1": 0.5,
        "miou": 0.4,
        "pixel_accuracy": 0.9,
        "num_images": 3,
        "dataset": "helen",
    }
    table = format_table(report, HELEN)
    header, ours, paper = table.splitlines()[:3]
    assert header.split()[2:] == ["Skin", "Nose", "U-lip", "I-mouth", "L-lip", "Eyes", "Brows", "Mouth", "Overall"]
    assert ours.split()[-4:] == ["25.0", "50.0", "50.0", "75.0"]
    assert paper.split()[-1] == "93.2"
    assert "mIoU 40.0" in table
    assert "AGRNet (paper)" not in format_table({**report, "dataset": "synthetic"}, HELEN)


def test_parse_device_errors_name_the_option():
    assert parse_device("cpu") == torch.device("cpu")
    for name in ("banana", f"cuda:{torch.cuda.device_count() + 7}"):
        with pytest.raises(ValueError, match="--device"):
            parse_device(name)


def test_cli_without_checkpoint_says_how_to_make_one(capsys):
    assert main(["evaluate"]) == 2
    assert "agrnet train" in capsys.readouterr().err


def test_cli_writes_report_and_table(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "report.json"
    code = main(["evaluate", str(checkpoint), "--size", "64", "--num-images", "2", "--device", "cpu", "--flip",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "this run" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["command"].startswith(f"agrnet evaluate {checkpoint}")
    assert (report["dataset"], report["split"], report["num_images"], report["size"]) == ("synthetic", "val", 2, 64)
    assert report["checkpoint"] == str(checkpoint) and report["agrnet_version"]
    assert set(report["f1"]) == set(LAPA.classes)


def test_cli_scores_with_scales_and_records_them(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "report.json"
    words = ["evaluate", str(checkpoint), "--size", "64", "--num-images", "2", "--device", "cpu", "--out", str(out)]
    assert main([*words, "--scales", "0.75", "1"]) == 0
    assert "flip off  scales 0.75, 1" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["scales"] == [0.75, 1.0]
    assert report["command"].endswith("--scales 0.75 1")
    assert main(words) == 0
    plain = json.loads(out.read_text())
    assert plain["scales"] == [1.0] and "--scales" not in plain["command"]
    assert plain["confusion_matrix"] != report["confusion_matrix"]
    capsys.readouterr()
    assert main([*words, "--scales", "0.1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "agrnet evaluate: error: --scales: 0.1 shrinks the 64 x 64 input below 32 px"
    )


def test_cli_rejects_a_checkpoint_of_another_schema(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "celeba.pt", CELEBAMASK_HQ)
    assert main(["evaluate", str(checkpoint), "--size", "64", "--num-images", "1", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "celebamask-hq" in error and "lapa" in error


@pytest.mark.parametrize("device", ["banana", "cuda:7"])
def test_cli_rejects_a_wrong_device(tmp_path, capsys, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    assert main(["evaluate", str(checkpoint), "--device", device]) == 2
    assert "--device" in capsys.readouterr().err


def test_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.pt"), "--device", "cpu"]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_cli_refuses_context_without_photos(capsys):
    assert main(["evaluate", "--weights", "fasseg-resnet18", "--context", "2", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        "agrnet evaluate: error: --context: applies to whole photos, which agrnet evaluate scores with --photos"
    )


def test_celebamask_hq_is_scored_as_fasseg_resized_or_through_the_photo_pipeline(shared_data, tmp_path, capsys):
    """A FASSEG model on CelebAMask-HQ faces: labels read through CELEBAMASK_HQ_AS_FASSEG, each image resized whole
    (as `evaluate` scores) or through the photo pipeline (as `agrnet.faces.score_photos` scores)."""
    from agrnet.book import celebamask_as_fasseg
    from agrnet.faces import FaceDetector, score_photos
    from agrnet.predict import Predictor

    root = shared_data / "celebamask-hq-sean"
    predictor = Predictor.from_weights("fasseg-photo-resnet18", device="cpu")
    expected = {
        "resize": evaluate(
            predictor.model, celebamask_as_fasseg(root, 256), predictor.schema, device="cpu", flip=predictor.flip
        ),
        "photo": score_photos(predictor, celebamask_as_fasseg(root), FaceDetector()),
    }
    for pipeline, flags in (("resize", []), ("photo", ["--photos"])):
        out = tmp_path / f"{pipeline}.json"
        argv = ["evaluate", "--weights", "fasseg-photo-resnet18", "--dataset", "celebamask-hq", "--data-root",
                str(root), "--split", "all", "--device", "cpu", "--out", str(out), *flags]  # fmt: skip
        assert main(argv) == 0
        report = json.loads(out.read_text())
        assert (report["labels_read_as"], report["pipeline"], report["num_images"]) == ("fasseg", pipeline, 10)
        assert report["mean_f1"] == pytest.approx(expected[pipeline]["mean_f1"], abs=1e-9)
        assert report["command"].endswith("--photos") == (pipeline == "photo")
    capsys.readouterr()
    assert main(["evaluate", "--weights", "synthetic-resnet18", "--dataset", "celebamask-hq", "--data-root",
                 str(root), "--split", "all", "--device", "cpu"]) == 2  # fmt: skip
    assert "schema" in capsys.readouterr().err, "no mapping from CelebAMask-HQ to LaPa: refused"


def test_batchnorm_statistics_are_recomputed_as_the_mean_of_the_batch_statistics(tmp_path, capsys):
    from agrnet.data.transforms import EvalTransform
    from agrnet.evaluate import reestimate_batchnorm

    faces = SyntheticFaces(8, size=64, split="train", transform=EvalTransform(64))
    model = tiny_model()
    first = model.backbone.stem[1]
    seen = []
    hook = first.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].mean((0, 2, 3))))
    with torch.no_grad():
        model.train()
        for start in (0, 4):
            model(torch.stack([faces[i]["image"] for i in range(start, start + 4)]))
    hook.remove()
    first.running_mean.fill_(7.0)
    reestimate_batchnorm(model, faces, "cpu", batch_size=4)
    assert not model.training and first.momentum == 0.1, "eval mode, momentum restored"
    assert torch.allclose(first.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    checkpoint = tiny_checkpoint(tmp_path / "last.pt", LAPA, config={"size": 64, "seed": 0, "num_val_images": 2})
    out = tmp_path / "report.json"
    argv = ["evaluate", str(checkpoint), "--num-images", "2", "--device", "cpu", "--out", str(out)]
    assert main([*argv, "--recompute-bn", "train"]) == 0
    report = json.loads(out.read_text())
    assert report["batchnorm_recomputed_on"] == "train" and report["command"].endswith("--recompute-bn train")
