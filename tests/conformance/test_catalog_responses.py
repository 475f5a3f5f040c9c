"""The 0.3.29 Responses checks: they pass on the reference server's real exchanges, fail (naming their item and
showing the evidence) on those exchanges broken the way servers break them, and skip when not exercised."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conformance.catalog import ITEMS
from conformance.catalog.coverage import exercises
from conformance.check import Check, Item, Target
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.findings import ERROR
from conformance.verdicts import items as ids
from reference_server.app import create_app
from reference_server.embedded import run_app
from reference_server.engine import Engine
from tests.conformance.conftest import event_payloads, record

CHECKS: list[tuple[Item, Check]] = [
    (item, check) for item in ITEMS if item.extension == "responses" for check in item.checks
]
Recorded = dict[str, list[Exchange]]


def _key(item: Item, check: Check) -> str:
    return f"{item.id}::{check.id}"


@pytest.fixture(scope="module")
def recorded(reference_engine: Engine, reference_model_id: str) -> Iterator[Recorded]:
    """Every Responses check's exchanges with the reference server, remote MCP allowed (one run of each plan)."""
    app = create_app(reference_engine, allow_remote_mcp=True)
    with run_app(app) as url, httpx.Client(timeout=300) as client:
        yield _record(client, Target(base_url=url, model=reference_model_id))


def _record(client: httpx.Client, target: Target) -> Recorded:
    return {_key(item, check): record(client, target, check) for item, check in CHECKS}


# ---- exchange surgery ---------------------------------------------------------------------------


def _with_events(exchange: Exchange, payloads: list[dict[str, Any]], *, renumber: bool = True) -> Exchange:
    if renumber:
        payloads = [{**p, "sequence_number": n} if "sequence_number" in p else p for n, p in enumerate(payloads)]
    events = []
    for n, payload in enumerate(payloads):
        data = json.dumps(payload)
        name = payload.get("type")
        events.append(SSEEvent(t_ms=float(n), event=name, data=data, raw=f"event: {name}\ndata: {data}"))
    assert exchange.response is not None
    return replace(exchange, response=replace(exchange.response, events=tuple(events)))


def _with_body(exchange: Exchange, body: Any, status: int | None = None) -> Exchange:
    assert exchange.response is not None
    response = Response(
        status=status or exchange.response.status, headers={"content-type": "application/json"}, body=body
    )
    return replace(exchange, response=response)


def _error(message: str, code: str | None = None, status: int = 400) -> Callable[[Exchange], Exchange]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return lambda exchange: _with_body(exchange, body, status)


def _body(exchange: Exchange) -> dict[str, Any]:
    assert exchange.response is not None
    body: dict[str, Any] = copy.deepcopy(exchange.response.body)
    return body


def _final_of(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    final: dict[str, Any] = payloads[-1]["response"]
    return final


def _edit_body(edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange], Exchange]:
    def apply(exchange: Exchange) -> Exchange:
        body = _body(exchange)
        edit(body)
        return _with_body(exchange, body)

    return apply


def _edit_events(
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None], *, renumber: bool = True
) -> Callable[[Exchange], Exchange]:
    def apply(exchange: Exchange) -> Exchange:
        payloads = copy.deepcopy(event_payloads(exchange))
        changed = edit(payloads)
        return _with_events(exchange, payloads if changed is None else changed, renumber=renumber)

    return apply


def _drop_usage_details(body: dict[str, Any]) -> None:
    del body["usage"]["input_tokens_details"]


def _complete_instead(body: dict[str, Any]) -> None:
    body["status"] = "completed"
    body["incomplete_details"] = None
    for item in body["output"]:
        item["status"] = "completed"


def _stream_complete_instead(payloads: list[dict[str, Any]]) -> None:
    payloads[-1]["type"] = "response.completed"
    _complete_instead(payloads[-1]["response"])
    for payload in payloads:
        if payload["type"] == "response.output_item.done":
            payload["item"]["status"] = "completed"


def _final_ids_differ(payloads: list[dict[str, Any]]) -> None:
    for item in _final_of(payloads)["output"]:
        item["id"] = item["id"] + "_final"


def _final_text_differs(payloads: list[dict[str, Any]]) -> None:
    _final_of(payloads)["output"][0]["content"][0]["text"] += " (and more)"


