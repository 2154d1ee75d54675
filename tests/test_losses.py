"""Each loss of Eq. (8) to (11) against its formula on small hand-built tensors."""

import math

import pytest
import torch

from agrnet.losses import (
    PAPER_WEIGHTS,
    AGRNetLoss,
    boundary_attention_loss,
    discriminative_loss,
    edge_loss,
    parsing_loss,
)
from agrnet.model import AGRNetOutput


def log_softmax(values: list[float], index: int) -> float:
    return values[index] - math.log(sum(math.exp(v) for v in values))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_parsing_loss_is_cross_entropy_over_labelled_pixels() -> None:
    # 1 image, 2 classes, 1 x 3 pixels; the third pixel is ignored.
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])
    target = torch.tensor([[[0, 1, 255]]])
    expected = -(log_softmax([2.0, 0.0], 0) + log_softmax([0.0, 1.0], 1)) / 2
    assert parsing_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_parsing_loss_upsamples_logits_and_is_zero_without_labelled_pixels() -> None:
    # Constant logits stay constant under bilinear upsampling: every pixel has the same loss.
    logits = torch.tensor([3.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    target = torch.full((2, 8, 8), 1)
    assert parsing_loss(logits, target).item() == pytest.approx(-log_softmax([3.0, 1.0, 0.0], 1), rel=1e-6)
    ignored = torch.full((2, 8, 8), 255)
    assert parsing_loss(logits, ignored).item() == 0.0


def test_edge_loss_balances_edge_and_non_edge_pixels() -> None:
    edge_logits = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    edge = torch.tensor([[[True, False], [False, False]]])
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    # 1 edge pixel weighted 3/4, 3 non-edge pixels weighted 1/4 each; normalised by the sum of the weights.
    positive = -log_sigmoid(1.0)
    negatives = [-log_sigmoid(-x) for x in (-2.0, 0.5, 3.0)]
    expected = (0.75 * positive + 0.25 * sum(negatives)) / (0.75 + 3 * 0.25)
    assert edge_loss(edge_logits, edge, target).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx((positive + sum(negatives) / 3) / 2)


def test_edge_loss_ignores_unlabelled_pixels() -> None:
    edge_logits = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    edge = torch.tensor([[[True, False], [False, False]]])
    target = torch.tensor([[[0, 0], [255, 255]]])
    expected = (-log_sigmoid(1.0) - log_sigmoid(2.0)) / 2
    assert edge_loss(edge_logits, edge, target).item() == pytest.approx(expected, rel=1e-6)


def test_edge_loss_is_zero_without_edge_pixels() -> None:
    edge_logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = edge_loss(edge_logits, torch.zeros(2, 8, 8, dtype=torch.bool), torch.zeros(2, 8, 8, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(edge_logits.grad).all()


def test_boundary_attention_loss_is_cross_entropy_at_edge_pixels_only() -> None:
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 4.0]]]])
    target = torch.tensor([[[0, 0, 1]]])
    edge = torch.tensor([[[False, True, True]]])
    expected = -(log_softmax([0.0, 1.0], 0) + log_softmax([1.0, 4.0], 1)) / 2
    assert boundary_attention_loss(logits, target, edge).item() == pytest.approx(expected, rel=1e-6)
    # An ignored edge pixel does not count.
    target_ignored = torch.tensor([[[0, 0, 255]]])
    expected_ignored = -log_softmax([0.0, 1.0], 0)
    assert boundary_attention_loss(logits, target_ignored, edge).item() == pytest.approx(expected_ignored, rel=1e-6)


def test_boundary_attention_loss_is_zero_not_nan_without_edge_pixels() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = boundary_attention_loss(logits, torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4, dtype=bool))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_discriminative_loss_on_known_distances() -> None:
    # Orthogonal unit vectors are sqrt(2) > delta apart: no penalty.
    orthogonal = torch.eye(3).unsqueeze(0)
    assert discriminative_loss(orthogonal).item() == 0.0
    # Two unit vectors at chord distance 0.5: phi = (1 - 0.5)^2 for both ordered pairs.
    angle = 2 * math.asin(0.25)
    pair = torch.tensor([[[1.0, 0.0], [math.cos(angle), math.sin(angle)]]])
    assert discriminative_loss(pair).item() == pytest.approx(0.25, rel=1e-5)
    # Three vertices: one close pair (two ordered pairs with 0.25) and four far pairs, over 3 * 2 ordered pairs.
    triple = torch.tensor([[[1.0, 0.0, 0.0], [math.cos(angle), math.sin(angle), 0.0], [0.0, 0.0, 1.0]]])
    assert discriminative_loss(triple).item() == pytest.approx(2 * 0.25 / 6, rel=1e-5)
    # The margin delta: at delta = 2 the orthogonal pair costs (2 - sqrt 2)^2.
    assert discriminative_loss(orthogonal[:, :2], delta=2.0).item() == pytest.approx((2 - math.sqrt(2)) ** 2)


