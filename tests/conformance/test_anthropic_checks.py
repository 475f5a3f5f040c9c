"""The 0.4.1/anthropic-messages checks and rules against a fake Anthropic server: correct, broken, not exercised."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from conformance.catalog import by_id
from conformance.catalog.anthropic import CHECKS
from conformance.catalog.coverage import exercises
from conformance.check import Check, RequestSpec, Target
from conformance.exchange import Exchange, Request, Response
from conformance.findings import Finding
from conformance.sse import parse_sse
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange
from tests.conformance.conftest import run_plan

MODEL = "fake-model"
TARGET = Target(base_url="http://fake.invalid", model=MODEL)
ITEM = ids.ANTHROPIC_MESSAGES
WORDS = ["Apple", "banana", "cherry", "date", "fig", "grape", "kiwi", "lemon"]
THOUGHT = "Two plus three is five."


def _tokens(body: dict[str, Any]) -> int:
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(block["text"] for block in system)
    counted = {"system": system, "messages": body.get("messages"), "tools": body.get("tools")}
    return max(1, len(json.dumps(counted)) // 4)


def _error(status: int, kind: str, message: str, bugs: frozenset[str]) -> tuple[int, Any]:
    if "openai_errors" in bugs:
        return status, {"error": {"message": message, "type": kind, "code": status}}
    return status, {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropic:
    """Answers /v1/messages like a correct server, or with the named bugs; `cut` answers nothing before
    max_tokens, `down` never answers."""

    def __init__(self, *bugs: str) -> None:
        self.bugs = frozenset(bugs)

    def __call__(self, spec: RequestSpec) -> Exchange:
        body = spec.body.decode() if isinstance(spec.body, bytes) else spec.body
        request = Request(spec.method, "http://fake.invalid" + spec.path, spec.path, dict(spec.headers), body)
        if "down" in self.bugs:
            return Exchange(request, None, error="ConnectError: connection refused")
        status, answer = self._answer(spec.path, body)
        if isinstance(answer, list):  # a stream
            text = "".join(block + "\n\n" for block in answer)
            events, _tail = parse_sse(text.encode())
            return Exchange(request, Response(status, {"content-type": "text/event-stream"}, events=tuple(events)))
        return Exchange(request, Response(status, {"content-type": "application/json"}, body=answer))

    def _answer(self, path: str, body: Any) -> tuple[int, Any]:
        bugs = self.bugs
        route, _, query = path.partition("?")
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "the body is not valid JSON", bugs)
        if route == "/v1/messages/count_tokens":
            if "no_count_tokens" in bugs:  # LM Studio #2055: "Returning 200 anyway"
                return 200, {"error": f"Unexpected endpoint or method. (POST {path})"}
            return 200, {"input_tokens": _tokens(body)}
        if route != "/v1/messages" or ("reject_beta" in bugs and "beta=true" in query):
            return _error(404, "not_found_error", f"unknown path {path}", bugs)
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _error(400, "invalid_request_error", "messages: Input should be a valid list", bugs)
        if body.get("model") != MODEL:
            return _error(404, "not_found_error", f"model {body.get('model')!r} not found", bugs)
        refusal = self._refusal(body, messages)
        if refusal is not None:
            return _error(400, "invalid_request_error", refusal, bugs)
        message = self._message(body)
        if body.get("stream") is True:
            return 200, self._events(message)
        if "schema_body" in bugs:
            del message["stop_sequence"], message["usage"]
        return 200, message

    def _refusal(self, body: dict[str, Any], messages: list[Any]) -> str | None:
        bugs = self.bugs
        if "reject_system_blocks" in bugs and isinstance(body.get("system"), list):
            return "system: Expected string"
        if "reject_system_role" in bugs and any(m.get("role") == "system" for m in messages):
            return "request.messages.0.role: Invalid discriminator value. Expected 'user' | 'assistant'"
        if "reject_assistant_blocks" in bugs and any(
            m.get("role") == "assistant" and isinstance(m.get("content"), list) for m in messages
        ):
            return "messages.1.content: Expected string"
        if "reject_auto" in bugs and (body.get("tool_choice") or {}).get("type") == "auto":
            return "tool_choice: Invalid discriminator value"
        if "reject_tool_result" in bugs and "tool_result" in json.dumps(messages):
            return "messages.2.content.0.type: Invalid discriminator value"
        return None

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        bugs = self.bugs
        limit = int(body.get("max_tokens") or 16)
        choice = (body.get("tool_choice") or {}).get("type")
        tools = [t["name"] for t in body.get("tools") or []]
        content: list[dict[str, Any]] = []
        reason, sequence, output = "end_turn", None, 0
        if "cut" in bugs:
            return self._wrap(body, content, "max_tokens", None, 0)
        if (body.get("thinking") or {}).get("type") == "enabled":
            content.append({"type": "thinking", "thinking": THOUGHT, "signature": "c2lnbmVk"})
            output += 5
        forced = choice in ("any", "tool") or ("ignore_none" in bugs and choice == "none")
        if tools and forced and "tool_in_text" not in bugs:
            name = (body["tool_choice"].get("name") or tools[0]) if choice == "tool" else tools[0]
            if "ignore_named" in bugs:
                name = next(t for t in tools if t != name)
            content.append({"type": "tool_use", "id": "toolu_01A", "name": name, "input": {"city": "Paris"}})
            return self._wrap(body, content, "tool_use", None, output + 6)
        words = WORDS[:]
        if tools and forced:  # tool_in_text: the call written as text
            words = ['{"name":', '"get_weather",', '"input":', '{"city":', '"Paris"}}']
        for stop in body.get("stop_sequences") or []:
            if stop in words:
                words = words[: words.index(stop)]
                reason, sequence = ("end_turn", None) if "no_stop_sequence" in bugs else ("stop_sequence", stop)
        if len(words) > limit:
            words = words[:limit]
            reason = "end_turn" if "stop_end_turn_on_length" in bugs else "max_tokens"
        if words:
            content.append({"type": "text", "text": " ".join(words)})
        return self._wrap(body, content, reason, sequence, output + len(words))

    def _wrap(
        self, body: dict[str, Any], content: list[dict[str, Any]], reason: str, sequence: str | None, output: int
    ) -> dict[str, Any]:
        return {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": {"input_tokens": _tokens(body), "output_tokens": output},
        }

    def _events(self, message: dict[str, Any]) -> list[str]:
        bugs = self.bugs
        frames: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**message["usage"], "output_tokens": 0},
                },
            },
            {"type": "ping"},
        ]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            start = {
                "text": {"type": "text", "text": ""},
                "thinking": {"type": "thinking", "thinking": "", "signature": ""},
            }
            frames.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": start.get(kind, {**block, "input": {}}),
                }
            )
            if kind == "text":
                text = block["text"] + (" extra" if "stream_differs" in bugs else "")
                half = len(text) // 2
                deltas = [{"type": "text_delta", "text": text[:half]}, {"type": "text_delta", "text": text[half:]}]
            elif kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
                if "unsigned_thinking" not in bugs:
                    deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                arguments = json.dumps(block["input"])
                pieces = [arguments[:3], arguments[3:9], arguments[9:]]
                if "broken_partial_json" in bugs:
                    pieces = pieces[:2]
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            frames.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
            frames.append({"type": "content_block_stop", "index": index})
        frames.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            }
        )
        frames.append({"type": "message_stop"})
        named = "no_event_lines" not in bugs
        return [(f"event: {f['type']}\n" if named else "") + "data: " + json.dumps(f) for f in frames]


def run(check: Check, server: Callable[[RequestSpec], Exchange]) -> tuple[list[Exchange], list[Finding]]:
    exchanges = run_plan(check, server, TARGET)
    return exchanges, list(check.verdict(exchanges))


# check id -> (the fake server's bug that must fail it, the variant that leaves its feature untried)
BUGS: dict[str, tuple[str, str]] = {
    "basic-message": ("schema_body", "cut"),
    "beta-query": ("reject_beta", "cut"),
    "system-string-and-blocks": ("reject_system_blocks", "cut"),
    "system-role-in-messages": ("reject_system_role", "cut"),
    "multi-turn": ("reject_assistant_blocks", "cut"),
    "stream-framing": ("no_event_lines", "cut"),
    "streamed-equals-non-streamed": ("stream_differs", "cut"),
    "max-tokens": ("stop_end_turn_on_length", "cut"),
    "stop-sequences": ("no_stop_sequence", "cut"),
    "tool-choice-any": ("tool_in_text", "cut"),
    "tool-choice-tool": ("ignore_named", "cut"),
    "tool-choice-none": ("ignore_none", "cut"),
    "tool-choice-auto": ("reject_auto", "cut"),
    "streamed-tool-input": ("broken_partial_json", "cut"),
    "tool-result-round-trip": ("reject_tool_result", "cut"),
    "count-tokens": ("no_count_tokens", "down"),
    "thinking": ("unsigned_thinking", "cut"),
    "error-envelope": ("openai_errors", "down"),
}
BY_ID = {check.id: check for check in CHECKS}


def test_the_item_is_in_the_catalog_with_every_check() -> None:
    item = by_id(ITEM)
    assert item.extension == "anthropic"
    assert item.covered
    assert [c.id for c in item.checks] == list(BUGS)
    assert all(c.exercised is not None and c.item == ITEM for c in item.checks)


def test_plans_are_small_greedy_and_use_the_target_model() -> None:
    for check in CHECKS:
        exchanges, _ = run(check, FakeAnthropic())
        for exchange in exchanges:
            body = exchange.request.json
            if "max_tokens" in body:
                assert body["temperature"] == 0, check.id
                assert body["max_tokens"] <= (64 if body.get("tools") or body.get("thinking") else 16), check.id
            if check.id != "error-envelope" and "model" in body:
                assert body["model"] == MODEL, check.id
            assert exchange.request.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("check_id", list(BUGS))
def test_passes_on_a_correct_server(check_id: str) -> None:
    exchanges, findings = run(BY_ID[check_id], FakeAnthropic())
    assert findings == [], "\n".join(map(str, findings))
    exercised = BY_ID[check_id].exercised
    assert exercised is not None
    assert exercised(exchanges) is None


@pytest.mark.parametrize("check_id", list(BUGS))
def test_fails_on_its_bug_naming_the_item_and_the_evidence(check_id: str) -> None:
    bug, _ = BUGS[check_id]
    _, findings = run(BY_ID[check_id], FakeAnthropic(bug))
    assert findings, f"{check_id} passed against a server with bug {bug!r}"
    assert all(f.item == ITEM for f in findings)
    finding = findings[0]
    assert str(finding).startswith(f"[{ITEM}] ")
    assert finding.raw or finding.pointer is not None or finding.chunk is not None


@pytest.mark.parametrize("check_id", list(BUGS))
def test_not_exercised_without_its_feature(check_id: str) -> None:
    _, variant = BUGS[check_id]
    check = BY_ID[check_id]
    exchanges, findings = run(check, FakeAnthropic(variant))
    assert findings == [], "\n".join(map(str, findings))
    assert check.exercised is not None
    reason = check.exercised(exchanges)
    assert isinstance(reason, str)
    assert reason


def test_stream_bugs_name_the_offending_event() -> None:
    _, findings = run(BY_ID["stream-framing"], FakeAnthropic("no_event_lines"))
    lines = [f for f in findings if f.check == "event-lines"]
    assert lines
    assert lines[0].chunk == 0
    assert lines[0].raw is not None
    assert lines[0].raw.startswith("data: ")
    assert "message_start" in lines[0].message
    assert any(f.check == "sdk-accumulates" for f in findings), "the SDK drops the unnamed frames"
    _, unsigned = run(BY_ID["thinking"], FakeAnthropic("unsigned_thinking"))
    [thinking] = [f for f in unsigned if f.check == "thinking-blocks"]
    assert thinking.chunk is not None
    assert thinking.raw is not None
    assert "content_block_stop" in thinking.raw


# ---- rules on hand-made exchanges: the bugs users reported -------------------------------------------


def _exchange(body: Any, *, status: int = 200, path: str = "/v1/messages", request: Any = None) -> Exchange:
    request_body = request if request is not None else {"model": MODEL, "max_tokens": 16, "messages": []}
    return Exchange(
        Request("POST", "http://fake.invalid" + path, path, {}, request_body),
        Response(status, {"content-type": "application/json"}, body=body),
    )


def _stream(frames: Iterable[str], request: Any = None) -> Exchange:
    events, tail = parse_sse("".join(f + "\n\n" for f in frames).encode())
    request_body = (
        request if request is not None else {"model": MODEL, "max_tokens": 16, "messages": [], "stream": True}
    )
    return Exchange(
        Request("POST", "http://fake.invalid/v1/messages", "/v1/messages", {}, request_body),
        Response(200, {"content-type": "text/event-stream"}, events=tuple(events), tail=tail),
    )


def _frame(payload: dict[str, Any], name: str | None = None) -> str:
    return f"event: {name or payload['type']}\ndata: {json.dumps(payload)}"


def _good_frames(text: str = "Hi") -> list[dict[str, Any]]:
    plain = FakeAnthropic()._wrap({"messages": []}, [{"type": "text", "text": text}], "end_turn", None, 1)
    return [json.loads(f.split("data: ", 1)[1]) for f in FakeAnthropic()._events(plain)]


def _checks(findings: list[Finding]) -> set[str]:
    return {f.check for f in findings}


def test_a_good_stream_has_no_finding() -> None:
    assert validate_exchange(_stream(_frame(f) for f in _good_frames())) == []


def test_llama_cpp_16104_error_field_and_openai_error_payload() -> None:
    frames = [_frame(f) for f in _good_frames()[:3]]
    findings = validate_exchange(_stream([*frames, 'error: {"message": "boom"}']))
    assert "stream-error-event" in _checks(findings)
    openai_style = validate_exchange(_stream([*frames, 'data: {"error": {"message": "boom"}}']))
    [error] = [f for f in openai_style if f.check == "stream-error-event"]
    assert error.chunk == 3
    assert error.item == ITEM


def test_an_error_event_mid_stream_is_well_formed() -> None:
    frames = [_frame(f) for f in _good_frames()[:4]]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert validate_exchange(_stream([*frames, _frame(error)])) == []
    trailing = validate_exchange(_stream([*frames, _frame(error), _frame({"type": "message_stop"})]))
    assert {f.check for f in trailing} == {"event-order"}
    assert "events follow an error event" in {f.message for f in trailing}


def test_blocks_must_count_from_zero_and_close_in_order() -> None:
    frames = _good_frames()
    shifted = [_frame({**f, "index": f["index"] + 1}) if "index" in f else _frame(f) for f in frames]
    findings = validate_exchange(_stream(shifted))
    order = [f for f in findings if f.check == "event-order"]
    assert order
    assert order[0].pointer == "/index"
    assert order[0].chunk == 2
    second = {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    stop_at_end = [*frames[:4], second, frames[5], frames[4], {**frames[5], "index": 1}, *frames[6:]]
    findings = validate_exchange(_stream(_frame(f) for f in stop_at_end))
    assert any("still open" in f.message for f in findings if f.check == "event-order")


def test_event_name_must_equal_the_type() -> None:
    frames = [_frame(f, "message" if f["type"] == "message_start" else None) for f in _good_frames()]
    [finding] = [f for f in validate_exchange(_stream(frames)) if f.check == "event-lines"]
    assert finding.expected == "message_start"
    assert finding.seen == "message"


def test_message_delta_without_output_tokens_and_falling_usage() -> None:
    frames = _good_frames()
    no_usage = [_frame({**f, "usage": {}}) if f["type"] == "message_delta" else _frame(f) for f in frames]
    findings = validate_exchange(_stream(no_usage))
    assert any(f.check == "event-schema" and f.pointer == "/usage" for f in findings)
    assert any(f.check == "sdk-accumulates" for f in findings) or any(f.check == "event-schema" for f in findings)
    delta = next(f for f in frames if f["type"] == "message_delta")
    falling = [*frames[:-1], {**delta, "usage": {"output_tokens": 0}}, frames[-1]]
    falling[-3]["usage"] = {"output_tokens": 3}
    assert "usage" in _checks(validate_exchange(_stream(_frame(f) for f in falling)))


def test_lm_studio_2055_count_tokens_answered_200_with_an_error() -> None:
    body = {"error": "Unexpected endpoint or method. (POST /v1/messages/count_tokens?beta=true)"}
    findings = validate_exchange(_exchange(body, path="/v1/messages/count_tokens?beta=true"))
    assert [f.check for f in findings] == ["body-schema"]
    assert findings[0].pointer == ""


def test_error_status_and_type_must_agree() -> None:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad key"}}
    [finding] = validate_exchange(_exchange(body, status=401))
    assert finding.check == "error-envelope"
    assert finding.expected == "authentication_error"
    detail = validate_exchange(_exchange({"detail": [{"msg": "field required"}]}, status=422))
    assert "error-envelope" in _checks(detail)


def test_stop_reason_and_tool_input_meaning() -> None:
    tools = [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    request = {"model": MODEL, "max_tokens": 16, "messages": [], "tools": tools}
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"town": "Paris"}}
    body = FakeAnthropic()._wrap(request, [use], "end_turn", None, 3)
    findings = validate_exchange(_exchange(body, request=request))
    assert {"stop-reason", "tool-use"} <= _checks(findings)
    [bad_input] = [f for f in findings if f.check == "tool-use"]
    assert bad_input.pointer == "/content/0/input"
    sequence = FakeAnthropic()._wrap(request, [], "stop_sequence", "STOP", 3)
    assert "stop-reason" in _checks(validate_exchange(_exchange(sequence, request=request)))


def test_coverage_counts_messages_requests() -> None:
    request = Request("POST", "u", "/v1/messages?beta=true", body={"messages": []})
    answer = {"type": "message", "role": "assistant", "content": []}
    assert exercises(ITEM, Exchange(request, Response(200, {"content-type": "application/json"}, body=answer)))
    assert not exercises(ITEM, request), "a request without its answer exercises nothing"
    refused = Response(400, body={"type": "error", "error": {"type": "invalid_request_error", "message": "x"}})
    assert not exercises(ITEM, Exchange(Request("POST", "u", "/v1/messages", body="not json"), refused))
