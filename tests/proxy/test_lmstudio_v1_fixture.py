"""The recorded LM Studio REST v1 session: its exchanges paired, judged live, covered by `check`, diffed, replayed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.cli import main
from conformance.exchange import Exchange
from conformance.sse import parse_sse
from conformance.verdicts import items as ids
from proxy.cassette import read_cassette
from proxy.diff import diff_exchanges
from proxy.live import judge
from proxy.pairing import pair, request_key
from proxy.replay import ReplayApp
from tests.proxy.conftest import serve_app

CASSETTE = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes" / "lmstudio-v1-session.jsonl"
V1_ITEMS = (ids.REST_V1_MODELS, ids.REST_V1_CHAT, ids.REST_V1_MCP)


def _exchanges() -> list[Exchange]:
    return list(read_cassette(CASSETTE).exchanges)


def _rewritten(exchange: Exchange, change: Any) -> Exchange:
    data = copy.deepcopy(exchange.to_dict())
    change(data)
    return Exchange.from_dict(data)


def _streamed(exchanges: list[Exchange], *, mcp: bool = False) -> Exchange:
    return next(
        e
        for e in exchanges
        if e.response is not None and e.response.events is not None and bool(e.request.json.get("integrations")) is mcp
    )


def test_fixture_is_an_lmstudio_v1_session_and_redacted() -> None:
    cassette = read_cassette(CASSETTE)
    assert cassette.bad_lines == ()
    paths = [(e.exchange.request.method, e.exchange.endpoint) for e in cassette.entries]
    assert ("POST", "/api/v1/models/load") in paths
    assert ("POST", "/api/v1/models/unload") in paths
    assert sum(path == ("POST", "/api/v1/chat") for path in paths) == 6
    assert "sk-not-a-real-key" not in CASSETTE.read_text()
    assert all(e.exchange.request.headers["authorization"] == "[REDACTED]" for e in cassette.entries)
    models = cassette.entries[0].exchange.response
    assert models is not None
    assert [m["key"] for m in models.body["models"]] == ["fake-llm", "fake-jit", "fake-embed"]  # not redacted
    assert all(entry.findings == () for entry in cassette.entries)


def test_live_verdicts_judge_v1_exchanges() -> None:
    exchanges = _exchanges()
    for exchange in exchanges:
        if not exchange.endpoint.startswith("/api/v1/"):
            continue  # /api/v0/models is 0.3.16/model-capabilities' (its embedding row has no capabilities)
        entry = judge(exchange, (), validate=True)
        assert entry.validator_error is None
        assert entry.findings == (), exchange.endpoint

    def renamed(data: dict[str, Any]) -> None:
        for event in data["response"]["events"]:
            event["raw"] = event["raw"].replace("event: message.delta", "event: message")
            event["event"] = "message" if event["event"] == "message.delta" else event["event"]

    entry = judge(_rewritten(_streamed(exchanges), renamed), (), validate=True)
    assert {(f.item, f.check) for f in entry.findings} == {(ids.REST_V1_CHAT, "v1-chat-event-schema")}


def test_check_covers_and_passes_the_v1_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", str(CASSETTE), "--report-dir", str(tmp_path)])
    capsys.readouterr()
    items = {i["id"]: i for i in json.loads((tmp_path / "report.json").read_text())["items"]}
    for item_id in V1_ITEMS:
        assert items[item_id]["status"] == "pass", (item_id, items[item_id])


def test_check_fails_a_v1_item_on_a_broken_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = CASSETTE.read_text().splitlines()
    data = json.loads(lines[0])
    del data["response"]["body"]["models"][0]["capabilities"]
    data["findings"] = []
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([json.dumps(data), *lines[1:]]) + "\n")
    assert main(["check", str(broken), "--report-dir", str(tmp_path / "report")]) == 1
    capsys.readouterr()
    items = {i["id"]: i for i in json.loads((tmp_path / "report" / "report.json").read_text())["items"]}
    failed = items[ids.REST_V1_MODELS]
    assert failed["status"] == "fail"
    assert "capabilities" in failed["checks"][0]["message"]


def test_the_mcp_server_s_port_does_not_keep_two_runs_apart() -> None:
    exchanges = _exchanges()
    mcp = _streamed(exchanges, mcp=True)

    def other_port(data: dict[str, Any]) -> None:
        for integration in data["request"]["body"]["integrations"]:
            integration["server_url"] = "http://127.0.0.1:1/mcp"

    assert request_key(_rewritten(mcp, other_port).request) == request_key(mcp.request)
    assert pair([mcp], [_rewritten(mcp, other_port)]).pairs == ((0, 0),)


def test_diff_ignores_ids_timings_and_text_but_not_event_types() -> None:
    old = _exchanges()
    assert diff_exchanges(old, old) == []

    def other_run(data: dict[str, Any]) -> None:
        def redo(payload: Any) -> Any:
            text = json.dumps(payload).replace("resp_", "resp_x")
            payload = json.loads(text)
            stats = (payload.get("result") or payload).get("stats")
            if isinstance(stats, dict):
                stats["tokens_per_second"] = 1.5
                stats["time_to_first_token_seconds"] = 9.25
            if payload.get("type") == "message.delta":
                payload["content"] = "other words"
            return payload

        response = data["response"]
        if "events" in response:
            for event in response["events"]:
                event["data"] = json.dumps(redo(json.loads(event["data"])))
        elif isinstance(response["body"], dict):
            response["body"] = redo(response["body"])
        if "integrations" in (data["request"]["body"] or {}):
            data["request"]["body"]["integrations"][0]["server_url"] = "http://127.0.0.1:2/mcp"

    assert diff_exchanges(old, [_rewritten(e, other_run) for e in old]) == []

    def no_chat_start(data: dict[str, Any]) -> None:
        data["response"]["events"] = [e for e in data["response"]["events"] if e["event"] != "chat.start"]

    stream = _streamed(old)
    found = diff_exchanges([stream], [_rewritten(stream, no_chat_start)])
    assert found
    assert any(d.path.startswith("events") for d in found)


def test_replay_keeps_lmstudio_event_names() -> None:
    exchanges = _exchanges()
    recorded = _streamed(exchanges)
    assert recorded.response is not None
    assert recorded.response.events is not None
    with serve_app(ReplayApp(exchanges, speed=0)) as url, httpx.Client(timeout=30) as client:
        answer = client.post(url + "/api/v1/chat", json=recorded.request.json)
        unknown = client.post(url + "/api/v1/chat", json={"model": "other", "input": "?"})
    events, tail = parse_sse(answer.content)
    assert tail == ""
    assert [e.event for e in events] == [e.event for e in recorded.response.events]
    assert events[0].event == "chat.start"
    assert events[-1].event == "chat.end"
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["code"] == "no_recorded_exchange"
    assert "POST /api/v1/chat" in error["message"]
