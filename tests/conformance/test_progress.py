"""Tests for conformance/progress.py: the summary off a terminal is one unwrapped line per fact."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.check import Kind, Status
from conformance.findings import WARNING, Finding
from conformance.progress import print_summary
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo

LONG_ID = "0.3.18/" + "very-long-item-name-" * 5


def test_off_a_terminal_the_summary_is_lines_with_failures_and_warnings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    warning = Finding("0.3.20/seed", "same-seed", "answers differ for one seed", severity=WARNING)
    report = RunReport(
        TargetInfo("http://h:1", "m", None),
        "2025-01-01T00:00:00+00:00",
        1.0,
        (
            ItemResult(
                LONG_ID,
                "0.3.18",
                "t",
                Kind.API,
                Status.FAIL,
                (CheckResult("c", Status.FAIL, " ".join(["broken"] * 20)),),
            ),
            ItemResult(
                "0.3.20/seed",
                "0.3.20",
                "t",
                Kind.API,
                Status.PASS,
                (CheckResult("s", Status.PASS, "", (warning.to_dict(),)),),
            ),
        ),
    )
    print_summary(report, {"json": Path("/reports/" + "x" * 100 + "/report.json")})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "target: http://h:1  model: m  server: ?"
    assert lines[1] == "items: 1 passed, 1 failed, 0 skipped, 0 errors, 0 not_covered"
    assert lines[2] == f"FAIL        {LONG_ID}::c  " + " ".join(["broken"] * 20)
    assert lines[3] == "PASS        0.3.20/seed::s  1 warnings: answers differ for one seed"
    assert lines[-1] == "json: /reports/" + "x" * 100 + "/report.json"
