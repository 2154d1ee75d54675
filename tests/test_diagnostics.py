"""Per-step diagnostics of the graph and the authors' switches (edge-gated reprojection, detached edge map)."""

import math

import pytest
import torch

from agrnet.diagnostics import NAMES, curve_summary, graph_diagnostics, projection_entropy, vertices_on_own_class
from agrnet.losses import AUTHORS_WEIGHTS, PAPER_WEIGHTS, TERMS
from agrnet.model import AGRNet


def test_projection_entropy_is_one_for_uniform_and_zero_for_one_hot_columns() -> None:
    uniform = torch.full((2, 8, 5), 1 / 8)
    one_hot = torch.zeros(2, 8, 5)
    one_hot[:, 3] = 1
    assert projection_entropy(uniform).item() == pytest.approx(1.0)
    assert projection_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)


def test_own_class_share_counts_vertices_on_their_class_and_skips_ignored_pixels() -> None:
    label = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]])
    # K = 2, classes 0, 1, 2: flat indices into the 4 x 4 grid.
    vertex_index = torch.tensor([[0, 5, 2, 8, 9, 10]])  # class 0 on 0 and 5 (right), class 1 on 2 (right) and
    # 8 (label 2, wrong), class 2 on 9 (right) and 10 (ignored)
    share = vertices_on_own_class(vertex_index, label, (4, 4), top_k=2)
    assert share.item() == pytest.approx(4 / 5)


def test_graph_diagnostics_of_a_forward_pass_and_nan_for_missing_parts() -> None:
    torch.manual_seed(0)
    label = torch.randint(0, 6, (2, 64, 64))
    full = graph_diagnostics(AGRNet(6, "resnet18", channels=16)(torch.rand(2, 3, 64, 64)), label, top_k=4)
    assert full.shape == (len(NAMES),) and torch.isfinite(full).all()
    entropy, p_max, own, edge = full.tolist()
    assert 0 <= entropy <= 1 and 1 / 24 <= p_max <= 1 and 0 <= own <= 1 and 0 < edge < 1
    baseline = AGRNet(6, "resnet18", channels=16, use_graph=False, use_edge=False)(torch.rand(2, 3, 64, 64))
    assert all(math.isnan(value) for value in graph_diagnostics(baseline, label, top_k=4).tolist())


def test_edge_gate_scales_each_pixels_column_of_p_by_its_edge_probability() -> None:
    images = torch.rand(2, 3, 64, 64)
    torch.manual_seed(1)
    paper = AGRNet(6, "resnet18", channels=16).eval()
    torch.manual_seed(1)
    gated = AGRNet(6, "resnet18", channels=16, edge_gate=True).eval()
    out, gated_out = paper(images), gated(images)
    edge = torch.sigmoid(out.edge_logits).flatten(1).unsqueeze(1)
    assert torch.allclose(gated_out.projection, out.projection * edge, atol=1e-6)
    assert torch.allclose(out.projection.sum(1), torch.ones(2, 16 * 16), atol=1e-5)


def test_detached_edge_map_gets_no_gradient_from_the_graph() -> None:
    images = torch.rand(2, 3, 64, 64)
    for detach, expect_gradient in ((False, True), (True, False)):
        torch.manual_seed(2)
        model = AGRNet(6, "resnet18", channels=16, detach_edge=detach)
        model(images).logits.sum().backward()
        assert (model.edge.classifier.weight.grad is not None) is expect_gradient


def test_authors_loss_weights_by_term() -> None:
    assert dict(zip(TERMS, PAPER_WEIGHTS, strict=True)) == {
        "raw": 1.0, "edge": 1.0, "boundary": 1.0, "final": 0.5, "discriminative": 0.1,
    }  # fmt: skip
    assert dict(zip(TERMS, AUTHORS_WEIGHTS, strict=True)) == {
        "raw": 1.0, "edge": 1.0, "boundary": 1.0, "final": 1.0, "discriminative": 0.5,
    }  # fmt: skip


def test_curve_summary_reads_the_end_of_each_curve_and_the_range_of_scores():
    def run(variant, seed, f1, finals, own=None):
        curve = [{"step": i + 1, "final": value, "diagnostics": {"own_class": own, "grad_norm": 1.0}}
                 for i, value in enumerate(finals)]  # fmt: skip
        return {"variant": variant, "seed": seed, "metrics": {"test": {"mean_f1": f1}}, "curve": curve}

    results = {"variants": ["baseline", "full", "unrun"], "runs": [
        run("baseline", 0, 0.8, [9.0] * 9 + [1.0], own=float("nan")),
        run("baseline", 1, 0.9, [9.0] * 9 + [3.0], own=float("nan")),
        run("full", 0, 0.5, [4.0] * 10, own=0.5),
    ]}  # fmt: skip
    rows = curve_summary(results, tail=0.1)
    assert [row["variant"] for row in rows] == ["baseline", "full"]
    baseline, full = rows
    assert baseline["seeds"] == [0, 1] and baseline["mean_f1"] == pytest.approx((0.8, 0.85, 0.9))
    assert baseline["final"] == pytest.approx(2.0)  # the last tenth of each curve, then the mean over seeds
    assert baseline["own_class"] is None and full["own_class"] == pytest.approx(0.5)  # NaN: the part is missing
    assert full["grad_norm"] == 1.0 and full["p_entropy"] is None
    assert curve_summary(results, tail=0.5)[0]["final"] == pytest.approx((4 * 9 + 1 + 4 * 9 + 3) / 10)