def _no_sequence_numbers(payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        del payload["sequence_number"]


def _sequence_from_one(payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        payload["sequence_number"] += 1


def _created_missing(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if p["type"] not in ("response.created", "response.in_progress")]


def _no_content_part(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if p["type"] != "response.content_part.added"]


def _no_terminal(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return payloads[:-1]


def _no_arguments_done(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if p["type"] != "response.function_call_arguments.done"]


def _flat_error_event(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*payloads[:4], {"type": "error", "sequence_number": 4, "message": "model crashed", "code": None}]


def _calls_as_text(body: dict[str, Any]) -> None:
    body["output"] = [
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {
                    "type": "output_text",
                    "text": '<tool_call>{"name": "get_weather"}</tool_call>',
                    "annotations": [],
                    "logprobs": [],
                }
            ],
        }
    ]


def _call_other_function(body: dict[str, Any]) -> None:
    for item in body["output"]:
        if item["type"] == "function_call":
            item["name"] = "get_time"
            item["arguments"] = "{}"


def _small_second_turn(exchanges: list[Exchange]) -> list[Exchange]:
    def shrink(body: dict[str, Any]) -> None:
        body["usage"]["input_tokens"] = 12
        body["usage"]["total_tokens"] = 12 + body["usage"]["output_tokens"]

    return [exchanges[0], _edit_body(shrink)(exchanges[1])]


def _drop_mcp_output(final: dict[str, Any]) -> None:
    final["output"] = [item for item in final["output"] if item["type"] != "mcp_call"]


def _edit_final(edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange], Exchange]:
    """Edit the final response, whether the body or the stream's terminal event (ids of the stream kept)."""

    def apply(exchange: Exchange) -> Exchange:
        assert exchange.response is not None
        if exchange.response.events is None:
            return _edit_body(edit)(exchange)
        return _edit_events(lambda payloads: edit(_final_of(payloads)))(exchange)

    return apply


def _effort_not_echoed(body: dict[str, Any]) -> None:
    body["reasoning"] = {"effort": None, "summary": None}


def _fetched_stays(exchanges: list[Exchange]) -> list[Exchange]:
    return [exchanges[0], _with_body(exchanges[1], _body(exchanges[0]), 200), exchanges[2]]


def _first(change: Callable[[Exchange], Exchange]) -> Callable[[list[Exchange]], list[Exchange]]:
    return lambda exchanges: [change(exchanges[0]), *exchanges[1:]]


def _second(change: Callable[[Exchange], Exchange]) -> Callable[[list[Exchange]], list[Exchange]]:
    return lambda exchanges: [exchanges[0], change(exchanges[1]), *exchanges[2:]]


def _all(change: Callable[[Exchange], Exchange]) -> Callable[[list[Exchange]], list[Exchange]]:
    return lambda exchanges: [change(e) for e in exchanges]


