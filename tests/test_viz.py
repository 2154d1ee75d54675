"""Figures: each function returns a rendered, labelled matplotlib figure for a small model, without pyplot."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from tiny_model import TOP_K, tiny_model

from agrnet import viz
from agrnet.data.labels import LAPA
from agrnet.metrics import ConfusionMatrix

HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def image_and_output():
    image = torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        output = tiny_model(LAPA)(image[None])
    return image, output


def rendered(figure: Figure) -> Figure:
    """Draw the figure to PNG (catches errors that only show when drawing) and check the book's width and fonts."""
    assert isinstance(figure, Figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.tell() > 0
    assert figure.get_size_inches()[0] * figure.dpi == pytest.approx(viz.BOOK_WIDTH * viz.BOOK_DPI, abs=1)
    assert viz.figure_problems(figure) == []
    return figure


def test_book_figures_fit_the_column_at_the_css_pixel_density():
    assert viz.BOOK_DPI == 96  # 1 pt of matplotlib text = 1 pt on the page when shown at its own size
    assert viz.BOOK_WIDTH * viz.BOOK_DPI <= 676  # the theme's content column at a 1280 px window
    fonts = [value for key, value in viz.BOOK_RC.items() if key.startswith(("font.", "axes.", "xtick", "ytick"))]
    assert fonts and min(fonts) >= viz.MIN_FONT_PT >= 9


def test_figure_problems_names_small_text_and_a_wide_figure():
    figure = Figure(figsize=(9, 3), dpi=viz.BOOK_DPI)
    ax = figure.subplots()
    ax.set_title("title", fontsize=7)
    ax.set_xlabel("x", fontsize=12)
    ax.tick_params(labelsize=6)
    problems = viz.figure_problems(figure)
    assert problems[0].startswith("864 px wide")
    assert "text 'title' at 7 pt, below 9 pt" in problems
    assert any(problem.startswith("text '0.0' at 6 pt") for problem in problems)  # tick labels count
    assert not any("'x'" in problem for problem in problems)
    hidden = Figure(figsize=(viz.BOOK_WIDTH, 2), dpi=viz.BOOK_DPI)
    hidden_ax = hidden.subplots()
    hidden_ax.tick_params(labelsize=6)
    hidden_ax.set_axis_off()  # axes not drawn: their tick labels do not count
    assert viz.figure_problems(hidden) == []


def test_book_style_sets_matplotlib_defaults():
    import matplotlib

    with matplotlib.rc_context():
        viz.book_style()
        assert matplotlib.rcParams["figure.dpi"] == viz.BOOK_DPI
        assert tuple(matplotlib.rcParams["figure.figsize"])[0] == viz.BOOK_WIDTH
        assert matplotlib.rcParams["legend.fontsize"] == viz.MIN_FONT_PT


def legend_texts(figure: Figure) -> list[str]:
    legends = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def test_overlay_legend_lists_the_classes_present(image_and_output):
    image, _ = image_and_output
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    label[10:20, 10:30] = 4
    label[30:40] = 10
    figure = rendered(viz.overlay_figure(image, label, LAPA))
    assert legend_texts(figure) == ["background", "left eye", "hair"]
    assert len(legend_texts(viz.overlay_figure(image, label, LAPA, all_classes=True))) == LAPA.num_classes


def test_vertices_are_drawn_where_vertex_index_points(image_and_output):
    image, output = image_and_output
    figure = rendered(viz.vertices_figure(image, output, LAPA))
    (points,) = [c for c in figure.axes[0].collections if isinstance(c, PathCollection)]
    xy = points.get_offsets()
    assert len(xy) == TOP_K * (LAPA.num_classes - 1)  # background skipped
    rows_1, cols_1 = output.raw_logits.shape[-2:]
    first = int(output.vertex_index[0, TOP_K])  # the first vertex of class 1, the first one drawn
    assert xy[0][0] == pytest.approx((first % cols_1 + 0.5) * WIDTH / cols_1)
    assert xy[0][1] == pytest.approx((first // cols_1 + 0.5) * HEIGHT / rows_1)
    assert "skin" in legend_texts(figure) and "background" not in legend_texts(figure)
    assert figure.axes[0].get_xlabel() and figure.axes[0].get_ylabel()


@pytest.mark.parametrize("aggregate", [False, True])
def test_adjacency_heatmap_is_labelled_by_class(image_and_output, aggregate):
    _, output = image_and_output
    figure = rendered(viz.adjacency_figure(output.adjacency, LAPA, aggregate=aggregate))
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(LAPA.classes)
    cells = ax.collections[0].get_array()
    side = LAPA.num_classes * (1 if aggregate else TOP_K)
    assert cells.size == side * side
    if aggregate:
        blocks = output.adjacency.view(LAPA.num_classes, TOP_K, LAPA.num_classes, TOP_K).mean(dim=(1, 3))
        np.testing.assert_allclose(np.asarray(cells).reshape(side, side), blocks.numpy(), rtol=1e-5)


def test_response_maps_split_each_pixel_over_the_classes(image_and_output):
    _, output = image_and_output
    maps = viz.response_maps(output, LAPA, (HEIGHT, WIDTH))
    assert maps.shape == (LAPA.num_classes, HEIGHT, WIDTH)
    torch.testing.assert_close(maps.sum(0), torch.ones(HEIGHT, WIDTH))  # P's columns sum to one


def test_response_maps_figure_has_one_panel_per_class(image_and_output):
    image, output = image_and_output
    figure = rendered(viz.response_maps_figure(image, output, LAPA, classes=[4, 5, 6]))
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["left eye", "right eye", "nose"]


def test_feature_size_without_z0_or_edges_follows_the_aspect():
    model = tiny_model(LAPA, projection="spatial", use_edge=False)
    with torch.inference_mode():
        output = model(torch.rand(1, 3, HEIGHT, WIDTH))
    assert output.raw_logits is None and output.edge_logits is None
    assert viz.feature_size(output, (HEIGHT, WIDTH)) == (HEIGHT // 4, WIDTH // 4)
    rendered(viz.vertices_figure(torch.rand(3, HEIGHT, WIDTH), output, LAPA))


def test_baseline_without_graph_gives_a_clear_error():
    with torch.inference_mode():
        output = tiny_model(LAPA, use_graph=False)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="graph"):
        viz.vertices_figure(torch.rand(3, 32, 32), output, LAPA)


def test_confusion_heatmap_normalises_rows():
    matrix = ConfusionMatrix(LAPA.num_classes)
    matrix.update(torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 2, 2]))
    figure = rendered(viz.confusion_figure(matrix, LAPA))
    cells = np.asarray(figure.axes[0].collections[0].get_array()).reshape(LAPA.num_classes, LAPA.num_classes)
    assert cells[2].tolist()[:3] == [0, 0.25, 0.75]
    assert figure.axes[0].get_ylabel() == "ground-truth class"
    rendered(viz.confusion_figure(matrix.matrix.tolist(), LAPA, normalize=False))


def test_f1_bars_show_the_paper_for_its_datasets():
    report = {"f1": dict.fromkeys(LAPA.classes, 0.8), "mean_f1": 0.8}
    ours = rendered(viz.f1_figure(report, LAPA))
    assert "AGRNet (paper)" not in legend_texts(ours)
    assert [round(bar.get_height(), 6) for bar in ours.axes[0].patches] == [80.0] * (LAPA.num_classes - 1)
    assert "AGRNet (paper)" in legend_texts(rendered(viz.f1_figure({**report, "dataset": "lapa"}, LAPA)))


def test_training_curves_from_a_log(tmp_path):
    lines = [{"kind": "start", "step": 0, "device": "cpu"}]
    for step in (10, 20, 30):
        lines.append({"kind": "train", "step": step, "epoch": 0, "lr": 1e-3 / step, "loss": 3.0 / step,
                      "raw": 1.0 / step, "final": 2.0 / step, "images_per_s": 5.0})  # fmt: skip
    lines.append({"kind": "val", "step": 30, "mean_f1": 0.5, "miou": 0.4, "pixel_accuracy": 0.9, "f1": {}})
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    figure = rendered(viz.training_curves_figure(tmp_path))
    loss_ax, lr_ax, val_ax = figure.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["loss", "raw", "final"]
    assert list(loss_ax.get_lines()[0].get_ydata()) == [0.3, 0.15, 0.1]
    assert [line.get_label() for line in val_ax.get_lines()] == ["mean F1", "mIoU"]
    assert all(ax.get_xlabel() == "step" for ax in figure.axes)


def test_read_log_names_a_bad_line(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"kind": "train", "step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="log.jsonl:2"):
        viz.read_log(tmp_path / "log.jsonl")
    with pytest.raises(FileNotFoundError, match="log.jsonl"):
        viz.read_log(tmp_path / "elsewhere")


def test_overlays_put_each_image_beside_its_label():
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    label[10:20, 10:30] = 4
    other = torch.full((HEIGHT, WIDTH), 10, dtype=torch.long)
    samples = [("first", torch.rand(3, HEIGHT, WIDTH), label), ("second", torch.rand(3, HEIGHT, WIDTH), other)]
    figure = rendered(viz.overlays_figure(samples, LAPA))
    assert [ax.get_title() for ax in figure.axes] == ["first", "label", "second", "label"]
    assert legend_texts(figure) == ["background", "left eye", "hair"]
    three = rendered(viz.overlays_figure([*samples, samples[0]], LAPA))
    assert len(three.axes) == 8 and not three.axes[-1].images  # two rows, the last half empty
    with pytest.raises(ValueError, match="nothing"):
        viz.overlays_figure([], LAPA)


def test_f1_runs_put_each_report_in_its_own_panel():
    first = {"f1": dict.fromkeys(LAPA.classes, 0.8), "mean_f1": 0.8}
    second = {"f1": dict.fromkeys(LAPA.classes, 0.6), "mean_f1": 0.6, "dataset": "lapa"}
    figure = rendered(viz.f1_runs_figure({"seed 0": first, "seed 1": second}, LAPA))
    assert [ax.get_title() for ax in figure.axes] == ["seed 0", "seed 1"]
    assert [round(bar.get_height(), 6) for bar in figure.axes[1].patches] == [60.0] * (LAPA.num_classes - 1)
    assert sorted(legend_texts(figure)) == ["AGRNet (paper)", "mean F1 (this run)", "this run"]
    with pytest.raises(ValueError, match="nothing"):
        viz.f1_runs_figure({}, LAPA)
