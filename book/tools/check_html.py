"""Check the rendered book in headless Chromium: every chapter page exists and renders, its math is typeset, its
figures show, and no code line or table is wider than its column.

    python book/tools/check_html.py [--html _build/html] [--screenshots _build/screenshots] [--chromium PATH]

Pages come from ``_toc.yml``. Without a browser, only the files are checked: every page exists and every image it
links is a non-empty file; a page made from a notebook and each graph chapter (``GRAPH_CHAPTERS``) must hold at
least one ``<img>``. With Chromium (driven over the DevTools protocol on a pipe, one browser for the whole book),
each page is loaded at 1280 px and fails when

1. it shows raw TeX (``\\[``, ``\\(``, ``\\begin{``, ``$$`` in its visible text outside code), holds a math element
   that MathJax left without output, or a MathJax error;
2. an image does not load, or a chapter that must have figures shows none;
3. a ``pre`` / highlight block scrolls sideways (a code line wider than the block), a table is wider than the
   content column, or the page itself is wider than the window.

A screenshot of each page lands in ``--screenshots`` (one PNG per chapter) for a person to look at. Exits
non-zero listing every problem found, one line each.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from layout import BUILD, HTML, entry_path, toc_entries

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
#: Chapters that picture the model's graph: each must show at least one figure, whatever the caller passes.
GRAPH_CHAPTERS = ("book/backbone", "book/projection", "book/reasoning", "book/reprojection")
#: How long a page may take to load, and MathJax to typeset it, in seconds.
PAGE_TIMEOUT = 120.0
MATH_TIMEOUT = 30.0


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


LEAKS = {
    "a path of the machine that built the book": re.compile(r"(?<![\w.~])/(?:tmp|work|root|home|Users)/[\w.-]+"),
    "a progress bar": re.compile(r"\d+it/s|\d+/\d+ \[\d+:\d+"),
    "a pending result": re.compile(r"\bPending\b"),
    "a missing checkpoint": re.compile(r"no checkpoint at"),
}
"""What a published page must not show: the output of the machine that built it instead of the book's."""


