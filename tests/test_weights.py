"""Trained weights as files: export from a checkpoint, list, verify, load, predict, retrain (``agrnet.weights``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_model import tiny_checkpoint

from agrnet import weights
from agrnet.checkpoint import load_model
from agrnet.cli import main
from agrnet.cli.evaluate import evaluation_command
from agrnet.cli.train import config_from_args
from agrnet.cli.train import configure_parser as train_parser
from agrnet.cli.weights import retrain_argv
from agrnet.config import preset_config
from agrnet.data.labels import FASSEG, LAPA
from agrnet.model import AGRNet
from agrnet.predict import Predictor

NAME = "tiny-test"
SIZE = 64
METRICS = {"mean_f1": 0.5, "miou": 0.4, "pixel_accuracy": 0.9, "f1": dict.fromkeys(LAPA.classes, 0.5)}


def train_config() -> dict:
    """A ``TrainConfig`` dict that differs from its preset in several fields, a tuple among them."""
    config = preset_config("synthetic", channels=32, top_k=2, size=SIZE, scale=(0.5, 1.5), out="runs/tiny")
    return dataclasses.asdict(config)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "last.pt"
    return tiny_checkpoint(path, config=train_config(), step=7, metrics=METRICS)


@pytest.fixture(scope="module")
def registry(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry folder holding one entry exported with ``agrnet weights export`` and an evaluation report."""
    folder = tmp_path_factory.mktemp("weights")
    report = folder.parent / "report.json"
    report.write_text(json.dumps({"dataset": "synthetic", "split": "test", "command": "agrnet evaluate", **METRICS}))
    argv = ["weights", "--dir", str(folder), "export", str(checkpoint), "--name", NAME, "--terms", "MIT licence",
            "--terms-url", "https://example.org/terms", "--commit", "0123abc", "--metrics", str(report)]  # fmt: skip
    assert main(argv) == 0
    return folder


@pytest.fixture
def copy(registry: Path, tmp_path: Path) -> Path:
    """A private copy of the registry, free to damage."""
    return Path(shutil.copytree(registry, tmp_path / "weights"))


def test_export_writes_weights_metadata_and_card(registry):
    assert sorted(p.name for p in registry.iterdir()) == [f"{NAME}.json", f"{NAME}.md", f"{NAME}.safetensors"]
    entry = weights.available(registry)[NAME]
    assert entry.key == "TINY_TEST" and entry.input_size == SIZE and entry.step == 7
    assert entry.size_bytes == entry.path.stat().st_size
    assert entry.schema == LAPA.to_dict() and entry.model_config["channels"] == 32
    assert entry.metrics["split"] == "test" and entry.metrics["mean_f1"] == 0.5
    assert entry.commit == "0123abc" and entry.terms_url == "https://example.org/terms"
    assert (registry / f"{NAME}.md").read_text() == weights.model_card(entry)


def test_parameters_are_fp16_and_buffers_are_kept_as_trained(registry, checkpoint):
    stored = load_file(registry / f"{NAME}.safetensors")
    model, _, payload = load_model(checkpoint)
    trained, buffers = payload["model"], dict(model.named_buffers())
    assert stored.keys() == trained.keys()
    for key, value in stored.items():
        if key in buffers:
            assert value.dtype == trained[key].dtype and torch.equal(value, trained[key]), key
        else:
            assert value.dtype == torch.float16, key
    assert stored["backbone.stem.1.num_batches_tracked"].dtype == torch.int64
    assert stored["backbone.stem.1.running_var"].dtype == torch.float32


