"""Tests for the normalised shapes: chunk kinds in order, key structure, no ids, numbers or text."""

from __future__ import annotations

import json
from typing import Any

from conformance.shape import chunk_kinds, collapse, shape, structure


def test_text_stream_kinds_collapse_runs(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage())]
    exchange = wire.stream(wire.chat_request(stream=True), chunks)
    [entry] = shape([exchange])
    assert entry == {
        "request": "POST /v1/chat/completions stream",
        "status": 200,
        "content_type": "text/event-stream",
        "stream": ["role", "content", "finish:stop", "usage", "[DONE]"],
    }


def test_tool_stream_kinds(wire: Any) -> None:
    chunks = wire.tool_stream([("get_weather", ("{", "}")), ("get_weather", ("{}",))])
    exchange = wire.stream(wire.chat_request(stream=True), chunks)
    assert shape([exchange])[0]["stream"] == [
        "role",
        "tool_call_start[0]",
        "tool_call_args[0]",
        "tool_call_start[1]",
        "tool_call_args[1]",
        "finish:tool_calls",
        "[DONE]",
    ]


def test_odd_events_have_their_own_kinds(wire: Any) -> None:
    events = [": ping", "error: boom", "data: nope", {"error": {"message": "x"}}, wire.chunk({})]
    exchange = wire.stream(wire.chat_request(stream=True), events, done=False, tail="data: {")
    assert chunk_kinds(exchange.response.events, tail=exchange.response.tail) == [
        "comment",
        "no-data",
        "invalid-json",
        "error",
        "empty",
        "unterminated",
    ]


def test_body_structure_drops_ids_numbers_and_text(wire: Any) -> None:
    body = wire.completion("Some model text", tool_calls=[wire.tool_call()], finish="tool_calls")
    other = wire.completion("Other text entirely", tool_calls=[wire.tool_call(id="call_9")], finish="tool_calls")
    other["id"], other["created"] = "chatcmpl-xyz", 1
    assert structure(body) == structure(other)
    rendered = json.dumps(structure(body))
    for volatile in ("Some model text", "chatcmpl-1", "1700000000", "call_1", "Paris"):
        assert volatile not in rendered
    assert structure(body)["choices"][0]["finish_reason"] == "tool_calls"
    assert structure(body)["object"] == "chat.completion"


def test_lists_shrink_to_distinct_shapes() -> None:
    assert structure({"embedding": [0.1] * 768}) == {"embedding": ["float"]}
    assert structure([1, "a", 2]) == ["int", "str"]


def test_no_response_shape(wire: Any) -> None:
    from conformance.exchange import Exchange

    assert shape([Exchange(wire.request(None, path="/v1/models", method="GET"), None, error="x")]) == [
        {"request": "GET /v1/models", "error": "transport"}
    ]


def test_collapse_keeps_order_and_folds_only_consecutive_repeats() -> None:
    assert collapse(iter(["a", "a", "b", "a", "a", "c"])) == ["a", "b", "a", "c"]
    assert collapse([]) == []
