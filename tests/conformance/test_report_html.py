"""Tests for conformance/report/html.py: summary, grid, failures first, links, Markdown, and a real browser's DOM."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.check import Kind, Status
from conformance.report import html
from conformance.results import CheckResult, ItemResult, RunReport
from tests.conformance.test_report_evidence import report as evidence_report

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


class _Page(HTMLParser):
    """Ids, links, grid cells, script tags and the text of <pre class=curl> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.cells: list[tuple[str, str]] = []
        self.curls: list[str] = []
        self.visible_buttons = 0
        self.order: list[str] = []
        self._in_curl = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
            if tag == "article":
                self.order.append(a["id"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
            if "cell" in a.get("class", "").split():
                self.cells.append((a["href"], a["class"]))
        if tag == "pre" and "curl" in a.get("class", "").split():
            self._in_curl = True
            self.curls.append("")
        if tag == "button" and "copy" in a.get("class", "") and "hidden" not in a:
            self.visible_buttons += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_curl = False

    def handle_data(self, data: str) -> None:
        if self._in_curl:
            self.curls[-1] += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _wide_report() -> RunReport:
    passing = ItemResult("base/models", "base", "Models", Kind.API, Status.PASS, (CheckResult("listed", Status.PASS),))
    skipped = ItemResult("0.3.9/ttl", "0.3.9", "`ttl`", Kind.API, Status.SKIP, (), "not implemented by this server")
    base = evidence_report()
    return RunReport(
        base.target, base.started_at, base.duration_s, (passing, skipped, *base.items), context=base.context
    )


def _assert_page(page: _Page) -> None:
    # the grid: one cell per item, coloured by status, each a link to its item
    assert ("#item-0.3.18/usage", "cell fail") in page.cells
    assert ("#item-0.3.20/seed", "cell pass warned") in page.cells
    assert ("#item-base/models", "cell pass") in page.cells
    assert all(href[1:] in page.ids for href, _ in page.cells)
    # failures first, and the summary links to each failing check
    assert page.order[0] == "item-0.3.18/usage"
    assert "#check-0.3.18/usage::usage-chunk" in page.links
    assert "#check-0.3.18/usage::crash" in page.links
    assert "check-0.3.18/usage::usage-chunk" in page.ids
    assert "#warnings" in page.links
    # the failure's curl command, whole
    assert page.curls[0].startswith("curl -sS -N http://127.0.0.1:1234/v1/chat/completions \\\n")
    assert '-H "authorization: Bearer ${CONFORMANCE_API_KEY}"' in page.curls[0]
    assert '--data-binary \'{"model": "m"' in page.curls[0]


def test_summary_grid_links_and_failures_first() -> None:
    text = html.render(_wide_report())
    _assert_page(_parse(text))
    assert '<span class="badge not_covered zero">0 not covered</span>' in text  # zero counts are neutral
    assert '<a class="badge fail" href="#failures-and-errors">1 failed</a>' in text
    assert '<h3><span class="badge skip">skip</span> <code>0.3.9/ttl</code> <code>ttl</code></h3>' in text
    assert "`" not in text.split("<main>")[1].split("<pre")[0]  # no literal backticks before the first evidence


def test_the_page_loads_nothing_and_runs_only_its_own_hashed_script() -> None:
    text = html.render(_wide_report())
    assert "script-src 'sha256-" in text
    assert text.count("<script>") == 1
    for external in (" src=", "<link", "@import", "url(", 'http-equiv="refresh"'):
        assert external not in text


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH: install Debian's chromium to run the browser test")
def test_headless_chromium_renders_the_grid_links_and_curl(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    html.write(_wide_report(), path)
    assert BROWSER is not None
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        path.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    page = _parse(done.stdout)
    _assert_page(page)
    # the page's CSP let its own script run: the copy buttons were unhidden
    assert page.visible_buttons >= 1


def test_markdown_renders_code_spans_only_so_server_text_cannot_become_links() -> None:
    assert html.inline_markdown("no `usage` chunk") == "no <code>usage</code> chunk"
    hostile = "content: '[click](http://evil.test) ![x](http://evil.test/x.png) <b>bold</b> *em*'"
    rendered = html.inline_markdown(hostile)
    assert "<a" not in rendered
    assert "<img" not in rendered
    assert "<b>" not in rendered
    assert "<em>" not in rendered
    assert "[click](http://evil.test)" in rendered
