"""The 0.4.0 LM Studio REST v1 checks: they pass on a server answering as LM Studio's docs say (a test double),
fail naming their item and showing the event or field on exchanges broken the way servers break them, and do
not pass when their feature was not exercised."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conformance.catalog import ITEMS, by_id
from conformance.catalog.coverage import exercises
from conformance.check import Check, Item, Status, Target
from conformance.exchange import Exchange, Response, SSEEvent
from conformance.findings import ERROR
from conformance.runner import applicable, judge_check, run_check
from conformance.verdicts import items as ids
from reference_server.embedded import run_app
from tests.conformance.conftest import event_payloads, record
from tests.conformance.lmstudio_v1_fake import MODEL, FakeLmStudio, fake_app

V1_ITEMS = (ids.REST_V1_MODELS, ids.REST_V1_CHAT, ids.REST_V1_MCP)
CHECKS: list[tuple[Item, Check]] = [(item, check) for item in ITEMS if item.id in V1_ITEMS for check in item.checks]
TARGET = Target(base_url="http://fake.invalid", model=MODEL)
Recorded = dict[str, list[Exchange]]
Breakage = Callable[[list[Exchange]], list[Exchange]]


@contextmanager
def _served(fake: FakeLmStudio | None = None) -> Iterator[tuple[httpx.Client, Target]]:
    """The test double on 127.0.0.1 (a real server, so streams arrive as streams), a client and the target."""
    with run_app(fake_app(fake)) as url, httpx.Client(timeout=60) as client:
        yield client, replace(TARGET, base_url=url)


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    """Every v1 check's exchanges with the test double (one run of each plan)."""
    with _served() as (client, target):
        yield {check.id: record(client, target, check) for _, check in CHECKS}


def _pair(check_id: str) -> tuple[Item, Check]:
    return next(pair for pair in CHECKS if pair[1].id == check_id)


# ---- exchange surgery ----------------------------------------------------------------------------


def _with_events(exchange: Exchange, payloads: list[dict[str, Any]], names: dict[int, str] | None = None) -> Exchange:
    events = []
    for n, payload in enumerate(payloads):
        name = (names or {}).get(n, payload.get("type"))
        data = json.dumps(payload)
        events.append(SSEEvent(t_ms=float(n), event=name, data=data, raw=f"event: {name}\ndata: {data}"))
    assert exchange.response is not None
    return replace(exchange, response=replace(exchange.response, events=tuple(events)))


def _with_body(exchange: Exchange, body: Any, status: int = 200) -> Exchange:
    return replace(exchange, response=Response(status, {"content-type": "application/json"}, body=body))


def _body(exchange: Exchange) -> Any:
    assert exchange.response is not None
    return copy.deepcopy(exchange.response.body)


def _at(index: int, change: Callable[[Exchange], Exchange]) -> Breakage:
    def apply(exchanges: list[Exchange]) -> list[Exchange]:
        out = list(exchanges)
        out[index] = change(out[index])
        return out

    return apply


def _every(change: Callable[[Exchange], Exchange]) -> Breakage:
    return lambda exchanges: [change(e) for e in exchanges]


def _edit_body(edit: Callable[[Any], None]) -> Callable[[Exchange], Exchange]:
    def apply(exchange: Exchange) -> Exchange:
        body = _body(exchange)
        edit(body)
        return _with_body(exchange, body)

    return apply


def _edit_events(edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]) -> Callable[[Exchange], Exchange]:
    def apply(exchange: Exchange) -> Exchange:
        payloads = copy.deepcopy(event_payloads(exchange))
        changed = edit(payloads)
        return _with_events(exchange, payloads if changed is None else changed)

    return apply


def _error(status: int, body: Any) -> Callable[[Exchange], Exchange]:
    return lambda exchange: _with_body(exchange, body, status)