class _Text(HTMLParser):
    """The text of a page, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("script", "style") and self.skip > 0

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text_problems(page: Path) -> list[str]:
    """What of ``LEAKS`` the text of ``page`` shows, each with the first place it does."""
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    text = "".join(parser.parts)
    return [f"shows {what}: {match.group(0)!r}" for what, pattern in LEAKS.items() if (match := pattern.search(text))]


def check_pages(html_dir: Path, entries: Sequence[str], with_figures: Sequence[str] = ()) -> list[str]:
    """Problems with the files of the pages of ``entries`` (toc entries like ``book/intro``) in ``html_dir``:
    images that cannot be shown, text that leaks the build (``LEAKS``); the pages of ``with_figures`` and
    ``GRAPH_CHAPTERS`` must hold an ``<img>``."""
    needs_figures = {*with_figures, *GRAPH_CHAPTERS}
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
        problems += [f"{page}: {problem}" for problem in text_problems(page)]
        if entry in needs_figures and not sources:
            problems.append(f"{page}: a chapter that must show figures holds no <img>")
    return problems


class CDPError(RuntimeError):
    """Chromium failed, exited or did not answer over the DevTools protocol."""


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    Messages are JSON terminated by a NUL byte; Chromium reads them on its file descriptor 3 and writes on 4."""

    def __init__(self, executable: str, profile: Path, window: tuple[int, int] = WINDOW) -> None:
        self.window = window
        self._next_id = 0
        self._buffer = bytearray()
        self._events: list[dict[str, Any]] = []
        self._stderr = tempfile.TemporaryFile()
        child_in, self._write = os.pipe()
        self._read, child_out = os.pipe()

        def descriptors() -> None:  # in the child, before exec: the pipe ends become 3 and 4
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        try:
            self.process = subprocess.Popen(
                [*command, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                close_fds=False,  # descriptors 3 and 4 must survive; Python's own are not inheritable
                preexec_fn=descriptors,
            )
        except OSError as error:
            self._close_pipes()
            self._stderr.close()
            raise CDPError(f"cannot start {executable}: {error}") from None
        finally:
            os.close(child_in)
            os.close(child_out)
        self.session = ""
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            width, height = window
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            self.call("Emulation.setDeviceMetricsOverride", metrics)
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _close_pipes(self) -> None:
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        """Ask Chromium to quit, kill it when it does not within 10 s."""
        if self.process.poll() is None:
            try:
                self._send("Browser.close", {}, browser=True)
                self.process.wait(10)
            except (CDPError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._close_pipes()
        self._stderr.close()

    def _exited(self) -> CDPError:
        status = self.process.wait(5)
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().decode(errors="replace").splitlines() if "ERROR:dbus" not in line]
        return CDPError(f"chromium exited with status {status}: {' | '.join(lines[-3:])[-300:]}")

    def _send(self, method: str, params: dict[str, Any], browser: bool = False) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not browser:
            message["sessionId"] = self.session
        try:
            os.write(self._write, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._exited() from None
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while (end := self._buffer.find(b"\0")) < 0:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise CDPError("chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise self._exited()
            self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[: end + 1]
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Send one DevTools command to the page (browser-wide before a page is attached) and return its result."""
        request = self._send(method, params or {})
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == request:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error'].get('message', message['error'])}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        """The next DevTools event named ``event`` (earlier ones included)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event:
                    del self._events[: index + 1]
                    return message
            self._events.clear()
            try:
                message = self._receive(deadline)
            except CDPError as error:
                if "in time" in str(error):
                    raise CDPError(f"no {event} within {timeout:.0f} s") from None
                raise
            if "method" in message:
                self._events.append(message)

    def load(self, page: Path, timeout: float = PAGE_TIMEOUT) -> None:
        """Open ``page`` and wait for its load event (images and scripts included)."""
        self._events.clear()
        result = self.call("Page.navigate", {"url": page.resolve().as_uri()}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"cannot open the page: {result['errorText']}")
        self.wait_for("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, timeout
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"script error: {details.get('exception', {}).get('description') or details.get('text')}")
        return result.get("result", {}).get("value")

    def screenshot(self, png: Path) -> None:
        """The visible window as a PNG file."""
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        if not data.startswith(PNG_SIGNATURE):
            raise CDPError("chromium returned no PNG screenshot")
        png.write_bytes(data)


#: Run in each loaded page: waits for MathJax (2 or 3) to finish, then measures what the checks need.
INSPECT = r"""
(async (mathTimeout) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const mj = window.MathJax;
  let mathjax = "not loaded";
  if (mj && mj.startup && mj.startup.promise) {
    mathjax = "3";
    await Promise.race([mj.startup.promise, sleep(mathTimeout)]);
  } else if (mj && mj.Hub && mj.Hub.Queue) {
    mathjax = "2";
    await Promise.race([new Promise((resolve) => mj.Hub.Queue(resolve)), sleep(mathTimeout)]);
  }
  const content = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const visible = (el) => (el.checkVisibility ? el.checkVisibility() : el.getClientRects().length > 0);
  const clip = (text) => text.replace(/\s+/g, " ").trim().slice(0, 80);
  const notProse = "pre, code, kbd, samp, script, style, textarea, noscript, math, svg, "
    + "mjx-container, .MathJax, .MathJax_Preview, .MathJax_Display";
  const tex = /\\\[|\\\(|\\begin\{|\$\$/;
  const rawTex = [];
  const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest(notProse) || !visible(parent)) continue;
    const match = node.textContent.match(tex);
    if (match) rawTex.push(clip(node.textContent.slice(Math.max(0, match.index - 10))));
  }
  const math = [...content.querySelectorAll(".math")];
  const typeset = "mjx-container, .MathJax, .MathJax_Display, .MathJax_SVG, .katex";
  const untypeset = math.filter((el) => !el.querySelector(typeset)).map((el) => clip(el.textContent));
  const mathErrors = [...content.querySelectorAll("mjx-merror, .MathJax_Error")]
    .map((el) => clip(el.getAttribute("data-mjx-error") || el.textContent));
  const images = [...content.querySelectorAll("img")];
  const broken = images.filter((img) => img.complete && img.naturalWidth === 0).map((img) => img.getAttribute("src"));
  const figures = images.filter((img) => img.naturalWidth > 0 && visible(img)
    && img.getBoundingClientRect().width >= 32).length;
  const code = [];
  const seen = new Set();
  for (const block of content.querySelectorAll("pre, div.highlight")) {
    if (!visible(block) || block.scrollWidth <= block.clientWidth + 1) continue;
    const pre = block.matches("pre") ? block : (block.querySelector("pre") || block);
    if (seen.has(pre)) continue;
    seen.add(pre);
    const longest = pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
    code.push({scroll: block.scrollWidth, client: block.clientWidth, chars: longest.length, line: clip(longest)});
  }
  const column = content.getBoundingClientRect();
  const tables = [];
  for (const table of content.querySelectorAll("table")) {
    if (!visible(table)) continue;
    const box = table.getBoundingClientRect();
    if (box.width > column.width + 1 || box.right > column.right + 1) {
      const cell = table.querySelector("th, td");
      tables.push({width: Math.round(box.width), column: Math.round(column.width),
                   first: clip(cell ? cell.textContent : "")});
    }
  }
  return {mathjax, rawTex, math: math.length, untypeset, mathErrors, images: images.length, broken, figures, code,
          tables, pageWidth: document.documentElement.scrollWidth, windowWidth: window.innerWidth};
})
"""


def inspect_page(browser: Chromium, page: Path, math_timeout: float = MATH_TIMEOUT) -> dict[str, Any]:
    """Load ``page`` in ``browser`` and measure it (see ``INSPECT``)."""
    browser.load(page)
    return browser.evaluate(f"{INSPECT.strip()}({math_timeout * 1000:.0f})", timeout=math_timeout + 60)


def _some(items: list[str], limit: int = 2) -> str:
    shown = "; ".join(repr(item) for item in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def rendering_problems(found: dict[str, Any], needs_figure: bool = False) -> list[str]:
    """What is wrong with a rendered page, one line each, from the measurements of ``inspect_page``."""
    problems = []
    width = WINDOW[0]
    if found["rawTex"]:
        problems.append(f"raw TeX shown in {len(found['rawTex'])} place(s), not typeset: {_some(found['rawTex'])}")
    if found["untypeset"]:
        problems.append(
            f"{len(found['untypeset'])} of {found['math']} math elements without MathJax output "
            f"(MathJax {found['mathjax']}): {_some(found['untypeset'])}"
        )
    if found["mathErrors"]:
        errors = found["mathErrors"]
        problems.append(f"MathJax could not typeset {len(errors)} formula(s): {_some(errors)}")
    problems += [f"image did not load: {source}" for source in found["broken"]]
    if needs_figure and not found["figures"]:
        problems.append(f"a chapter that must show figures shows none ({found['images']} <img> in the content)")
    for block in found["code"]:
        problems.append(
            f"code line wider than its block at {width} px ({block['scroll']} > {block['client']} px, "
            f"{block['chars']} characters): {block['line']!r}"
        )
    for table in found["tables"]:
        problems.append(
            f"table wider than the content column at {width} px ({table['width']} > {table['column']} px), "
            f"first cell {table['first']!r}"
        )
    if found["pageWidth"] > found["windowWidth"] + 1:
        problems.append(f"the page is wider than the window at {width} px ({found['pageWidth']} px)")
    return problems


def check_book(
    html_dir: Path,
    entries: Sequence[str],
    with_figures: Sequence[str] = (),
    chromium: str | None = None,
    screenshots: Path | None = None,
) -> list[str]:
    """All problems of the rendered book: missing pages or images and, with ``chromium``, everything
    ``rendering_problems`` finds. Screenshots go to ``screenshots`` (default: a folder next to ``html_dir``)."""
    problems = check_pages(html_dir, entries, with_figures)
    if chromium is None:
        return problems
    needs_figures = {*with_figures, *GRAPH_CHAPTERS}
    screenshots = screenshots or html_dir.parent / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    pages = [(entry, html_dir / f"{entry}.html") for entry in entries if (html_dir / f"{entry}.html").is_file()]
    with tempfile.TemporaryDirectory(prefix="agrnet-chromium-") as profile:
        try:
            browser = Chromium(chromium, Path(profile))
        except CDPError as error:
            return [*problems, f"{chromium}: {error}"]
        with browser:
            for entry, page in pages:
                png = screenshots / f"{entry.replace('/', '-')}.png"
                png.unlink(missing_ok=True)
                try:
                    found = inspect_page(browser, page)
                    browser.screenshot(png)
                except CDPError as error:
                    problems.append(f"{page}: {error}")
                    if browser.process.poll() is not None:
                        problems += [f"{later}: not checked, chromium exited" for _, later in pages if later != page]
                        break
                    continue
                needs_figure = entry in needs_figures and bool(image_sources(page))  # else check_pages said so
                page_problems = rendering_problems(found, needs_figure=needs_figure)
                print(f"screenshot {png}: {len(page_problems)} problem(s)", flush=True)
                problems += [f"{page}: {problem}" for problem in page_problems]
    return problems


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or another Chromium build) on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
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
