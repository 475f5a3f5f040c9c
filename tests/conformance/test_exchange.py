"""Tests for the exchange types: cassette round trip and version guard."""

from __future__ import annotations

import pytest

from conformance.exchange import Exchange, Request, Response, SSEEvent


def _stream_exchange() -> Exchange:
    return Exchange(
        request=Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {"a": "b"}, {"stream": True}),
        response=Response(
            200,
            {"content-type": "text/event-stream"},
            events=(SSEEvent(1.5, None, "[DONE]", "data: [DONE]"),),
            tail="data: x",
        ),
        id="e1",
        started_at="2026-01-01T00:00:00+00:00",
        duration_ms=3.0,
    )


def test_round_trip_stream() -> None:
    exchange = _stream_exchange()
    line = exchange.to_dict()
    assert line["version"] == 1
    assert line["response"]["events"] == [{"t_ms": 1.5, "event": None, "data": "[DONE]", "raw": "data: [DONE]"}]
    assert "body" not in line["response"]
    assert Exchange.from_dict(line) == exchange
    assert exchange.endpoint == "/v1/chat/completions"
    assert exchange.response is not None
    assert exchange.response.is_stream


def test_round_trip_error_without_response() -> None:
    exchange = Exchange(Request("GET", "u", "/v1/models?x=1"), None, error="ConnectError: refused")
    again = Exchange.from_dict(exchange.to_dict())
    assert again == exchange
    assert again.endpoint == "/v1/models"


def test_unknown_version_is_rejected() -> None:
    line = _stream_exchange().to_dict() | {"version": 7}
    with pytest.raises(ValueError, match="unknown cassette version 7"):
        Exchange.from_dict(line)


def test_request_json_only_for_objects() -> None:
    assert Request("POST", "u", "/p", body=[1]).json == {}
    assert Request("POST", "u", "/p", body={"k": 1}).json == {"k": 1}
