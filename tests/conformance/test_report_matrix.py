"""Tests for conformance/report/matrix.py: `conformance matrix` over synthetic reports."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.check import Kind, Status
from conformance.cli import main
from conformance.findings import WARNING, Finding
from conformance.report.matrix import load_columns, render_html, render_markdown
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo

USAGE = Finding("0.3.18/usage", "usage-chunk", "no usage chunk", endpoint="/v1/chat/completions")
SEED = Finding("0.3.20/seed", "same-seed", "answers differ for one seed", severity=WARNING)


def _report(server: str, usage: Status, *, warn: bool = False, extra: bool = True) -> RunReport:
    usage_check = CheckResult(
        "usage-chunk",
        usage,
        USAGE.message if usage == Status.FAIL else "",
        (USAGE.to_dict(),) if usage == Status.FAIL else (),
        requests=(
            {"method": "POST", "url": "http://h/v1/chat/completions", "headers": {}, "body": {}, "curl": "curl -sS x"},
        )
        if usage == Status.FAIL
        else (),
    )
    seed = CheckResult("same-seed", Status.PASS, "", (SEED.to_dict(),) if warn else ())
    items = [
        ItemResult("base/models", "base", "Models", Kind.API, Status.PASS, (CheckResult("listed", Status.PASS),)),
        ItemResult("0.3.18/usage", "0.3.18", "usage", Kind.API, usage, (usage_check,)),
        ItemResult("0.3.20/seed", "0.3.20", "seed", Kind.API, Status.PASS, (seed,)),
    ]
    if extra:
        items.append(
            ItemResult("0.3.9/ttl", "0.3.9", "ttl", Kind.API, Status.SKIP, (), "not implemented by this server")
        )
    return RunReport(TargetInfo("http://127.0.0.1:1", "m", server), "2025-01-01T00:00:00+00:00", 1.0, tuple(items))


def _write(path: Path, report: RunReport) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict()))
    return str(path)


@pytest.fixture
def reports(tmp_path: Path) -> list[str]:
    return [
        "reference=" + _write(tmp_path / "a" / "report.json", _report("ref", Status.PASS)),
        _write(tmp_path / "b" / "report.json", _report("llama.cpp", Status.FAIL, warn=True, extra=False)),
    ]


def test_markdown_has_items_by_version_down_targets_across_and_notes(reports: list[str]) -> None:
    text = render_markdown(load_columns(reports))
    lines = text.splitlines()
    assert lines[0] == "| item | reference | llama.cpp / m |"
    assert "| **0.3.18** | | |" in lines
    assert "| `0.3.18/usage` | pass | **fail** |" in lines
    assert "| `0.3.20/seed` | pass | pass (!) |" in lines
    assert "| `0.3.9/ttl` | skip | not run |" in lines
    assert lines.index("| **base** | | |") < lines.index("| **0.3.18** | | |")
    assert "- llama.cpp / m / `0.3.18/usage`: fail: usage-chunk: no usage chunk" in lines
    assert "- llama.cpp / m / `0.3.20/seed`: pass with warnings: same-seed: answers differ for one seed" in lines
    assert "- reference / `0.3.9/ttl`: skip: not implemented by this server" in lines


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.details = 0
        self.pre: list[str] = []
        self.scripts = 0
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.details += tag == "details"
        self.scripts += tag == "script"
        if tag == "pre":
            self._in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre[-1] += data


def test_html_cells_open_the_evidence_and_mark_warnings(reports: list[str]) -> None:
    page = render_html(load_columns(reports))
    parsed = _Cells()
    parsed.feed(page)
    assert parsed.scripts == 0
    assert "default-src 'none'" in page
    assert re.search(r'<th scope="col">reference</th><th scope="col">llama\.cpp / m</th>', page)
    fail_cell = re.search(
        r'<td class="cell"><details><summary title="llama\.cpp / m: 0\.3\.18/usage">(.*?)</td>', page, re.S
    )
    assert fail_cell is not None
    assert '<span class="badge fail">fail</span>' in fail_cell.group(1)
    assert any("[0.3.18/usage] usage-chunk: no usage chunk" in p and "curl -sS x" in p for p in parsed.pre)
    assert '<span class="warned" title="1 warnings">!</span>' in page
    assert '<td class="cell">not run</td>' in page


def test_the_command_writes_both_files_and_prints_the_markdown(
    reports: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["matrix", *reports, "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| item | reference | llama.cpp / m |")
    assert (tmp_path / "m" / "matrix.md").read_text() in out
    assert (tmp_path / "m" / "matrix.html").read_text().startswith("<!doctype html>")


def test_same_labels_are_made_unique_and_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "r.json", _report("x", Status.PASS))
    assert [c.label for c in load_columns([path, path])] == ["x / m", "x / m (2)"]
    (tmp_path / "bad.json").write_text("{}")
    assert main(["matrix", path, str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")]) == 2
    assert main(["matrix", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("conformance matrix: ")
    assert "bad.json is not a conformance report.json" in err[0]
    assert err[1].startswith("conformance matrix: cannot read ")
