"""Tests for conformance/verdicts/structured.py: response_format json_object / json_schema answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.catalog.requests import json_schema_format
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange
from tests.conformance.conftest import Wire


def _findings(content: str, response_format: dict[str, Any], finish: str = "stop") -> list[Any]:
    request = Wire.chat_request(response_format=response_format)
    exchange = Wire.plain(request, Wire.completion(content, finish=finish))
    return [f for f in validate_exchange(exchange) if f.item == ids.STRUCTURED_OUTPUT]


STRICT = json_schema_format(strict=True)


def test_a_valid_answer_has_no_finding() -> None:
    assert _findings(json.dumps({"city": "Paris", "country": "France"}), STRICT) == []
    assert _findings('{"anything": 1}', {"type": "json_object"}) == []


@pytest.mark.parametrize(
    ("content", "response_format", "message"),
    [
        ("Paris, France.", STRICT, "response_format is json_schema but the content is not JSON"),
        ("[1, 2]", {"type": "json_object"}, "response_format is json_object but the content is a JSON list"),
        ('{"city": 3, "country": "France"}', STRICT, "the content does not match the response_format json_schema"),
        ('{"city": "Paris"}', STRICT, "the content does not match the response_format json_schema: 'country'"),
    ],
)
def test_an_answer_that_breaks_the_format_is_a_finding(
    content: str, response_format: dict[str, Any], message: str
) -> None:
    findings = _findings(content, response_format)
    assert findings, content
    assert findings[0].message.startswith(message)
    assert findings[0].pointer == "/choices/0/message/content"
    assert findings[0].seen == content


def test_an_answer_cut_by_max_tokens_is_not_judged() -> None:
    assert _findings('{"city": "Par', STRICT, finish="length") == []


def test_a_streamed_answer_is_judged_on_its_concatenated_content() -> None:
    request = Wire.chat_request(stream=True, response_format=STRICT)
    exchange = Wire.stream(request, Wire.text_stream(('{"city": ', '"Paris"}')))
    findings = [f for f in validate_exchange(exchange) if f.item == ids.STRUCTURED_OUTPUT]
    assert [f.message for f in findings] == [
        "the content does not match the response_format json_schema: 'country' is a required property"
    ]
    assert findings[0].chunk is not None