def _result(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    end = next(p for p in reversed(payloads) if p["type"] == "chat.end")
    result: dict[str, Any] = end["result"]
    return result


def _renamed(exchange: Exchange) -> Exchange:
    payloads = event_payloads(exchange)
    return _with_events(exchange, payloads, names={1: "prompt_processing"})


def _drop_type(kind: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda payloads: [p for p in payloads if p["type"] != kind]


def _delta_before_start(payloads: list[dict[str, Any]]) -> None:
    start = next(n for n, p in enumerate(payloads) if p["type"] == "message.start")
    payloads[start], payloads[start + 1] = payloads[start + 1], payloads[start]


def _result_text_differs(payloads: list[dict[str, Any]]) -> None:
    for item in _result(payloads)["output"]:
        if item["type"] == "message":
            item["content"] += " (and more)"


def _error_without_end(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = [p for p in payloads if p["type"] not in ("message.start", "message.delta", "message.end", "chat.end")]
    return [*kept, {"type": "error", "error": {"type": "internal_error", "message": "the model crashed"}}]


def _stats_differ(payloads: list[dict[str, Any]]) -> None:
    _result(payloads)["stats"]["input_tokens"] += 7


def _tool_events_dropped(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if not p["type"].startswith("tool_call.")]


def _row(key: str) -> Callable[[Any], dict[str, Any]]:
    return lambda body: next(m for m in body["models"] if m["key"] == key)


def _drop_capabilities(body: Any) -> None:
    del _row(MODEL)(body)["capabilities"]


def _state_wrong(body: Any) -> None:
    row = next(r for r in body["data"] if r["id"] == MODEL)
    row["state"] = "not-loaded"


def _no_load_config(body: Any) -> None:
    del body["load_config"]


def _instance_missing(body: Any) -> None:
    _row("fake-jit")(body)["loaded_instances"] = []


def _instance_kept(body: Any) -> None:
    _row("fake-jit")(body)["loaded_instances"] = [{"id": "fake-jit", "config": {"context_length": 2048}}]


def _bad_response_id(body: Any) -> None:
    body["response_id"] = "4ef013eba0def1ed"


def _no_ttft(body: Any) -> None:
    del body["stats"]["time_to_first_token_seconds"]


def _chain_ignored(body: Any) -> None:
    body["stats"]["input_tokens"] = 9


def _stored_anyway(body: Any) -> None:
    body["response_id"] = "resp_" + "0" * 48


def _fabricated_output(body: Any) -> None:
    for item in body["output"]:
        if item["type"] == "tool_call":
            item["output"] = "You rolled a 7."


def _other_label(body: Any) -> None:
    for item in body["output"]:
        if item["type"] == "tool_call":
            item["provider_info"]["server_label"] = "elsewhere"


BROKEN: dict[tuple[str, str], tuple[Breakage, str, str]] = {
    ("list-models", "llm-without-capabilities"): (
        _at(0, _edit_body(_drop_capabilities)),
        ids.REST_V1_MODELS,
        "/models/0",
    ),
    ("list-models", "v0-state-disagrees"): (_at(1, _edit_body(_state_wrong)), ids.REST_V1_MODELS, "/data/0/state"),
    ("load-unload", "load-config-not-echoed"): (
        _at(1, _edit_body(_no_load_config)),
        ids.REST_V1_MODELS,
        "/load_config",
    ),
    ("load-unload", "instance-not-listed"): (
        _at(2, _edit_body(_instance_missing)),
        ids.REST_V1_MODELS,
        "/models/1/loaded_instances",
    ),
    ("load-unload", "instance-still-listed"): (
        _at(4, _edit_body(_instance_kept)),
        ids.REST_V1_MODELS,
        "/models/1/loaded_instances",
    ),
    ("load-unload", "openai-error-envelope"): (
        _at(3, _error(404, {"error": {"message": "no such instance"}})),
        ids.REST_V1_MODELS,
        "/error",
    ),
    ("chat", "response-id-not-resp"): (_at(0, _edit_body(_bad_response_id)), ids.REST_V1_CHAT, "/response_id"),
    ("chat", "stats-incomplete"): (_at(1, _edit_body(_no_ttft)), ids.REST_V1_CHAT, "/stats"),
    ("stateful-chain", "previous-response-ignored"): (
        _at(1, _edit_body(_chain_ignored)),
        ids.REST_V1_CHAT,
        "/stats/input_tokens",
    ),
    ("stateful-chain", "store-false-stored"): (_at(2, _edit_body(_stored_anyway)), ids.REST_V1_CHAT, "/response_id"),
    ("stream-events", "no-chat-start"): (_at(0, _edit_events(_drop_type("chat.start"))), ids.REST_V1_CHAT, "/type"),
    ("stream-events", "event-line-differs"): (_at(0, _renamed), ids.REST_V1_CHAT, "/type"),
    ("stream-events", "delta-before-start"): (_at(0, _edit_events(_delta_before_start)), ids.REST_V1_CHAT, ""),
    ("stream-events", "result-differs-from-deltas"): (
        _at(0, _edit_events(_result_text_differs)),
        ids.REST_V1_CHAT,
        "/result/output",
    ),
    ("stream-events", "error-without-chat-end"): (_at(0, _edit_events(_error_without_end)), ids.REST_V1_CHAT, ""),
    ("stream-events", "prompt-processing-never-ends"): (
        _at(0, _edit_events(_drop_type("prompt_processing.end"))),
        ids.REST_V1_CHAT,
        "",
    ),
    ("stream-result-equals-answer", "stats-differ"): (
        _at(1, _edit_events(_stats_differ)),
        ids.REST_V1_CHAT,
        "/result/stats/input_tokens",
    ),
    ("ephemeral-mcp-call", "output-fabricated"): (
        _at(0, _edit_body(_fabricated_output)),
        ids.REST_V1_MCP,
        "/output",
    ),
    ("ephemeral-mcp-call", "tool-events-missing"): (
        _at(1, _edit_events(_tool_events_dropped)),
        ids.REST_V1_MCP,
        "/result/output",
    ),
    ("ephemeral-mcp-call", "unknown-server-label"): (
        _at(0, _edit_body(_other_label)),
        ids.REST_V1_MCP,
        "/output/0/provider_info/server_label",
    ),
    ("ephemeral-mcp-call", "mcp-connection-error"): (
        _every(_error(502, {"error": {"type": "mcp_connection_error", "message": "connection refused"}})),
        ids.REST_V1_MCP,
        "",
    ),
}


def test_every_v1_check_has_a_bug_and_an_exercised_rule() -> None:
    assert {check.id for _, check in CHECKS} == {check_id for check_id, _ in BROKEN}
    for item, check in CHECKS:
        assert item.extension == "lmstudio"
        assert check.exercised is not None, check.id


@pytest.mark.parametrize("pair", CHECKS, ids=lambda pair: f"{pair[0].id}:{pair[1].id}")
def test_check_passes_on_a_server_that_follows_the_docs(pair: tuple[Item, Check], recorded: Recorded) -> None:
    _, check = pair
    result = judge_check(check, recorded[check.id]).result
    assert result.status is Status.PASS, (result.message, result.evidence)


@pytest.mark.parametrize(("check_id", "bug"), list(BROKEN), ids=[f"{c}:{b}" for c, b in BROKEN])
def test_check_fails_on_a_broken_exchange(check_id: str, bug: str, recorded: Recorded) -> None:
    item, check = _pair(check_id)
    breakage, expected_item, pointer = BROKEN[(check_id, bug)]
    exchanges = breakage(recorded[check_id])
    findings = [f for f in check.verdict(exchanges) if f.severity == ERROR]
    named = [f for f in findings if f.item == expected_item]
    assert named, f"{check_id} passed with bug {bug}; findings: {[(f.item, f.check) for f in findings]}"
    assert any((f.pointer or "").startswith(pointer) for f in named), [(f.check, f.pointer) for f in named]
    finding = named[0]
    assert str(finding).startswith(f"[{expected_item}] ")
    assert finding.raw, "the evidence shows the offending event or body"
    if expected_item == item.id:
        assert judge_check(check, exchanges).result.status is Status.FAIL


def test_stream_findings_show_the_offending_event(recorded: Recorded) -> None:
    _, check = _pair("stream-events")
    exchanges = _at(0, _edit_events(_delta_before_start))(recorded["stream-events"])
    [finding] = [f for f in check.verdict(exchanges) if f.check == "v1-chat-event-order"]
    assert finding.chunk is not None
    assert finding.raw is not None
    assert finding.raw.startswith("event: message.delta\ndata: ")
    assert "message.delta outside a message block" in finding.message


def test_embedding_rows_without_architecture_or_capabilities_are_not_blamed(recorded: Recorded) -> None:
    _, check = _pair("list-models")
    body = _body(recorded["list-models"][0])
    embedding = _row("fake-embed")(body)
    assert "architecture" not in embedding
    assert "capabilities" not in embedding
    assert judge_check(check, recorded["list-models"]).result.status is Status.PASS


def _no_response(exchange: Exchange) -> Exchange:
    return replace(exchange, response=None, error="ConnectError: refused")


def _empty_list(exchanges: list[Exchange]) -> list[Exchange]:
    return [_with_body(exchanges[0], {"models": []}), *exchanges[1:]]


def _stream_not_streamed(exchanges: list[Exchange]) -> list[Exchange]:
    return [_with_body(exchanges[0], "event stream closed early")]


def _refused_loopback(exchanges: list[Exchange]) -> list[Exchange]:
    message = (
        "Unable to connect to remote MCP server 'dice' at url 'http://127.0.0.1:8001/mcp'. URL resolves to a "
        "non-public address. We only allow public addresses for dynamic remote MCP connections."
    )
    return [_with_body(e, {"error": {"type": "mcp_connection_error", "message": message}}, 400) for e in exchanges]


NOT_EXERCISED: dict[str, tuple[Breakage, str]] = {
    "list-models": (_empty_list, "listed no model"),
    "stream-events": (_stream_not_streamed, "no chat result"),
    "ephemeral-mcp-call": (_refused_loopback, "non-public address"),
}


@pytest.mark.parametrize("pair", CHECKS, ids=lambda pair: f"{pair[0].id}:{pair[1].id}")
def test_check_is_not_exercised_without_its_feature(pair: tuple[Item, Check], recorded: Recorded) -> None:
    _, check = pair
    exchanges = recorded[check.id]
    assert check.exercised is not None
    assert check.exercised([_no_response(e) for e in exchanges]) is not None
    assert check.exercised(exchanges[:0]) is not None
    if check.id in NOT_EXERCISED:
        breakage, reason = NOT_EXERCISED[check.id]
        seen = check.exercised(breakage(exchanges))
        assert seen is not None
        assert reason in seen, seen


def test_refused_loopback_mcp_is_skipped_with_the_reason(recorded: Recorded) -> None:
    _, check = _pair("ephemeral-mcp-call")
    result = judge_check(check, _refused_loopback(recorded["ephemeral-mcp-call"])).result
    assert result.status is Status.SKIP
    assert result.message.startswith("not exercised: the server refuses MCP servers on loopback addresses")
    assert "URL resolves to a non-public address" in result.message


def test_a_loopback_refusal_inside_a_stream_is_skipped_too(recorded: Recorded) -> None:
    _, check = _pair("ephemeral-mcp-call")
    message = "Unable to connect to remote MCP server 'dice'. URL resolves to a non-public address."

    def refused(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        error = {"type": "error", "error": {"type": "mcp_connection_error", "message": message}}
        end = {"type": "chat.end", "result": {**_result(payloads), "output": []}}
        return [payloads[0], error, end]

    exchanges = _at(1, _edit_events(refused))(recorded["ephemeral-mcp-call"])
    result = judge_check(check, exchanges).result
    assert result.status is Status.SKIP
    assert message in result.message


@pytest.mark.parametrize("pair", CHECKS, ids=lambda pair: f"{pair[0].id}:{pair[1].id}")
def test_a_server_without_api_v1_is_skipped_unless_expected(pair: tuple[Item, Check], recorded: Recorded) -> None:
    item, check = pair
    absent = [_with_body(e, {"error": "Unexpected endpoint or method."}, 404) for e in recorded[check.id]]
    run = applicable(item, TARGET, judge_check(check, absent))
    assert run.result.status is Status.SKIP
    assert run.result.message.startswith("not implemented by this server")
    expected = replace(TARGET, expect=frozenset({"lmstudio"}))
    assert applicable(item, expected, judge_check(check, absent)).result.status is not Status.PASS


def test_load_unload_leaves_models_the_user_loaded_alone() -> None:
    fake = FakeLmStudio()
    for row in fake.models:
        row["loaded_instances"] = [{"id": row["key"], "config": {"context_length": 4096}}]
    item, check = _pair("load-unload")
    with _served(fake) as (client, target):
        result = run_check(client, target, check, item=item)
    assert result.status is Status.SKIP
    assert "every listed model is loaded" in result.message
    assert all(row["loaded_instances"] for row in fake.models)


def _loaded(fake: FakeLmStudio, key: str) -> list[str]:
    row = fake.row(key)
    assert row is not None
    return [instance["id"] for instance in row["loaded_instances"]]


def test_load_unload_loads_the_smallest_unloaded_llm_and_unloads_it() -> None:
    fake = FakeLmStudio()
    _, check = _pair("load-unload")
    with _served(fake) as (client, target):
        exchanges = record(client, target, check)
    requests = [(e.request.method, e.request.path, e.request.body) for e in exchanges]
    assert requests[1] == (
        "POST",
        "/api/v1/models/load",
        {"model": "fake-jit", "context_length": 2048, "echo_load_config": True},
    )
    assert requests[3] == ("POST", "/api/v1/models/unload", {"instance_id": "fake-jit"})
    assert _loaded(fake, "fake-jit") == []
    assert _loaded(fake, MODEL) == [MODEL]


def test_mcp_check_proves_the_call_reached_the_suite_s_mcp_server() -> None:
    fake = FakeLmStudio()
    item, check = _pair("ephemeral-mcp-call")
    with _served(fake) as (client, target):
        result = run_check(client, target, check, item=item)
    assert result.status is Status.PASS, result.message
    assert fake.mcp_calls == [{"sides": 20}, {"sides": 20}]


def test_a_model_that_declines_the_tool_is_not_exercised() -> None:
    item, check = _pair("ephemeral-mcp-call")
    with _served(FakeLmStudio(tools="decline")) as (client, target):
        result = run_check(client, target, check, item=item)
    assert result.status is Status.SKIP
    assert "without calling roll_dice, though the server put the tool in its prompt" in result.message


def test_a_server_that_drops_the_integration_fails() -> None:
    item, check = _pair("ephemeral-mcp-call")
    with _served(FakeLmStudio(tools="ignore")) as (client, target):
        result = run_check(client, target, check, item=item)
    assert result.status is Status.FAIL
    assert "its tools did not reach the model" in result.message
    assert len(result.requests) == 3
    assert "integrations" not in result.requests[2]["body"]


@pytest.mark.parametrize(
    ("item", "check_id", "index", "expected"),
    [
        (ids.REST_V1_MODELS, "list-models", 0, True),
        (ids.REST_V1_MODELS, "load-unload", 1, True),
        (ids.REST_V1_MODELS, "chat", 0, False),
        (ids.REST_V1_CHAT, "chat", 0, True),
        (ids.REST_V1_CHAT, "stream-events", 0, True),
        (ids.REST_V1_CHAT, "list-models", 0, False),
        (ids.REST_V1_MCP, "chat", 0, False),
        (ids.REST_V1_MCP, "ephemeral-mcp-call", 0, True),
        (ids.REST_V1_MCP, "ephemeral-mcp-call", 1, True),
    ],
)
def test_recorded_exchanges_exercise_v1_items(
    item: str, check_id: str, index: int, expected: bool, recorded: Recorded
) -> None:
    assert exercises(item, recorded[check_id][index]) is expected


def test_a_refused_chat_exercises_nothing(recorded: Recorded) -> None:
    refused = _refused_loopback(recorded["ephemeral-mcp-call"])[0]
    assert not exercises(ids.REST_V1_MCP, refused)
    assert not exercises(ids.REST_V1_CHAT, refused)


def test_catalog_lists_the_v1_items_in_changelog_order() -> None:
    for item_id in V1_ITEMS:
        assert by_id(item_id).checks