# (check, bug name) -> (breakage, the item the finding must name)
BROKEN: dict[tuple[str, str], tuple[Callable[[list[Exchange]], list[Exchange]], str]] = {
    ("create-text", "usage-without-details"): (_first(_edit_body(_drop_usage_details)), ids.RESPONSES),
    ("replayed-reasoning-item", "llama-cpp-27751"): (
        _first(_error("'summary' and 'content' are required in a reasoning item")),
        ids.RESPONSES,
    ),
    ("create-items", "items-rejected"): (_first(_error("Invalid type for 'input'.", "invalid_union")), ids.RESPONSES),
    ("max-output-tokens-incomplete", "completed-when-cut"): (_first(_edit_body(_complete_instead)), ids.RESPONSES),
    ("stream-text", "final-ids-differ"): (_second(_edit_events(_final_ids_differ)), ids.RESPONSES_STREAMING),
    ("stream-text", "final-text-differs"): (_second(_edit_events(_final_text_differs)), ids.RESPONSES_STREAMING),
    ("stream-text", "no-sequence-numbers"): (
        _second(_edit_events(_no_sequence_numbers, renumber=False)),
        ids.RESPONSES_STREAMING,
    ),
    ("stream-text", "sequence-from-one"): (
        _second(_edit_events(_sequence_from_one, renumber=False)),
        ids.RESPONSES_STREAMING,
    ),
    ("stream-text", "no-created"): (_second(_edit_events(_created_missing)), ids.RESPONSES_STREAMING),
    ("stream-text", "no-content-part"): (_second(_edit_events(_no_content_part)), ids.RESPONSES_STREAMING),
    ("stream-text", "no-terminal"): (_second(_edit_events(_no_terminal)), ids.RESPONSES_STREAMING),
    ("stream-text", "flat-error-event"): (_second(_edit_events(_flat_error_event)), ids.RESPONSES_STREAMING),
    ("stream-incomplete", "completed-when-cut"): (
        _first(_edit_events(_stream_complete_instead)),
        ids.RESPONSES_STREAMING,
    ),
    ("two-turn-chain", "previous-ignored"): (_small_second_turn, ids.RESPONSES_STATEFUL),
    ("streamed-chain", "lmstudio-1188"): (
        _second(_error("Previous response not found", "previous_response_not_found")),
        ids.RESPONSES_STATEFUL,
    ),
    ("fetch-by-id", "not-stored"): (_second(_error("Not found", status=404)), ids.RESPONSES_STATEFUL),
    ("unknown-previous-refused", "silently-ignored"): (
        lambda exchanges: [_with_body(exchanges[0], {"id": "resp_1", "object": "response"}, 200)],
        ids.RESPONSES_STATEFUL,
    ),
    ("unknown-previous-refused", "llama-cpp-unsupported"): (
        _first(_error("llama.cpp does not support 'previous_response_id'.")),
        ids.RESPONSES_STATEFUL,
    ),
    ("store-false-refused", "stored-anyway"): (_fetched_stays, ids.RESPONSES_STATEFUL),
    ("required-call", "calls-as-text"): (_first(_edit_body(_calls_as_text)), ids.RESPONSES_FUNCTION_TOOLS),
    ("named-call", "other-function"): (_first(_edit_body(_call_other_function)), ids.RESPONSES_FUNCTION_TOOLS),
    ("empty-parameters", "lmstudio-2254"): (
        _first(_error("Invalid tool parameters: 'parameters' must have properties")),
        ids.RESPONSES_FUNCTION_TOOLS,
    ),
    ("streamed-call", "no-arguments-done"): (
        _first(_edit_events(_no_arguments_done)),
        ids.RESPONSES_FUNCTION_TOOLS,
    ),
    ("function-call-output-round-trip", "output-rejected"): (
        _second(_error("Cannot determine type of 'item'")),
        ids.RESPONSES_FUNCTION_TOOLS,
    ),
    ("replayed-call-items", "items-rejected"): (
        _first(_error("Cannot determine type of 'item'")),
        ids.RESPONSES_FUNCTION_TOOLS,
    ),
    ("mcp-call", "tool-not-called"): (_all(_edit_final(_drop_mcp_output)), ids.RESPONSES_REMOTE_MCP),
    ("effort-accepted", "not-echoed"): (_all(_edit_body(_effort_not_echoed)), ids.RESPONSES_REASONING_EFFORT),
    ("effort-accepted", "rejected"): (
        _first(_error("Unsupported value: 'reasoning.effort'")),
        ids.RESPONSES_REASONING_EFFORT,
    ),
}


def _pair(check_id: str) -> tuple[Item, Check]:
    return next(pair for pair in CHECKS if pair[1].id == check_id)


def test_every_responses_check_has_a_bug_and_an_exercised_rule() -> None:
    assert {check.id for _, check in CHECKS} == {check_id for check_id, _ in BROKEN}
    assert {item.id for item, _ in CHECKS} == {
        ids.RESPONSES_REMOTE_MCP,
        ids.RESPONSES,
        ids.RESPONSES_STATEFUL,
        ids.RESPONSES_STREAMING,
        ids.RESPONSES_FUNCTION_TOOLS,
        ids.RESPONSES_REASONING_EFFORT,
    }
    for item, check in CHECKS:
        assert item.extension == "responses"
        assert check.exercised is not None, check.id


@pytest.mark.parametrize("pair", CHECKS, ids=lambda pair: f"{pair[0].id}:{pair[1].id}")
def test_check_passes_on_the_reference_server(pair: tuple[Item, Check], recorded: Recorded) -> None:
    item, check = pair
    exchanges = recorded[_key(item, check)]
    findings = list(check.verdict(exchanges))
    assert findings == [], "\n".join(map(str, findings))
    assert check.exercised is not None
    assert check.exercised(exchanges) is None


