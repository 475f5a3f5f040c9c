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


# --- lines of the wrong shape, deep lines, a BOM, other JSON documents ------------------------------------------


def _good() -> dict[str, object]:
    return _entry(1).to_dict()


def _with(path: str, value: object) -> str:
    line: dict[str, object] = json.loads(json.dumps(_good()))
    target = line
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]  # type: ignore[assignment]  # a JSON object along the path
    target[last] = value
    return json.dumps(line)


@pytest.mark.parametrize(
    ("line", "where"),
    [
        (_with("request.path", 5), "request.path: 5 is not of type 'string'"),
        (_with("request.method", None), "request.method: None is not of type 'string'"),
        (_with("findings", "none"), "findings: 'none' is not of type 'array', 'null'"),
        (_with("response", []), "response: [] is not of type 'object', 'null'"),
        (_with("request.headers", "a: b"), "request.headers: 'a: b' is not of type 'object', 'null'"),
        (_with("response.headers", {"x": 1}), "response.headers.x: 1 is not of type 'string'"),
        (_with("response.events", [{"t_ms": "soon"}]), "response.events.0.t_ms: 'soon' is not of type 'number'"),
        (_with("findings", [{"item": "a"}]), "findings.0: 'check' is a required property"),
        (_with("response.status", "200"), "response.status: '200' is not of type 'integer'"),
    ],
)
def test_lines_of_the_wrong_types_are_skipped_with_their_place(tmp_path: Path, line: str, where: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(_entry(1).to_line() + line + "\n")
    cassette = read_cassette(path)
    assert len(cassette.entries) == 1
    (bad,) = cassette.bad_lines
    assert str(bad) == f"{path}:2: not a cassette line ({where}); line skipped"


def test_a_very_deep_line_is_skipped_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    deep = '{"version": 1, "request": {"method": "GET", "path": "/", "body": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    shallow_enough_to_parse = _with("request.body", json.loads("[" * 500 + "]" * 500))
    path.write_text(deep + "\n" + shallow_enough_to_parse + "\n" + _entry(1).to_line())
    cassette = read_cassette(path)
    assert [e.line for e in cassette.entries] == [3]
    assert [(b.line, b.message) for b in cassette.bad_lines] == [
        (1, "nested too deeply to read (more than 128 levels)"),
        (2, "nested too deeply to read (more than 128 levels)"),
    ]


def test_a_byte_order_mark_is_not_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _entry(1).to_line().encode() + _entry(2).to_line().encode())
    cassette = read_cassette(path)
    assert cassette.bad_lines == ()
    assert len(cassette.entries) == 2


def _har(tmp_path: Path, *, indent: int | None) -> Path:
    from proxy.har import HarRecord, HarTimings, har_document

    path = tmp_path / "session.har"
    document = har_document([HarRecord(_entry(1).exchange, HarTimings(1, 2, 3))])
    path.write_text(json.dumps(document, indent=indent))
    return path


@pytest.mark.parametrize("indent", [2, None], ids=["pretty", "one line"])
def test_a_har_file_is_recognised_once(tmp_path: Path, indent: int | None) -> None:
    path = _har(tmp_path, indent=indent)
    with pytest.raises(UsageError, match=r"this is a HAR file, not a cassette; convert it with `python -m proxy.har "):
        read_cassette(path)


def test_another_json_document_is_recognised_once(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"items": [1, 2, 3], "summary": {}}, indent=2))
    with pytest.raises(UsageError, match=r"one JSON object spread over \d+ lines, not a cassette"):
        read_cassette(path)


def test_the_har_converter_gives_a_cassette_that_reads_back(tmp_path: Path) -> None:
    from proxy.har import main

    har = _har(tmp_path, indent=2)
    out = tmp_path / "from-har.jsonl"
    assert main([str(har), str(out)]) == 0
    (entry,) = read_cassette(out).entries
    original = _entry(1).exchange
    assert entry.exchange.request.body == original.request.body
    assert entry.exchange.response is not None
    assert entry.exchange.response.events == (SSEEvent(0.0, None, "{}", "data: {}"),)
    assert main([str(tmp_path / "missing.har"), str(out)]) == 2
