"""Figures: each function returns a rendered, labelled matplotlib figure for a small model, without pyplot."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from PIL import Image
from tiny_model import TOP_K, tiny_checkpoint, tiny_model

from agrnet import viz, weights
from agrnet.config import preset_config
from agrnet.data.labels import FASSEG, LAPA
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNetOutput

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


# What the graph learned, Z0 against Y, example predictions and errors, the graph chapters' model ----------------

GRID = (HEIGHT // 4, WIDTH // 4)


def _planted_output(schema=LAPA, top_k=TOP_K) -> AGRNetOutput:
    """An output whose vertices are known: class c's K vertices on row c of the 1/4 grid, columns 1 ... K."""
    flat = torch.tensor([c * GRID[1] + 1 + k for c in range(schema.num_classes) for k in range(top_k)])
    return AGRNetOutput(
        logits=torch.zeros(1, schema.num_classes, HEIGHT, WIDTH),
        raw_logits=torch.zeros(1, schema.num_classes, *GRID),
        vertex_index=flat[None],
    )


def _label_under(output: AGRNetOutput, schema=LAPA) -> torch.Tensor:
    """A full-size label whose every 4 x 4 cell under a vertex holds the vertex's class (the rest background)."""
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    top_k = output.vertex_index.shape[1] // schema.num_classes
    for position, flat in enumerate(output.vertex_index[0].tolist()):
        row, col = divmod(flat, GRID[1])
        label[4 * row : 4 * row + 4, 4 * col : 4 * col + 4] = position // top_k
    return label


def test_label_at_grid_reads_the_centre_of_each_cell():
    label = torch.arange(HEIGHT * WIDTH).view(HEIGHT, WIDTH)
    grid = viz.label_at_grid(label, GRID)
    assert grid.shape == GRID
    assert int(grid[0, 0]) == int(label[2, 2]) and int(grid[-1, -1]) == int(label[HEIGHT - 2, WIDTH - 2])


def test_every_vertex_on_its_own_class_gives_a_share_of_one():
    output = _planted_output()
    label = _label_under(output)
    hits = viz.vertex_hits(output, label, LAPA)
    assert hits.shape == (LAPA.num_classes, TOP_K) and bool(hits.all())
    assert viz.own_class_share([hits, hits]).tolist() == [1.0] * LAPA.num_classes
    # a face labelled background everywhere: only the background's vertices are on their own class
    background = viz.vertex_hits(output, torch.zeros(HEIGHT, WIDTH, dtype=torch.long), LAPA)
    share = viz.own_class_share([hits, background])
    assert share[0] == 1.0 and share[1:].tolist() == [0.5] * (LAPA.num_classes - 1)
    assert float(viz.own_class_share([background]).mean()) == pytest.approx(1 / LAPA.num_classes)
    with pytest.raises(ValueError, match="no faces"):
        viz.own_class_share([])


def test_vertices_of_several_faces_are_drawn_on_each(image_and_output):
    image, output = image_and_output
    tall = torch.rand(3, 2 * HEIGHT, WIDTH)  # positions scale with the picture: a face at another size
    figure = rendered(viz.vertices_faces_figure([("a", image, output), ("b", tall, output)], LAPA, per_row=2))
    drawn = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == ["a", "b"]
    (first,) = [c for c in drawn[0].collections if isinstance(c, PathCollection)]
    (second,) = [c for c in drawn[1].collections if isinstance(c, PathCollection)]
    assert len(first.get_offsets()) == TOP_K * (LAPA.num_classes - 1)
    np.testing.assert_allclose(second.get_offsets()[:, 1], 2 * first.get_offsets()[:, 1])
    assert "background" not in legend_texts(figure) and "hair" in legend_texts(figure)
    with pytest.raises(ValueError, match="nothing"):
        viz.vertices_faces_figure([], LAPA)


def test_adjacency_ticks_name_each_class_once_on_both_axes(image_and_output):
    _, output = image_and_output
    for aggregate in (False, True):
        ax = viz.adjacency_figure(output.adjacency, LAPA, aggregate=aggregate).axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == list(LAPA.classes)
        assert len(ax.get_xticks()) == LAPA.num_classes


