"""Tests for conformance/catalog/coverage.py: which requests exercise which item."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.catalog.coverage import exercises
from conformance.exchange import Request

WEATHER = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
BARE = {"type": "function", "function": {"name": "t"}}
DEFS = {"type": "function", "function": {"name": "d", "parameters": {"$defs": {"x": {}}, "$ref": "#/$defs/x"}}}


def _request(**body: Any) -> Request:
    return Request("POST", "u", "/v1/chat/completions", body=body)


@pytest.mark.parametrize(
    ("item", "body", "expected"),
    [
        ("base/chat-completions", {}, True),
        ("0.3.9/ttl", {}, False),
        ("0.3.9/ttl", {"ttl": 300}, True),
        ("0.3.10/speculative-decoding", {"draft_model": "m"}, True),
        ("0.3.6/tool-calling", {"tools": []}, False),
        ("0.3.6/tool-calling", {"tools": [WEATHER]}, True),
        ("0.3.15/tool-choice", {"tools": [WEATHER]}, False),
        ("0.3.15/tool-choice", {"tools": [WEATHER], "tool_choice": "auto"}, True),
        ("0.3.17/streamed-tool-arguments", {"tools": [WEATHER]}, False),
        ("0.3.17/streamed-tool-arguments", {"tools": [WEATHER], "stream": True}, True),
        ("0.3.17/tools-without-parameters", {"tools": [WEATHER]}, False),
        ("0.3.17/tools-without-parameters", {"tools": [WEATHER, BARE]}, True),
        ("0.3.18/tool-schema-defs", {"tools": [WEATHER]}, False),
        ("0.3.18/tool-schema-defs", {"tools": [DEFS]}, True),
        ("0.3.18/stream-include-usage", {"stream": False}, False),
        ("0.3.18/stream-include-usage", {"stream": True}, True),
        ("0.3.19/stream-usage-correct", {"stream": True}, False),
        ("0.3.19/stream-usage-correct", {"stream": True, "stream_options": {"include_usage": True}}, True),
        ("0.3.18/response-format-text", {"response_format": {"type": "json_object"}}, False),
        ("0.3.18/response-format-text", {"response_format": {"type": "text"}}, True),
    ],
)
def test_exercises(item: str, body: dict[str, Any], expected: bool) -> None:
    assert exercises(item, _request(**body)) is expected


def test_model_specific_items_need_their_family_and_tools() -> None:
    assert not exercises("x", _request(model="qwen3", tools=[WEATHER]), model_families=("mistral",))
    assert not exercises("x", _request(model="Mistral-7B"), model_families=("mistral",))
    assert exercises("x", _request(model="Mistral-7B", tools=[WEATHER]), model_families=("mistral",))
