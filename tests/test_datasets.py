"""Readers on their fixtures: the real samples in ../shared/data where there are some, else tiny folders written
here in each release's exact layout; plus the errors bad files give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agrnet.data import (
    FASSEG,
    LIP,
    CelebAMaskHQ,
    Helen,
    LaPa,
    SyntheticFaces,
    TrainTransform,
    build_dataset,
    default_cache_dir,
    label_edges,
)
from agrnet.data.datasets import SplitUnion, snap_to_palette
from agrnet.data.labels import CELEBAMASK_HQ_PARTS
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _check_sample(sample: dict, num_classes: int) -> None:
    image, label, edge = sample["image"], sample["label"], sample["edge"]
    assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 3
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label.dtype == torch.int64 and label.shape == image.shape[1:]
    assert edge.dtype == torch.bool and torch.equal(edge, label_edges(label))
    valid = label[label != 255]
    assert valid.min() >= 0 and valid.max() < num_classes
    assert isinstance(sample["name"], str)


# LaPa -------------------------------------------------------------------------------------------------------------


def _lapa(root: Path, names: tuple[str, ...] = ("a", "b"), split: str = "train") -> Path:
    for i, name in enumerate(names):
        _save(root / split / "images" / f"{name}.jpg", _rgb(20, 24, i))
        label = np.zeros((20, 24), np.uint8)
        label[5:15, 6:18] = 1
        label[8:10, 8:11] = 4 + i
        _save(root / split / "labels" / f"{name}.png", label)
        points = "\n".join(f"{x}.5 {x + 1}.25" for x in range(106))
        (root / split / "landmarks").mkdir(parents=True, exist_ok=True)
        (root / split / "landmarks" / f"{name}.txt").write_text(f"106\n{points}\n")
    return root


def test_lapa_reads_its_layout(tmp_path: Path) -> None:
    dataset = LaPa(_lapa(tmp_path), "train")
    assert len(dataset) == 2 and dataset.schema.name == "lapa"
    sample = dataset[1]
    _check_sample(sample, 11)
    assert sample["name"] == "b" and sample["image"].shape == (3, 20, 24)
    assert sample["label"][9, 9] == 5 and sample["label"][0, 0] == 0
    with_points = LaPa(tmp_path, "train", landmarks=True)[0]
    assert with_points["landmarks"].shape == (106, 2)
    assert with_points["landmarks"][3].tolist() == [3.5, 4.25]


def test_lapa_missing_split_and_unpaired_files(tmp_path: Path) -> None:
    _lapa(tmp_path)
    with pytest.raises(FileNotFoundError, match="val"):
        LaPa(tmp_path, "val")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        LaPa(tmp_path, "dev")
    (tmp_path / "train" / "images" / "a.jpg").unlink()
    dataset = LaPa(tmp_path, "train")
    assert len(dataset) == 2, "a label without its image is still listed, so that it is reported"
    with pytest.raises(FileNotFoundError, match=r"a\.jpg: file is missing"):
        dataset[0]


# CelebAMask-HQ ----------------------------------------------------------------------------------------------------


def test_celebamask_merge_reproduces_the_official_maps(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "celebamask-hq-mini"
    dataset = CelebAMaskHQ(root, "all", cache_dir=tmp_path)
    assert [dataset[i]["name"] for i in range(len(dataset))] == ["0", "1", "2", "3"]
    for index in range(len(dataset)):
        sample = dataset[index]
        _check_sample(sample, 19)
        official = np.asarray(Image.open(root / "merged" / f"{sample['name']}.png"))
        assert sample["image"].shape == (3, 512, 512)
        assert np.array_equal(sample["label"].numpy(), official), f"merged map {sample['name']} differs"
    cached = sorted(p.name for p in (tmp_path / "celebamask-hq").rglob("*") if p.is_file())
    assert cached == ["0.png", "1.png", "2.png", "3.png"], "only the merged maps, no leftover temporary files"
    again = CelebAMaskHQ(root, "all", cache_dir=tmp_path)
    assert torch.equal(again[2]["label"], dataset[2]["label"])


def _celebamask(root: Path, count: int = 6) -> Path:
    for i in range(count):
        _save(root / "CelebA-HQ-img" / f"{i}.jpg", _rgb(32, 32, i))
        skin = np.zeros((16, 16), np.uint8)
        skin[2:14, 2:14] = 255
        _save(root / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_skin.png", skin)
        hair = np.zeros((16, 16), np.uint8)
        hair[0:5, :] = 255
        _save(root / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_hair.png", hair)
        l_eye = np.zeros((16, 16), np.uint8)
        l_eye[6:8, 9:12] = 255
        _save(root / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_l_eye.png", l_eye)
    return root


def test_celebamask_merge_order_and_cache_location(tmp_path: Path) -> None:
    root = _celebamask(tmp_path / "release", 1)
    files_before = sorted(root.rglob("*"))
    cache = tmp_path / "cache"
    sample = CelebAMaskHQ(root, "all", cache_dir=cache)[0]
    label = sample["label"]
    hair, skin, l_eye = (CELEBAMASK_HQ_PARTS.index(p) + 1 for p in ("hair", "skin", "l_eye"))
    assert label[3, 5] == hair, "hair comes after skin in the official order, so it overwrites it"
    assert label[7, 10] == l_eye and label[10, 5] == skin and label[15, 15] == 0
    assert sample["image"].shape == (3, 16, 16), "the 2:1 image is resized to the mask grid"
    assert sorted(root.rglob("*")) == files_before, "nothing is written into the dataset root"
    assert len(list(cache.rglob("*.png"))) == 1


def test_celebamask_cache_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGRNET_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    root = _celebamask(tmp_path / "release", 1)
    CelebAMaskHQ(root, "all")[0]
    assert len(list((tmp_path / "env-cache" / "celebamask-hq").rglob("0.png"))) == 1


def test_celebamask_splits_follow_the_partition_files(tmp_path: Path) -> None:
    root = _celebamask(tmp_path, 6)
    originals = [5, 1, 3, 6, 2, 4]  # CelebA file numbers of CelebA-HQ images 0..5
    rows = "\n".join(f"{i} {o - 1} {o:06d}.jpg" for i, o in enumerate(originals))
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(f"idx orig_idx orig_file\n{rows}\n")
    partition = {1: 0, 2: 0, 3: 1, 4: 2, 5: 0, 6: 1}
    (root / "list_eval_partition.txt").write_text("".join(f"{o:06d}.jpg {p}\n" for o, p in partition.items()))
    splits = {s: [d["name"] for d in CelebAMaskHQ(root, s, cache_dir=tmp_path / "c")] for s in ("train", "val", "test")}
    assert splits == {"train": ["0", "1", "4"], "val": ["2", "3"], "test": ["5"]}


def test_celebamask_needs_partition_files_for_named_splits(tmp_path: Path) -> None:
    root = _celebamask(tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="CelebA-HQ-to-CelebA-mapping.txt"):
        CelebAMaskHQ(root, "train")


def test_celebamask_image_without_masks(tmp_path: Path) -> None:
    root = _celebamask(tmp_path / "r", 1)
    _save(root / "CelebA-HQ-img" / "1.jpg", _rgb(32, 32))
    with pytest.raises(FileNotFoundError, match="no part masks for image 1"):
        CelebAMaskHQ(root, "all", cache_dir=tmp_path / "c")[1]


# Helen ------------------------------------------------------------------------------------------------------------


def test_helen_takes_the_argmax_of_its_class_maps(tmp_path: Path) -> None:
    names = ("100032540_1", "10405146_1")
    for n, name in enumerate(names):
        _save(tmp_path / "images" / f"{name}.jpg", _rgb(12, 10, n))
        for k in range(11):
            soft = np.full((12, 10), 10 if k == 0 else 0, np.uint8)
            if k == 1:
                soft[2:10, 2:8] = 200
            if k == 4:
                soft[4:6, 5:7] = 250
            _save(tmp_path / "labels" / name / f"{name}_lbl{k:02d}.png", soft)
    (tmp_path / "exemplars.txt").write_text("".join(f"{i + 1} , {name}\n" for i, name in enumerate(names)))
    dataset = Helen(tmp_path, "train")
    assert len(dataset) == 2
    sample = dataset[1]
    _check_sample(sample, 11)
    assert sample["name"] == "10405146_1"
    assert sample["label"][5, 5] == 4 and sample["label"][3, 3] == 1 and sample["label"][0, 0] == 0
    with pytest.raises(FileNotFoundError, match="tuning.txt"):
        Helen(tmp_path, "val")


# LIP --------------------------------------------------------------------------------------------------------------


def test_lip_mini_loads_inside_its_schema(shared_data: Path) -> None:
    for split in ("train", "val"):
        dataset = LIP(shared_data / "lip-mini", split)
        assert len(dataset) == 1
        sample = dataset[0]
        _check_sample(sample, 20)
        assert sample["label"].max() <= 19
    assert LIP(shared_data / "lip-mini", "val")[0]["image"].shape == (3, 377, 130), "grayscale becomes RGB"


# FASSEG -----------------------------------------------------------------------------------------------------------


def test_fasseg_frontal_and_multipose(shared_data: Path) -> None:
    root = shared_data / "fasseg"
    train, test = FASSEG(root, "train"), FASSEG(root, "test")
    assert (len(train), len(test)) == (20, 50)
    _check_sample(train[0], 6)
    multipose = FASSEG(root, "multipose-train")
    assert len(multipose) == 182
    yaws = {int(p.name) for p in (root / "V3" / "Train_RGB").iterdir()}
    seen = set()
    for index in range(0, len(multipose), 30):
        sample = multipose[index]
        _check_sample(sample, 6)
        assert sample["name"].split("/")[0] == f"{sample['yaw']:+d}".replace("+0", "0")
        seen.add(sample["yaw"])
    assert seen <= yaws and len(seen) > 3
    assert all(isinstance(multipose[i]["yaw"], int) for i in (0, len(multipose) - 1))
    assert "yaw" not in train[0]


def test_fasseg_split_union_reads_frontal_then_multipose_and_collates(shared_data: Path) -> None:
    root = shared_data / "fasseg"
    union = build_dataset("fasseg", root, "train+multipose-train", transform=TrainTransform(32, FASSEG_SCHEMA))
    assert isinstance(union, SplitUnion) and union.schema == FASSEG_SCHEMA
    assert len(union) == len(FASSEG(root, "train")) + len(FASSEG(root, "multipose-train"))
    frontal, multipose = union[19], union[20]
    assert frontal["name"] == FASSEG(root, "train").load(19)["name"]
    assert multipose["name"] == FASSEG(root, "multipose-train").load(0)["name"]
    assert "yaw" not in multipose, "extras only some parts carry are dropped"
    batch = torch.utils.data.default_collate([frontal, multipose])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["edge"].dtype == torch.bool
    with pytest.raises(ValueError, match="unknown split 'val'"):
        build_dataset("fasseg", root, "train+val")


def test_fasseg_snaps_colours_and_reads_bmp(tmp_path: Path) -> None:
    palette = FASSEG_SCHEMA.palette
    label = np.zeros((8, 8, 3), np.uint8)
    label[:] = palette[1]
    label[2:4, 2:4] = palette[3]
    label[6, 6] = (250, 240, 10)  # anti-aliased skin
    label[7, 7] = (128, 3, 2)  # anti-aliased hair
    _save(tmp_path / "V2" / "Train_RGB" / "1.bmp", _rgb(8, 8))
    _save(tmp_path / "V2" / "Train_Labels" / "1.bmp", label)
    sample = FASSEG(tmp_path, "train")[0]
    assert sample["label"][3, 3] == 3 and sample["label"][6, 6] == 1 and sample["label"][7, 7] == 2
    assert sample["label"][0, 0] == 1


def test_snap_to_palette_matches_brute_force_nearest_colour() -> None:
    rng = np.random.default_rng(1)
    palette = FASSEG_SCHEMA.palette
    rgb = palette[rng.integers(0, len(palette), (40, 30))]
    off = rng.random((40, 30)) < 0.1
    rgb[off] = rng.integers(0, 256, (int(off.sum()), 3))
    brute = ((rgb[..., None, :].astype(int) - palette.astype(int)) ** 2).sum(-1).argmin(-1)
    assert np.array_equal(snap_to_palette(rgb, palette), brute)


# Bad files --------------------------------------------------------------------------------------------------------


def test_truncated_image_names_the_file(tmp_path: Path) -> None:
    _lapa(tmp_path)
    path = tmp_path / "train" / "images" / "a.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RuntimeError, match=r"a\.jpg: cannot decode image"):
        LaPa(tmp_path, "train")[0]


def test_non_image_names_the_file(tmp_path: Path) -> None:
    _lapa(tmp_path)
    (tmp_path / "train" / "labels" / "b.png").write_text("not a png")
    with pytest.raises(RuntimeError, match=r"b\.png: not a readable image"):
        LaPa(tmp_path, "train")[1]


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    _lapa(tmp_path)
    _save(tmp_path / "train" / "labels" / "a.png", np.zeros((10, 24), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png: label is 24x10 \(WxH\) but its image .*a\.jpg is 24x20"):
        LaPa(tmp_path, "train")[0]


def test_ids_outside_the_schema_name_the_file(tmp_path: Path) -> None:
    _lapa(tmp_path)
    label = np.zeros((20, 24), np.uint8)
    label[0, 0], label[1, 1] = 11, 37
    _save(tmp_path / "train" / "labels" / "b.png", label)
    with pytest.raises(ValueError, match=r"b\.png: label ids \[11, 37\] are outside the lapa schema"):
        LaPa(tmp_path, "train")[1]


def test_ignore_index_is_allowed(tmp_path: Path) -> None:
    _lapa(tmp_path)
    label = np.zeros((20, 24), np.uint8)
    label[:3] = 255
    _save(tmp_path / "train" / "labels" / "a.png", label)
    assert (LaPa(tmp_path, "train")[0]["label"] == 255).sum() == 3 * 24


# build_dataset ----------------------------------------------------------------------------------------------------


def test_build_dataset_by_name(tmp_path: Path) -> None:
    _lapa(tmp_path)
    assert isinstance(build_dataset("lapa", tmp_path, "train"), LaPa)
    synthetic = build_dataset("synthetic", split="val", num_images=3, size=32)
    assert isinstance(synthetic, SyntheticFaces) and len(synthetic) == 3 and synthetic.schema.name == "lapa"
    with pytest.raises(ValueError, match="needs a root"):
        build_dataset("lip")
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        build_dataset("coco", tmp_path)
    with pytest.raises(IndexError, match="out of range"):
        synthetic[3]
