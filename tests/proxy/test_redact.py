"""Tests for proxy/redact.py: which names are secret, and that secret values leave no trace."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.sse import parse_sse
from proxy.redact import REDACTED, Redactor
from proxy.serve import ProxySettings, proxy_in_thread
from tests.proxy.conftest import serve_app


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "X-API-Key",
        "api-key",
        "Cookie",
        "set-cookie",
        "OpenAI-Organization",
        "x-goog-api-key",
        "client_secret",
        "access_token",
        "X-Auth-Token",
        "token",
        "refresh-token",
        "password",
        "apiKey",
        "api_key",
        "refresh_token",
        "id_token",
        "session_token",
        "x-session-token",
        "csrf_token",
        "hf_token",
        "accessToken",
        "token_secret",
    ],
)
def test_secret_names(name: str) -> None:
    assert Redactor().is_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "content-type",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "input_tokens",
        "cached_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "model",
        "messages",
        "keep-alive",
        "x-request-id",
        "prompt_per_token_ms",
        "predicted_per_token_ms",
        "time_to_first_token",
        "timeToFirstTokenSec",
        "time-to-first-token",
        "t_token_generation",
        "n_token_types",
        "first_token_ms",
        "token_count",
        "token_id",
        "prompt_token_ids",
        "token_index",
    ],
)
def test_not_secret_names(name: str) -> None:
    assert not Redactor().is_secret(name)


def test_extra_names_are_exact_and_case_insensitive() -> None:
    redactor = Redactor.with_names(["X-Session"])
    assert redactor.is_secret("x-session")
    assert not redactor.is_secret("x-session-id")
    assert not Redactor().is_secret("x-session")


def test_headers() -> None:
    headers = {"authorization": "Bearer sk-abc123456", "content-type": "application/json", "x-my-token": "t0k3n-value"}
    assert Redactor().headers(headers) == {
        "authorization": REDACTED,
        "content-type": "application/json",
        "x-my-token": REDACTED,
    }


def test_query_parameters() -> None:
    url = "http://h:1/v1/models?api-key=sekrit123&limit=5&access_token=zzzzzz"
    redacted = Redactor().url(url)
    assert "sekrit123" not in redacted
    assert "zzzzzz" not in redacted
    assert "limit=5" in redacted
    assert "api-key=[REDACTED]" in redacted
    assert Redactor().url("/v1/models?limit=5") == "/v1/models?limit=5"


def test_json_fields_at_any_depth_keep_usage_counts_and_schemas() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "metadata": {"nested": [{"api_key": "k-123456"}], "session_token": "s-1234567"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "tools": [{"function": {"parameters": {"properties": {"api_key": {"type": "string"}}}}}],
    }
    out = Redactor().json(body)
    assert out["max_tokens"] == 16
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert out["metadata"]["nested"][0]["api_key"] == REDACTED
    assert out["metadata"]["session_token"] == REDACTED
    assert out["tools"] == body["tools"], "a schema object named like a secret is not a secret"
    assert body["metadata"]["nested"][0]["api_key"] == "k-123456", "the input is left unchanged"


def test_logprob_token_is_generated_text() -> None:
    body = {"logprobs": {"content": [{"token": "Hello", "logprob": -0.1, "bytes": [72]}]}}
    assert Redactor().json(body) == body


def test_lmstudio_model_keys_are_names_not_secrets() -> None:
    row = {"type": "llm", "key": "qwen3-8b", "display_name": "Qwen3 8B", "loaded_instances": [{"id": "qwen3-8b"}]}
    models = {
        "models": [row, {"type": "embedding", "key": "nomic-embed", "display_name": "Nomic", "loaded_instances": []}]
    }
    assert Redactor().json(models) == models
    assert Redactor().json({"key": "sk-secret-1234", "value": 1}) == {"key": REDACTED, "value": 1}


def _exchange(secret: str) -> Exchange:
    return Exchange(
        request=Request(
            method="POST",
            url=f"http://upstream:1234/v1/chat/completions?key={secret}",
            path=f"/v1/chat/completions?key={secret}",
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            body={"model": "m", "messages": [{"role": "user", "content": "hi"}], "user_api_key": secret},
        ),
        response=Response(
            status=401,
            headers={"set-cookie": "session=abcdef123", "content-type": "text/event-stream"},
            events=(
                SSEEvent(
                    t_ms=1.0,
                    event=None,
                    data=f'{{"error": "bad key {secret}"}}',
                    raw=f'data: {{"error": "bad key {secret}"}}',
                ),
            ),
            tail=f"data: {secret}",
        ),
        error=f"upstream said {secret}",
    )


def test_exchange_secret_values_are_scrubbed_everywhere() -> None:
    secret = "sk-test-0123456789"
    redacted = Redactor().exchange(_exchange(secret))
    text = json.dumps(redacted.to_dict())
    assert secret not in text
    assert "abcdef123" not in text
    assert redacted.request.headers["authorization"] == REDACTED
    assert redacted.request.body["messages"] == [{"role": "user", "content": "hi"}]
    assert redacted.response is not None
    assert redacted.response.events is not None
    event = redacted.response.events[0]
    assert event.raw == f"data: {event.data}", "raw and data are scrubbed alike"
    assert event.t_ms == 1.0


def test_short_values_are_not_scrubbed_from_other_text() -> None:
    exchange = Exchange(
        request=Request("GET", "http://h/v1/models", "/v1/models", headers={"x-api-key": "abc"}),
        response=Response(200, body={"data": [{"id": "abc-model"}]}),
    )
    redacted = Redactor().exchange(exchange)
    assert redacted.request.headers["x-api-key"] == REDACTED
    assert redacted.response is not None
    assert redacted.response.body == {"data": [{"id": "abc-model"}]}


def test_server_timings_are_kept_and_secrets_beside_them_are_not() -> None:
    """llama-server's `timings` and LM Studio's `stats` are numbers about tokens, not tokens."""
    body: dict[str, Any] = {
        "timings": {"prompt_n": 4, "prompt_ms": 12.5, "prompt_per_token_ms": 3.1, "predicted_per_token_ms": 8.25},
        "stats": {"tokens_per_second": 40.2, "time_to_first_token": 0.042, "generation_time": 0.2},
        "access_token": "at-1234567",
        "token": "tk-1234567",
    }
    out = Redactor().json(body)
    assert out["timings"] == body["timings"]
    assert out["stats"] == body["stats"]
    assert out["access_token"] == REDACTED
    assert out["token"] == REDACTED


# --- secrets inside JSON-encoded strings, lists, form bodies, query strings and split stream deltas -----------


def test_list_values_under_a_secret_name() -> None:
    body = {"api_keys": ["sk-first-123456", "sk-second-123456", 7], "nested": [["x"]], "keys": [{"type": "string"}]}
    out = Redactor().json(body)
    assert out["api_keys"] == [REDACTED, REDACTED, REDACTED]
    assert out["keys"] == [{"type": "string"}], "objects in the list are walked, not replaced"
    assert out["nested"] == [["x"]]


def test_tool_call_arguments_in_a_request_are_redacted_inside_the_string() -> None:
    arguments = json.dumps({"city": "Paris", "password": "pw9", "headers": {"x-api-key": "k-0123456789"}})
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": arguments}}]}]}
    out = Redactor().json(body)
    redacted = out["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(redacted) == {"city": "Paris", "password": REDACTED, "headers": {"x-api-key": REDACTED}}
    assert "pw9" not in redacted
    assert Redactor().json({"content": "{not json at all"}) == {"content": "{not json at all"}


def test_url_query_inside_a_json_string_and_a_location_header() -> None:
    out = Redactor().json({"image_url": {"url": "https://img.example/a.png?token=tk-secret-4242&w=5"}})
    assert out["image_url"]["url"] == "https://img.example/a.png?token=[REDACTED]&w=5"
    headers = Redactor().headers({"location": "https://h/cb?code=1&access_token=tk-secret-4242"})
    assert "tk-secret-4242" not in headers["location"]


def _form_exchange(secret: str) -> Exchange:
    return Exchange(
        Request(
            "POST",
            "http://h/oauth/token",
            "/oauth/token",
            {"content-type": "application/x-www-form-urlencoded"},
            f"grant_type=client_credentials&client_secret={secret}&scope=a+b",
        ),
        Response(200, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, "access_token=at%2F123456"),
    )


def test_form_encoded_bodies() -> None:
    redacted = Redactor().exchange(_form_exchange("cs-0123456789"))
    assert redacted.request.body == "grant_type=client_credentials&client_secret=[REDACTED]&scope=a+b"
    assert redacted.response is not None
    assert redacted.response.body == "access_token=[REDACTED]"


def test_percent_encoded_and_json_escaped_forms_are_scrubbed_too() -> None:
    secret = 'sk/with+odd"chars'
    exchange = Exchange(
        Request("GET", "http://h/v1/models", "/v1/models", {"x-api-key": secret}),
        Response(
            200,
            {"content-type": "text/event-stream"},
            events=(SSEEvent(1, None, json.dumps({"echo": secret}), "data: " + json.dumps({"echo": secret})),),
            body=None,
        ),
        error=f"upstream rejected {quote(secret, safe='')} and {quote_plus(secret)}",
    )
    text = json.dumps(Redactor().exchange(exchange).to_dict())
    for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)):
        assert form not in text


def _chunk(arguments: str, index: int = 0) -> str:
    call = {"index": index, "function": {"arguments": arguments}}
    return json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}, separators=(",", ":"))


def _stream(datas: list[str]) -> Exchange:
    events = tuple(SSEEvent(float(n), None, d, "data: " + d) for n, d in enumerate(datas))
    return Exchange(
        Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {}, {"stream": True}),
        Response(200, {"content-type": "text/event-stream"}, events=events),
    )


def _joined_arguments(exchange: Exchange) -> str:
    assert exchange.response is not None
    assert exchange.response.events is not None
    joined = ""
    for event in exchange.response.events:
        delta = event.json()["choices"][0]["delta"]
        joined += "".join(c["function"]["arguments"] for c in delta.get("tool_calls", ()))
    return joined


def test_secret_split_across_streamed_tool_call_arguments() -> None:
    arguments = json.dumps({"city": "Paris", "api_key": "sk-split-secret-987", "password": "Zq9"})
    pieces = [arguments[i : i + 4] for i in range(0, len(arguments), 4)]
    other = json.dumps({"note": "Zq9 is fine here"})  # the short value is only cut where it is the secret field
    redacted = Redactor().exchange(_stream([_chunk(p) for p in pieces] + [_chunk(other, index=1)]))
    assert redacted.response is not None
    assert redacted.response.events is not None
    joined = _joined_arguments(
        replace(redacted, response=replace(redacted.response, events=redacted.response.events[:-1]))
    )
    assert json.loads(joined) == {"city": "Paris", "api_key": REDACTED, "password": REDACTED}
    last = redacted.response.events[-1].json()["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(last) == {"note": "Zq9 is fine here"}
    for event in redacted.response.events:
        assert event.raw == f"data: {event.data}", "raw and data are changed alike"
        assert event.data == json.dumps(event.json(), separators=(",", ":")), "the chunk keeps its compact layout"


def test_secret_echoed_in_split_content_deltas_and_partial_arguments() -> None:
    """A key from the request header echoed by the model token by token; a stream cut inside a secret value."""
    secret = "sk-header-key-55555"
    content = [f"the key is {secret[:5]}", secret[5:12], f"{secret[12:]}."]
    datas = [json.dumps({"choices": [{"index": 0, "delta": {"content": c}}]}) for c in content]
    datas.append(_chunk('{"password": "half-of-a-pa'))  # the stream ended here
    exchange = _stream(datas)
    exchange = replace(exchange, request=replace(exchange.request, headers={"authorization": f"Bearer {secret}"}))
    redacted = Redactor().exchange(exchange)
    assert redacted.response is not None
    assert redacted.response.events is not None
    joined = "".join(e.json()["choices"][0]["delta"].get("content", "") for e in redacted.response.events)
    assert joined == f"the key is {REDACTED}."
    assert "half-of-a-pa" not in json.dumps(redacted.to_dict())


def test_anthropic_partial_json_and_event_fields_by_name() -> None:
    pieces = ['{"secret_', 'value": "anth', 'ropic-secret-1"}']
    datas = [
        json.dumps(
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}}
        )
        for p in pieces
    ]
    datas.append(json.dumps({"type": "message_delta", "session_token": "st-77777777"}))
    redacted = Redactor().exchange(_stream(datas))
    assert redacted.response is not None
    assert redacted.response.events is not None
    text = json.dumps(redacted.to_dict())
    assert "anthropic-secret-1" not in "".join(
        e.json().get("delta", {}).get("partial_json", "") for e in redacted.response.events
    )
    assert "st-77777777" not in text


# --- through the real recorder: every shape with a marker secret, then grep the cassette and the HAR ----------

MARKERS = {
    "request arguments": "MarkerReqArgs0001",
    "response arguments": "MarkerRespArgs0002",
    "stream arguments": "MarkerStreamArgs0003",
    "stream short": "Zq9",
    "list": "MarkerListValue0004",
    "form request": "MarkerFormReq0005",
    "form response": "MarkerFormResp0006",
    "query": "MarkerQuery0007",
    "url in body": "MarkerUrlInBody0008",
}


async def _secret_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers each shape: model output with secrets in tool-call arguments (JSON and SSE), a form body."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/oauth/token":
        body = f"access_token={MARKERS['form response']}&token_type=bearer".encode()
        await _start(send, "application/x-www-form-urlencoded")
        await send({"type": "http.response.body", "body": body})
    elif path == "/v1/chat/completions/stream":
        arguments = json.dumps(
            {"city": "Paris", "api_key": MARKERS["stream arguments"], "password": MARKERS["stream short"]}
        )
        await _start(send, "text/event-stream")
        for i in range(0, len(arguments), 5):  # every secret is split across deltas
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {_chunk(arguments[i : i + 5])}\n\n".encode(),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    else:
        arguments = json.dumps({"city": "Paris", "password": MARKERS["response arguments"]})
        call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        payload = {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}
        await _start(send, "application/json")
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def _start(send: Any, content_type: str) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type.encode())]})


def test_every_shape_of_secret_is_kept_off_the_cassette_and_the_har(tmp_path: Path) -> None:
    cassette, har = tmp_path / "s.jsonl", tmp_path / "s.har"
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "f", "arguments": json.dumps({"token": MARKERS["request arguments"]})},
    }
    with serve_app(_secret_upstream) as upstream:
        settings = ProxySettings(cassette, upstream=upstream, listen_port=0, har=har, validate=False)
        with proxy_in_thread(settings) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
            messages = [{"role": "assistant", "tool_calls": [call]}, {"role": "tool", "content": "ok"}]
            streamed = client.post("/v1/chat/completions/stream", json={"messages": messages, "stream": True})
            client.post(
                "/v1/chat/completions",
                json={
                    "api_keys": [MARKERS["list"], "x"],
                    "image": f"https://i.example/a.png?token={MARKERS['url in body']}",
                },
            )
            form = client.post("/oauth/token", data={"client_secret": MARKERS["form request"], "grant_type": "x"})
            client.get("/v1/models", params={"api_key": MARKERS["query"], "limit": 2})
            assert proxy.recorder.drain() == 0
    received, _ = parse_sse(streamed.content)
    assert MARKERS["stream arguments"] in _joined_arguments(_stream([e.data or "" for e in received[:-1]]))
    assert MARKERS["form response"] in form.text, "the client gets the response untouched"
    for path in (cassette, har):
        data = path.read_bytes()
        for shape, marker in MARKERS.items():
            assert marker.encode() not in data, f"{shape}: {marker} reached {path.name}"
    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(lines) == 4
    joined = _joined_arguments(_stream([e["data"] for e in lines[0]["response"]["events"][:-1]]))
    assert json.loads(joined) == {"city": "Paris", "api_key": REDACTED, "password": REDACTED}
    assert lines[2]["request"]["body"] == "client_secret=[REDACTED]&grant_type=x"


def test_a_body_too_deep_to_walk_is_dropped_not_kept_unredacted() -> None:
    secret = "sk-deep-secret-123456"
    text_body = '{"api_key": "' + secret + '", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    deep: Any = {"api_key": secret}
    for _ in range(5000):
        deep = {"x": deep}
    for body in (text_body, deep):
        exchange = Exchange(
            Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {"x-api-key": "k-1234567"}, body),
            Response(200, {"content-type": "text/event-stream"}, events=(SSEEvent(1, None, text_body, "data: x"),)),
        )
        redacted = Redactor().exchange(exchange)
        assert redacted.request.body == "[not recorded: nested too deeply to redact]"
        assert redacted.request.headers["x-api-key"] == REDACTED
        assert redacted.response is not None
        assert redacted.response.events is not None
        assert secret not in (redacted.response.events[0].data or "")
