"""Tests for the incremental SSE parser: WHATWG line endings, kept non-data blocks, tails, timing."""

from __future__ import annotations

import pytest

from conformance.sse import SSEParser, field_lines, parse_sse


def test_events_with_every_line_ending() -> None:
    events, tail = parse_sse(b'data: {"a":1}\r\n\r\ndata: x\rdata: y\r\rdata: z\n\n')
    assert [e.data for e in events] == ['{"a":1}', "x\ny", "z"]
    assert tail == ""


def test_blocks_without_data_are_kept_with_none() -> None:
    events, _ = parse_sse(b': keep-alive\n\nerror: {"message":"boom"}\n\ndata: [DONE]\n\n')
    assert [(e.data, e.raw) for e in events] == [
        (None, ": keep-alive"),
        (None, 'error: {"message":"boom"}'),
        ("[DONE]", "data: [DONE]"),
    ]


def test_event_field_and_single_leading_space() -> None:
    events, _ = parse_sse(b"event: message_stop\ndata:  two spaces\ndata:none\n\n")
    assert events[0].event == "message_stop"
    assert events[0].data == " two spaces\nnone"


def test_unterminated_event_is_returned_as_tail() -> None:
    events, tail = parse_sse(b"data: 1\n\ndata: [DONE]")
    assert [e.data for e in events] == ["1"]
    assert tail == "data: [DONE]"


def test_cr_split_across_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r", 1.0) == []
    first = parser.feed(b"\n\r", 2.0)
    assert [(e.data, e.t_ms) for e in first] == [("a", 2.0)]
    second = parser.feed(b"\ndata: b\n\n", 3.0)
    assert [(e.data, e.t_ms) for e in second] == [("b", 3.0)]
    assert parser.close(4.0) == ""


def test_utf8_split_inside_a_character_and_bom() -> None:
    payload = "\ufeffdata: héllo\n\n".encode()
    parser = SSEParser()
    cut = payload.index("é".encode()) + 1
    events = parser.feed(payload[:cut], 1.0) + parser.feed(payload[cut:], 2.0)
    assert [e.data for e in events] == ["héllo"]


def test_event_json() -> None:
    events, _ = parse_sse(b'data: {"x": [1]}\n\n: c\n\n')
    assert events[0].json() == {"x": [1]}
    with pytest.raises(ValueError, match="no data"):
        events[1].json()


def test_field_lines_skip_comments() -> None:
    assert field_lines([": c", "data: 1", "retry"]) == [("data", "1"), ("retry", "")]
