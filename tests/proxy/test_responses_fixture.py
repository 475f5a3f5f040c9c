"""The recorded Codex-shaped Responses session: check, diff and replay it without running the model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from conformance.cli import main
from conformance.exchange import Exchange
from proxy.cassette import read_cassette
from proxy.diff import Change, diff_exchanges
from proxy.live import judge
from proxy.replay import ReplayApp
from tests.proxy.conftest import serve_app

CASSETTE = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes" / "codex-session.jsonl"


def _exchanges() -> list[Exchange]:
    return list(read_cassette(CASSETTE).exchanges)


def _final(exchange: Exchange) -> dict[str, Any]:
    assert exchange.response is not None
    if exchange.response.events is None:
        body: dict[str, Any] = exchange.response.body
        return body
    final: dict[str, Any] = exchange.response.events[-1].json()["response"]
    return final


def test_fixture_is_a_codex_shaped_session() -> None:
    cassette = read_cassette(CASSETTE)
    assert cassette.bad_lines == ()
    assert "sk-not-a-real-key" not in CASSETTE.read_text()
    first, second, third = (entry.exchange for entry in cassette.entries)
    assert all(e.request.path == "/v1/responses" for e in (first, second, third))
    assert first.request.json["instructions"]
    assert first.request.json["stream"] is True
    assert [tool["type"] for tool in first.request.json["tools"]] == ["function", "function"]
    call = next(item for item in _final(first)["output"] if item["type"] == "function_call")
    [output] = second.request.json["input"]
    assert output == {"type": "function_call_output", "call_id": call["call_id"], "output": output["output"]}
    assert second.request.json["previous_response_id"] == _final(first)["id"]
    assert third.request.json["previous_response_id"] == _final(second)["id"]
    assert all(entry.findings == () or not entry.findings for entry in cassette.entries)


def test_check_passes_the_responses_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CASSETTE), "--report-dir", str(tmp_path)]) == 0, capsys.readouterr().out
    statuses = {i["id"]: i["status"] for i in json.loads((tmp_path / "report.json").read_text())["items"]}
    for item in (
        "0.3.29/responses",
        "0.3.29/responses-stateful",
        "0.3.29/responses-streaming",
        "0.3.29/responses-function-tools",
    ):
        assert statuses[item] == "pass", (item, statuses[item])
    assert statuses["0.3.29/responses-remote-mcp"] == "not_covered"
    assert "fail" not in statuses.values()


def _rewritten(exchange: Exchange, change: Any) -> Exchange:
    data = copy.deepcopy(exchange.to_dict())
    change(data)
    return Exchange.from_dict(data)


def test_diff_ignores_ids_text_and_counts_but_not_event_types() -> None:
    old = _exchanges()
    assert diff_exchanges(old, old) == []

    def other_run(data: dict[str, Any]) -> None:
        for event in data["response"].get("events", []):
            payload = json.loads(event["data"])
            text = json.dumps(payload).replace("resp_", "resp_x").replace("fc_", "fc_x").replace("msg_", "msg_x")
            payload = json.loads(text)
            if payload["type"] == "response.output_text.delta":
                payload["delta"] = "other words"
            payload["sequence_number"] += 100
            event["data"] = json.dumps(payload)

    assert diff_exchanges(old, [_rewritten(e, other_run) for e in old]) == []

    def function_call_arguments_done_dropped(data: dict[str, Any]) -> None:
        events = data["response"].get("events", [])
        data["response"]["events"] = [e for e in events if "function_call_arguments.done" not in e["data"]]

    found = diff_exchanges(old, [_rewritten(old[0], function_call_arguments_done_dropped), *old[1:]])
    assert found
    assert {d.change for d in found} & {Change.CHANGED, Change.REMOVED, Change.ADDED}


def test_replay_works_with_responses_stream() -> None:
    exchanges = _exchanges()
    first, second, third = exchanges
    with serve_app(ReplayApp(exchanges, speed=0)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-other-key", max_retries=0)
        body = {k: v for k, v in first.request.json.items() if k != "stream"}
        seed = body.pop("seed", None)
        with client.responses.stream(**body, extra_body={"seed": seed}) as stream:
            events = list(stream)
            replayed = stream.get_final_response()
        assert events[0].type == "response.created"
        assert replayed.id == _final(first)["id"]
        [call] = [item for item in replayed.output if item.type == "function_call"]
        assert call.call_id == _final(first)["output"][0]["call_id"]
        # the chained turns pair whatever ids the client sends (ids are volatile in the pairing key)
        chained = {k: v for k, v in second.request.json.items() if k != "stream"}
        chained["previous_response_id"] = replayed.id
        seed = chained.pop("seed", None)
        with client.responses.stream(**chained, extra_body={"seed": seed}) as stream:
            assert stream.get_final_response().id == _final(second)["id"]
        last = third.request.json
        answer = client.responses.create(**{k: v for k, v in last.items() if k != "seed"}, extra_body={"seed": 11})
        assert answer.output_text == "".join(
            part["text"] for item in _final(third)["output"] for part in item.get("content", [])
        )
        client.close()


def test_live_verdicts_judge_a_responses_stream() -> None:
    first = _exchanges()[0]
    assert judge(first, (), validate=True).findings == ()

    def ids_differ(data: dict[str, Any]) -> None:
        last = json.loads(data["response"]["events"][-1]["data"])
        for item in last["response"]["output"]:
            item["id"] = "fc_other"
        data["response"]["events"][-1]["data"] = json.dumps(last)

    entry = judge(_rewritten(first, ids_differ), (), validate=True)
    assert entry.validator_error is None
    assert {(f.item, f.check) for f in entry.findings} >= {
        ("0.3.29/responses-streaming", "responses-stream-matches-final")
    }