def test_a_random_adjacency_does_not_stand_out_and_a_planted_pair_does():
    vertices = LAPA.num_classes * TOP_K
    bound = 1 / vertices**0.5
    random = (torch.rand(vertices, vertices, generator=torch.Generator().manual_seed(3)) * 2 - 1) * bound
    reading = viz.read_adjacency(random, LAPA)
    assert not reading.stands_out
    assert reading.random_std == pytest.approx(bound / 3**0.5)
    assert reading.std == pytest.approx(float(random.std()))
    assert reading.blocks.shape == reading.pairs.shape == (LAPA.num_classes, LAPA.num_classes)
    torch.testing.assert_close(reading.pairs, reading.pairs.T)
    planted = random.clone()
    planted[4 * TOP_K : 5 * TOP_K, 5 * TOP_K : 6 * TOP_K] = 1.0  # left eye <- right eye, strongly positive
    planted[6 * TOP_K : 7 * TOP_K, 8 * TOP_K : 9 * TOP_K] = -1.0  # nose <- inner mouth, strongly negative
    reading = viz.read_adjacency(planted, LAPA)
    assert reading.stands_out
    assert reading.strongest[:2] == (4, 5) and reading.weakest[:2] == (6, 8)
    assert reading.strongest[2] > reading.random_limit > 0
    with pytest.raises(ValueError, match="V x V"):
        viz.read_adjacency(torch.zeros(5, 5), LAPA)


def test_boundary_band_and_distance():
    label = torch.zeros(9, 9, dtype=torch.long)
    label[:, 5:] = 1  # one vertical boundary between columns 4 and 5
    assert viz.boundary_band(label).sum() == 18  # columns 4 and 5
    assert viz.boundary_band(label, radius=1)[:, 3:7].all() and not viz.boundary_band(label, radius=1)[:, :3].any()
    distance = viz.boundary_distance(label)
    assert distance[0].tolist() == [4, 3, 2, 1, 0, 0, 1, 2, 3]
    assert viz.boundary_distance(label, image_border=True)[4].tolist() == [0, 1, 2, 1, 0, 0, 1, 1, 0]


def test_edge_and_interior_pixels_come_from_the_ground_truth(image_and_output):
    _, output = image_and_output
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    label[8:56, 8:88] = 1  # skin, with a background margin
    label[24:40, 40:56] = 6  # a nose in the middle: its border is the one boundary between face classes
    grid = viz.label_at_grid(label, GRID).flatten()
    nose_border = 6 * GRID[1] + 10  # row 6, column 10 of the 1/4 grid: the nose's top-left pixel
    assert _between_face_classes(grid, nose_border)
    edge_logits = torch.zeros(1, 1, *GRID)
    edge_logits[0, 0, 0, 0] = 10.0  # the highest E of the face lies on the background, far from the nose
    edge_logits.view(-1)[nose_border] = 5.0
    planted = dataclasses.replace(output, edge_logits=edge_logits)
    edge, interior = viz.edge_and_interior_pixels(planted, label, LAPA)
    assert edge == nose_border  # the highest E among pixels between two face classes
    edge, _ = viz.edge_and_interior_pixels(output, label, LAPA)  # the model's own E
    probability = output.edge_logits[0, 0].flatten()
    assert probability[edge] == max(probability[i] for i in range(grid.numel()) if _between_face_classes(grid, i))
    assert int(grid[interior]) in (1, 6)
    distance = viz.boundary_distance(viz.label_at_grid(label, GRID), image_border=True).flatten()
    assert int(distance[interior]) == int(distance[grid != 0].max()) > 1
    with pytest.raises(ValueError, match="no boundary"):
        viz.edge_and_interior_pixels(output, torch.ones(HEIGHT, WIDTH, dtype=torch.long), LAPA)


def _between_face_classes(grid: torch.Tensor, flat: int) -> bool:
    row, col = divmod(flat, GRID[1])
    square = grid.view(GRID)
    neighbours = [square[r, c] for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                  if 0 <= r < GRID[0] and 0 <= c < GRID[1]]  # fmt: skip
    return any(int(n) not in (0, int(square[row, col])) for n in neighbours)


def test_pixel_projection_bars_are_the_columns_of_p(image_and_output):
    image, output = image_and_output
    figure = rendered(viz.pixel_projection_figure(image, output, LAPA, {"edge pixel": 5, "interior pixel": 77}))
    bar_axes = [ax for ax in figure.axes if ax.patches]
    assert len(bar_axes) == 2
    for ax, pixel in zip(bar_axes, (5, 77), strict=True):
        heights = [bar.get_height() for bar in ax.patches]
        np.testing.assert_allclose(heights, output.projection[0, :, pixel].numpy(), rtol=1e-6)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(LAPA.classes)
    assert [ax.get_title().splitlines()[0] for ax in figure.axes if ax.images] == ["edge pixel", "interior pixel"]


