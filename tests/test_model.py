"""AGRNet: shapes, the equations of Sec. III, gradients, batch independence, autocast, ablations, bad arguments."""

from __future__ import annotations

import pytest
import torch

from agrnet.model import AGRNet, GraphReasoning, complexity, select_vertices
from agrnet.model.backbone import ResNetBackbone
from agrnet.model.graph import grid_shape

NC, K, C = 5, 3, 32


def small(**kwargs) -> AGRNet:
    options = {"backbone": "resnet18", "top_k": K, "channels": C} | kwargs
    return AGRNet(NC, **options)


@pytest.fixture(scope="module")
def model_and_output():
    torch.manual_seed(0)
    model = small().eval()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        return model, images, model(images)


def test_output_shapes(model_and_output):
    model, images, out = model_and_output
    v = K * NC
    assert out.logits.shape == (2, NC, 64, 96)
    assert out.raw_logits.shape == (2, NC, 16, 24)
    assert out.edge_logits.shape == (2, 1, 16, 24)
    assert out.vertices.shape == (2, v, C)
    assert out.vertex_index.shape == (2, v)
    assert out.projection.shape == (2, v, 16 * 24)
    assert out.adjacency.shape == (v, v)


def test_vertex_index_is_per_class_top_k_of_z0(model_and_output):
    _, _, out = model_and_output
    flat = out.raw_logits.flatten(2)
    for n in range(flat.shape[0]):
        for c in range(NC):
            chosen = out.vertex_index[n, c * K : (c + 1) * K]
            expected = torch.topk(flat[n, c], K).indices
            assert set(chosen.tolist()) == set(expected.tolist())
            assert torch.all(flat[n, c, chosen] >= flat[n, c].sort(descending=True).values[K - 1])


def test_vertices_are_non_edge_features_at_the_indices():
    model = small().eval()
    images = torch.rand(1, 3, 64, 64)
    captured = {}
    model.fusion.register_forward_hook(lambda m, i, o: captured.update(x0=o))
    with torch.no_grad():
        out = model(images)
    xne = captured["x0"] * (1 - torch.sigmoid(out.edge_logits))
    flat = xne.flatten(2)[0]
    expected = flat[:, out.vertex_index[0]].T
    torch.testing.assert_close(out.vertices[0], expected)


def test_projection_sums_to_one_over_vertices(model_and_output):
    _, _, out = model_and_output
    torch.testing.assert_close(out.projection.sum(dim=1), torch.ones(2, 16 * 24))
    assert torch.all(out.projection >= 0)


def test_select_vertices_is_class_major():
    z0 = torch.zeros(1, 3, 2, 4)
    z0[0, 0, 0, 1] = z0[0, 0, 1, 3] = 5  # class 0: pixels 1 and 7
    z0[0, 1, 1, 0] = z0[0, 1, 0, 0] = 5  # class 1: pixels 4 and 0
    z0[0, 2, 0, 2] = z0[0, 2, 1, 2] = 5  # class 2: pixels 2 and 6
    index = select_vertices(z0, 2)
    assert [sorted(index[0, c * 2 : c * 2 + 2].tolist()) for c in range(3)] == [[1, 7], [0, 4], [2, 6]]


def test_graph_reasoning_matches_eq4():
    reasoning = GraphReasoning(6, 4)
    xg = torch.randn(2, 6, 4)
    a, w = reasoning.A, reasoning.weight.weight
    expected = xg + torch.relu((torch.eye(6) - a) @ xg @ w.T)
    torch.testing.assert_close(reasoning(xg), expected)


def test_gradients_reach_every_parameter():
    model = small().train()
    out = model(torch.rand(2, 3, 64, 64))
    loss = out.logits.square().mean() + out.raw_logits.square().mean() + out.edge_logits.square().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_eval_is_batch_independent():
    model = small().eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        together = model(images)
        alone = model(images[1:2])
    torch.testing.assert_close(alone.logits[0], together.logits[1], atol=1e-4, rtol=1e-4)
    assert torch.equal(alone.vertex_index[0], together.vertex_index[1])


