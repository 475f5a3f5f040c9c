"""Tests for conformance/report/junit.py: one testcase per check, failures, errors and skips as CI tools read them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.check import Kind, Status
from conformance.findings import Finding
from conformance.report.junit import write
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo

FINDING = Finding(
    "0.3.18/usage", "usage-chunk", "no usage chunk", endpoint="/v1/chat/completions", raw="data: \x00\x1b[31m"
)


def _report() -> RunReport:
    return RunReport(
        target=TargetInfo("http://127.0.0.1:1234", "tiny-model", None),
        started_at="2025-01-02T03:04:05+00:00",
        duration_s=2.25,
        items=(
            ItemResult(
                "base/models",
                "base",
                "Models",
                Kind.API,
                Status.PASS,
                (CheckResult("listed", Status.PASS, duration_s=0.5),),
            ),
            ItemResult(
                "0.3.18/usage",
                "0.3.18",
                "Usage",
                Kind.API,
                Status.FAIL,
                (
                    CheckResult("usage-chunk", Status.FAIL, "no usage chunk", (FINDING.to_dict(),), duration_s=1.0),
                    CheckResult("other", Status.ERROR, "verdict raised KeyError: 'x'", ({"error": "KeyError: 'x'"},)),
                ),
            ),
            ItemResult(
                "0.4.0/qwen",
                "0.4.0",
                "Qwen",
                Kind.MODEL_SPECIFIC,
                Status.SKIP,
                (CheckResult("think", Status.SKIP, "model-specific: runs only for qwen3 models"),),
                "model-specific: runs only for qwen3 models",
            ),
            ItemResult("0.4.0/new", "0.4.0", "New", Kind.API, Status.NOT_COVERED, (), "no checks yet"),
        ),
    )


def _parse(tmp_path: Path) -> ET.Element:
    path = tmp_path / "junit.xml"
    write(_report(), path)
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.parse(path).getroot()


def test_counts_on_testsuites_and_testsuite(tmp_path: Path) -> None:
    root = _parse(tmp_path)
    (suite,) = root.findall("testsuite")
    expected = {"tests": "5", "failures": "1", "errors": "1", "skipped": "2", "time": "2.250"}
    assert {k: root.get(k) for k in expected} == expected
    assert {k: suite.get(k) for k in expected} == expected
    assert suite.get("timestamp") == "2025-01-02T03:04:05"
    assert {p.get("name"): p.get("value") for p in suite.iter("property")} == {
        "base_url": "http://127.0.0.1:1234",
        "model": "tiny-model",
        "server": "",
    }


def test_one_testcase_per_check_with_item_as_classname(tmp_path: Path) -> None:
    cases = [(c.get("classname"), c.get("name"), c.get("time")) for c in _parse(tmp_path).iter("testcase")]
    assert cases == [
        ("base/models", "listed", "0.500"),
        ("0.3.18/usage", "usage-chunk", "1.000"),
        ("0.3.18/usage", "other", "0.000"),
        ("0.4.0/qwen", "think", "0.000"),
        ("0.4.0/new", "item", "0.000"),
    ]


def test_failures_errors_and_skips_carry_message_and_evidence(tmp_path: Path) -> None:
    cases = list(_parse(tmp_path).iter("testcase"))
    assert list(cases[0]) == []
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "no usage chunk"
    assert failure.text is not None
    assert "endpoint: /v1/chat/completions" in failure.text
    assert "raw: data: \\x00\\x1b[31m" in failure.text
    error = cases[2].find("error")
    assert error is not None
    assert (error.get("message"), error.text) == ("verdict raised KeyError: 'x'", "error: KeyError: 'x'")
    skipped = [c.find("skipped") for c in cases[3:]]
    assert [s.get("message") for s in skipped if s is not None] == [
        "model-specific: runs only for qwen3 models",
        "not_covered: no checks yet",
    ]
