"""Tests for conformance/report: the four files, report.json against its schema, HTML escaping."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from conformance.check import Kind, Status
from conformance.errors import UsageError
from conformance.findings import Finding
from conformance.report import write_reports
from conformance.report.html import render
from conformance.report.json import load, schema
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo

HOSTILE = '<script>alert("x")</script> & <img src=http://evil.test/x.png>'

FINDING = Finding(
    item="0.3.18/stream-include-usage",
    check="usage-chunk-when-asked",
    message="no usage chunk",
    endpoint="/v1/chat/completions",
    chunk=3,
    raw=f"data: {HOSTILE}",
    pointer="/usage",
    expected={"usage": "object"},
    seen=None,
)


def sample_report() -> RunReport:
    """One item per status, server text that tries to break out of every format."""
    return RunReport(
        target=TargetInfo("http://127.0.0.1:1234", "tiny-model", "fake/1.0"),
        started_at="2025-01-02T03:04:05+00:00",
        duration_s=1.5,
        items=(
            ItemResult(
                "base/models",
                "base",
                "Model list",
                Kind.API,
                Status.PASS,
                (CheckResult("listed", Status.PASS, shape={"keys": ["data", "object"]}, duration_s=0.1),),
            ),
            ItemResult(
                "0.3.18/stream-include-usage",
                "0.3.18",
                "stream_options.include_usage",
                Kind.API,
                Status.FAIL,
                (
                    CheckResult("usage-chunk-when-asked", Status.FAIL, "no usage chunk", (FINDING.to_dict(),)),
                    CheckResult(
                        "no-usage-unasked",
                        Status.ERROR,
                        f"verdict raised ValueError: {HOSTILE}",
                        ({"error": f"ValueError: {HOSTILE}", "traceback": "Traceback...\n  line 1"},),
                    ),
                ),
            ),
            ItemResult("cli/lms-get", "0.3.18", "lms get", Kind.CLI, Status.SKIP, (), "CLI feature"),
            ItemResult("0.3.20/new", "0.3.20", "Something new", Kind.API, Status.NOT_COVERED, (), "no checks yet"),
        ),
    )


def test_write_reports_writes_the_four_files(tmp_path: Path) -> None:
    paths = write_reports(sample_report(), tmp_path / "out")
    assert {name: p.name for name, p in paths.items()} == {
        "json": "report.json",
        "html": "report.html",
        "junit": "junit.xml",
        "markdown": "report.md",
    }
    assert all(p.parent == tmp_path / "out" and p.stat().st_size > 0 for p in paths.values())


def test_report_json_is_valid_against_the_schema_and_reads_back(tmp_path: Path) -> None:
    report = sample_report()
    path = write_reports(report, tmp_path)["json"]
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(data, schema())
    assert data == report.to_dict()
    assert load(path) == data
    assert RunReport.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema_version=2), "at /schema_version"),
        (lambda d: d["items"][0].update(status="passed"), "at /items/0/status"),
        (lambda d: d["items"][1]["checks"][0].pop("shape"), "'shape' is a required property"),
        (lambda d: d.pop("summary"), "'summary' is a required property"),
    ],
)
def test_the_schema_rejects_broken_reports(tmp_path: Path, mutate: object, message: str) -> None:
    data = sample_report().to_dict()
    mutate(data)  # type: ignore[operator]  # the parametrized lambdas
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=re.escape(message)):
        load(path)


def test_load_says_what_is_wrong_with_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read .*missing\.json: No such file"):
        load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"bad\.json is not JSON"):
        load(tmp_path / "bad.json")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    return parser


def test_html_escapes_server_text_and_loads_nothing_from_outside() -> None:
    html = render(sample_report())
    parsed = _parse(html)
    tags = [tag for tag, _ in parsed.tags]
    assert tags.count("script") == 1  # the page's own copy-button script, allowed by hash in its CSP
    assert "img" not in tags
    assert not [a for _, attrs in parsed.tags for k, a in attrs.items() if k == "src"]
    assert all((a or "").startswith("#") for _, attrs in parsed.tags for k, a in attrs.items() if k == "href")
    text = "".join(parsed.text)
    assert HOSTILE in text
    assert "verdict raised ValueError" in text


def test_html_groups_items_by_version_with_badges_and_evidence_in_details() -> None:
    html = render(sample_report())
    sections = re.findall(r"<section[^>]*><h2>(.*?)</h2>", html)
    assert sections == ["Failing and erroring items", "base", "0.3.18", "0.3.20"]
    assert html.count('<span class="badge fail">fail</span>') == 3  # failures list, item, check
    assert '<span class="badge skip">skip</span>' in html
    assert '<span class="badge not_covered">not covered</span>' in html
    assert re.search(r"<details open><summary>evidence</summary>.*?<dd><code>usage-chunk-when-asked</code>", html)
    assert re.search(r"<details open><summary>evidence</summary><pre>error: ValueError", html)
    assert "1 passed" in html
    assert "1 failed" in html
    assert "tiny-model" in html
    assert "fake/1.0" in html
