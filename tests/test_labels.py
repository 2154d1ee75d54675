"""Label schemas: class lists as published, palettes, left/right pairs, groups, serialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agrnet.data.labels import CELEBAMASK_HQ, FASSEG, HELEN, LAPA, LIP, SCHEMAS, LabelSchema, get_schema

# Class orders as the issue and the releases state them, written out independently of agrnet.data.labels.
PUBLISHED = {
    "lapa": "background skin left_eyebrow right_eyebrow left_eye right_eye nose upper_lip inner_mouth lower_lip hair",
    "helen": "background skin left_eyebrow right_eyebrow left_eye right_eye nose upper_lip inner_mouth lower_lip hair",
    "celebamask-hq": "background skin nose eye_g l_eye r_eye l_brow r_brow l_ear r_ear mouth u_lip l_lip hair hat "
    "ear_r neck_l neck cloth",
    "lip": "background hat hair glove sunglasses upper-clothes dress coat socks pants jumpsuits scarf skirt face "
    "left-arm right-arm left-leg right-leg left-shoe right-shoe",
    "fasseg": "background skin hair eyes nose mouth",
}
EXPECTED_PAIRS = {
    "lapa": {(2, 3), (4, 5)},
    "helen": {(2, 3), (4, 5)},
    "celebamask-hq": {(4, 5), (6, 7), (8, 9)},
    "lip": {(14, 15), (16, 17), (18, 19)},
    "fasseg": set(),
}


def _side_free(name: str) -> str:
    """A class name with its side removed: 'left eye' -> 'eye', 'r_brow' -> 'brow', 'left-arm' -> 'arm'."""
    for prefix in ("left ", "right ", "left-", "right-", "l_", "r_"):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _side(name: str) -> str | None:
    if name == "l_lip":  # CelebAMask-HQ's lower lip, not a left lip: it must not be flipped
        return None
    if name.startswith(("left", "l_")):
        return "left"
    if name.startswith(("right", "r_")):
        return "right"
    return None


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_class_order_matches_the_release(name: str) -> None:
    schema = get_schema(name)
    expected = PUBLISHED[name].split()
    assert (
        schema.num_classes
        == len(expected)
        == {"lapa": 11, "helen": 11, "celebamask-hq": 19, "lip": 20, "fasseg": 6}[name]
    )
    assert [c.replace(" ", "_") for c in schema.classes] == expected
    assert schema.palette.shape == (schema.num_classes, 3) and schema.palette.dtype == np.uint8
    assert len({tuple(c) for c in schema.palette.tolist()}) == schema.num_classes, "palette colours must differ"
    assert schema.ignore_index == 255


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_flip_pair_joins_a_left_class_to_its_right_twin(name: str) -> None:
    schema = get_schema(name)
    assert set(schema.flip_pairs) == EXPECTED_PAIRS[name]
    for left, right in schema.flip_pairs:
        assert _side(schema.classes[left]) == "left" and _side(schema.classes[right]) == "right"
        assert _side_free(schema.classes[left]) == _side_free(schema.classes[right])
    sided = {i for i, c in enumerate(schema.classes) if _side(c) is not None and _side_free(c) != c}
    assert sided == {i for pair in schema.flip_pairs for i in pair}, "a left/right class has no flip partner"


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_flip_permutation_swaps_each_pair_once_and_is_an_involution(schema: LabelSchema) -> None:
    permutation = schema.flip_permutation()
    assert permutation.dtype == torch.int64
    assert torch.equal(permutation[permutation], torch.arange(schema.num_classes))
    moved = {i for i in range(schema.num_classes) if permutation[i] != i}
    assert moved == {i for pair in schema.flip_pairs for i in pair}
    for left, right in schema.flip_pairs:
        assert permutation[left] == right and permutation[right] == left


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_mirroring_twice_is_the_identity_and_keeps_ignore(schema: LabelSchema) -> None:
    ids = torch.arange(schema.num_classes)
    label = torch.cat([ids, torch.tensor([schema.ignore_index])]).repeat(3, 1)
    once = schema.mirror_ids(label)
    assert torch.equal(schema.mirror_ids(once), label)
    assert (once[:, -1] == schema.ignore_index).all()
    changed = (once != label).sum().item()
    assert changed == 3 * 2 * len(schema.flip_pairs)
    # Pixels flipped and relabelled, twice, give the original map back.
    twice = schema.mirror_ids(schema.mirror_ids(label.flip(-1)).flip(-1))
    assert torch.equal(twice, label)


def test_celebamask_lower_lip_is_not_a_left_class() -> None:
    lower_lip = CELEBAMASK_HQ.classes.index("l_lip")
    assert CELEBAMASK_HQ.flip_permutation()[lower_lip] == lower_lip


def test_helen_groups_are_the_papers_merged_components() -> None:
    assert HELEN.groups["brows"] == (2, 3)
    assert HELEN.groups["eyes"] == (4, 5)
    assert HELEN.groups["nose"] == (6,)
    assert HELEN.groups["mouth"] == (7, 8, 9)
    assert set(HELEN.groups["overall"]) == {2, 3, 4, 5, 6, 7, 8, 9}


def test_lapa_matches_the_release_tables(shared_data) -> None:
    meta = shared_data / "lapa-meta"
    classes = [line.split("\t")[1] for line in (meta / "labelmap.txt").read_text().splitlines()[1:] if "\t" in line]
    colours = [
        [int(x) for x in line.split("\t")[1].strip("[]").split(",")]
        for line in (meta / "colormap.txt").read_text().splitlines()[1:]
        if "\t" in line
    ]
    assert list(LAPA.classes) == classes
    assert LAPA.palette.tolist() == colours


def test_dict_round_trip_and_equality() -> None:
    for schema in SCHEMAS.values():
        restored = LabelSchema.from_dict(schema.to_dict())
        assert restored == schema and hash(restored) == hash(schema)
        assert np.array_equal(restored.palette, schema.palette)
    assert LAPA != HELEN
    assert LAPA.palette.flags.writeable is False


def test_get_schema_names_and_errors() -> None:
    assert get_schema("LaPa") is LAPA
    assert get_schema("synthetic") is LAPA
    assert get_schema("celebamask_hq") is CELEBAMASK_HQ
    assert get_schema("lip") is LIP and get_schema("fasseg") is FASSEG
    with pytest.raises(ValueError, match="unknown label schema 'pascal'"):
        get_schema("pascal")


def test_inconsistent_schemas_are_refused() -> None:
    palette = np.zeros((3, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="palette"):
        LabelSchema("x", ("a", "b"), palette)
    with pytest.raises(ValueError, match="outside"):
        LabelSchema("x", ("a", "b", "c"), palette, flip_pairs=((1, 3),))
    with pytest.raises(ValueError, match="disjoint"):
        LabelSchema("x", ("a", "b", "c"), palette, flip_pairs=((1, 2), (2, 1)))
    with pytest.raises(ValueError, match="ignore_index"):
        LabelSchema("x", ("a", "b", "c"), palette, ignore_index=2)


def test_colorize_uses_the_palette() -> None:
    label = torch.tensor([[0, 1], [10, 255]])
    rgb = LAPA.colorize(label)
    assert rgb.shape == (3, 2, 2) and rgb.dtype == torch.uint8
    assert rgb[:, 0, 1].tolist() == LAPA.palette[1].tolist()
    assert rgb[:, 1, 0].tolist() == LAPA.palette[10].tolist()
    assert rgb[:, 1, 1].tolist() == [255, 255, 255]