@pytest.mark.parametrize(("check_id", "bug"), list(BROKEN), ids=[f"{c}:{b}" for c, b in BROKEN])
def test_check_fails_on_a_broken_exchange(check_id: str, bug: str, recorded: Recorded) -> None:
    item, check = _pair(check_id)
    breakage, expected_item = BROKEN[(check_id, bug)]
    findings = [f for f in check.verdict(breakage(recorded[_key(item, check)])) if f.severity == ERROR]
    named = [f for f in findings if f.item == expected_item]
    assert named, f"{check_id} passed with bug {bug}; findings: {[(f.item, f.check) for f in findings]}"
    finding = named[0]
    assert str(finding).startswith(f"[{expected_item}] ")
    assert finding.raw or finding.pointer is not None or finding.chunk is not None


def _no_response(exchange: Exchange) -> Exchange:
    return replace(exchange, response=None, error="ConnectError: refused")


def _text_only_stream(exchanges: list[Exchange], recorded: Recorded) -> list[Exchange]:
    return [recorded[_key(*_pair("stream-text"))][1]]


def _answered_in_time(exchanges: list[Exchange]) -> list[Exchange]:
    def short(body: dict[str, Any]) -> None:
        _complete_instead(body)
        body["usage"]["output_tokens"] = 5

    return [_edit_body(short)(exchanges[0])]


NOT_EXERCISED: dict[str, Callable[[list[Exchange]], list[Exchange]]] = {
    "mcp-call": _all(_error("Invalid MCP server URL: URL resolves to a non-public address")),
    "max-output-tokens-incomplete": _answered_in_time,
    "function-call-output-round-trip": _first(_edit_body(_calls_as_text)),
}


@pytest.mark.parametrize("pair", CHECKS, ids=lambda pair: f"{pair[0].id}:{pair[1].id}")
def test_check_is_not_exercised_without_its_feature(pair: tuple[Item, Check], recorded: Recorded) -> None:
    item, check = pair
    exchanges = recorded[_key(item, check)]
    assert check.exercised is not None
    # a server that answers nothing usable never exercises the feature
    assert check.exercised([_no_response(e) for e in exchanges]) is not None
    assert check.exercised(exchanges[:0]) is not None
    if check.id in NOT_EXERCISED:
        reason = check.exercised(NOT_EXERCISED[check.id](exchanges))
        assert reason, check.id


def test_streamed_call_without_a_call_is_not_exercised(recorded: Recorded) -> None:
    _, check = _pair("streamed-call")
    assert check.exercised is not None
    reason = check.exercised(_text_only_stream([], recorded))
    assert reason is not None
    assert "function_call" in reason


@pytest.mark.parametrize(
    ("item", "body", "expected"),
    [
        (ids.RESPONSES, {"input": "hi"}, True),
        (ids.RESPONSES_STREAMING, {"input": "hi"}, False),
        (ids.RESPONSES_STREAMING, {"input": "hi", "stream": True}, True),
        (ids.RESPONSES_STATEFUL, {"input": "hi"}, False),
        (ids.RESPONSES_STATEFUL, {"input": "hi", "previous_response_id": "resp_1"}, True),
        (ids.RESPONSES_FUNCTION_TOOLS, {"input": "hi", "tools": [{"type": "mcp", "server_label": "x"}]}, False),
        (ids.RESPONSES_FUNCTION_TOOLS, {"input": "hi", "tools": [{"type": "function", "name": "f"}]}, True),
        (ids.RESPONSES_REMOTE_MCP, {"input": "hi", "tools": [{"type": "function", "name": "f"}]}, False),
        (ids.RESPONSES_REMOTE_MCP, {"input": "hi", "tools": [{"type": "mcp", "server_label": "x"}]}, True),
        (ids.RESPONSES_REASONING_EFFORT, {"input": "hi", "reasoning": {"summary": "auto"}}, False),
        (ids.RESPONSES_REASONING_EFFORT, {"input": "hi", "reasoning": {"effort": "low"}}, True),
    ],
)
def test_recorded_requests_exercise_responses_items(item: str, body: dict[str, Any], expected: bool) -> None:
    """An answered request exercises the items its fields are about; an unanswered one exercises none."""
    request = Request("POST", "u", "/v1/responses", body=body)
    if body.get("stream"):
        response = Response(200, {"content-type": "text/event-stream"}, events=())
    else:
        response = Response(200, {"content-type": "application/json"}, body={"object": "response", "output": []})
    assert exercises(item, Exchange(request, response)) is expected
    assert exercises(item, request) is False
