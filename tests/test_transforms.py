"""Training and evaluation transforms: geometry, fills, the left/right swap, edges, reproducibility."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from agrnet.data import CELEBAMASK_HQ, LAPA, EvalTransform, SyntheticFaces, TrainTransform, label_edges
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.transforms import (
    Appearance,
    LowResolution,
    RaisedHand,
    clothes,
    dead_leaves,
    hand,
    low_resolution,
)


def _halves_sample(height: int = 32, width: int = 40) -> dict:
    """Image dark on the left, bright on the right; label: right brow + right eye on the left half, left ones on
    the right half (a subject facing the camera), plus a row of nose."""
    image = torch.zeros(3, height, width)
    image[:, :, width // 2 :] = 1.0
    label = torch.full((height, width), 3)
    label[:, width // 2 :] = 2
    label[height // 2 :, : width // 2] = 5
    label[height // 2 :, width // 2 :] = 4
    label[0] = 6
    return {"image": image, "label": label, "name": "halves", "yaw": 15}


def test_output_format_and_recomputed_edges() -> None:
    transform = TrainTransform(48, LAPA)
    sample = transform(SyntheticFaces(1, 64, seed=0)[0])
    assert sample["image"].shape == (3, 48, 48) and sample["image"].dtype == torch.float32
    assert sample["label"].shape == (48, 48) and sample["label"].dtype == torch.int64
    assert type(sample["image"]) is torch.Tensor and type(sample["label"]) is torch.Tensor
    assert torch.equal(sample["edge"], label_edges(sample["label"]))
    ids = set(sample["label"].unique().tolist())
    assert ids <= set(range(LAPA.num_classes)) | {255}


def test_flip_swaps_left_and_right_exactly_once() -> None:
    transform = TrainTransform((32, 40), LAPA, rotation=0.0, scale=(1.0, 1.0), flip=True)
    original = _halves_sample()
    outcomes = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(original)
        flipped = out["image"][0, 5, 0] > 0.5  # the bright half moved to the left
        outcomes.add(bool(flipped))
        if flipped:
            # What was at the image's right (subject's left: ids 2, 4) moved to the left and became the subject's
            # right after mirroring, so each half keeps its ids.
            assert torch.equal(out["label"], original["label"])
            # Pixels flipped without the swap would put ids 2/4 on the left: check that did not happen.
            assert (out["label"][1:, :20] != 2).all() and (out["label"][16:, :20] == 5).all()
        else:
            assert torch.equal(out["label"], original["label"])
            assert torch.equal(out["image"], original["image"])
    assert outcomes == {True, False}, "both outcomes should occur in 12 draws"


def test_flip_moves_ids_of_an_asymmetric_map() -> None:
    transform = TrainTransform(8, CELEBAMASK_HQ, rotation=0.0, scale=(1.0, 1.0))
    label = torch.zeros(8, 8, dtype=torch.int64)
    label[2, 1] = 4  # l_eye on the image left, nothing on the right
    label[5, 6] = 12  # l_lip (lower lip) is not a side class
    sample = {"image": torch.rand(3, 8, 8), "label": label, "name": "x"}
    for seed in range(10):
        torch.manual_seed(seed)
        out = transform(sample)
        if not torch.equal(out["image"], sample["image"]):
            assert out["label"][2, 6] == 5 and (out["label"] == 4).sum() == 0
            assert out["label"][5, 1] == 12
            return
    pytest.fail("no flip in 10 draws")


def test_no_flip_when_disabled() -> None:
    transform = TrainTransform((32, 40), LAPA, rotation=0.0, scale=(1.0, 1.0), flip=False)
    original = _halves_sample()
    for seed in range(6):
        torch.manual_seed(seed)
        assert torch.equal(transform(original)["image"], original["image"])


def test_padding_fills_image_with_zero_and_label_with_ignore() -> None:
    transform = TrainTransform(40, LAPA, rotation=0.0, scale=(0.75, 0.75), flip=False)
    sample = {"image": torch.ones(3, 40, 40), "label": torch.ones(40, 40, dtype=torch.int64), "name": "x"}
    out = transform(sample)
    assert out["label"][0, 0] == 255 and out["image"][:, 0, 0].eq(0).all()
    assert out["label"][20, 20] == 1 and out["image"][:, 20, 20].eq(1).all()
    assert not out["edge"].any(), "the border of the padding is not a class boundary"


def test_resize_matches_the_evaluation_resize() -> None:
    wide = {"image": torch.rand(3, 20, 40), "label": torch.ones(20, 40, dtype=torch.int64), "name": "x"}
    out = TrainTransform(40, LAPA, rotation=0.0, scale=(1.0, 1.0), flip=False)(wide)
    assert out["label"].shape == (40, 40) and (out["label"] == 1).all()
    torch.testing.assert_close(out["image"], EvalTransform(40)(wide)["image"], atol=1e-5, rtol=0)


def test_rotation_rotates_image_and_label_together() -> None:
    transform = TrainTransform(64, LAPA, rotation=30.0, scale=(0.75, 1.25), flip=False)
    sample = SyntheticFaces(1, 64, seed=2)[0]
    torch.manual_seed(0)
    out = transform(sample)
    assert not torch.equal(out["label"], sample["label"])
    # Where the label says skin, the image must still show skin-coloured pixels: compare mean colours per class.
    skin_before = sample["image"][:, sample["label"] == 1].mean(1)
    skin_after = out["image"][:, out["label"] == 1].mean(1)
    assert (skin_before - skin_after).abs().max() < 0.05


def test_seeded_reproducibility_and_extras_pass_through() -> None:
    transform = TrainTransform(48, LAPA)
    sample = _halves_sample()
    torch.manual_seed(42)
    first = transform(sample)
    torch.manual_seed(42)
    second = transform(sample)
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["label"], second["label"])
    assert first["yaw"] == 15 and first["name"] == "halves"


def test_dataloader_workers_replay_with_a_seeded_generator() -> None:
    dataset = SyntheticFaces(4, 48, seed=0, transform=TrainTransform(40, LAPA))

    def run() -> torch.Tensor:
        loader = DataLoader(dataset, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(5))
        return next(iter(loader))["label"]

    assert torch.equal(run(), run())


def test_landmarks_are_refused() -> None:
    sample = {**_halves_sample(), "landmarks": torch.zeros(106, 2)}
    with pytest.raises(ValueError, match="landmarks"):
        TrainTransform(32, LAPA)(sample)


def test_eval_transform_resizes_only_the_image() -> None:
    sample = SyntheticFaces(1, (60, 50), seed=0)[0]
    out = EvalTransform(32)(sample)
    assert out["image"].shape == (3, 32, 32)
    assert out["original_size"] == (60, 50)
    assert out["label"] is sample["label"] and out["edge"] is sample["edge"]
    assert 0.0 <= out["image"].min() and out["image"].max() <= 1.0
    assert EvalTransform((24, 16))(sample)["image"].shape == (3, 24, 16)
    with pytest.raises(ValueError, match="size"):
        EvalTransform(0)


def test_dataset_applies_eval_transform_and_adds_full_size_edges() -> None:
    dataset = SyntheticFaces(2, 64, seed=0, transform=EvalTransform(32))
    sample = dataset[1]
    assert sample["image"].shape == (3, 32, 32) and sample["label"].shape == (64, 64)
    assert torch.equal(sample["edge"], label_edges(sample["label"]))


def _face_sample() -> dict:
    """A 64 x 48 FASSEG-schema face: background around skin, two eyes, a mouth."""
    label = torch.zeros(64, 48, dtype=torch.long)
    label[10:60, 8:40] = 1
    label[24:28, 12:20] = label[24:28, 28:36] = 3
    label[44:48, 18:30] = 5
    return {"image": torch.full((3, 64, 48), 0.5), "label": label, "name": "face"}


def test_appearance_changes_the_image_where_it_should_and_never_the_label() -> None:
    sample = _face_sample()
    label = sample["label"]
    torch.manual_seed(0)

    def drawn(kind: str) -> torch.Tensor:
        image, kept = Appearance(FASSEG_SCHEMA, (kind,), p=1.0)(sample["image"], label)
        assert kept is label, f"{kind} leaves the label as it is"
        return image

    background = drawn("background")
    assert (background[:, label == 0] != 0.5).any() and (background[:, label > 0] == 0.5).all()
    leaves = drawn("leaves")
    assert (leaves[:, label == 0] != 0.5).any() and (leaves[:, label > 0] == 0.5).all()
    glasses = drawn("glasses")
    changed = (glasses != 0.5).any(0)
    assert changed.any() and not changed[:12].any() and not changed[40:].any(), "frames lie around the eyes only"
    photometric = drawn("photometric")
    assert photometric.shape == (3, 64, 48) and 0 <= photometric.min() and photometric.max() <= 1
    kinds = ("photometric", "background", "glasses", "leaves", "clothes", "low-resolution")
    transform = TrainTransform(
        32, FASSEG_SCHEMA, rotation=0.0, scale=(1.0, 1.0), appearance=Appearance(FASSEG_SCHEMA, kinds)
    )
    plain = TrainTransform(32, FASSEG_SCHEMA, rotation=0.0, scale=(1.0, 1.0))
    torch.manual_seed(3)
    augmented = transform(sample)
    torch.manual_seed(3)
    reference = plain(sample)
    assert torch.equal(augmented["label"], reference["label"]) and torch.equal(augmented["edge"], reference["edge"])
    torch.manual_seed(3)
    assert torch.equal(transform(sample)["image"], augmented["image"]), "seeded: the same draw"
    assert Appearance(FASSEG_SCHEMA, p=0.0)(sample["image"], label)[0].equal(sample["image"])
    with pytest.raises(ValueError, match=r"augment: unknown \['mustache'\]"):
        Appearance(FASSEG_SCHEMA, ("mustache",))


def test_a_hand_reaches_from_the_edge_over_the_lower_face_and_is_labelled_background() -> None:
    outside = torch.ones(96, 64, dtype=torch.bool)
    outside[10:70, 16:48] = False  # a face 32 wide, rows 10 to 69
    skin = torch.tensor([[0.8, 0.6, 0.5], [0.7, 0.5, 0.4], [0.9, 0.7, 0.6]])
    for seed in range(20):
        torch.manual_seed(seed)
        covered, look = hand(outside, skin)
        assert covered[10:70, 16:48].any(), "the hand lies over the face"
        assert covered[0].any() or covered[-1].any() or covered[:, 0].any() or covered[:, -1].any(), "an arm to it"
        assert not covered.all() and look.shape == (3, 96, 64) and 0 <= look.min() and look.max() <= 1
    assert hand(torch.ones(8, 8, dtype=torch.bool), skin) is None, "no face: no hand"
    sample = _face_sample()
    torch.manual_seed(0)
    image, label = Appearance(FASSEG_SCHEMA, ("hands",), p=1.0)(sample["image"], sample["label"])
    hidden = (sample["label"] > 0) & (label == 0)
    assert hidden.any(), "the hand hides part of the face, now background"
    assert torch.equal(label[~hidden], sample["label"][~hidden]), "nothing else is relabelled"
    changed = (image != 0.5).any(0)
    assert changed[hidden].all() and not changed[(label > 0)].any(), "the image changes under the hand only"
    transform = TrainTransform(
        32, FASSEG_SCHEMA, rotation=0.0, scale=(1.0, 1.0), appearance=Appearance(FASSEG_SCHEMA, ("hands",), p=1.0)
    )
    plain = TrainTransform(32, FASSEG_SCHEMA, rotation=0.0, scale=(1.0, 1.0))
    torch.manual_seed(0)
    assert (transform(sample)["label"] == 0).sum() > (plain(sample)["label"] == 0).sum(), "TrainTransform keeps it"


def test_a_raised_hand_is_the_same_for_an_image_every_time_and_leaves_the_generator_alone() -> None:
    sample = _face_sample()
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    first, again = RaisedHand(FASSEG_SCHEMA)(sample), RaisedHand(FASSEG_SCHEMA)(sample)
    assert torch.equal(torch.random.get_rng_state(), state), "torch's global generator is untouched"
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["label"], again["label"])
    assert ((first["label"] == 0) & (sample["label"] > 0)).any(), "the hand hides part of the face"
    other = RaisedHand(FASSEG_SCHEMA)({**sample, "name": "another face"})
    assert not torch.equal(other["label"], first["label"]), "another image, another hand"
    assert repr(RaisedHand(FASSEG_SCHEMA)) == "RaisedHand(schema='fasseg')"


def test_clothes_cover_background_below_the_face_only() -> None:
    outside = torch.ones(64, 48, dtype=torch.bool)
    outside[10:50, 16:32] = False  # a face 16 wide, rows 10 to 49
    hair = torch.tensor([[0.2, 0.1, 0.05]])
    for seed in range(20):
        torch.manual_seed(seed)
        worn, look = clothes(outside, hair)
        rows = worn.any(1).nonzero().flatten()
        assert worn.any() and not (worn & ~outside).any(), "only background pixels are dressed"
        assert rows.min() >= 10 + 0.7 * 39 - 1 and rows.max() == 63, "from the lower face down past the picture"
        assert look.shape == (3, 64, 48) and 0 <= look.min() and look.max() <= 1
    torch.manual_seed(0)
    assert clothes(torch.ones(8, 8, dtype=torch.bool), hair) is None, "no face: no shoulders"
    sample = _face_sample()
    torch.manual_seed(0)
    dressed, _ = Appearance(FASSEG_SCHEMA, ("clothes",), p=1.0)(sample["image"], sample["label"])
    changed = (dressed != 0.5).any(0)
    assert changed.any() and not changed[sample["label"] > 0].any() and not changed[:30].any()


def test_low_resolution_keeps_the_size_and_loses_the_fine_detail() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 96, 64)
    assert torch.allclose(low_resolution(image, 1.0), image, atol=1e-6), "factor 1: the image itself"

    def detail(picture: torch.Tensor) -> float:  # energy of the differences between neighbouring pixels
        return float(picture.diff(dim=-1).pow(2).mean() + picture.diff(dim=-2).pow(2).mean())

    softer = [low_resolution(image, factor) for factor in (1.5, 3.0)]
    assert all(s.shape == image.shape for s in softer)
    assert detail(image) > detail(softer[0]) > detail(softer[1]), "more factor, less detail"
    flat = torch.full((3, 40, 30), 0.25)
    assert torch.allclose(low_resolution(flat, 2.7), flat, atol=1e-6), "a flat image stays flat"
    with pytest.raises(ValueError, match="factor: expected a value >= 1, got 0.5"):
        low_resolution(image, 0.5)
    sample = _face_sample()
    sample["image"] = torch.rand_like(sample["image"])
    shrunk = LowResolution(4)(sample)
    assert shrunk["label"] is sample["label"] and shrunk["image"].shape == sample["image"].shape
    assert detail(shrunk["image"]) < detail(sample["image"]) and repr(LowResolution(4)) == "LowResolution(factor=4)"
    torch.manual_seed(0)
    seen, _ = Appearance(FASSEG_SCHEMA, ("low-resolution",), p=1.0)(sample["image"], sample["label"])
    assert seen.shape == sample["image"].shape and detail(seen) < detail(sample["image"])


def test_dead_leaves_hide_each_other_take_the_faces_colours_and_stay_in_range() -> None:
    skin = torch.tensor([[0.8, 0.6, 0.5]])
    torch.manual_seed(0)
    scene = dead_leaves(96, 64, skin, count=40)
    assert scene.shape == (3, 96, 64) and 0 <= scene.min() and scene.max() <= 1
    torch.manual_seed(0)
    assert torch.equal(dead_leaves(96, 64, skin, count=40), scene), "seeded: the same scene"
    # Unblurred, each pixel holds exactly one leaf's colour; about half the leaves wear the face's colour.
    with mock.patch.object(TF, "gaussian_blur", lambda image, *args: image):
        torch.manual_seed(1)
        sharp = dead_leaves(96, 64, skin, count=40)
    colours = sharp.flatten(1).T.unique(dim=0)
    assert 2 <= len(colours) <= 41 and (colours == skin).all(1).any()
    torch.manual_seed(2)
    assert dead_leaves(32, 32, torch.empty(0, 3)).shape == (3, 32, 32), "no face pixels: random colours only"

