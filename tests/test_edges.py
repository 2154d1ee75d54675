"""label_edges on hand-drawn maps (a pixel is an edge when one of its four neighbours differs)."""

from __future__ import annotations

import pytest
import torch

from agrnet.data.edges import label_edges


def _map(rows: str) -> torch.Tensor:
    return torch.tensor([[int(c) for c in row] for row in rows.split()])


def _mask(rows: str) -> torch.Tensor:
    return torch.tensor([[c == "x" for c in row] for row in rows.split()])


def test_two_regions() -> None:
    label = _map("0011 0011 0011")
    expected = _mask(".xx. .xx. .xx.")
    assert torch.equal(label_edges(label), expected)


def test_single_pixel_marks_its_four_neighbours_not_the_diagonals() -> None:
    label = _map("00000 00000 00300 00000 00000")
    expected = _mask("..... ..x.. .xxx. ..x.. .....")
    assert torch.equal(label_edges(label), expected)


def test_corner_and_l_shape() -> None:
    label = _map("1110 1100 0000")
    expected = _mask("..xx xxx. xx..")
    assert torch.equal(label_edges(label), expected)


def test_uniform_map_has_no_edges_and_keeps_shape_and_dtype() -> None:
    edges = label_edges(torch.full((5, 7), 4))
    assert edges.shape == (5, 7) and edges.dtype == torch.bool and not edges.any()


def test_ignore_pixels_are_never_edges_and_do_not_make_edges() -> None:
    label = torch.tensor([[1, 1, 255, 255], [1, 1, 255, 2], [1, 1, 1, 2]])
    expected = torch.tensor([[False, False, False, False], [False, False, False, False], [False, False, True, True]])
    assert torch.equal(label_edges(label), expected)
    assert not label_edges(torch.tensor([[5, 5], [5, 5]]), ignore_index=5).any()


def test_batch_dimensions_are_independent() -> None:
    a, b = _map("0011 0011"), _map("2222 2222")
    batch = torch.stack([torch.stack([a, b]), torch.stack([b, a])])  # 2 x 2 x H x W
    edges = label_edges(batch)
    assert edges.shape == batch.shape
    assert torch.equal(edges[0, 0], label_edges(a)) and torch.equal(edges[1, 1], label_edges(a))
    assert not edges[0, 1].any() and not edges[1, 0].any()


def test_matches_a_direct_neighbour_comparison_on_random_maps() -> None:
    label = torch.randint(0, 3, (9, 11))
    padded = torch.nn.functional.pad(label[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0].long()
    centre = padded[1:-1, 1:-1]
    expected = (
        (centre != padded[:-2, 1:-1])
        | (centre != padded[2:, 1:-1])
        | (centre != padded[1:-1, :-2])
        | (centre != padded[1:-1, 2:])
    )
    assert torch.equal(label_edges(label), expected)


def test_uint8_labels_and_bad_shapes() -> None:
    assert torch.equal(label_edges(_map("01 01").to(torch.uint8)), _mask("xx xx"))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        label_edges(torch.tensor([0, 1, 1]))
