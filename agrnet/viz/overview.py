"""AGRNet as a diagram (the paper's Fig. 2): one box per step of the network, each with the shape of the tensor it
produced, arrows for the data flow, coloured by stage (features, projection, reasoning, reprojection)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from agrnet.viz.style import BOOK_DPI, BOOK_WIDTH, book_styled

STAGES = {
    "features": "#dbe9f6",
    "projection": "#dcf0dc",
    "reasoning": "#fde5cc",
    "reprojection": "#e8def3",
}
"""The stages of the network and their colours."""
COLUMNS = (0.8, 2.5, 4.2, 5.9)  # box centres, inches from the left
ROWS = (4.1, 2.95, 1.8, 0.65)  # inches from the bottom
NODES = {  # name: (column, row, title, stage, tensor whose shape the box shows)
    "I": (0, 0, "input image $I$", "features", "I"),
    "backbone": (1, 0, "dilated ResNet\nconv2 … conv5", "features", "conv5"),
    "X2": (2, 0, "pyramid pooling\n$X_2$", "features", "X2"),
    "E": (1, 1, "edge perceiving\nmodule: $E$", "features", "E"),
    "X0": (2, 1, "fusion, Eq. (1)\n$X_0$", "projection", "X0"),
    "Z0": (3, 1, "preliminary map\n$Z_0$ = conv($X_0$)", "projection", "Z0"),
    "mask": (1, 2, "masking, Eq. (2)\n$X_e$, $X_{ne}$", "projection", "X0"),
    "XG": (2, 2, "top-K vertices\n$X_G$, Eq. (3)", "projection", "XG"),
    "A": (3, 2, "reasoning, Eq. (4)\n$\\hat{X}_G$, adjacency $A$", "reasoning", "A"),
    "P": (1, 3, "projection\n$P$, Eq. (5)", "reprojection", "P"),
    "XP": (2, 3, "reprojection (6)\n$X_P = P^\\top \\hat{X}_G$", "reprojection", "XP"),
    "Y": (3, 3, "decoding, Eq. (7)\n$Y$ = conv($X_0 + X_P$)", "reprojection", "Y"),
}
EDGES = [  # (from, to, label)
    ("I", "backbone", ""),
    ("backbone", "X2", "conv5"),
    ("backbone", "E", "conv2-4"),
    ("backbone", "X0", "$X_1$ = conv2"),
    ("X2", "X0", ""),
    ("X0", "Z0", ""),
    ("X0", "mask", ""),
    ("E", "mask", ""),
    ("Z0", "XG", "top-K"),
    ("mask", "XG", "$X_{ne}$"),
    ("XG", "A", ""),
    ("XG", "P", ""),
    ("mask", "P", "$X_e$"),
    ("A", "XP", "$\\hat{X}_G$"),
    ("P", "XP", ""),
    ("XP", "Y", ""),
]
WIDTH, HEIGHT = 1.3, 0.8  # box size in inches
ARROW = {"arrowstyle": "-|>", "color": "0.3", "lw": 1.0}
PLAIN = {"facecolor": "white", "edgecolor": "none", "pad": 0.5}


def _centre(name: str) -> tuple[float, float]:
    column, row = NODES[name][:2]
    return COLUMNS[column], ROWS[row]


def _boxes(ax: Axes, shapes: Mapping[str, str]) -> dict[str, Any]:
    """A box per node with its title and the shape of its tensor; the boxes by name."""
    boxes = {}
    for name, (_, _, title, stage, tensor) in NODES.items():
        x, y = _centre(name)
        boxes[name] = ax.add_patch(
            FancyBboxPatch((x - WIDTH / 2, y - HEIGHT / 2), WIDTH, HEIGHT, boxstyle="round,pad=0.03",
                           facecolor=STAGES[stage], edgecolor="0.35")  # fmt: skip
        )
        ax.text(x, y + 0.12, title, ha="center", va="center", fontsize=9, linespacing=1.3)
        ax.text(x, y - 0.27, shapes[tensor], ha="center", va="center", fontsize=9, color="0.2", family="monospace")
    return boxes


def _arrows(ax: Axes, boxes: Mapping[str, Any]) -> None:
    """The arrows of ``EDGES`` with their labels, and the skip connection X0 -> Y of Eq. (7) in a lane right of the
    graph."""
    for start, end, label in EDGES:
        (x0, y0), (x1, y1) = _centre(start), _centre(end)
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={**ARROW, "patchA": boxes[start],
                                                                    "patchB": boxes[end]})  # fmt: skip
        if label:  # above a horizontal arrow, left of a vertical one, on a diagonal one
            x, y, align = (x0 + x1) / 2, (y0 + y1) / 2, "center"
            if y0 == y1:
                y += 0.14
            elif x0 == x1:
                x, align = x - 0.06, "right"
            ax.text(x, y, label, fontsize=9, color="0.15", ha=align, va="center", bbox=PLAIN)
    (x0, y0), (x1, y1) = _centre("X0"), _centre("Y")
    lane, above = COLUMNS[3] + WIDTH / 2 + 0.22, (ROWS[0] + ROWS[1]) / 2
    start = x0 + WIDTH / 2 - 0.15
    ax.plot([start, start, lane, lane], [y0 + HEIGHT / 2 + 0.03, above, above, y1], color="0.3", lw=1.0)
    ax.annotate("", xy=(x1 + WIDTH / 2 + 0.03, y1), xytext=(lane, y1), arrowprops=ARROW)
    ax.text(lane, 2.4, "$X_0$ (skip)", rotation=90, fontsize=9, color="0.15", ha="center", va="center", bbox=PLAIN)


@book_styled
def architecture_figure(shapes: Mapping[str, str], backbone: str, size: int, top_k: int, num_classes: int) -> Figure:
    """The diagram of AGRNet with ``backbone`` at ``size`` x ``size`` input, ``top_k`` vertices per class and
    ``num_classes`` classes; ``shapes`` names the shape each box shows, by the tensor names of ``NODES``."""
    figure = Figure(figsize=(BOOK_WIDTH, 5.0), dpi=BOOK_DPI, layout="none")
    # one axes over the whole figure, 1 unit = 1 inch
    ax = figure.add_axes((0, 0, 1, 1), xlim=(0, BOOK_WIDTH), ylim=(0, 5.0))
    ax.set_axis_off()
    _arrows(ax, _boxes(ax, shapes))
    handles = [FancyBboxPatch((0, 0), 1, 1, facecolor=colour, edgecolor="0.35", label=stage)
               for stage, colour in STAGES.items()]  # fmt: skip
    ax.legend(handles=handles, loc="center", bbox_to_anchor=(COLUMNS[0] / BOOK_WIDTH, 0.3), title="stage",
              frameon=False)  # fmt: skip
    ax.text(BOOK_WIDTH / 2, 4.78, f"AGRNet (Fig. 2): {backbone}, {size}×{size} input, K = {top_k}, Nc = {num_classes}",
            ha="center", va="center", fontsize=11)  # fmt: skip
    return figure
