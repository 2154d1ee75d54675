"""agrnet.model.Ensemble: the mean of several trainings' class probabilities, parsed as one model."""

import pytest
import torch

from agrnet.model import AGRNet, AGRNetConfig, Ensemble


def _member(seed: int, **options) -> AGRNet:
    torch.manual_seed(seed)
    return AGRNet(4, **{"backbone": "resnet18", "channels": 16, "top_k": 2} | options).eval()


def test_an_ensemble_parses_with_the_mean_of_its_members_probabilities() -> None:
    members = [_member(0), _member(1), _member(2)]
    ensemble = Ensemble(members).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        outputs = [member(images) for member in members]
        output = ensemble(images)
    expected = torch.stack([o.logits.softmax(1) for o in outputs]).mean(0)
    assert torch.allclose(output.logits.softmax(1), expected, atol=1e-6)
    assert not torch.allclose(expected, outputs[0].logits.softmax(1), atol=1e-3), "the members differ"
    assert torch.allclose(output.edge_logits, torch.stack([o.edge_logits for o in outputs]).mean(0))
    assert output.vertices is None and output.adjacency is None
    assert ensemble.config == members[0].config and ensemble.num_classes == 4


def test_an_ensemble_loads_its_members_weights_into_fresh_members() -> None:
    ensemble = Ensemble([_member(0), _member(1)])
    state = ensemble.state_dict()
    assert {key.split(".")[1] for key in state} == {"0", "1"} and all(k.startswith("members.") for k in state)
    fresh = Ensemble.from_config(AGRNetConfig(**ensemble.config), members=2)
    fresh.load_state_dict(state)
    image = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(fresh.eval()(image).logits, ensemble.eval()(image).logits)


def test_an_ensemble_needs_two_members_of_one_architecture() -> None:
    with pytest.raises(ValueError, match="at least two models, got 1"):
        Ensemble([_member(0)])
    with pytest.raises(ValueError, match="member 1's architecture .* differs from member 0's"):
        Ensemble([_member(0), _member(1, top_k=3)])
