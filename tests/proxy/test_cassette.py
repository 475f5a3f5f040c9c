"""Tests for proxy/cassette.py: lines written whole and flushed, bad lines reported with their numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.findings import Finding
from proxy.cassette import CassetteWriter, Entry, read_cassette


def _entry(n: int) -> Entry:
    exchange = Exchange(
        Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {"a": "b"}, {"n": n}),
        Response(200, {"content-type": "text/event-stream"}, events=(SSEEvent(1.5, None, "{}", "data: {}"),)),
        id=f"id{n}",
        started_at="2025-01-01T00:00:00+00:00",
        duration_ms=3.0,
    )
    return Entry(exchange, (Finding("0.3.18/x", "rule", "msg", endpoint="/v1/chat/completions", chunk=0),))


def test_line_is_the_exchange_dict_plus_findings() -> None:
    entry = _entry(1)
    line = json.loads(entry.to_line())
    assert line == {**entry.exchange.to_dict(), "findings": [entry.findings[0].to_dict()]}
    assert line["version"] == 1
    assert entry.to_line().count("\n") == 1


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    writer = CassetteWriter(path)
    writer.write(_entry(1))
    writer.write(_entry(2))
    writer.close()
    cassette = read_cassette(path)
    assert cassette.bad_lines == ()
    assert [e.line for e in cassette.entries] == [1, 2]
    assert cassette.entries[0].exchange == _entry(1).exchange
    assert cassette.entries[1].findings == _entry(2).findings


def test_writer_flushes_each_line_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    writer = CassetteWriter(path)
    writer.write(_entry(1))
    assert len(path.read_text().splitlines()) == 1, "readable before close"
    writer.close()
    again = CassetteWriter(path)
    again.write(_entry(2))
    again.close()
    assert len(read_cassette(path).entries) == 2
    with pytest.raises(ValueError, match="closed"):
        again.write(_entry(3))


def test_bad_lines_are_reported_with_numbers_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = _entry(1).to_line()
    path.write_text(
        good
        + "\n"
        + "{not json\n"
        + json.dumps({**_entry(2).to_dict(), "version": 99})
        + "\n"
        + "[1, 2]\n"
        + '{"version": 1}\n'
        + good[: len(good) // 2]  # a crash mid-write: the last line is cut
    )
    cassette = read_cassette(path)
    assert len(cassette.entries) == 1
    messages = [str(b) for b in cassette.bad_lines]
    assert messages[0].startswith(f"{path}:3: not valid JSON")
    assert messages[1].startswith(f"{path}:4: unknown cassette version 99")
    assert messages[2].startswith(f"{path}:5: not a cassette line")
    assert messages[3].startswith(f"{path}:6: not a cassette line")
    assert messages[4].startswith(f"{path}:7: not valid JSON")
    assert all(m.endswith("line skipped") for m in messages)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such cassette"):
        read_cassette(tmp_path / "nope.jsonl")
