"""Readers on their fixtures: the real samples in ../shared/data where there are some, else tiny folders written
here in each release's exact layout; plus the errors bad files give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agrnet.config import preset_config
from agrnet.data import (
    LIP,
    CelebAMaskHQ,
    Fasseg,
    Helen,
    LaPa,
    SyntheticFaces,
    TrainTransform,
    build_dataset,
    default_cache_dir,
    label_edges,
)
from agrnet.data.base import DECODED, DecodeCache, read_id_map
from agrnet.data.datasets import MappedLabels, SplitUnion
from agrnet.data.fasseg import fasseg_person, find_test_overlap, pixel_digest, snap_to_palette
from agrnet.data.labels import CELEBAMASK_HQ, CELEBAMASK_HQ_AS_FASSEG, CELEBAMASK_HQ_PARTS, LabelMapping
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
    train, test = Fasseg(root, "train"), Fasseg(root, "test")
    assert (len(train), len(test)) == (20, 50)
    _check_sample(train[0], 6)
    multipose = Fasseg(root, "multipose-train")
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
    assert len(union) == len(Fasseg(root, "train")) + len(Fasseg(root, "multipose-train"))
    frontal, multipose = union[19], union[20]
    assert frontal["name"] == Fasseg(root, "train").load(19)["name"]
    assert multipose["name"] == Fasseg(root, "multipose-train").load(0)["name"]
    assert "yaw" not in multipose, "extras only some parts carry are dropped"
    batch = torch.utils.data.default_collate([frontal, multipose])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["edge"].dtype == torch.bool
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        build_dataset("fasseg", root, "train+validation")


def test_fasseg_overlap_finds_the_six_test_faces_published_in_train(shared_data: Path) -> None:
    """As published, six frontal02 test images are train images (with re-annotated labels): found by pixels."""
    root = shared_data / "fasseg"
    pairs = find_test_overlap(root)
    assert pairs == [("13", "17"), ("17", "16"), ("20", "18"), ("23", "19"), ("26", "15"), ("44", "20")]
    for test_name, train_name in pairs:
        test_file = next((root / "V2" / "Test_RGB").glob(f"{test_name}.*"))
        train_file = next((root / "V2" / "Train_RGB").glob(f"{train_name}.*"))
        assert test_file.read_bytes() == train_file.read_bytes()
    unseen = Fasseg(root, "test-unseen")
    assert len(unseen) == 44 and not {name for name, _ in pairs} & {stem for _, stem, *_ in unseen.items}


def test_fasseg_val_is_held_out_of_fit_by_person_and_never_a_test_image(shared_data: Path) -> None:
    root = shared_data / "fasseg"
    val, fit = Fasseg(root, "val"), Fasseg(root, "fit")
    published = Fasseg(root, "train").items + Fasseg(root, "multipose-train").items
    assert (len(val), len(fit)) == (30, 172) and set(val.items) | set(fit.items) == set(published)
    assert not set(val.items) & set(fit.items)
    assert not {fasseg_person(item) for item in val.items if item[0]} & {fasseg_person(i) for i in fit.items if i[0]}
    test_pixels = {pixel_digest(item[2]) for item in Fasseg(root, "test").items}
    assert not test_pixels & {pixel_digest(item[2]) for item in val.items}
    assert [item[:2] for item in Fasseg(root, "val").items] == [item[:2] for item in val.items], "a fixed draw"
    config = preset_config("fasseg")
    assert (config.train_split, config.val_split) == ("fit", "val"), "the preset chooses on val, never on test"
    frontal = next(i for i, item in enumerate(val.items) if not item[0])
    multipose = next(i for i, item in enumerate(val.items) if item[0])
    keys = [set(val[index]) for index in (frontal, multipose)]
    assert keys[0] == keys[1] and "yaw" not in keys[1], "a mixed split's samples carry the same keys (collate)"


def test_pixel_overlap_is_found_across_file_formats(tmp_path: Path) -> None:
    """A test image that is a train image saved as BMP instead of PNG, with another label, is the same face."""
    palette = FASSEG_SCHEMA.palette
    images = {n: _rgb(8, 8, seed=n) for n in (1, 2, 3)}
    for part, names in (("Train", (1, 2)), ("Test", (3, 2))):
        for n in names:
            suffix = ".bmp" if part == "Test" else ".png"
            _save(tmp_path / "V2" / f"{part}_RGB" / f"{n}{suffix}", images[n])
            _save(tmp_path / "V2" / f"{part}_Labels" / f"{n}{suffix}", palette[np.full((8, 8), n % 6)])
    assert find_test_overlap(tmp_path) == [("2", "2")]


def test_fasseg_snaps_colours_and_reads_bmp(tmp_path: Path) -> None:
    palette = FASSEG_SCHEMA.palette
    label = np.zeros((8, 8, 3), np.uint8)
    label[:] = palette[1]
    label[2:4, 2:4] = palette[3]
    label[6, 6] = (250, 240, 10)  # anti-aliased skin
    label[7, 7] = (128, 3, 2)  # anti-aliased hair
    _save(tmp_path / "V2" / "Train_RGB" / "1.bmp", _rgb(8, 8))
    _save(tmp_path / "V2" / "Train_Labels" / "1.bmp", label)
    sample = Fasseg(tmp_path, "train")[0]
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


# FASSEG as published ----------------------------------------------------------------------------------------------

PUBLISHED_YAWS = ("-90", "-75", "-60", "-45", "-30", "-15", "0", "+15", "+30", "+45", "+60", "+75", "+90")
PUBLISHED_LABELLED = ("0", "-30", "+30", "-60", "+60", "+90")


def published_stem(person: int, yaw: str) -> str:
    """A Pointing04-style name, as FASSEG uses: ``personne<person><series><pose>+0<yaw>``."""
    signed = yaw if yaw[0] in "+-" else f"+{yaw}"
    return f"personne{person:02d}1{PUBLISHED_YAWS.index(yaw):02d}+0{signed}"


def published_multipose_test(root: Path) -> Path:
    """FASSEG multipose01's test split exactly as published: RGB BMPs at 13 yaws, colour labels (BMP) at 6."""
    palette = FASSEG_SCHEMA.palette
    ids = np.zeros((24, 20), np.int64)
    ids[4:20, 4:16] = 1
    ids[4:7, 4:16] = 2
    ids[9:11, 6:9] = ids[9:11, 11:14] = 3
    ids[12:15, 9:11] = 4
    ids[16:18, 7:13] = 5
    for index, yaw in enumerate(PUBLISHED_YAWS):
        for person in (1, 2):
            stem = published_stem(person, yaw)
            _save(root / "V3" / "Test_RGB" / yaw / f"{stem}.bmp", _rgb(24, 20, index * 2 + person))
            if yaw in PUBLISHED_LABELLED:
                _save(root / "V3" / "Test_labels" / yaw / f"{stem}.bmp", palette[ids].astype(np.uint8))
    return root