def test_runs_under_bf16_autocast():
    model = small().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 3, 64, 64))
    assert out.logits.shape == (2, NC, 64, 64)
    assert torch.isfinite(out.logits.float()).all()
    torch.testing.assert_close(out.projection.float().sum(1), torch.ones(2, 256), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    "switches",
    [
        {"use_graph": False, "use_edge": False},
        {"projection": "spatial", "use_edge": False, "use_reasoning": False},
        {"use_edge": False, "use_reasoning": False},
        {"use_edge": False},
        {"use_reasoning": False},
        {"projection": "spatial"},
        {"top_k": 1},
        {"top_k": 8},
    ],
)
def test_every_ablation_builds_and_runs(switches):
    model = small(**switches)
    out = model(torch.rand(2, 3, 64, 64))
    out.logits.mean().backward()
    assert out.logits.shape == (2, NC, 64, 64)
    if switches.get("use_graph", True):
        v = switches.get("top_k", K) * NC
        assert out.vertices.shape[1] == v and out.projection.shape[1] == v
        assert (out.raw_logits is None) == (switches.get("projection") == "spatial")
        assert (out.adjacency is None) == (not switches.get("use_reasoning", True))
    else:
        assert out.vertices is None and out.projection is None and out.raw_logits is None
    assert (out.edge_logits is None) == (not switches.get("use_edge", True))


def test_spatial_grid_has_exactly_v_cells():
    assert grid_shape(44) == (4, 11)
    assert grid_shape(36) == (6, 6)
    assert grid_shape(11) == (1, 11)


def test_odd_input_size():
    model = small().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 97, 131))
    assert out.logits.shape == (1, NC, 97, 131)
    assert out.projection.shape[-1] == out.raw_logits.shape[-2] * out.raw_logits.shape[-1]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_backbone_output_strides(name):
    backbone = ResNetBackbone(name).eval()
    with torch.no_grad():
        taps = backbone(torch.rand(1, 3, 64, 64))
    assert [t.shape[-1] for t in taps] == [16, 8, 8, 8]
    assert [t.shape[1] for t in taps] == list(backbone.channels)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"top_k": 0}, "top_k"),
        ({"channels": -3}, "channels"),
        ({"backbone": "vgg16"}, "backbone"),
        ({"projection": "random"}, "projection"),
        ({"pretrained_backbone": "/no/such/file.pth"}, "pretrained_backbone"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    options = {"num_classes": NC, "backbone": "resnet18"} | kwargs
    with pytest.raises(ValueError, match=name):
        AGRNet(**options)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="images"):
        small()(torch.rand(3, 64, 64))


def test_pretrained_backbone_from_a_local_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = small(pretrained_backbone=str(path))
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="pretrained_backbone"):
        small(pretrained_backbone=str(bad))


def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    from torchvision.models import WeightsEnum

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="pretrained_backbone='/path/to/file.pth'"):
        small(pretrained_backbone="imagenet")


def test_config_rebuilds_the_model():
    model = small(top_k=2, use_edge=False)
    clone = AGRNet(**model.config)
    assert clone.config == model.config
    clone.load_state_dict(model.state_dict())


def test_complexity_parts_add_up():
    model = small()
    table = complexity(model, (64, 64))
    parts = [row for name, row in table.items() if name not in ("baseline", "total")]
    assert sum(row["gflops"] for row in parts) == pytest.approx(table["total"]["gflops"], rel=1e-6)
    assert sum(row["mparams"] for row in parts) == pytest.approx(table["total"]["mparams"], rel=1e-6)
    assert table["graph reasoning"]["mparams"] * 1e6 == (K * NC) ** 2 + C * C
    assert table["edge perceiving"]["gflops"] > 0 and table["graph projection"]["gflops"] > 0
    baseline = complexity(small(use_graph=False, use_edge=False), (64, 64))
    assert baseline["total"]["gflops"] == pytest.approx(table["baseline"]["gflops"], rel=1e-6)


def test_eval_forward_on_meta_tensors_counts_without_values() -> None:
    """FLOP counting runs the model on PyTorch's meta device, where the input check has no values to read."""
    with torch.device("meta"):
        model = AGRNet(6, backbone="resnet18", channels=8).eval()
        output = model(torch.rand(1, 3, 64, 64))
    assert output.logits.device.type == "meta" and output.logits.shape == (1, 6, 64, 64)
