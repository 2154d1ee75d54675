"""Figures of what the model does and how well: parsing overlays, the selected vertices (Fig. 8), the learned
adjacency A (Fig. 7), response maps of the projection P (Fig. 11), the preliminary map Z0 against the final Y,
example predictions and their errors (Fig. 10), confusion matrices, per-class F1 and training curves; and of what
the book shows besides: the architecture (Fig. 2), the data, feature maps, the losses and the cost.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (``cpu_timings`` and ``gpu_throughput``
with the lines a chapter prints beside it): nothing is shown or kept in global state; a notebook displays the
returned figure. Class colours are the label schema's palette throughout.

The modules: ``style`` (the book's figure style and the class palette), ``parsing`` (label maps, overlays,
predictions), ``graph`` (vertices, adjacency, reasoning, projection), ``results`` (scores, experiments, training
curves), ``overview`` (the architecture), ``data`` (faces, edges, flips, augmentation), ``features`` (feature maps,
edges, masking), ``losses``, ``cost`` (FLOPs, timings) and ``photos`` (the photo pipeline). What the figures compute
without drawing is ``agrnet.analysis``; the book's model loader and ``source`` are ``agrnet.book``.
"""

from agrnet.analysis import (
    boundary_band,
    boundary_distance,
    edge_and_interior_pixels,
    error_breakdown,
    feature_size,
    image_scores,
    largest_changes,
    own_class_share,
    raw_and_final,
    raw_and_final_scores,
    read_adjacency,
    response_maps,
    vertex_hits,
)
from agrnet.book import FASSEG_WEIGHTS, SYNTHETIC_WEIGHTS, UNTRAINED_CONFIG, chapter_model, numbered_faces
from agrnet.diagnostics import label_at_grid
from agrnet.viz.cost import cpu_timings, gpu_throughput, parts_cost_figure
from agrnet.viz.data import augmentations_figure, edge_closeup_figure, flip_figure, synthetic_faces_figure
from agrnet.viz.features import edge_map_figure, feature_maps_figure, masking_figure
from agrnet.viz.graph import (
    adjacency_figure,
    pixel_projection_figure,
    reasoning_update_figure,
    response_maps_figure,
    spatial_and_adaptive_figure,
    vertices_faces_figure,
    vertices_figure,
)
from agrnet.viz.losses import discriminative_figure, loss_example_figure, loss_terms_figure
from agrnet.viz.overview import architecture_figure
from agrnet.viz.parsing import (
    WRONG_COLOURS,
    baseline_and_agrnet_figure,
    label_maps_figure,
    overlay_figure,
    overlays_figure,
    paired_errors,
    predictions_figure,
    raw_and_final_figure,
    wrong_pixels,
)
from agrnet.viz.photos import photo_parsing_figure
from agrnet.viz.results import (
    CURVE_PANELS,
    LOG_META_KEYS,
    class_errors_figure,
    confusion_figure,
    curves_figure,
    f1_figure,
    f1_runs_figure,
    paired_figure,
    read_log,
    training_curves_figure,
    yaw_figure,
)
from agrnet.viz.style import (
    BOOK_DPI,
    BOOK_RC,
    BOOK_WIDTH,
    MIN_FONT_PT,
    book_style,
    class_colours,
    figure_problems,
    legend_handles,
    small_texts,
)

__all__ = [
    "WRONG_COLOURS",
    "baseline_and_agrnet_figure",
    "paired_errors",
    "BOOK_DPI",
    "BOOK_RC",
    "BOOK_WIDTH",
    "CURVE_PANELS",
    "LOG_META_KEYS",
    "MIN_FONT_PT",
    "adjacency_figure",
    "architecture_figure",
    "augmentations_figure",
    "book_style",
    "class_colours",
    "class_errors_figure",
    "confusion_figure",
    "cpu_timings",
    "curves_figure",
    "discriminative_figure",
    "edge_closeup_figure",
    "edge_map_figure",
    "f1_figure",
    "feature_maps_figure",
    "f1_runs_figure",
    "figure_problems",
    "flip_figure",
    "gpu_throughput",
    "label_maps_figure",
    "legend_handles",
    "loss_example_figure",
    "loss_terms_figure",
    "masking_figure",
    "overlay_figure",
    "overlays_figure",
    "photo_parsing_figure",
    "paired_figure",
    "parts_cost_figure",
    "pixel_projection_figure",
    "predictions_figure",
    "raw_and_final_figure",
    "read_log",
    "reasoning_update_figure",
    "response_maps_figure",
    "small_texts",
    "spatial_and_adaptive_figure",
    "synthetic_faces_figure",
    "training_curves_figure",
    "vertices_faces_figure",
    "vertices_figure",
    "wrong_pixels",
    "yaw_figure",
    # Moved to agrnet.analysis, agrnet.book and agrnet.diagnostics; still importable from here for the tests that
    # reach them as viz.NAME (tests/test_viz.py).
    "FASSEG_WEIGHTS",
    "SYNTHETIC_WEIGHTS",
    "UNTRAINED_CONFIG",
    "boundary_band",
    "boundary_distance",
    "chapter_model",
    "edge_and_interior_pixels",
    "error_breakdown",
    "image_scores",
    "largest_changes",
    "feature_size",
    "label_at_grid",
    "numbered_faces",
    "own_class_share",
    "raw_and_final",
    "raw_and_final_scores",
    "read_adjacency",
    "response_maps",
    "vertex_hits",
]
