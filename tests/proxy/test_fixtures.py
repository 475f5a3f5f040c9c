"""The recorded reference session in fixtures/cassettes: check, diff and replay it without running the model."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionToolParam

from conformance.cli import main
from proxy.cassette import read_cassette
from proxy.replay import ReplayApp
from tests.proxy.conftest import serve_app

CASSETTE = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes" / "reference-session.jsonl"
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def test_fixture_is_readable_and_redacted() -> None:
    cassette = read_cassette(CASSETTE)
    assert cassette.bad_lines == ()
    assert len(cassette.entries) == 3
    assert "sk-not-a-real-key" not in CASSETTE.read_text()
    assert all(e.exchange.request.headers["authorization"] == "[REDACTED]" for e in cassette.entries)


def test_check_passes_on_the_reference_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CASSETTE), "--report-dir", str(tmp_path)]) == 0, capsys.readouterr().out
    statuses = {i["id"]: i["status"] for i in json.loads((tmp_path / "report.json").read_text())["items"]}
    assert "fail" not in statuses.values()


def test_diff_with_itself_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(CASSETTE), str(CASSETTE)]) == 0


def test_replay_to_the_official_client() -> None:
    recorded = read_cassette(CASSETTE).entries[2].exchange
    assert recorded.response is not None
    assert recorded.response.events is not None
    expected = ChatCompletionStreamState(input_tools=TOOLS)
    for event in recorded.response.events[:-1]:
        expected.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(event.json()))
    request = recorded.request.json
    with serve_app(ReplayApp(read_cassette(CASSETTE).exchanges, speed=0)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-other-key", max_retries=0)
        state = ChatCompletionStreamState(input_tools=TOOLS)
        for chunk in client.chat.completions.create(**request):
            state.handle_chunk(chunk)
        client.close()
    got = state.get_final_completion().choices[0]
    want = expected.get_final_completion().choices[0]
    assert got.finish_reason == want.finish_reason == "tool_calls"
    assert got.message.tool_calls == want.message.tool_calls
