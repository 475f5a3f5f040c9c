"""The LM Studio REST v1 rules on hand-made exchanges: routes, stream order, phases, stats, load and unload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.exchange import Exchange, Request, Response
from conformance.findings import Finding
from conformance.sse import parse_sse
from conformance.verdicts import endpoint_of, validate_exchange
from conformance.verdicts import items as ids
from conformance.verdicts.lmstudio_v1 import Route, route_of

CHAT = "/api/v1/chat"
RESULT: dict[str, Any] = {
    "model_instance_id": "m",
    "output": [{"type": "reasoning", "content": "Think."}, {"type": "message", "content": "Hi there"}],
    "stats": {
        "input_tokens": 10,
        "total_output_tokens": 4,
        "reasoning_output_tokens": 1,
        "tokens_per_second": 10.0,
        "time_to_first_token_seconds": 0.1,
    },
    "response_id": "resp_" + "a" * 48,
}


def _exchange(method: str, path: str, request: Any, status: int, body: Any) -> Exchange:
    return Exchange(
        Request(method, "http://x.invalid" + path, path, {}, request),
        Response(status, {"content-type": "application/json"}, body=body),
    )


def _stream(events: list[dict[str, Any]], *, request: dict[str, Any] | None = None, names: bool = True) -> Exchange:
    text = "".join((f"event: {e['type']}\n" if names else "") + f"data: {json.dumps(e)}\n\n" for e in events)
    parsed, tail = parse_sse(text.encode())
    body = request if request is not None else {"model": "m", "input": "hi", "stream": True}
    return Exchange(
        Request("POST", "http://x.invalid" + CHAT, CHAT, {}, body),
        Response(200, {"content-type": "text/event-stream"}, events=tuple(parsed), tail=tail),
    )


def _good_events(result: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"type": "chat.start", "model_instance_id": "m"},
        {"type": "model_load.start", "model_instance_id": "m"},
        {"type": "model_load.progress", "model_instance_id": "m", "progress": 0.5},
        {"type": "model_load.end", "model_instance_id": "m", "load_time_seconds": 1.5},
        {"type": "prompt_processing.start"},
        {"type": "prompt_processing.progress", "progress": 0.4},
        {"type": "prompt_processing.progress", "progress": 1},
        {"type": "prompt_processing.end"},
        {"type": "reasoning.start"},
        {"type": "reasoning.delta", "content": "Think."},
        {"type": "reasoning.end"},
        {"type": "message.start"},
        {"type": "message.delta", "content": "Hi"},
        {"type": "message.delta", "content": " there"},
        {"type": "message.end"},
        {
            "type": "chat.end",
            "result": result or {**RESULT, "stats": {**RESULT["stats"], "model_load_time_seconds": 1.5}},
        },
    ]


def _findings(exchange: Exchange, check: str | None = None) -> list[Finding]:
    return [f for f in validate_exchange(exchange) if check is None or f.check == check]


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/api/v1/models", Route.MODELS),
        ("POST", "/api/v1/models/load", Route.LOAD),
        ("POST", "/api/v1/models/unload", Route.UNLOAD),
        ("POST", "/api/v1/models/download", Route.DOWNLOAD),
        ("GET", "/api/v1/models/download/status/job_493c7c9ded", Route.DOWNLOAD_STATUS),
        ("POST", "/api/v1/chat", Route.CHAT),
        ("POST", "/lmstudio/api/v1/chat", Route.CHAT),
        ("POST", "/api/v1/chat/completions", None),
        ("GET", "/api/v1/chat", None),
        ("GET", "/v1/models", None),
    ],
)
def test_routes(method: str, path: str, route: Route | None) -> None:
    assert route_of(method, path) is route
    if route is not None:
        assert endpoint_of(method, path) is None  # never judged by the OpenAI rules


def test_openai_routes_under_api_v1_stay_openai() -> None:
    assert endpoint_of("POST", "/api/v1/chat/completions") is not None


def test_a_good_stream_has_no_finding() -> None:
    assert _findings(_stream(_good_events())) == []


def test_an_error_event_followed_by_chat_end_is_in_order() -> None:
    events: list[dict[str, Any]] = [
        {"type": "chat.start", "model_instance_id": "m"},
        {"type": "error", "error": {"type": "internal_error", "message": "boom"}},
        {"type": "chat.end", "result": {**RESULT, "output": []}},
    ]
    assert _findings(_stream(events), "v1-chat-event-order") == []


def test_events_without_event_lines_are_named() -> None:
    [finding] = _findings(_stream(_good_events(), names=False), "v1-chat-event-schema")
    assert finding.item == ids.REST_V1_CHAT
    assert finding.message.startswith("the event has no `event:` line")
    assert finding.message.endswith("[16 times]")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: [e[0], *e[4:8], *e[1:4], *e[8:]], "model_load.start after the prompt was processed"),
        (lambda e: [*e[:5], e[6], e[5], *e[7:]], "prompt_processing.progress goes back from 1.0 to 0.4"),
        (lambda e: [*e[:11], e[12], e[11], *e[13:]], "message.delta outside a message block"),
        (lambda e: [*e[:9], *e[11:14], *e[9:11], *e[14:]], "message.start while the reasoning block is still open"),
        (lambda e: [*e[:7], *e[8:]], "reasoning.start while prompt_processing has not ended"),
        (lambda e: [*e[:15], e[15], e[14]], "the last event is 'message.end'"),
        (lambda e: [e[15], *e[:15]], "the first event is 'chat.end'"),
        (lambda e: [*e, e[15]], "chat.end is sent more than once"),
        (
            lambda e: [*e[:15], {"type": "error", "error": {"type": "unknown", "message": "x"}}],
            "the error event is not followed by chat.end",
        ),
        (
            lambda e: [
                *e[:12],
                {"type": "tool_call.arguments", "tool": "t", "arguments": {}, "provider_info": {}},
                *e[12:],
            ],
            "tool_call.arguments without a tool_call.start",
        ),
    ],
)
def test_out_of_order_streams_fail_naming_the_event(edit: Any, message: str) -> None:
    findings = _findings(_stream(edit(_good_events())), "v1-chat-event-order")
    assert any(message in f.message for f in findings), [f.message for f in findings]
    finding = next(f for f in findings if message in f.message)
    assert finding.chunk is not None
    assert finding.raw is not None
    assert finding.raw.startswith("event: ")


def test_a_model_load_without_its_stat_fails() -> None:
    findings = _findings(_stream(_good_events(RESULT)), "v1-chat-stream-matches-result")
    assert [f.pointer for f in findings] == ["/result/stats"]


def test_tool_call_order_belongs_to_the_mcp_item() -> None:
    events = _good_events()
    events.insert(12, {"type": "tool_call.success", "tool": "t", "arguments": {}, "output": "o", "provider_info": {}})
    items = {f.item for f in _findings(_stream(events), "v1-chat-event-order")}
    assert items == {ids.REST_V1_MCP}


def test_stats_hold_together() -> None:
    body = {**RESULT, "stats": {**RESULT["stats"], "total_output_tokens": 40, "reasoning_output_tokens": 50}}
    findings = _findings(_exchange("POST", CHAT, {"model": "m", "input": "hi", "max_output_tokens": 16}, 200, body))
    messages = [f.message for f in findings if f.check == "v1-chat-stats"]
    assert messages == [
        "total_output_tokens 40 exceeds max_output_tokens 16",
        "reasoning_output_tokens 50 exceeds total_output_tokens 40",
    ]


def test_a_stream_answered_with_a_body_fails() -> None:
    exchange = _exchange("POST", CHAT, {"model": "m", "input": "hi", "stream": True}, 200, RESULT)
    [finding] = _findings(exchange, "v1-body-schema")
    assert "not a text/event-stream" in finding.message


def test_load_with_another_context_length_fails() -> None:
    answer = {
        "type": "llm",
        "instance_id": "m",
        "load_time_seconds": 1.0,
        "status": "loaded",
        "load_config": {"context_length": 4096},
    }
    request = {"model": "m", "context_length": 2048, "echo_load_config": True}
    [finding] = _findings(_exchange("POST", "/api/v1/models/load", request, 200, answer))
    assert finding.item == ids.REST_V1_MODELS
    assert finding.pointer == "/load_config/context_length"


def test_unload_of_another_instance_fails() -> None:
    exchange = _exchange("POST", "/api/v1/models/unload", {"instance_id": "a"}, 200, {"instance_id": "b"})
    [finding] = _findings(exchange)
    assert finding.check == "v1-unload-echo"


def test_a_key_listed_twice_fails() -> None:
    row = {
        "type": "embedding",
        "publisher": "p",
        "key": "e",
        "display_name": "E",
        "quantization": None,
        "size_bytes": 1,
        "params_string": None,
        "loaded_instances": [{"id": "e", "config": {"context_length": 512}}],
        "max_context_length": 512,
        "format": "gguf",
    }
    findings = _findings(_exchange("GET", "/api/v1/models", None, 200, {"models": [row, row]}))
    assert {f.check for f in findings} == {"v1-models-unique"}
    assert {f.pointer for f in findings} == {"/models/1/key", "/models/1/loaded_instances/0/id"}


def test_download_jobs_are_validated() -> None:
    good = {"job_id": "job_1", "status": "downloading", "total_size_bytes": 10, "started_at": "2025-10-03T15:33:23Z"}
    assert _findings(_exchange("POST", "/api/v1/models/download", {"model": "x"}, 200, good)) == []
    assert (
        _findings(_exchange("POST", "/api/v1/models/download", {"model": "x"}, 200, {"status": "already_downloaded"}))
        == []
    )
    findings = _findings(_exchange("GET", "/api/v1/models/download/status/job_1", None, 200, {"status": "resumed"}))
    assert [f.pointer for f in findings] == ["", "/status"]  # job_id missing, status unknown


def test_native_errors_need_type_and_message() -> None:
    native = {"error": {"type": "model_not_found", "message": "no model x", "param": "model"}}
    assert _findings(_exchange("POST", "/api/v1/models/load", {"model": "x"}, 404, native)) == []
    [finding] = _findings(_exchange("POST", "/api/v1/models/load", {"model": "x"}, 404, {"detail": "Not Found"}))
    assert finding.check == "v1-error-envelope"
    assert finding.raw == '{"detail":"Not Found"}'
