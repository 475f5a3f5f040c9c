"""Tests for proxy/replay.py: matching requests get the recorded bytes at the recorded pace, others a 404."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx

from conformance.exchange import Exchange, Request, Response, SSEEvent
from proxy.replay import ReplayApp, absurd_time
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


def _long_stream() -> Exchange:
    events = (
        SSEEvent(0.0, None, '{"n": 1}', 'data: {"n": 1}'),
        SSEEvent(60_000.0, None, '{"n": 2}', 'data: {"n": 2}'),
        SSEEvent(120_000.0, None, "[DONE]", "data: [DONE]"),
    )
    return Exchange(
        Request("POST", "http://up/v1/chat/completions", "/v1/chat/completions", {}, BODY),
        Response(200, {"content-type": "text/event-stream", "server": "llama.cpp"}, events=events),
    )


def test_a_client_that_leaves_stops_the_stream_and_every_request_is_logged() -> None:
    lines: list[str] = []
    app = ReplayApp([_long_stream()], speed=1.0, log=lines.append)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=BODY) as reply:
            chunks = reply.iter_raw()
            assert next(chunks) == b'data: {"n": 1}\n\n'
        # the client has closed the connection; a minute of recorded pause is not waited out
        for _ in range(300):
            if lines:
                break
            time.sleep(0.1)
        assert client.get("/v1/unknown").status_code == 404
    assert lines == [
        "POST /v1/chat/completions 200 · recording 1 of 1 · the client left after 1 of 3 events",
        "GET /v1/unknown 404 · no recorded exchange matches",
    ]


def test_absurd_times_are_named_and_never_waited_on() -> None:
    exchange = _long_stream()
    assert absurd_time(exchange) is None
    assert exchange.response is not None
    for bad in (float("nan"), float("inf"), -5.0, 1e300):
        broken = replace(exchange, response=replace(exchange.response, events=(SSEEvent(bad, None, "x", "data: x"),)))
        assert absurd_time(broken) == f"events[0].t_ms is {bad!r}, not a time from 0 to 86400000 ms"
    slow_body = Exchange(Request("GET", "u", "/v1/models"), Response(200, body={}), duration_ms=1e12)
    assert absurd_time(slow_body) == "duration_ms is 1000000000000.0, not a time from 0 to 86400000 ms"
    app = ReplayApp([replace(slow_body, duration_ms=float("inf"))], speed=1.0)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v1/models").status_code == 200, "an infinite time is not waited on"