def test_loaded_weights_give_the_checkpoint_logits_within_fp16_tolerance(registry, checkpoint):
    reference, _, _ = load_model(checkpoint)
    model, schema = weights.load("TINY_TEST", registry)
    assert not model.training and schema == LAPA
    assert all(p.dtype == torch.float32 for p in model.state_dict().values() if p.is_floating_point())
    image = torch.rand(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        expected, actual = reference(image).logits, model(image).logits
    difference = (expected - actual).abs().max().item()
    assert difference <= 1e-3 * expected.abs().max().item() + 1e-3
    assert 0 < weights.get(NAME, registry).fp16_max_abs_logit_diff <= 1e-3 * expected.abs().max().item() + 1e-3


def test_a_changed_or_missing_file_is_refused(copy):
    path = copy / f"{NAME}.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=rf"^weights {NAME}: file {path} has sha256 [0-9a-f]{{64}}, expected"):
        weights.load(NAME, copy)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{path} is missing"):
        weights.load(NAME, copy)


def test_metadata_that_is_incomplete_or_misnamed_is_refused(copy):
    metadata = copy / f"{NAME}.json"
    complete = json.loads(metadata.read_text())
    metadata.write_text(json.dumps({key: value for key, value in complete.items() if key != "sha256"}))
    with pytest.raises(ValueError, match=rf"{metadata}: missing fields \['sha256'\], unknown fields \[\]"):
        weights.available(copy)
    metadata.write_text(json.dumps(complete))
    metadata.rename(copy / "other.json")
    with pytest.raises(ValueError, match=r"other\.json: names the entry 'tiny-test'"):
        weights.available(copy)


def test_unknown_names_list_the_known_ones(registry, capsys):
    with pytest.raises(weights.UnknownWeightsError, match=f"known: {NAME}"):
        weights.get("nope", registry)
    for action in ("show", "retrain"):
        assert main(["weights", "--dir", str(registry), action, "nope"]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "'nope'" in error and NAME in error


def test_list_and_show(registry, capsys):
    assert main(["weights", "--dir", str(registry), "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["name", "schema", "metric"]
    for text in (NAME, "lapa", "mean F1 50.0 (synthetic test)", "MiB", "synthetic (train split)", "MIT licence"):
        assert text in row
    assert main(["weights", "--dir", str(registry), "show", NAME]) == 0
    assert capsys.readouterr().out == weights.model_card(weights.get(NAME, registry)) + "\n"


def test_an_empty_registry_lists_nothing(tmp_path, capsys):
    assert main(["weights", "--dir", str(tmp_path), "list"]) == 0
    assert "no trained weights" in capsys.readouterr().out


def test_retrain_dry_run_prints_the_recorded_command(registry, monkeypatch, capsys):
    monkeypatch.setenv(weights.ENV_VAR, str(registry))
    assert main(["weights", "retrain", NAME, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert weights.get(NAME).command in out.splitlines() and "0123abc" in out


def test_retrain_runs_the_recorded_command(copy, capfd):
    assert retrain_argv("agrnet train --steps 5") == [sys.executable, "-m", "agrnet", "train", "--steps", "5"]
    metadata = copy / f"{NAME}.json"
    command = shlex.join([sys.executable, "-c", "print('retrained')"])
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "command": command}))
    assert main(["weights", "--dir", str(copy), "retrain", NAME]) == 0
    assert "retrained" in capfd.readouterr().out.splitlines()


def test_the_default_command_rebuilds_the_training_config(registry):
    parser = argparse.ArgumentParser()
    train_parser(parser)
    command = weights.get(NAME, registry).command
    assert command.startswith("agrnet train --preset synthetic --set ")
    rebuilt = dataclasses.asdict(config_from_args(parser.parse_args(command.split()[2:])))
    expected = train_config()
    for key in weights.UNRECORDED_FIELDS:
        rebuilt.pop(key), expected.pop(key)
    assert rebuilt == expected


def test_export_defaults_come_from_the_checkpoint_and_the_checkout(checkpoint, tmp_path):
    entry = weights.export_weights(checkpoint, "defaults", "MIT", "https://example.org", out_dir=tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=Path(weights.__file__).parent).stdout.strip()  # fmt: skip
    assert entry.commit == head
    assert entry.metrics == {"dataset": "synthetic", "split": "val", **METRICS}
    assert entry.training_data == "synthetic (train split)"
    assert weights.available(tmp_path) == {"defaults": entry}


def test_export_refuses_bad_names_and_existing_entries(registry, checkpoint, capsys):
    with pytest.raises(ValueError, match="--name 'Tiny_Test'"):
        weights.export_weights(checkpoint, "Tiny_Test", "MIT", "https://example.org", out_dir=registry)
    argv = ["weights", "--dir", str(registry), "export", str(checkpoint), "--name", NAME, "--terms", "MIT",
            "--terms-url", "https://example.org"]  # fmt: skip
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err


def test_predict_with_weights(registry, monkeypatch, tmp_path):
    monkeypatch.setenv(weights.ENV_VAR, str(registry))
    predictor = Predictor.from_weights(NAME, device="cpu")
    assert predictor.size == (SIZE, SIZE) and predictor.schema == LAPA
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "parsed"
    assert main(["predict", "--weights", NAME, "--aligned", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "--out", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    for name in ("a", "b"):
        assert Image.open(out / "labels" / f"{name}.png").size == (70, 50)


def test_predict_needs_a_checkpoint_or_weights(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "a.png")]) == 2
    assert "--weights" in capsys.readouterr().err


def test_every_shipped_entry_verifies_and_loads():
    """Protects the entries in the package: each checksum matches, each model loads strictly, no stray files."""
    folder = weights.PACKAGE_DIR
    assert folder.is_dir()
    entries = weights.available(folder)
    for entry in entries.values():
        model, schema = entry.load()
        assert model.num_classes == schema.num_classes
        card = (folder / f"{entry.name}.md").read_text()
        assert entry.sha256 in card and entry.command in card
    expected = {f"{name}{suffix}" for name in entries for suffix in (".json", ".md", ".safetensors")}
    assert {p.name for p in folder.iterdir()} == expected | {"README.md"}


def test_a_training_can_start_from_the_backbone_of_shipped_weights(registry, monkeypatch):
    monkeypatch.setenv("AGRNET_WEIGHTS_DIR", str(registry))
    model, _ = weights.load(NAME)
    path = weights.resolve_backbone(f"weights:{NAME}")
    assert path == str(weights.backbone_file(NAME)) and weights.resolve_backbone("imagenet") == "imagenet"
    assert weights.resolve_backbone(None) is None
    fresh = AGRNet(LAPA.num_classes, backbone="resnet18", channels=8, pretrained_backbone=path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(fresh.backbone.state_dict()[key], value), key
    with pytest.raises(weights.UnknownWeightsError):
        weights.resolve_backbone("weights:nothing-like-this")


def test_evaluate_and_export_take_weights_and_refuse_a_checkpoint_beside_them(registry, checkpoint, monkeypatch,
                                                                                tmp_path, capsys):  # fmt: skip
    monkeypatch.setenv(weights.ENV_VAR, str(registry))
    report = tmp_path / "report.json"
    options = ["--num-images", "2", "--device", "cpu", "--out", str(report)]
    assert main(["evaluate", "--weights", NAME, *options]) == 0
    scored = json.loads(report.read_text())
    entry = weights.get(NAME)
    assert (scored["weights"], scored["weights_sha256"], scored["size"]) == (NAME, entry.sha256, SIZE)
    assert "checkpoint" not in scored and scored["command"].startswith(f"agrnet evaluate --weights {NAME} ")
    assert main(["evaluate", str(checkpoint), *options]) == 0
    assert json.loads(report.read_text())["mean_f1"] == pytest.approx(scored["mean_f1"], abs=0.02)
    capsys.readouterr()
    for command in (["evaluate", *options[:-2]], ["export", "--out", str(tmp_path / "m.onnx")]):
        assert main([command[0], str(checkpoint), "--weights", NAME, *command[1:]]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "not both" in error and str(checkpoint) in error, error
        assert main([command[0], "--weights", "nope", *command[1:]]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "'nope': unknown name; known: tiny-test" in error, error
    onnx = tmp_path / "m.onnx"
    assert main(["export", "--weights", NAME, "--out", str(onnx), "--size", "96", "96"]) == 0 and onnx.is_file()
    assert "N x 3 x 96 x 96" in capsys.readouterr().out


def test_rescore_writes_portable_commands_and_refuses_other_models(copy, checkpoint, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(weights.ENV_VAR, str(copy))
    reports = []
    for split, count in (("val", "2"), ("test", "3")):
        reports.append(tmp_path / f"{split}.json")
        argv = ["evaluate", "--weights", NAME, "--split", split, "--num-images", count, "--batch-size", "1"]
        assert main([*argv, "--device", "cpu", "--out", str(reports[-1])]) == 0
    assert main(["weights", "rescore", NAME, *(word for path in reports for word in ("--metrics", str(path)))]) == 0
    entry = weights.get(NAME)
    assert [score["split"] for score in entry.scores()] == ["test", "val"]  # the entry's own test score replaced
    card = (copy / f"{NAME}.md").read_text()
    for score in entry.scores():
        assert score["command"] in card and "--batch-size" not in score["command"]
    assert f"agrnet evaluate --weights {NAME} --dataset synthetic --split test --num-images 3" in card
    argv = ["evaluate", "--weights", NAME, "--split", "val", "--num-images", "1", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "again.json")]) == 0
    assert main(["weights", "rescore", NAME, "--metrics", str(tmp_path / "again.json")]) == 0
    again = weights.get(NAME).scores()
    assert [(score["split"], score["num_images"]) for score in again] == [("test", 3), ("val", 1)]
    assert main(["evaluate", str(checkpoint), "--num-images", "2", "--device", "cpu", "--out", str(reports[0])]) == 0
    capsys.readouterr()
    assert main(["weights", "rescore", NAME, "--metrics", str(reports[0])]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"scores {checkpoint}, not these weights of {NAME}" in error, error


def test_an_evaluation_command_with_a_machine_path_is_refused():
    command = "agrnet evaluate /runs/a/last.pt --dataset lapa --split test --data-root /home/me/LaPa"
    with pytest.raises(ValueError, match="--data-root /home/me/LaPa is a path of one machine"):
        evaluation_command("x", command)
    fasseg = "agrnet evaluate /runs/last.pt --dataset fasseg --split test --data-root /data/f --amp none --flip"
    assert evaluation_command("x", fasseg) == (
        "agrnet evaluate --weights x --dataset fasseg --split test --data-root data/fasseg --flip"
    )


def test_verify_and_list_name_a_broken_entry_and_keep_the_others_usable(copy, capsys):
    shutil.copy(copy / f"{NAME}.safetensors", copy / "other.safetensors")
    other = json.loads((copy / f"{NAME}.json").read_text()) | {"name": "other", "file": "other.safetensors"}
    (copy / "other.json").write_text(json.dumps(other))
    assert main(["weights", "--dir", str(copy), "verify"]) == 0
    assert capsys.readouterr().out.splitlines() == ["other: ok", f"{NAME}: ok"]
    path = copy / f"{NAME}.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    (copy / "broken.json").write_text("{not json")
    assert main(["weights", "--dir", str(copy), "verify"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("broken: broken: weights metadata") and lines[1] == "other: ok"
    assert lines[2].startswith(f"{NAME}: broken: weights {NAME}: file {path} has sha256")
    assert main(["weights", "--dir", str(copy), "verify", "other"]) == 0
    assert main(["weights", "--dir", str(copy), "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].split()[:2] == ["broken", "broken"] and "cannot be read as JSON" in rows[2]
    assert weights.get("other", copy).load()[1] == LAPA


def test_shipped_cards_hold_no_machine_path_and_their_commands_reproduce_their_scores(shared_data, tmp_path):
    """Each score of each shipped card is measured again by the card's own command, on the data it names (FASSEG
    from the shared copy when ``data/fasseg`` is absent), and matches to 0.01 points."""
    for path in weights.PACKAGE_DIR.iterdir():
        text = path.read_text() if path.suffix in (".json", ".md") else ""
        assert not re.search(r"(?<![\w.])/(work|tmp|home|root|Users)/", text), f"{path} names a machine path"
    report = tmp_path / "report.json"
    for entry in weights.available(weights.PACKAGE_DIR).values():
        for score in entry.scores():
            words = shlex.split(score["command"])
            assert words[:4] == ["agrnet", "evaluate", "--weights", entry.name], score["command"]
            if "--data-root" in words:
                index = words.index("--data-root") + 1
                root = Path(words[index])
                if not root.is_dir():  # the test samples stand in for a download
                    root = shared_data / {"celebamask-hq": "celebamask-hq-sean"}.get(root.name, root.name)
                if not root.is_dir():
                    pytest.skip(f"{words[index]} is not here: cannot measure {entry.name} on it")
                words[index] = str(root)
            assert main([*words[1:], "--device", "cpu", "--out", str(report)]) == 0
            measured = json.loads(report.read_text())["mean_f1"]
            assert measured == pytest.approx(score["mean_f1"], abs=1e-4), f"{entry.name}: `{score['command']}`"


def test_weights_exported_with_flip_parse_with_it_unless_told_not_to(checkpoint, monkeypatch, tmp_path, capsys):
    folder = tmp_path / "weights"
    argv = ["weights", "--dir", str(folder), "export", str(checkpoint), "--name", NAME, "--terms", "MIT",
            "--terms-url", "https://example.org", "--commit", "0123abc", "--flip"]  # fmt: skip
    assert main(argv) == 0
    monkeypatch.setenv(weights.ENV_VAR, str(folder))
    entry = weights.get(NAME)
    assert entry.flip and json.loads((folder / f"{NAME}.json").read_text())["flip"] is True
    assert "flip test-time augmentation" in (folder / f"{NAME}.md").read_text()
    assert Predictor.from_weights(NAME, device="cpu").flip and not Predictor.from_weights(NAME, flip=False).flip
    reports = {}
    for option in ([], ["--no-flip"]):
        reports[tuple(option)] = tmp_path / f"report{len(option)}.json"
        options = ["--num-images", "2", "--device", "cpu", "--out", str(reports[tuple(option)])]
        assert main(["evaluate", "--weights", NAME, *option, *options]) == 0
    flipped, plain = (json.loads(path.read_text()) for path in reports.values())
    assert flipped["flip"] and flipped["command"].split()[-1] == "--flip"
    assert not plain["flip"] and "--no-flip" in plain["command"].split()
    capsys.readouterr()
    assert main(["weights", "rescore", NAME, "--metrics", str(reports[()])]) == 0
    rescored = weights.get(NAME)
    assert rescored.flip and rescored.metrics["command"].endswith("--flip")
    assert main(["weights", "rescore", NAME, "--metrics", str(reports[("--no-flip",)])]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "measured without flip test-time augmentation" in error, error


def test_a_metadata_field_of_the_wrong_kind_is_named_with_its_file(copy):
    metadata = copy / f"{NAME}.json"
    complete = json.loads(metadata.read_text())
    for field, value, expected in (("input_size", "abc", "a positive integer"), ("input_size", 0, "a positive"),
                                   ("metrics", [], "a JSON object"), ("sha256", 7, "a JSON string"),
                                   ("flip", "yes", "a JSON boolean"), ("flip", 1, "a JSON boolean")):  # fmt: skip
        metadata.write_text(json.dumps(complete | {field: value}))
        message = re.escape(f"{metadata}: field '{field}' is {value!r}; expected {expected}")
        with pytest.raises(ValueError, match=message):
            weights.get(NAME, copy)


def test_export_refuses_a_checkpoint_whose_schema_does_not_fit_its_model(checkpoint, tmp_path):
    payload = torch.load(checkpoint, weights_only=True)
    payload["schema"] = FASSEG.to_dict()  # 6 classes for a model of 11
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(ValueError, match=rf"checkpoint {broken}: model predicts 11 classes but schema 'fasseg'"):
        weights.export_weights(broken, "broken", "MIT", "https://example.org", out_dir=tmp_path / "weights")
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir()), "nothing is written"


def test_several_checkpoints_export_as_one_ensemble_that_loads_and_parses_as_one_model(
    checkpoint, tmp_path, monkeypatch, capsys
):
    from agrnet.checkpoint import model_state, save_checkpoint
    from agrnet.model import Ensemble

    torch.manual_seed(1)
    other = AGRNet(LAPA.num_classes, backbone="resnet18", channels=32, top_k=2)
    second = save_checkpoint(tmp_path / "seed1.pt", {**model_state(other, LAPA), "config": train_config(), "step": 7})
    folder = tmp_path / "weights"
    argv = ["weights", "--dir", str(folder), "export", str(checkpoint), str(second), "--name", NAME, "--terms", "MIT",
            "--terms-url", "https://example.org", "--commit", "0123abc"]  # fmt: skip
    assert main(argv) == 1
    assert "--command: an ensemble of 2 checkpoints needs the command that trains them all" in capsys.readouterr().err
    assert main([*argv, "--command", "agrnet experiment x --seeds 0 1"]) == 0
    entry = weights.get(NAME, folder)
    assert entry.members == 2 and json.loads((folder / f"{NAME}.json").read_text())["members"] == 2
    card = (folder / f"{NAME}.md").read_text()
    assert "An ensemble of 2 trainings of AGRNet" in card and "`Ensemble` of 2 `AGRNet(" in card
    model, _ = entry.load()
    reference = Ensemble([load_model(checkpoint)[0], other.eval()]).eval()
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert isinstance(model, Ensemble)
        assert torch.allclose(model(image).logits, reference(image).logits, atol=1e-2)
    monkeypatch.setenv(weights.ENV_VAR, str(folder))
    assert Predictor.from_weights(NAME, device="cpu")(torch.rand(3, 40, 40)).shape == (40, 40)
    with pytest.raises(ValueError, match=f"weights {NAME}: an ensemble of 2 models has no one backbone"):
        weights.backbone_file(NAME)
    fasseg = save_checkpoint(tmp_path / "fasseg.pt", {**model_state(other, FASSEG), "config": train_config()})
    with pytest.raises(ValueError, match=rf"checkpoint {fasseg}: predicts the 'fasseg' schema, {checkpoint} 'lapa'"):
        weights.export_weights([checkpoint, fasseg], "mixed", "MIT", "https://example.org", command="x",
                               out_dir=tmp_path / "mixed")  # fmt: skip
