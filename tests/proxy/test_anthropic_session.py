"""The recorded Claude-Code-shaped session: check, diff and replay an Anthropic cassette without the model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from conformance.cli import main
from conformance.exchange import Exchange, Response, SSEEvent
from conformance.verdicts import validate_exchange
from proxy.cassette import read_cassette
from proxy.diff import diff_exchanges
from proxy.har import HarRecord, HarTimings, har_document
from proxy.live import judge
from proxy.replay import ReplayApp
from tests.proxy.conftest import serve_app

CASSETTE = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes" / "claude-code-session.jsonl"
ITEM = "0.4.1/anthropic-messages"


def _exchanges() -> list[Exchange]:
    return list(read_cassette(CASSETTE).exchanges)


def _streams() -> list[Exchange]:
    return [e for e in _exchanges() if e.response is not None and e.response.events is not None]


def test_fixture_is_claude_code_shaped_and_redacted() -> None:
    cassette = read_cassette(CASSETTE)
    assert cassette.bad_lines == ()
    paths = [e.exchange.request.path for e in cassette.entries]
    assert paths == ["/v1/messages/count_tokens?beta=true", "/v1/messages?beta=true", "/v1/messages?beta=true"]
    assert "sk-ant-not-a-real-key" not in CASSETTE.read_text()  # the SDK (2.x) sends it as a Bearer token
    assert all(e.exchange.request.headers["authorization"] == "[REDACTED]" for e in cassette.entries)
    first, second = (e.request.json for e in _streams())
    assert isinstance(first["system"], list)
    assert first["tools"]
    assert "tool_result" in json.dumps(second["messages"])
    names = [event.event for event in _streams()[0].response.events or ()]  # type: ignore[union-attr]
    assert names[0] == "message_start"
    assert "content_block_delta" in names
    assert names[-1] == "message_stop"


def test_live_verdicts_found_nothing_and_the_rules_agree() -> None:
    for entry in read_cassette(CASSETTE).entries:
        assert entry.findings == ()
        assert validate_exchange(entry.exchange) == []


def test_check_passes_the_anthropic_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CASSETTE), "--report-dir", str(tmp_path)]) == 0, capsys.readouterr().out
    items = {i["id"]: i for i in json.loads((tmp_path / "report.json").read_text())["items"]}
    assert items[ITEM]["status"] == "pass"
    assert "fail" not in {i["status"] for i in items.values()}


def _without_event_lines(exchange: Exchange, index: int) -> Exchange:
    assert exchange.response is not None
    assert exchange.response.events is not None
    events = list(exchange.response.events)
    event = events[index]
    events[index] = SSEEvent(event.t_ms, None, event.data, f"data: {event.data}")
    return dataclasses.replace(exchange, response=dataclasses.replace(exchange.response, events=tuple(events)))


def test_diff_compares_event_names_and_blocks_not_text(tmp_path: Path) -> None:
    assert main(["diff", str(CASSETTE), str(CASSETTE)]) == 0
    exchanges = _exchanges()
    stream = exchanges[1]
    assert stream.response is not None
    assert stream.response.events is not None
    unnamed = _without_event_lines(stream, 0)
    found = {(d.path, d.old, d.new) for d in diff_exchanges([stream], [unnamed])}
    assert found == {("events[0].event", "message_start", None), ("events[0].fields[1]", "event", None)}
    retexted = [
        SSEEvent(e.t_ms, e.event, e.data.replace('"Paris"', '"Tokyo"') if e.data else e.data, e.raw)
        for e in stream.response.events
    ]
    other_text = dataclasses.replace(stream, response=dataclasses.replace(stream.response, events=tuple(retexted)))
    assert diff_exchanges([stream], [other_text]) == []


def test_replay_serves_the_sdk_stream_accumulator() -> None:
    recorded = _streams()[0]
    assert recorded.response is not None
    body: dict[str, Any] = dict(recorded.request.json)
    body.pop("stream")
    extra = {"temperature": body.pop("temperature")}
    with serve_app(ReplayApp(_exchanges(), speed=0)) as url:
        client = anthropic.Anthropic(base_url=url, api_key="sk-ant-other", max_retries=0)
        with client.messages.stream(**body, extra_query={"beta": "true"}, extra_body=extra) as stream:
            final = stream.get_final_message()
        count = client.messages.count_tokens(
            **{k: body[k] for k in ("model", "system", "messages", "tools")}, extra_query={"beta": "true"}
        )
        with pytest.raises(anthropic.NotFoundError):
            client.messages.count_tokens(model="other", messages=body["messages"])
        client.close()
    assert count.input_tokens == _exchanges()[0].response.body["input_tokens"]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    [use] = [block for block in final.content if block.type == "tool_use"]
    assert use.id.startswith("toolu_")
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    assert set(use.input) == {"city"}


def test_replayed_error_has_the_anthropic_envelope() -> None:
    empty = Response(200, {"content-type": "application/json"}, body={"input_tokens": 3})
    only = dataclasses.replace(_exchanges()[0], response=empty)
    with serve_app(ReplayApp([only], speed=0)) as url:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.NotFoundError) as raised:
            client.messages.create(model="m", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        client.close()
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "no recorded exchange matches" in body["error"]["message"]


def test_the_recorder_judges_anthropic_exchanges_live() -> None:
    broken = _without_event_lines(_streams()[0], 0)
    entry = judge(broken, (), True)
    assert entry.validator_error is None
    assert {f.check for f in entry.findings} >= {"event-lines", "sdk-accumulates"}
    assert all(f.item == ITEM for f in entry.findings)


def test_har_export_keeps_the_event_lines() -> None:
    stream = _streams()[0]
    [entry] = har_document([HarRecord(stream, HarTimings(1.0, 2.0, 3.0))])["log"]["entries"]
    text = entry["response"]["content"]["text"]
    assert text.startswith("event: message_start\ndata: {")
    assert "event: content_block_delta\ndata: " in text
    assert text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
