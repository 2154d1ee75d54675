"""book/tools/check_html.py on small pages built here: one page per defect, each must fail, and a good page passes.

The browser checks run in headless Chromium (``.ci/run`` installs Debian's); without one they skip saying so.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image

sys.path.insert(0, str(REPO / "book" / "tools"))
from check_html import (  # noqa: E402
    GRAPH_CHAPTERS,
    Chromium,
    check_book,
    check_pages,
    find_chromium,
    inspect_page,
    text_problems,
)

sys.path.remove(str(REPO / "book" / "tools"))

STYLE = """
body { margin: 0; font-family: "DejaVu Sans", sans-serif; font-size: 16px; }
.bd-container { display: flex; }
.bd-sidebar-primary { width: 280px; flex: none; }
main { flex: 1 1 auto; min-width: 0; }
article.bd-article { max-width: 760px; padding: 0 16px; }
pre { overflow: auto; font-family: "DejaVu Sans Mono", monospace; }
.pst-scrollable-table-container { overflow-x: auto; }
img { max-width: 100%; }
"""

TYPESET = '<mjx-container class="MathJax" jax="CHTML" display="true"><mjx-math>x</mjx-math></mjx-container>'
FIGURE = '<figure><img src="../_images/figure.png" alt="a figure"></figure>'
GOOD = f"""
<h1>A good chapter</h1>
<p>Displayed math, typeset:</p>
<div class="math notranslate nohighlight">{TYPESET}</div>
<p>Inline <span class="math notranslate nohighlight">{TYPESET}</span>,</p>
<p>and TeX in code is fine: <code>$$ \\[ \\begin{{x}}</code>.</p>
<div class="highlight"><pre>print("a short line")  # \\[ and $$ in code are fine</pre></div>
<div class="pst-scrollable-table-container"><table><tr><th>K</th><th>mean F1</th></tr><tr><td>4</td><td>86.0</td></tr>
</table></div>
{FIGURE}
"""
LONG_LINE = "model = AGRNet(" + ", ".join(f"argument_{i}={i}" for i in range(30)) + ")"
WIDE_ROW = "".join(f"<th>column_number_{i}</th>" for i in range(40))

#: Pages as (toc entry, body, what one of its problems says); the graph chapters must show a figure.
BAD_PAGES = {
    "raw-display-math": (
        "book/raw_display",
        GOOD + '<div class="math notranslate nohighlight">\\[ Z = AX \\]</div>',
        "raw TeX shown",
    ),
    "raw-double-dollar": (
        "book/raw_dollars",
        GOOD + "<p>the loss $$ L = L_{seg} + L_{edge} $$ reads</p>",
        "raw TeX shown",
    ),
    "raw-begin": ("book/raw_begin", GOOD + "<p>\\begin{aligned} a &amp;= b \\end{aligned}</p>", "raw TeX shown"),
    "math-without-output": (
        "book/untypeset",
        GOOD + '<span class="math notranslate nohighlight">x^2</span>',
        "1 of 3 math elements without MathJax output",
    ),
    "graph-chapter-without-figure": (GRAPH_CHAPTERS[0], GOOD.replace(FIGURE, ""), "holds no <img>"),
    "figure-that-does-not-load": (
        GRAPH_CHAPTERS[1],
        GOOD.replace("figure.png", "garbage.png"),
        "image did not load: ../_images/garbage.png",
    ),
    "figure-outside-the-content": (GRAPH_CHAPTERS[2], GOOD.replace(FIGURE, ""), "shows none"),
    "long-code-line": (
        "book/long_code",
        GOOD + f'<div class="highlight"><pre>{LONG_LINE}\nshort</pre></div>',
        "code line wider than its block at 1280 px",
    ),
    "wide-table": (
        "book/wide_table",
        GOOD + f'<div class="pst-scrollable-table-container"><table><tr>{WIDE_ROW}</tr></table></div>',
        "table wider than the content column at 1280 px",
    ),
}


def page_html(body: str, outside: str = "") -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title><style>{STYLE}</style></head><body>'
        f'<div class="bd-container"><nav class="bd-sidebar-primary">contents{outside}</nav>'
        f'<main><article class="bd-article">{body}</article></main></div></body></html>'
    )


def build_site(root: Path, pages: dict[str, tuple[str, str, str]], good: tuple[str, ...] = ("book/good",)) -> Path:
    """An html folder like Jupyter Book's: index.html, book/<chapter>.html, _images/."""
    (root / "book").mkdir(parents=True)
    (root / "_images").mkdir()
    Image.new("RGB", (320, 200), (40, 90, 160)).save(root / "_images" / "figure.png")
    (root / "_images" / "garbage.png").write_bytes(b"not a png at all")
    (root / "index.html").write_text(page_html(GOOD), encoding="utf-8")
    for entry in good:
        (root / f"{entry}.html").write_text(page_html(GOOD), encoding="utf-8")
    for name, (entry, body, _) in pages.items():
        outside = '<img src="../_images/figure.png" alt="a logo">' if name == "figure-outside-the-content" else ""
        (root / f"{entry}.html").write_text(page_html(body, outside), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): the browser checks of book/tools/check_html.py")
    return path


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> tuple[Path, list[str]]:
    """Every page checked in one Chromium session: (html folder, problems)."""
    root = build_site(tmp_path_factory.mktemp("html"), BAD_PAGES, good=("book/good", GRAPH_CHAPTERS[3]))
    entries = ["book/good", GRAPH_CHAPTERS[3], *(entry for entry, _, _ in BAD_PAGES.values())]
    problems = check_book(root, entries, chromium=chromium, screenshots=root.parent / "shots")
    return root, problems


def test_a_good_page_passes(checked):
    root, problems = checked
    for entry in ("book/good", GRAPH_CHAPTERS[3]):
        assert [p for p in problems if p.startswith(f"{root / entry}.html:")] == []
        png = root.parent / "shots" / f"{entry.replace('/', '-')}.png"
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000


@pytest.mark.parametrize("name", BAD_PAGES)
def test_each_defect_fails_its_page(checked, name):
    root, problems = checked
    entry, _, expected = BAD_PAGES[name]
    mine = [p for p in problems if p.startswith(f"{root / entry}.html:")]
    assert any(expected in p for p in mine), mine


def test_the_problems_say_what_is_wrong(checked):
    _, problems = checked
    text = "\n".join(problems)
    assert "'\\\\[ Z = AX \\\\]'" in text  # the raw TeX itself
    assert f"{len(LONG_LINE)} characters): 'model = AGRNet(argument_0=0" in text
    assert "first cell 'column_number_0'" in text


def test_measurements_of_a_real_page(tmp_path, chromium):
    root = build_site(tmp_path / "html", {})
    with Chromium(chromium, tmp_path / "profile") as browser:
        found = inspect_page(browser, root / "book" / "good.html")
    assert found["math"] == 2 and found["untypeset"] == [] and found["rawTex"] == []
    assert found["figures"] == 1 and found["code"] == [] and found["tables"] == []
    assert found["windowWidth"] >= 1264  # 1280 less a scrollbar at most


def _mathjax() -> Path | None:
    """MathJax 3's tex-chtml.js from the sphinx-mathjax-offline package, when it is installed."""
    try:
        distribution = importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(distribution.locate_file("sphinx-mathjax-offline/static/mathjax/tex-chtml.js"))
    return path if path.is_file() else None


def test_real_mathjax_typesets_or_fails(tmp_path, chromium):
    mathjax = _mathjax()
    if mathjax is None:
        pytest.skip("sphinx-mathjax-offline (a local MathJax 3) is not installed")
    root = build_site(tmp_path / "html", {})
    shutil.copytree(mathjax.parent, root / "_static" / "mathjax")
    script = '<script defer src="../_static/mathjax/tex-chtml.js"></script>'
    body = '<div class="math notranslate nohighlight">\\[ Z = \\sigma(A X W) \\]</div>' + FIGURE
    (root / "book" / "typeset.html").write_text(page_html(body).replace("</head>", script + "</head>"))
    broken = body.replace("\\sigma(A X W)", "\\frac{A}")  # a missing argument: a TeX error
    (root / "book" / "tex_error.html").write_text(page_html(broken).replace("</head>", script + "</head>"))
    (root / "book" / "no_mathjax.html").write_text(page_html(body))
    problems = check_book(root, ["book/typeset", "book/tex_error", "book/no_mathjax"], chromium=chromium)
    assert not [p for p in problems if "typeset.html" in p], problems
    assert any("tex_error.html" in p and "MathJax could not typeset" in p for p in problems), problems
    assert any("no_mathjax.html" in p and "raw TeX shown" in p for p in problems), problems
    assert any("no_mathjax.html" in p and "MathJax not loaded" in p for p in problems), problems


def test_without_a_browser_the_files_are_still_checked(tmp_path):
    root = build_site(tmp_path / "html", {"no-figure": (GRAPH_CHAPTERS[0], GOOD.replace(FIGURE, ""), "")})
    (root / "book" / "missing_image.html").write_text(page_html(GOOD.replace("figure.png", "absent.png")))
    entries = ["book/good", GRAPH_CHAPTERS[0], "book/missing_image", "book/not_built"]
    problems = check_pages(root, entries)
    assert len(problems) == 3, problems
    assert "holds no <img>" in problems[0] and GRAPH_CHAPTERS[0] in problems[0]
    assert "missing image ../_images/absent.png" in problems[1]
    assert "missing page for _toc.yml entry 'book/not_built'" in problems[2]


def test_a_chromium_that_does_not_start_is_one_problem(tmp_path):
    root = build_site(tmp_path / "html", {})
    problems = check_book(root, ["book/good"], chromium=str(tmp_path / "no-such-chromium"))
    assert len(problems) == 1 and "cannot start" in problems[0], problems


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("run directory /tmp/agrnet-training-z7d277tx/run:", "a path of the machine that built the book"),
        ("--data-root /work/shared/data/fasseg", "a path of the machine that built the book"),
        ("train: 100%|##########| 40/40 [00:11<00:00,  3.39it/s]", "a progress bar"),
        ("Pending: run `agrnet experiment fasseg-authors`.", "a pending result"),
        ("a model trained here (no checkpoint at '../.cache/book/synthetic/best.pt')", "a missing checkpoint"),
    ],
)
def test_a_page_that_leaks_the_build_is_refused(tmp_path: Path, text: str, leak: str) -> None:
    page = tmp_path / "leaky.html"
    page.write_text(f"<html><body><p>{text}</p><script>var x = '/tmp/in-a-script';</script></body></html>")
    assert [problem.split(":")[0] for problem in text_problems(page)] == [f"shows {leak}"]
    clean = tmp_path / "clean.html"
    fine = "data/fasseg, ../../shared/data/fasseg, 1/2 of the pixels, ~/.cache/agrnet"
    clean.write_text(f"<p>{fine}</p><script>'/tmp/x'</script>")
    assert text_problems(clean) == []