def test_fasseg_published_multipose_test_pairs_only_labelled_images(tmp_path: Path) -> None:
    root = published_multipose_test(tmp_path / "fasseg")
    with pytest.warns(UserWarning, match=r"FASSEG multipose-test: 14 images have no label and are skipped") as caught:
        dataset = Fasseg(root, "multipose-test")
    (warning,) = caught
    for yaw in set(PUBLISHED_YAWS) - set(PUBLISHED_LABELLED):
        assert f"Test_RGB/{yaw}/ (all 2)" in str(warning.message)
    assert len(dataset) == 12 and len(dataset.unlabelled) == 14
    assert sorted({sample["yaw"] for sample in dataset}) == sorted(int(yaw) for yaw in PUBLISHED_LABELLED)
    for sample in dataset:
        _check_sample(sample, 6)
        assert sample["label"][10, 7] == 3


def test_fasseg_names_single_unlabelled_files_and_a_label_without_its_image(tmp_path: Path) -> None:
    root = published_multipose_test(tmp_path / "fasseg")
    (root / "V3" / "Test_labels" / "0" / f"{published_stem(2, '0')}.bmp").unlink()
    (root / "V3" / "Test_RGB" / "+30" / f"{published_stem(1, '+30')}.bmp").unlink()
    with pytest.warns(UserWarning, match=r"15 images .*Test_RGB/0/personne02106\+0\+0\.bmp"):
        dataset = Fasseg(root, "multipose-test")
    with pytest.raises(FileNotFoundError, match=r"personne01108\+0\+30\.png: file is missing"):
        [dataset.load(i) for i in range(len(dataset))]


