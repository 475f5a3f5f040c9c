"""Tests for run results: report.json round trip, summary counts and item status."""

from __future__ import annotations

import pytest

from conformance.check import Kind, Status
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo, item_status


def test_item_status_precedence() -> None:
    def checks(*statuses: Status) -> list[CheckResult]:
        return [CheckResult(id=str(i), status=s) for i, s in enumerate(statuses)]

    assert item_status([]) is Status.NOT_COVERED
    assert item_status(checks(Status.PASS, Status.FAIL, Status.ERROR)) is Status.FAIL
    assert item_status(checks(Status.PASS, Status.ERROR)) is Status.ERROR
    assert item_status(checks(Status.SKIP, Status.SKIP)) is Status.SKIP
    assert item_status(checks(Status.PASS, Status.SKIP)) is Status.PASS


def test_report_round_trip_and_summary() -> None:
    report = RunReport(
        target=TargetInfo("http://h:1", "m", "srv"),
        started_at="t",
        duration_s=1.23456,
        items=(
            ItemResult("a", "0.3.6", "A", Kind.API, Status.PASS, (CheckResult("c", Status.PASS, shape=["x"]),)),
            ItemResult("b", "0.3.5", "B", Kind.CLI, Status.SKIP, reason="CLI feature, not an HTTP API"),
            ItemResult("c", "0.3.29", "C", Kind.API, Status.NOT_COVERED),
        ),
    )
    data = report.to_dict()
    assert data["schema_version"] == 1
    assert data["summary"] == {"passed": 1, "failed": 0, "skipped": 1, "errors": 0, "not_covered": 1}
    assert data["duration_s"] == 1.235
    again = RunReport.from_dict(data)
    assert again.items[0].checks[0].shape == ["x"]
    assert again.items[1].reason == "CLI feature, not an HTTP API"


def test_report_with_other_schema_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="schema_version 2"):
        RunReport.from_dict({"schema_version": 2})