def test_raw_and_final_maps_and_scores_pool_over_faces(image_and_output):
    _, output = image_and_output
    maps = viz.raw_and_final(output, (HEIGHT, WIDTH))
    assert set(maps) == {"Z0", "Y"} and maps["Y"].shape == (HEIGHT, WIDTH)
    assert torch.equal(maps["Y"], output.logits.argmax(1)[0])  # Y is already at the input size
    label = maps["Z0"].clone()
    scores = viz.raw_and_final_scores(output, label, LAPA)
    assert scores["Z0"].pixel_accuracy() == 1.0  # the label is Z0's own map
    pooled = viz.raw_and_final_scores(output, label, LAPA, into=scores)
    assert pooled is scores and int(pooled["Y"].matrix.sum()) == 2 * HEIGHT * WIDTH


def test_raw_and_final_figure_shows_both_scores(image_and_output):
    image, output = image_and_output
    label = viz.raw_and_final(output, (HEIGHT, WIDTH))["Y"]
    figure = rendered(viz.raw_and_final_figure(image, label, output, LAPA))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith("ground truth") and "Z0" in titles[1] and "Y (Eq. 7)" in titles[2]
    assert "accuracy 100.0 %" in titles[2]  # Y scored against itself
    assert "broke 0" in titles[3]


def test_predictions_show_photograph_truth_prediction_and_errors():
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    label[10:30, 20:60] = 1
    prediction = label.clone()
    prediction[10:20, 20:60] = 10  # a quarter of ... half of the skin called hair
    rows = [("face 1", torch.rand(3, HEIGHT, WIDTH), label, prediction)]
    plain = rendered(viz.predictions_figure(rows, LAPA))
    assert [ax.get_title() for ax in plain.axes] == ["photograph", "ground truth", "prediction"]
    with_errors = rendered(viz.predictions_figure(rows * 2, LAPA, errors=True))
    assert len(with_errors.axes) == 8
    share = 100 * 10 * 40 / (HEIGHT * WIDTH)
    titles = [ax.get_title() for ax in with_errors.axes]
    assert titles == ["photograph", "ground truth", "prediction", f"wrong ({share:.1f} %)", "", "", "",
                      f"wrong ({share:.1f} %)"]  # fmt: skip
    assert with_errors.axes[0].get_ylabel() == "face 1"
    errors = viz.wrong_pixels(rows[0][1], prediction, label, LAPA)
    assert errors[:, 15, 30].tolist() == [1.0, 0.0, 0.0] and errors[0, 25, 30] == errors[1, 25, 30]
    with pytest.raises(ValueError, match="nothing"):
        viz.predictions_figure([], LAPA)


def test_baseline_and_agrnet_are_drawn_side_by_side_with_their_scores_and_errors():
    label = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    label[10:50, 20:60] = 1
    baseline, agrnet = label.clone(), label.clone()
    baseline[10:20, 20:60] = 0  # the baseline misses the top rows of skin
    agrnet[40:50, 20:60] = 0  # AGRNet the bottom rows
    agrnet[10:12, 20:60] = 0  # and two rows the baseline misses too
    image = torch.rand(3, HEIGHT, WIDTH)
    scores = viz.image_scores([baseline, agrnet, label], [label] * 3, FASSEG)
    skin = ConfusionMatrix(6)
    skin.update(baseline, label)
    assert scores[0] == pytest.approx(skin.mean_f1()) and scores[2] == 1.0 and scores[1] < scores[0] < 1
    figure = rendered(viz.baseline_and_agrnet_figure([("face 3", image, label, baseline, agrnet)] * 2, FASSEG))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:4] == ["ground truth", f"baseline {100 * scores[0]:.1f}", f"AGRNet {100 * scores[1]:.1f}", "wrong"]
    assert titles[4] == "" and titles[5].startswith("baseline") and figure.axes[4].get_ylabel() == "face 3"
    errors = viz.paired_errors(image, baseline, agrnet, label, FASSEG)
    colours = list(viz.WRONG_COLOURS.values())
    assert errors[:, 15, 30].tolist() == pytest.approx(colours[0]) and errors[:, 45, 30].tolist() == pytest.approx(
        colours[1]
    )
    assert errors[:, 11, 30].tolist() == pytest.approx(colours[2]) and errors[0, 30, 30] == errors[1, 30, 30]
    with pytest.raises(ValueError, match="nothing"):
        viz.baseline_and_agrnet_figure([], FASSEG)


