"""The book's figure style, in one place: ``BOOK_RC`` (sizes and fonts), ``book_style()`` that makes it
matplotlib's default (each notebook calls it once; ``matplotlib.rc_context(BOOK_RC)`` applies it to a block only),
and ``figure_problems()`` that checks a figure against it; the class palette (``class_colours``,
``legend_handles``); and what every figure of ``agrnet.viz`` is made with (``book_figure``, ``book_styled``).

Figures are ``BOOK_WIDTH`` inches wide at ``BOOK_DPI``: 672 px, no wider than the content column of the book's
theme in a 1280 px window (676 px), so the page shows them at their own size; and at 96 dpi, the CSS pixel
density, a point of matplotlib text is a point on the page, so every text of at least ``MIN_FONT_PT`` points reads
as at least that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text

from agrnet.data.labels import LabelSchema
from agrnet.predict import ImageLike, as_image_tensor

#: Width of every book figure in inches; at ``BOOK_DPI`` that is 672 px, within the 676 px content column.
BOOK_WIDTH = 7.0
#: Dots per inch of the book's figures: the CSS pixel density, so matplotlib's points are the page's points.
BOOK_DPI = 96
#: The smallest text a book figure may hold, in points at its rendered size.
MIN_FONT_PT = 9.0
#: The book's matplotlib style: figure size and resolution, and fonts no smaller than ``MIN_FONT_PT``.
BOOK_RC: dict[str, Any] = {
    "figure.figsize": (BOOK_WIDTH, 0.5 * BOOK_WIDTH),
    "figure.dpi": BOOK_DPI,
    "figure.constrained_layout.use": True,
    "savefig.pad_inches": 0.02,  # notebooks save "tight" figures: a 672 px figure stays within 676 px
    "font.size": 10.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 10.0,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": 11.0,
    "figure.labelsize": 10.0,
}


_P = ParamSpec("_P")
_R = TypeVar("_R")


def book_style() -> None:
    """Make the book's figure style (``BOOK_RC``) matplotlib's default, e.g. once at the top of a notebook, after
    ``%matplotlib inline``: figures drawn with pyplot then have the book's width and fonts unless told otherwise.
    For one block only, use ``with matplotlib.rc_context(BOOK_RC):``. The figures of ``agrnet.viz`` always use it."""
    matplotlib.rcParams.update(BOOK_RC)


def book_styled(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a figure function under ``BOOK_RC``, whatever the caller's matplotlib defaults."""

    @functools.wraps(function)
    def styled(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(BOOK_RC):
            return function(*args, **kwargs)

    return styled


def small_texts(figure: Figure, minimum: float = MIN_FONT_PT) -> list[tuple[str, float]]:
    """The texts ``figure`` draws in less than ``minimum`` points, as (text, size): titles, labels, tick labels,
    legends, annotations. Lays the figure out first (ticks exist only then); ignores empty and hidden texts and
    the axis texts of axes drawn without axes (``set_axis_off``)."""
    figure.draw_without_rendering()
    hidden = {
        id(text) for ax in figure.axes if not ax.axison for axis in (ax.xaxis, ax.yaxis) for text in axis.findobj(Text)
    }
    found = []
    for text in figure.findobj(Text):
        if id(text) in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        if text.get_fontsize() < minimum - 1e-9:
            found.append((text.get_text(), float(text.get_fontsize())))
    return found


def figure_problems(figure: Figure, minimum: float = MIN_FONT_PT) -> list[str]:
    """What keeps ``figure`` from reading well in the book, one line each (none: it is fine): wider than
    ``BOOK_WIDTH`` inches at ``BOOK_DPI`` (the page would shrink it, and its text with it), or texts smaller than
    ``minimum`` points."""
    problems = []
    pixels = figure.get_size_inches()[0] * figure.dpi
    if pixels > BOOK_WIDTH * BOOK_DPI + 0.5:
        problems.append(f"{pixels:.0f} px wide, wider than the book's {BOOK_WIDTH * BOOK_DPI:.0f} px")
    problems += [f"text {text!r} at {size:g} pt, below {minimum:g} pt" for text, size in small_texts(figure, minimum)]
    return problems


def class_colours(schema: LabelSchema) -> np.ndarray:
    """The schema's palette as matplotlib colours, Nc x 3 floats in [0, 1]."""
    return schema.palette.astype(np.float64) / 255


def legend_handles(schema: LabelSchema, ids: Iterable[int]) -> list[Patch]:
    """Legend entries, a patch in the class colour and the class name, for the class ids ``ids`` of ``schema``
    (``figure.legend(handles=legend_handles(schema, ids))``)."""
    colours = class_colours(schema)
    return [Patch(facecolor=colours[i], edgecolor="0.3", label=schema.classes[i]) for i in ids]


def image_array(image: ImageLike) -> np.ndarray:
    """H x W x 3 floats in [0, 1] for ``imshow``."""
    return as_image_tensor(image).permute(1, 2, 0).numpy()


def book_figure(width: float = BOOK_WIDTH, height: float = BOOK_WIDTH * 0.6) -> Figure:
    """A new figure of ``width`` x ``height`` inches at ``BOOK_DPI``, laid out by matplotlib (constrained)."""
    return Figure(figsize=(width, height), dpi=BOOK_DPI, layout="constrained")
