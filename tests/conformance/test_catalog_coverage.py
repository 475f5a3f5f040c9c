"""Tests for conformance/catalog/coverage.py: which recorded exchanges exercise which item, and their status."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.catalog import by_id
from conformance.catalog.coverage import exercises, recorded_status
from conformance.check import Status
from conformance.exchange import Exchange, Request
from conformance.findings import WARNING, Finding
from tests.conformance.conftest import Wire

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CAMEL = {"type": "function", "function": {"name": "getWeather", "parameters": {"type": "object"}}}
BARE = {"type": "function", "function": {"name": "t"}}
DEFS = {"type": "function", "function": {"name": "d", "parameters": {"$defs": {"x": {}}, "$ref": "#/$defs/x"}}}
TEXT = Wire.completion("It is sunny.")


def _call(name: str = "get_weather") -> dict[str, Any]:
    return Wire.completion(None, tool_calls=[Wire.tool_call(name)], finish="tool_calls")


def _plain(body: Any = TEXT, status: int = 200, **request: Any) -> Exchange:
    return Wire.plain(Wire.chat_request(**request), body, status=status)


def _stream(calls: int, **request: Any) -> Exchange:
    names = [("get_weather", ('{"city": "Paris"}',))] * calls
    return Wire.stream(Wire.chat_request(stream=True, **request), Wire.tool_stream(names))


ERROR = {"error": {"message": "bad", "type": "invalid_request_error"}}


@pytest.mark.parametrize(
    ("item", "exchange", "expected"),
    [
        ("base/chat-completions", _plain(), True),
        ("base/chat-completions", _plain(status=500, body=ERROR), False),
        ("base/errors", _plain(), False),
        ("base/errors", _plain(ERROR, status=400), True),
        ("0.3.18/stream-errors", Wire.stream(Wire.chat_request(stream=True), Wire.text_stream()), False),
        ("0.3.18/stream-errors", _plain(ERROR, status=404, stream=True), True),
        ("0.4.0/auth-tokens", _plain(), False),
        ("0.3.14/presets", _plain(), False),
        ("0.3.9/ttl", _plain(), False),
        ("0.3.9/ttl", _plain(ttl=300), True),
        ("0.3.10/speculative-decoding", _plain(draft_model="m"), True),
        ("0.3.6/tool-calling", _plain(tools=[WEATHER]), False),
        ("0.3.6/tool-calling", _plain(_call(), tools=[WEATHER]), True),
        ("0.3.15/tool-choice", _plain(_call(), tools=[WEATHER]), False),
        ("0.3.15/tool-choice", _plain(_call(), tools=[WEATHER], tool_choice="auto"), True),
        ("0.3.17/streamed-tool-arguments", _plain(_call(), tools=[WEATHER]), False),
        ("0.3.17/streamed-tool-arguments", _stream(1, tools=[WEATHER]), True),
        ("0.3.17/tools-without-parameters", _plain(tools=[WEATHER]), False),
        ("0.3.17/tools-without-parameters", _plain(tools=[WEATHER, BARE]), True),
        ("0.3.18/tool-schema-defs", _plain(tools=[DEFS]), False),
        ("0.3.18/tool-schema-defs", _plain(_call("d"), tools=[DEFS]), True),
        ("0.3.18/parallel-tool-calls-chunked", _stream(1, tools=[WEATHER]), False),
        ("0.3.18/parallel-tool-calls-chunked", _stream(2, tools=[WEATHER]), True),
        ("0.3.19/parallel-tool-calls-stream", _stream(1, tools=[WEATHER]), False),
        ("0.3.23/tool-name-normalization", _plain(_call(), tools=[WEATHER]), False),
        ("0.3.23/tool-name-normalization", _plain(_call("getWeather"), tools=[CAMEL]), True),
        ("0.3.18/stream-include-usage", _plain(), False),
        ("0.3.18/stream-include-usage", Wire.stream(Wire.chat_request(stream=True), Wire.text_stream()), True),
        ("0.3.18/response-format-text", _plain(response_format={"type": "json_object"}), False),
        ("0.3.18/response-format-text", _plain(response_format={"type": "text"}), True),
        ("base/structured-output", _plain(), False),
        ("base/structured-output", _plain(response_format={"type": "json_object"}), True),
        ("0.3.9/reasoning-content", _plain(), False),
        ("0.3.9/reasoning-content", _plain(Wire.completion("5", reasoning_content="2 + 3 = 5")), True),
    ],
)
def test_exercises(item: str, exchange: Exchange, expected: bool) -> None:
    assert exercises(item, exchange) is expected


def test_a_request_alone_exercises_only_what_needs_no_answer() -> None:
    request = Wire.request(Wire.chat_request(ttl=300, tools=[WEATHER]))
    assert exercises("0.3.9/ttl", Request("POST", "u", "/v1/chat/completions", body={"ttl": 1})) is False
    assert exercises("0.3.6/tool-calling", request) is False


def test_model_specific_items_need_their_family_and_a_call() -> None:
    families = ("mistral",)
    assert not exercises("x", _plain(_call(), model="qwen3", tools=[WEATHER]), model_families=families)
    assert not exercises("x", _plain(model="Mistral-7B", tools=[WEATHER]), model_families=families)
    assert exercises("x", _plain(_call(), model="Mistral-7B", tools=[WEATHER]), model_families=families)


def test_recorded_status_passes_only_an_exercised_item_and_never_fails_on_warnings() -> None:
    item = by_id("0.3.9/ttl")
    warning = Finding(item=item.id, check="r", message="odd", severity=WARNING)
    error = Finding(item=item.id, check="r", message="broken")
    assert recorded_status(item, [_plain()], []) is None
    assert recorded_status(item, [_plain(ttl=300)], [warning]) == (Status.PASS, "")
    assert recorded_status(item, [_plain(ttl=300)], [warning, error]) == (Status.FAIL, "broken")


def test_recorded_status_skips_an_extension_the_server_lacks() -> None:
    item = by_id("0.3.16/model-capabilities")
    missing = Wire.plain(None, {"error": "Not found"}, status=404, path="/api/v0/models", method="GET")
    status, reason = recorded_status(item, [missing], []) or (None, "")
    assert status == Status.SKIP
    assert reason == "not implemented by this server: GET /api/v0/models answered 404"
