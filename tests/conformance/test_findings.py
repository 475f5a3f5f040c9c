"""Tests for findings: the evidence is shown, long raw text is clipped, failures are AssertionErrors."""

from __future__ import annotations

import json

import pytest

from conformance.findings import ConformanceFailure, Finding


def test_str_names_item_check_and_evidence() -> None:
    finding = Finding(
        item="0.3.16/no-empty-function-name",
        check="name-once",
        message="function.name repeated",
        endpoint="/v1/chat/completions",
        exchange=1,
        chunk=4,
        raw='data: {"x": 1}',
        pointer="/choices/0",
        expected="absent",
        seen="",
    )
    text = str(finding)
    for part in (
        "[0.3.16/no-empty-function-name]",
        "name-once",
        "chunk #4",
        "request #1",
        "/choices/0",
        'data: {"x": 1}',
        "expected: absent",
    ):
        assert part in text


def test_raw_is_clipped() -> None:
    finding = Finding(item="i", check="c", message="m", raw="x" * 5000)
    assert "(5000 chars)" in str(finding)
    assert len(finding.to_dict()["raw"]) < 700


def test_failure_is_an_assertion_error_with_findings() -> None:
    findings = [Finding(item="a", check="b", message="first"), Finding(item="a", check="c", message="second")]
    with pytest.raises(AssertionError) as info:
        raise ConformanceFailure(findings)
    assert isinstance(info.value, ConformanceFailure)
    assert info.value.findings == tuple(findings)
    assert "first" in str(info.value)
    assert "second" in str(info.value)


def test_evidence_is_capped_in_size() -> None:
    """A jsonschema message that embeds a whole body (a per-token embedding) must not bloat a report."""
    huge = {"embedding": [0.123456789] * 50_000}
    finding = Finding(item="i", check="c", message="x" * 100_000, expected=huge, seen=huge, raw="r" * 100_000)
    d = finding.to_dict()
    assert len(json.dumps(d)) < 10_000
    assert d["message"].endswith("... (100000 chars)")
    assert isinstance(d["seen"], str)
    assert d["seen"].startswith('{"embedding": [0.123456789')
    assert len(str(finding)) < 10_000
    small = Finding(item="i", check="c", message="m", expected={"a": [1, 2]}, seen=3).to_dict()
    assert (small["expected"], small["seen"]) == ({"a": [1, 2]}, 3)