def test_largest_changes_picks_the_largest_gains_and_losses_by_rule():
    before = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    after = torch.tensor([0.6, 0.4, 0.9, 0.5, 0.1], dtype=torch.float64)
    assert viz.largest_changes(before, after, 2) == ([2, 0], [4, 1])
    with pytest.raises(ValueError, match="count"):
        viz.largest_changes(before, after, 3)
    with pytest.raises(ValueError, match="one length"):
        viz.largest_changes(before, after[:4], 1)


def test_error_breakdown_counts_errors_near_boundaries():
    label = torch.zeros(20, 20, dtype=torch.long)
    label[:, 10:] = 1
    prediction = label.clone()
    prediction[:, 9] = 1  # a column of background next to the boundary called skin
    prediction[0, 0] = 1  # and one pixel far from it
    breakdown = viz.error_breakdown([prediction], [label], LAPA, radius=1)
    assert breakdown.pixels[:2].tolist() == [200, 200] and breakdown.wrong[:2].tolist() == [21, 0]
    assert breakdown.wrong_near[0] == 20 and breakdown.near[:2].tolist() == [40, 40]
    assert breakdown.errors_near_boundary == pytest.approx(20 / 21)
    assert breakdown.pixels_near_boundary == pytest.approx(80 / 400)
    assert breakdown.error_rate[0] == pytest.approx(21 / 200) and math.isnan(breakdown.error_rate[2])
    assert breakdown.confusion[0, 1] == 21
    with pytest.raises(ValueError, match="as many"):
        viz.error_breakdown([prediction], [], LAPA)
    figure = rendered(viz.class_errors_figure(breakdown, LAPA))
    rate_ax, share_ax = figure.axes
    heights = [bar.get_height() for bar in rate_ax.patches]
    assert heights[0] == pytest.approx(100 * 20 / 200) and heights[LAPA.num_classes] == pytest.approx(100 / 200)
    assert [round(bar.get_height(), 6) for bar in share_ax.patches][:2] == [50.0, 50.0]
    assert [t.get_text() for t in share_ax.get_xticklabels()] == list(LAPA.classes)


