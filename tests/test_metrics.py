"""ConfusionMatrix scores against values worked out by hand on small matrices."""

import json
import math

import pytest
import torch

from agrnet.data.labels import HELEN
from agrnet.metrics import ConfusionMatrix


def small_matrix() -> ConfusionMatrix:
    # target 0 0 1 1 2 255 / pred 0 1 1 1 0 2 -> M = [[1, 1, 0], [0, 2, 0], [1, 0, 0]]; the last pixel is ignored.
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([[[0, 1, 1], [1, 0, 2]]]), torch.tensor([[[0, 0, 1], [1, 2, 255]]]))
    return cm


def test_update_counts_pixels_and_skips_ignored_ones() -> None:
    assert small_matrix().matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_per_class_and_mean_scores() -> None:
    cm = small_matrix()
    # TP = (1, 2, 0), GT = (2, 2, 1), PRED = (2, 3, 0).
    assert cm.f1().tolist() == pytest.approx([0.5, 0.8, 0.0])
    assert cm.iou().tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert cm.accuracy().tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    assert cm.mean_f1() == pytest.approx((0.8 + 0.0) / 2)
    assert cm.mean_f1(exclude=()) == pytest.approx((0.5 + 0.8) / 3)
    assert cm.miou() == pytest.approx(1 / 3)
    assert cm.mean_accuracy() == pytest.approx(0.5)


def test_update_accepts_logits_and_accumulates() -> None:
    cm = small_matrix()
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 0] = 1.0  # predicts class 2 at the first pixel, class 0 (argmax of zeros) at the second
    cm.update(logits, torch.tensor([[[2, 0]]]))
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    cm.reset()
    assert cm.matrix.sum().item() == 0
    assert math.isnan(cm.pixel_accuracy())


def test_absent_class_is_nan_and_left_out_of_the_means() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    f1 = cm.f1()
    assert math.isnan(f1[3])
    assert cm.mean_f1() == pytest.approx(2 / 3)  # classes 1 and 2: F1 = 2 * 1 / (1 + 2) each
    assert cm.miou() == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_bad_input_is_rejected() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shapes"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="group"):
        cm.group_f1({"bad": (5,)})


def helen_matrix() -> ConfusionMatrix:
    pairs = {  # (ground truth, prediction): pixel count
        (4, 4): 3, (4, 5): 1, (5, 5): 2, (5, 1): 1,
        (2, 2): 2, (3, 2): 1,
        (6, 6): 4, (6, 7): 1,
        (7, 7): 2, (8, 9): 1, (9, 9): 2,
        (1, 4): 1, (0, 0): 5, (1, 1): 3,
        (255, 6): 2,
    }  # fmt: skip
    target = torch.tensor([t for (t, _), n in pairs.items() for _ in range(n)]).view(1, 1, -1)
    pred = torch.tensor([p for (_, p), n in pairs.items() for _ in range(n)]).view(1, 1, -1)
    cm = ConfusionMatrix(HELEN.num_classes)
    cm.update(pred, target)
    return cm


def test_helen_merged_groups_and_overall_f1() -> None:
    cm = helen_matrix()
    scores = cm.group_f1(HELEN.groups)
    # eyes: GT 7, PRED 7 (incl. skin predicted as left eye), left/right confusions count: intersection 6.
    assert scores["eyes"] == pytest.approx(12 / 14)
    assert scores["brows"] == pytest.approx(1.0)
    assert scores["nose"] == pytest.approx(8 / 9)
    # mouth = upper lip + inner mouth + lower lip: GT 5, PRED 6 (the nose pixel predicted as upper lip), 5 shared.
    assert scores["mouth"] == pytest.approx(10 / 11)
    # overall: merged foreground of brows, eyes, nose, mouth: GT 20, PRED 20, only the eye pixel lost to skin.
    assert scores["overall"] == pytest.approx(38 / 40)
    # The merged score is not the average of the component scores.
    assert scores["overall"] != pytest.approx(sum(scores[k] for k in ("eyes", "brows", "nose", "mouth")) / 4)
    assert cm.f1()[4].item() == pytest.approx(2 * 3 / (4 + 4))


def test_to_dict_is_json_ready() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    report = cm.to_dict(["bg", "a", "b", "c"], groups={"ab": (1, 2)})
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["f1"]["c"] is None
    assert report["f1"]["a"] == pytest.approx(2 / 3)
    assert report["group_f1"]["ab"] == pytest.approx(1.0)
    assert report["pixels"] == 4
    with pytest.raises(ValueError, match="class_names"):
        cm.to_dict(["bg"])


def test_all_reduce_is_a_no_op_outside_distributed() -> None:
    # The sum over processes is checked by tests/test_ddp.py (validation pixels of a two-process run).
    cm = small_matrix()
    cm.all_reduce()
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
