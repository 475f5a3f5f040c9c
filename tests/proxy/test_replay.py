"""Tests for proxy/replay.py: matching requests get the recorded bytes at the recorded pace, others a 404."""

from __future__ import annotations

import time

import httpx

from conformance.exchange import Exchange, Request, Response, SSEEvent
from proxy.replay import ReplayApp
from tests.proxy.conftest import serve_app

BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _recorded() -> list[Exchange]:
    events = (
        SSEEvent(10.0, None, '{"n": 1}', 'data: {"n": 1}'),
        SSEEvent(60.0, "update", '{"n": 2}', 'event: update\ndata: {"n": 2}'),
        SSEEvent(110.0, None, None, ": comment"),
        SSEEvent(160.0, None, "[DONE]", "data: [DONE]"),
    )
    return [
        Exchange(
            Request("POST", "http://up/v1/chat/completions", "/v1/chat/completions", {}, BODY),
            Response(200, {"content-type": "text/event-stream", "content-length": "999"}, events=events),
            duration_ms=170.0,
        ),
        Exchange(Request("GET", "http://up/v1/models", "/v1/models"), Response(200, body={"data": [1]}), duration_ms=1),
        Exchange(Request("GET", "http://up/v1/models", "/v1/models"), Response(200, body={"data": [2]}), duration_ms=1),
        Exchange(Request("GET", "http://up/v1/gone", "/v1/gone"), None, error="ConnectError: refused"),
    ]


EXPECTED_STREAM = b'data: {"n": 1}\n\nevent: update\ndata: {"n": 2}\n\n: comment\n\ndata: [DONE]\n\n'


def test_stream_bytes_and_pace() -> None:
    with serve_app(ReplayApp(_recorded(), speed=2.0)) as url, httpx.Client(base_url=url) as client:
        start = time.perf_counter()
        arrivals = []
        data = b""
        # keys differ in order and tool ids would differ too: the pairing key ignores both
        with client.stream("POST", "/v1/chat/completions", json=dict(reversed(BODY.items()))) as reply:
            assert reply.headers["content-type"] == "text/event-stream"
            for chunk in reply.iter_raw():
                arrivals.append(time.perf_counter() - start)
                data += chunk
    assert data == EXPECTED_STREAM
    assert arrivals[-1] >= 0.075, "the last event comes at 160 ms / speed 2"
    assert arrivals[-1] < 1.0


def test_speed_zero_answers_at_once_and_recordings_are_served_in_turn() -> None:
    with serve_app(ReplayApp(_recorded(), speed=0)) as url, httpx.Client(base_url=url) as client:
        start = time.perf_counter()
        assert client.post("/v1/chat/completions", json=BODY).content == EXPECTED_STREAM
        assert time.perf_counter() - start < 0.1
        assert [client.get("/v1/models").json()["data"] for _ in range(3)] == [[1], [2], [1]]
        failed = client.get("/v1/gone")
        assert failed.status_code == 502
        assert "refused" in failed.json()["error"]["message"]


def test_unmatched_request_is_a_404_in_openai_format() -> None:
    with serve_app(ReplayApp(_recorded(), speed=0)) as url, httpx.Client(base_url=url) as client:
        reply = client.post("/v1/chat/completions", json={**BODY, "max_tokens": 3})
        assert reply.status_code == 404
        error = reply.json()["error"]
        assert error["code"] == "no_recorded_exchange"
        assert "no recorded exchange matches POST /v1/chat/completions" in error["message"]
        assert "1 recorded for POST /v1/chat/completions with another body" in error["message"]
        assert "GET /v1/models x2" in error["message"]
        assert client.get("/v1/other").status_code == 404