def test_numbered_faces():
    assert viz.numbered_faces([0]) == "face 1"
    assert viz.numbered_faces([0, 1, 2, 3]) == "faces 1-4"
    assert viz.numbered_faces([4, 0, 9]) == "faces 5, 1, 10"
    with pytest.raises(ValueError):
        viz.numbered_faces([])


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A weights folder holding tiny stand-ins for both shipped entries, exported as ``agrnet weights`` does."""
    folder = tmp_path_factory.mktemp("weights")
    for name, schema, preset in ((viz.SYNTHETIC_WEIGHTS, LAPA, "synthetic"), (viz.FASSEG_WEIGHTS, FASSEG, "fasseg")):
        config = dataclasses.asdict(preset_config(preset, channels=32, top_k=TOP_K, size=64))
        metrics = {"mean_f1": 0.5, "miou": 0.4, "f1": dict.fromkeys(schema.classes, 0.5)}
        checkpoint = tiny_checkpoint(folder.parent / f"{name}.pt", schema, config=config, step=7, metrics=metrics)
        weights.export_weights(checkpoint, name, "test", "https://example.org", command="agrnet train",
                               commit="0123abc", out_dir=folder)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def fasseg_root(tmp_path_factory):
    """A FASSEG folder with two colour-coded test faces (background, skin, eyes)."""
    root = tmp_path_factory.mktemp("fasseg")
    for part in ("Test_RGB", "Test_Labels"):
        (root / "V2" / part).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in ("1", "2"):
        ids = np.zeros((48, 32), dtype=np.uint8)
        ids[8:40, 4:28] = 1
        ids[16:20, 8:24] = 3
        Image.fromarray(FASSEG.palette[ids].astype(np.uint8)).save(root / "V2" / "Test_Labels" / f"{stem}.png")
        photograph = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
        Image.fromarray(photograph).save(root / "V2" / "Test_RGB" / f"{stem}.png")
    return root


def test_chapter_model_prefers_fasseg_weights_on_fasseg_faces(registry, fasseg_root):
    chapter = viz.chapter_model(fasseg_root, directory=registry)
    assert chapter.trained and chapter.name == viz.FASSEG_WEIGHTS and chapter.schema.name == "fasseg"
    assert len(chapter.dataset) == 2 and chapter.faces(1)[0]["label"].shape == (48, 32)
    assert chapter.warning_html() is None
    assert chapter.describe(2) == "fasseg-resnet18 on FASSEG frontal02 test faces 1-2"
    assert "`fasseg-resnet18`, mean F1 50.0 % on the `val` split of `fasseg`" in chapter.summary()
    assert "7 training steps" in chapter.summary()
    assert chapter.predictor.size == (64, 64)


def test_chapter_model_falls_back_to_synthetic_weights_without_fasseg(registry, tmp_path):
    chapter = viz.chapter_model(tmp_path / "no-fasseg", directory=registry, num_synthetic=3)
    assert chapter.trained and chapter.name == viz.SYNTHETIC_WEIGHTS and chapter.schema is not FASSEG
    assert chapter.schema.name == LAPA.name and len(chapter.dataset) == 3
    assert chapter.describe([1]) == "synthetic-resnet18 on synthetic test face 2"
    assert "FASSEG is not at DATA_ROOT" in chapter.note
    _, output = chapter.predictor.explain(chapter.faces(1)[0]["image"])
    assert output.adjacency is not None


def test_chapter_model_without_weights_is_random_and_says_so(fasseg_root, tmp_path):
    state = torch.random.get_rng_state()
    chapter = viz.chapter_model(fasseg_root, directory=tmp_path)  # an empty registry
    assert torch.equal(torch.random.get_rng_state(), state)  # the random weights leave the global generator alone
    assert not chapter.trained and chapter.name == "random weights" and chapter.schema.name == "fasseg"
    warning = chapter.warning_html()
    assert 'class="admonition warning"' in warning and "random weights" in warning and "found: none" in warning
    assert "none trained" in chapter.summary()
    again = viz.chapter_model(fasseg_root, directory=tmp_path)
    first, second = (dict(c.predictor.model.state_dict()) for c in (chapter, again))
    assert all(torch.equal(first[key], second[key]) for key in first)  # seeded: the same random weights
    synthetic = viz.chapter_model(None, directory=tmp_path / "missing", num_synthetic=2)
    assert not synthetic.trained and synthetic.schema.name == LAPA.name and len(synthetic.dataset) == 2
    assert synthetic.predictor.model.config["top_k"] == viz.UNTRAINED_CONFIG["top_k"]


def test_paired_figure_draws_one_line_per_seed_and_an_interval_per_variant():
    from agrnet.experiments import paired

    runs = [
        {"variant": variant, "seed": seed, "metrics": {"test": {"mean_f1": base + 0.01 * seed}}}
        for seed in range(3)
        for variant, base in (("baseline", 0.80), ("full", 0.82))
    ]
    results = {"variants": {"baseline": {}, "full": {}}, "reference": "baseline", "runs": runs}
    results["paired"] = paired(runs, "baseline")
    figure = viz.paired_figure(results)
    left, right = figure.axes
    assert len(left.lines) == 3 + 1, "three seeds and the means"
    assert [t.get_text() for t in left.get_yticklabels()] == ["baseline", "full"]
    assert len(right.containers) == 1, "one interval: full against the baseline"
    assert viz.figure_problems(figure) == []


def test_paired_figure_leaves_out_variants_with_no_run_yet():
    runs = [{"variant": "baseline", "seed": 0, "metrics": {"test": {"mean_f1": 0.8}}}]
    results = {"variants": {"baseline": {}, "+edge": {}, "full": {}}, "reference": "baseline", "runs": runs}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty slice for the pending variants
        figure = viz.paired_figure(results)
    left, _ = figure.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["baseline"]
    assert left.get_title() == "1 seed, one grey line each"


def test_curves_figure_draws_each_runs_curve_in_its_variants_colour():
    curve = [{"step": s, "final": 1.0 / s, "diagnostics": {"own_class": 0.1 * s, "p_entropy": 0.9,
                                                          "grad_norm": 2.0}} for s in (1, 2, 3)]  # fmt: skip
    runs = [{"variant": v, "seed": seed, "curve": curve} for v in ("baseline", "full") for seed in (0, 1)]
    results = {"variants": {"baseline": {}, "full": {}}, "runs": runs}
    figure = viz.curves_figure(results)
    panels = [ax for ax in figure.axes if ax.lines]
    assert len(panels) == 4 and all(len(ax.lines) == 4 for ax in panels)
    assert panels[1].lines[0].get_ydata().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert viz.figure_problems(figure) == []
    with pytest.raises(ValueError, match="curve"):
        viz.curves_figure({"variants": {}, "runs": [{"variant": "x", "seed": 0}]})


def test_baseline_and_agrnet_names_what_is_missing():
    from agrnet.book import baseline_and_agrnet

    line, rows = baseline_and_agrnet("no-such-weights", "fasseg-resnet18", None, 3)
    assert rows == [] and line == "No comparison: the weights 'no-such-weights' and FASSEG not found here."