def test_discriminative_loss_normalises_and_averages_over_the_batch() -> None:
    # Sample 0: parallel vectors of different length are identical after L2 normalisation -> delta^2 = 1.
    # Sample 1: orthogonal -> 0. Batch mean 0.5.
    vertices = torch.tensor([[[2.0, 0.0], [0.5, 0.0]], [[1.0, 0.0], [0.0, 3.0]]])
    assert discriminative_loss(vertices).item() == pytest.approx(0.5, rel=1e-6)


def test_discriminative_loss_identical_vertices_have_a_finite_gradient() -> None:
    vertices = torch.ones(2, 8, 16, requires_grad=True)
    loss = discriminative_loss(vertices)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(vertices.grad).all()


def test_discriminative_loss_rejects_a_single_vertex() -> None:
    with pytest.raises(ValueError, match="vertices"):
        discriminative_loss(torch.ones(1, 1, 4))


def fake_output(n: int = 2, classes: int = 3, size: int = 8, k: int = 2, requires_grad: bool = True) -> AGRNetOutput:
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).requires_grad_(requires_grad)

    return AGRNetOutput(
        logits=rand(n, classes, size, size),
        raw_logits=rand(n, classes, size // 4, size // 4),
        edge_logits=rand(n, 1, size // 4, size // 4),
        vertices=rand(n, k * classes, 5),
    )


def fake_batch(n: int = 2, classes: int = 3, size: int = 8) -> dict[str, torch.Tensor]:
    label = torch.randint(0, classes, (n, size, size), generator=torch.Generator().manual_seed(1))
    label[:, 0, :] = 255
    edge = torch.zeros(n, size, size, dtype=torch.bool)
    edge[:, 3:5, :] = True
    return {"label": label, "edge": edge}


def test_total_loss_weights_each_term() -> None:
    output, batch = fake_output(), fake_batch()
    weights = (1.0, 2.0, 3.0, 4.0, 5.0)
    total, terms = AGRNetLoss(weights=weights)(output, batch)
    expected_terms = {
        "raw": parsing_loss(output.raw_logits, batch["label"]),
        "edge": edge_loss(output.edge_logits, batch["edge"], batch["label"]),
        "boundary": boundary_attention_loss(output.logits, batch["label"], batch["edge"]),
        "final": parsing_loss(output.logits, batch["label"]),
        "discriminative": discriminative_loss(output.vertices),
    }
    assert list(terms) == list(expected_terms)
    for name, value in expected_terms.items():
        assert torch.allclose(terms[name], value), name
        assert not terms[name].requires_grad
    expected_total = sum(w * v for w, v in zip(weights, expected_terms.values(), strict=True))
    assert total.item() == pytest.approx(expected_total.item(), rel=1e-6)
    total.backward()
    assert all(torch.isfinite(t.grad).all() for t in (output.logits, output.raw_logits, output.vertices))


def test_total_loss_defaults_to_the_paper_weights() -> None:
    output, batch = fake_output(requires_grad=False), fake_batch()
    total, terms = AGRNetLoss()(output, batch)
    assert PAPER_WEIGHTS == (1.0, 1.0, 1.0, 0.5, 0.1)
    expected = sum(w * terms[name] for w, name in zip(PAPER_WEIGHTS, terms, strict=True))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_terms_without_inputs_or_switched_off_drop_out() -> None:
    batch = fake_batch()
    baseline = AGRNetOutput(logits=fake_output().logits)
    total, terms = AGRNetLoss()(baseline, batch)
    assert set(terms) == {"boundary", "final"}
    assert total.item() == pytest.approx((terms["boundary"] + 0.5 * terms["final"]).item(), rel=1e-6)
    _, terms = AGRNetLoss(use_boundary=False, use_discriminative=False)(fake_output(), batch)
    assert set(terms) == {"raw", "edge", "final"}


def test_missing_edge_ground_truth_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="edge"):
        AGRNetLoss()(fake_output(), {"label": fake_batch()["label"]})


def test_bad_weights_are_rejected() -> None:
    with pytest.raises(ValueError, match="weights"):
        AGRNetLoss(weights=(1.0, 1.0))
