"""Synthetic faces: deterministic, every class present, subject's left on the image's right, exact labels."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from agrnet.data import LAPA, SyntheticFaces, label_edges


@pytest.fixture(scope="module")
def faces() -> list[dict]:
    dataset = SyntheticFaces(num_images=48, size=96, seed=3)
    return [dataset[i] for i in range(len(dataset))]


def test_sample_format(faces: list[dict]) -> None:
    sample = faces[0]
    assert sample["image"].shape == (3, 96, 96) and sample["image"].dtype == torch.float32
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    assert sample["label"].shape == (96, 96) and sample["label"].dtype == torch.int64
    assert torch.equal(sample["edge"], label_edges(sample["label"]))
    assert sample["label"].max() < LAPA.num_classes and sample["label"].min() >= 0


def test_deterministic_per_seed_split_and_index() -> None:
    a, b = SyntheticFaces(8, 64, seed=7), SyntheticFaces(8, 64, seed=7)
    for index in (5, 0):
        assert torch.equal(a[index]["image"], b[index]["image"])
        assert torch.equal(a[index]["label"], b[index]["label"])
    assert not torch.equal(a[0]["label"], a[1]["label"])
    assert not torch.equal(a[0]["image"], SyntheticFaces(8, 64, seed=8)[0]["image"])
    assert not torch.equal(a[0]["image"], SyntheticFaces(8, 64, seed=7, split="val")[0]["image"])
    torch.manual_seed(123)  # torch's global generator plays no part
    assert torch.equal(a[3]["image"], SyntheticFaces(8, 64, seed=7)[3]["image"])


def test_same_images_through_dataloader_workers() -> None:
    dataset = SyntheticFaces(4, 48, seed=1)
    batch = next(iter(DataLoader(dataset, batch_size=4, num_workers=2)))
    assert torch.equal(batch["image"], torch.stack([dataset[i]["image"] for i in range(4)]))


def test_every_class_present_in_most_images(faces: list[dict]) -> None:
    present = torch.stack([torch.bincount(f["label"].flatten(), minlength=11) > 0 for f in faces]).float()
    share = present.mean(0)
    assert (present.sum(0) > 0).all(), f"a class never appears: {share.tolist()}"
    always = [i for i in range(11) if i != 8]  # inner mouth only when the mouth opens
    assert (share[always] >= 0.8).all(), dict(zip(LAPA.classes, share.tolist(), strict=True))
    assert 0.3 <= share[8] <= 0.9, "the mouth should open in some images, not all"


def test_subject_left_features_are_on_the_image_right(faces: list[dict]) -> None:
    def mean_column(label: torch.Tensor, class_id: int) -> float:
        return torch.nonzero(label == class_id)[:, 1].float().mean().item()

    checked = 0
    for face in faces:
        label = face["label"]
        for left, right in LAPA.flip_pairs:
            if (label == left).any() and (label == right).any():
                assert mean_column(label, left) > mean_column(label, right), face["name"]
                checked += 1
    assert checked > len(faces)


def test_features_sit_in_anatomical_order(faces: list[dict]) -> None:
    def mean_row(label: torch.Tensor, ids: tuple[int, ...]) -> float:
        return torch.nonzero(torch.isin(label, torch.tensor(ids)))[:, 0].float().mean().item()

    for face in faces[:20]:
        label = face["label"]
        if not all((label == i).any() for i in (2, 3, 4, 5, 6, 7, 9)):
            continue
        brows, eyes, nose, mouth = (mean_row(label, ids) for ids in ((2, 3), (4, 5), (6,), (7, 9)))
        assert brows < eyes < nose < mouth, face["name"]


def test_boundaries_are_not_trivial(faces: list[dict]) -> None:
    """The image must not give the label away: skin and nose share colours, so a per-colour lookup fails."""
    gaps = []
    for face in faces[:16]:
        image, label = face["image"], face["label"]
        skin, nose = image[:, label == 1].mean(1), image[:, label == 6].mean(1)
        gaps.append((skin - nose).abs().max().item())
    assert sum(gaps) / len(gaps) < 0.15


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_images"):
        SyntheticFaces(0)
    with pytest.raises(ValueError, match="size"):
        SyntheticFaces(2, size=8)
    with pytest.raises(ValueError, match="split"):
        SyntheticFaces(2, split="holdout")
