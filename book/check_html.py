"""Check the rendered book: every chapter page exists, every image it shows is a non-empty file, and headless
Chromium renders each page to a screenshot.

    python book/check_html.py [--html _build/html] [--screenshots _build/screenshots] [--chromium PATH]

Pages come from ``_toc.yml``; a page made from a notebook must show at least one figure. Screenshots land in
``--screenshots`` (one PNG per chapter) for a person to look at. Exits non-zero listing every problem found.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = (1280, 2400)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
)


class _ImageSources(HTMLParser):
    """Collects the ``src`` of every ``<img>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def image_sources(page: Path) -> list[str]:
    """The ``src`` attributes of the ``<img>`` tags of an HTML file, in order."""
    parser = _ImageSources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.sources


def image_problem(page: Path, source: str) -> str | None:
    """Why the image ``source`` of ``page`` cannot be shown, or None when it is a non-empty file or data URI."""
    if not source:
        return "an <img> without src"
    if source.startswith("data:"):
        header, _, payload = source.partition(",")
        try:
            data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote(payload)
        except (binascii.Error, ValueError):
            return f"undecodable data URI {source[:40]}..."
        return None if data else "an empty data URI"
    parts = urlsplit(source)
    if parts.scheme or parts.netloc:
        return None  # external images are not the book's to check
    path = (page.parent / unquote(parts.path)).resolve()
    if not path.is_file():
        return f"missing image {source}"
    if path.stat().st_size == 0:
        return f"empty image {source}"
    return None


def check_pages(html_dir: Path, entries: Sequence[str], with_figures: Sequence[str] = ()) -> list[str]:
    """Problems with the pages of ``entries`` (toc entries like ``book/intro``) in ``html_dir``."""
    problems = []
    if not (html_dir / "index.html").is_file():
        problems.append(f"{html_dir / 'index.html'}: missing")
    for entry in entries:
        page = html_dir / f"{entry}.html"
        if not page.is_file():
            problems.append(f"{page}: missing page for _toc.yml entry {entry!r}")
            continue
        sources = image_sources(page)
        problems += [f"{page}: {p}" for p in (image_problem(page, s) for s in sources) if p]
        if entry in with_figures and not sources:
            problems.append(f"{page}: a notebook chapter without a single figure")
    return problems


def screenshot(chromium: str, page: Path, png: Path, profile: Path, timeout: float = 120.0) -> str | None:
    """Render ``page`` with headless Chromium into ``png``; None on success, else what went wrong."""
    png.unlink(missing_ok=True)
    command = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={png}",
        page.resolve().as_uri(),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"chromium did not finish within {timeout:.0f} s"
    if result.returncode != 0:
        return f"chromium exited with status {result.returncode}: {result.stderr.strip()[-300:]}"
    if not png.is_file() or not png.read_bytes().startswith(PNG_SIGNATURE):
        return "chromium wrote no PNG screenshot"
    return None


def check_book(
    html_dir: Path,
    entries: Sequence[str],
    with_figures: Sequence[str] = (),
    chromium: str | None = None,
    screenshots: Path | None = None,
) -> list[str]:
    """All problems of the rendered book: missing pages or images, and, with ``chromium``, pages it cannot
    render. Screenshots go to ``screenshots`` (default: a folder next to ``html_dir``)."""
    problems = check_pages(html_dir, entries, with_figures)
    if chromium is None:
        return problems
    screenshots = screenshots or html_dir.parent / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agrnet-chromium-") as profile:
        for entry in entries:
            page = html_dir / f"{entry}.html"
            if page.is_file():
                png = screenshots / f"{entry.replace('/', '-')}.png"
                problem = screenshot(chromium, page, png, Path(profile))
                print(f"screenshot {png}: {problem or 'ok'}", flush=True)
                if problem:
                    problems.append(f"{page}: {problem}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from build import BUILD, HTML, entry_path, find_chromium, toc_entries

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=HTML, help="the rendered book (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, default=BUILD / "screenshots", help="where PNGs go")
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: found on PATH)")
    parser.add_argument("--no-browser", action="store_true", help="check pages and images only")
    args = parser.parse_args(argv)
    chromium = None if args.no_browser else args.chromium or find_chromium()
    if chromium is None and not args.no_browser:
        print("note: no chromium on PATH; checking pages and images only", file=sys.stderr)
    entries = toc_entries()
    with_figures = [entry for entry in entries if entry_path(entry).suffix == ".ipynb"]
    problems = check_book(args.html, entries, with_figures, chromium=chromium, screenshots=args.screenshots)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(entries)} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
