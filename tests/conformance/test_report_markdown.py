"""Tests for conformance/report/markdown.py: summary table, item table, failures with safely fenced evidence."""

from __future__ import annotations

from conformance.check import Kind, Status
from conformance.findings import Finding
from conformance.report.markdown import render
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo


def _report(*items: ItemResult) -> RunReport:
    return RunReport(TargetInfo("http://h:1", "tiny|model", "fake"), "2025-01-01T00:00:00+00:00", 2.0, items)


def _failing(message: str, finding: Finding, check_id: str = "c") -> ItemResult:
    check = CheckResult(check_id, Status.FAIL, message, (finding.to_dict(),), shape={"events": ["chunk"]})
    return ItemResult("0.3.18/usage", "0.3.18", "stream_options.include_usage", Kind.API, Status.FAIL, (check,))


def test_summary_and_item_tables() -> None:
    passing = ItemResult("base/models", "base", "Models", Kind.API, Status.PASS, (CheckResult("listed", Status.PASS),))
    skipped = ItemResult("cli/get", "0.3.18", "lms get", Kind.CLI, Status.SKIP, (), "CLI feature")
    text = render(_report(passing, _failing("no usage", Finding("0.3.18/usage", "c", "no usage")), skipped))
    assert text.startswith("# Conformance report\n")
    assert "- model: `tiny\\|model`" in text
    assert (
        "| passed | failed | skipped | errors | not_covered |\n"
        "| ---: | ---: | ---: | ---: | ---: |\n"
        "| 1 | 1 | 1 | 0 | 0 |"
    ) in text
    assert "| `0.3.18/usage` | 0.3.18 | fail | stream_options.include_usage |" in text  # our title, as written
    assert "| `cli/get` | 0.3.18 | skip | lms get |" in text


def test_failures_show_message_evidence_and_shape() -> None:
    finding = Finding("0.3.18/usage", "c", "no usage", endpoint="/v1/chat/completions", chunk=3, pointer="/usage")
    text = render(_report(_failing("no usage", finding)))
    assert "## Failures and errors\n\n### `0.3.18/usage::c` (fail)\n\nno usage\n" in text
    assert (
        "```text\n[0.3.18/usage] c: no usage\n  endpoint: /v1/chat/completions\n  chunk #3\n  at: /usage\n```" in text
    )
    assert '```json\n{\n  "events": [\n    "chunk"\n  ]\n}\n```' in text


def test_no_failure_section_when_all_pass() -> None:
    passing = ItemResult("base/models", "base", "Models", Kind.API, Status.PASS, (CheckResult("listed", Status.PASS),))
    assert "Failures" not in render(_report(passing))


def test_server_text_cannot_break_fences_or_tables() -> None:
    finding = Finding("0.3.18/usage", "c", "m | pipe", raw="```\n# not a heading\n````")
    text = render(_report(_failing("m | pipe\n# heading", finding)))
    assert "`````text\n[0.3.18/usage] c: m | pipe\n  raw: ```\n# not a heading\n````\n`````" in text
    assert "\nm \\| pipe \\# heading\n" in text
