"""Tests for proxy/offline.py: per-item statuses from findings on recorded traffic."""

from __future__ import annotations

from pathlib import Path

from conformance.check import Item, Kind, Status
from conformance.exchange import Exchange, Request, Response
from conformance.findings import Finding
from proxy.cassette import Cassette, Entry
from proxy.offline import judge

ITEMS = (
    Item("base/chat-completions", "0", "chat", Kind.API, ("/v1/chat/completions",)),
    Item("0.3.18/usage", "0.3.18", "usage", Kind.API, ("POST /v1/chat/completions",)),
    Item("0.3.6/embeddings", "0.3.6", "embeddings", Kind.API, ("/v1/embeddings",)),
    Item("0.3.10/cli-thing", "0.3.10", "cli", Kind.CLI, (), skip_reason="CLI only"),
    Item(
        "0.3.20/qwen", "0.3.20", "qwen tools", Kind.MODEL_SPECIFIC, ("/v1/chat/completions",), model_families=("qwen",)
    ),
)


def _cassette() -> Cassette:
    chat = Exchange(
        Request("POST", "http://up:1234/v1/chat/completions", "/v1/chat/completions", {}, {"model": "smollm2"}),
        Response(200, {"server": "uvicorn"}, body={}),
    )
    models = Exchange(Request("GET", "http://up:1234/v1/models", "/v1/models"), Response(200, body={}))
    return Cassette(Path("c.jsonl"), (Entry(chat, line=1), Entry(models, line=2), Entry(chat, line=3)))


def test_statuses() -> None:
    def validate(exchange: Exchange) -> list[Finding]:
        if exchange.endpoint == "/v1/chat/completions":
            return [Finding("0.3.18/usage", "usage-chunk", "no usage", endpoint=exchange.endpoint)]
        return []

    report = judge(_cassette(), ITEMS, validate)
    status = {i.id: i.status for i in report.items}
    assert status == {
        "base/chat-completions": Status.PASS,
        "0.3.18/usage": Status.FAIL,
        "0.3.6/embeddings": Status.NOT_COVERED,
        "0.3.10/cli-thing": Status.SKIP,
        "0.3.20/qwen": Status.NOT_COVERED,
    }
    usage = next(i for i in report.items if i.id == "0.3.18/usage")
    assert [e["exchange"] for e in usage.checks[0].evidence] == [1, 3], "evidence names cassette lines"
    assert "cassette lines 1, 3" in usage.checks[0].message
    assert report.target.base_url == "http://up:1234"
    assert report.target.model == "smollm2"
    assert report.target.server == "uvicorn"
    assert report.summary == {"passed": 1, "failed": 1, "skipped": 1, "errors": 0, "not_covered": 2}


def test_findings_outside_the_catalog_and_crashes() -> None:
    calls = []

    def validate(exchange: Exchange) -> list[Finding]:
        calls.append(exchange)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [Finding("9.9.9/unknown", "rule", "odd")] if exchange.endpoint == "/v1/models" else []

    report = judge(_cassette(), ITEMS, validate)
    status = {i.id: i.status for i in report.items}
    assert status["base/chat-completions"] == Status.ERROR
    assert status["9.9.9/unknown"] == Status.FAIL
    chat = next(i for i in report.items if i.id == "base/chat-completions")
    assert chat.checks[0].evidence[0]["error"] == "RuntimeError: boom"


def _chat(line: int, body: dict[str, object], answer: object = None) -> Entry:
    exchange = Exchange(
        Request("POST", "http://up/v1/chat/completions", "/v1/chat/completions", {}, body),
        Response(200, body={} if answer is None else answer),
    )
    return Entry(exchange, line=line)


_CALL = {
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
        }
    ],
}


def test_an_item_passes_only_when_a_request_exercised_it() -> None:
    from conformance.catalog import ITEMS as CATALOG

    plain = Cassette(Path("c.jsonl"), (_chat(1, {"model": "m", "messages": []}),))
    status = {i.id: (i.status, i.reason) for i in judge(plain, CATALOG, lambda exchange: []).items}
    assert status["base/chat-completions"][0] is Status.PASS
    untried = ("0.3.9/ttl", "0.3.18/stream-include-usage", "0.3.6/tool-calling", "0.3.18/mistral-v13-tool-calling")
    for item_id in untried:
        assert status[item_id][0] is Status.NOT_COVERED, item_id
        assert "exercises this item" in status[item_id][1]

    request = {"model": "mistral-7b", "ttl": 60, "tools": [{"type": "function", "function": {"name": "f"}}]}
    asked = Cassette(Path("c.jsonl"), (_chat(1, request),))
    status = {i.id: i.status for i in judge(asked, CATALOG, lambda exchange: []).items}
    assert status["0.3.6/tool-calling"] is Status.NOT_COVERED, "tools were offered but no call came back"
    tried = Cassette(Path("c.jsonl"), (_chat(1, request, _CALL),))
    status = {i.id: (i.status, i.reason) for i in judge(tried, CATALOG, lambda exchange: []).items}
    for item_id in ("0.3.9/ttl", "0.3.6/tool-calling", "0.3.18/mistral-v13-tool-calling"):
        assert status[item_id][0] is Status.PASS, item_id
    assert status["0.3.18/stream-include-usage"][0] is Status.NOT_COVERED


def test_a_stream_the_recorder_could_not_decode_is_not_judged() -> None:
    stream = Exchange(
        Request("POST", "http://up/v1/chat/completions", "/v1/chat/completions", {}, {"stream": True}),
        Response(200, {"content-type": "text/event-stream", "content-encoding": "xz"}),
    )
    cassette = Cassette(Path("c.jsonl"), (Entry(stream, line=1, verdicts_not_run="encoded with 'xz'"),))
    seen: list[Exchange] = []

    def validate(exchange: Exchange) -> list[Finding]:
        seen.append(exchange)
        return [Finding("base/chat-completions", "no-body", "the response has no body")]

    statuses = {i.id: i.status for i in judge(cassette, ITEMS, validate).items}
    assert seen == []
    assert statuses["base/chat-completions"] == Status.NOT_COVERED, (
        "an exchange that was not recorded exercises nothing"
    )


def test_an_exchange_whose_verdicts_did_not_run_at_exit_is_judged() -> None:
    chat = _cassette().entries[0].exchange
    cassette = Cassette(Path("c.jsonl"), (Entry(chat, line=1, verdicts_not_run="the recorder stopped"),))
    report = judge(cassette, ITEMS, lambda exchange: [Finding("base/chat-completions", "rule", "broken")])
    assert {i.id: i.status for i in report.items}["base/chat-completions"] == Status.FAIL
    (check,) = next(i for i in report.items if i.id == "base/chat-completions").checks
    assert check.message == "1 finding (cassette line 1): broken"