def test_fasseg_published_layout_is_prepared_and_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agrnet.cli import main
    from agrnet.experiments import Evaluation, score
    from tests.tiny_model import tiny_model

    root = published_multipose_test(tmp_path / "fasseg")
    assert main(["prepare", "fasseg", str(root), "--split", "multipose-test", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fasseg multipose-test: 12 samples, 0 bad, 14 unlabelled, skipped" in out
    assert f"V3/Test_RGB/-90/{published_stem(1, '-90')}.bmp" in out and "bad file" not in out
    model = tiny_model(FASSEG_SCHEMA)
    with pytest.warns(UserWarning, match="no label"):
        report = score(model, root, Evaluation("multipose-test", by_yaw=True), size=32)
    assert report["num_images"] == 12 and set(report["by_yaw"]) == {str(int(y)) for y in PUBLISHED_LABELLED}
    assert 0.0 <= report["mean_f1"] <= 1.0


# Decoded samples are cached ---------------------------------------------------------------------------------------


def test_decode_cache_decodes_each_file_once_and_notices_changes(tmp_path: Path) -> None:
    path = _save(tmp_path / "label.png", np.full((6, 5), 3, np.uint8))
    cache = DecodeCache(limit_bytes=1000)
    calls: list[Path] = []

    def decode(file: Path) -> np.ndarray:
        calls.append(file)
        return np.asarray(Image.open(file)).copy()

    first = cache.get(path, "ids", decode)
    first[0, 0] = 99  # callers get copies: changing one never changes the cache
    again = cache.get(path, "ids", decode)
    assert len(calls) == 1 and again[0, 0] == 3 and (cache.hits, cache.misses) == (1, 1)
    assert cache.get(path, "other kind", decode) is not None and len(calls) == 2
    _save(path, np.full((7, 5), 4, np.uint8))  # a new version of the file: another size, so another key
    assert cache.get(path, "ids", decode)[0, 0] == 4 and len(calls) == 3
    big = _save(tmp_path / "big.png", np.zeros((40, 40), np.uint8))
    cache.get(big, "ids", decode)
    cache.get(big, "ids", decode)
    assert len(calls) == 5 and cache.nbytes <= 1000, "a full cache decodes without storing"
    with pytest.raises(FileNotFoundError, match="missing.png: file is missing"):
        cache.get(tmp_path / "missing.png", "ids", lambda file: read_id_map(file))


def test_readers_share_the_process_cache(shared_data: Path) -> None:
    DECODED.clear()
    dataset = Fasseg(shared_data / "fasseg", "test")
    first = dataset[0]
    misses = DECODED.misses
    second = Fasseg(shared_data / "fasseg", "test")[0]
    assert misses == 2 and DECODED.misses == 2 and DECODED.hits == 2, "image and label decoded once"
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["label"], second["label"])


# CelebAMask-HQ as FASSEG's classes -----------------------------------------------------------------------------------


def test_celebamask_classes_read_as_fasseg_components() -> None:
    ids = {name: CELEBAMASK_HQ.classes.index(name) for name in CELEBAMASK_HQ.classes}
    label = torch.tensor([ids[name] for name in CELEBAMASK_HQ.classes] + [255])
    mapped = CELEBAMASK_HQ_AS_FASSEG(label).tolist()
    expected = {
        "background": 0, "skin": 1, "nose": 4, "eye_g": 255, "l_eye": 3, "r_eye": 3, "l_brow": 2, "r_brow": 2,
        "l_ear": 1, "r_ear": 1, "mouth": 5, "u_lip": 5, "l_lip": 5, "hair": 2, "hat": 0, "ear_r": 0, "neck_l": 0,
        "neck": 1, "cloth": 0,
    }  # fmt: skip
    assert mapped == [expected[name] for name in CELEBAMASK_HQ.classes] + [255]
    with pytest.raises(ValueError, match=r"unknown classes \['beard'\]"):
        LabelMapping(CELEBAMASK_HQ, FASSEG_SCHEMA, {"beard": "hair"})


def test_celebamask_folder_layout_is_read_and_mapped(tmp_path: Path) -> None:
    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = CELEBAMASK_HQ.classes.index("l_lip")
    label[0, 0] = CELEBAMASK_HQ.classes.index("eye_g")
    _save(tmp_path / "images" / "7.png", _rgb(8, 8))  # half the label's size: resized to its grid
    _save(tmp_path / "labels" / "7.png", label)
    dataset = build_dataset("celebamask-hq", tmp_path, "all")
    assert type(dataset).__name__ == "CelebAMaskHQFolder" and len(dataset) == 1
    sample = MappedLabels(dataset, CELEBAMASK_HQ_AS_FASSEG)[0]
    assert sample["image"].shape == (3, 16, 16) and sample["name"] == "7"
    assert sample["label"][5, 5] == 5 and sample["label"][0, 0] == 255 and sample["label"][15, 15] == 0
    assert sample["edge"].shape == (16, 16)
    with pytest.raises(ValueError, match="use split 'all'"):
        build_dataset("celebamask-hq", tmp_path, "test")
    _save(tmp_path / "images" / "8.png", _rgb(8, 8))
    with pytest.raises(FileNotFoundError, match=r"no label for image\(s\) 8"):
        build_dataset("celebamask-hq", tmp_path, "all")
    with pytest.raises(ValueError, match="reads celebamask-hq labels, the dataset has fasseg"):
        MappedLabels(Fasseg.__new__(Fasseg), CELEBAMASK_HQ_AS_FASSEG)
