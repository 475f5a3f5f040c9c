"""End to end: the official openai client through a real mitmproxy recording the reference server, then check,
diff and replay of what was recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from conformance.cli import main
from proxy.cassette import read_cassette
from proxy.replay import ReplayApp
from proxy.serve import ProxySettings, proxy_in_thread
from tests.proxy.conftest import serve_app

TOKEN = "sk-e2e-secret-token-5b1f0c7d"

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@dataclass(frozen=True)
class Session:
    """What the client saw: its model list, the rebuilt message, the number of chunks."""

    models: tuple[str, ...]
    finish_reason: str
    tool_calls: tuple[tuple[str, str], ...]
    content: str | None
    usage: dict[str, Any] | None
    chunks: int


def _session(base_url: str, model: str) -> Session:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
    try:
        models = tuple(m.id for m in client.models.list())
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=False,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=48,
            temperature=0,
            seed=7,
        )
        state = ChatCompletionStreamState(input_tools=TOOLS)
        chunks = 0
        for chunk in stream:
            state.handle_chunk(chunk)
            chunks += 1
        final = state.get_final_completion()
    finally:
        client.close()
    choice = final.choices[0]
    calls = tuple(
        (c.function.name, c.function.arguments) for c in choice.message.tool_calls or () if c.type == "function"
    )
    usage = final.usage.model_dump() if final.usage else None
    return Session(models, choice.finish_reason, calls, choice.message.content, usage, chunks)


@dataclass(frozen=True)
class Recorded:
    direct: Session
    first: Session
    second: Session
    cassette: Path
    again: Path
    har: Path
    model: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, reference_base_url: str, reference_model_id: str) -> Recorded:
    """One direct session, then the same session recorded twice through the proxy (three model calls in all)."""
    folder = tmp_path_factory.mktemp("e2e")
    direct = _session(reference_base_url, reference_model_id)
    sessions = []
    for name in ("first", "second"):
        settings = ProxySettings(
            folder / f"{name}.jsonl", upstream=reference_base_url, listen_port=0, har=folder / f"{name}.har"
        )
        with proxy_in_thread(settings) as proxy:
            sessions.append(_session(proxy.url, reference_model_id))
    first, second = sessions
    return Recorded(
        direct, first, second, folder / "first.jsonl", folder / "second.jsonl", folder / "first.har", reference_model_id
    )


def test_client_gets_through_the_proxy_what_it_gets_directly(recorded: Recorded) -> None:
    assert recorded.direct.tool_calls, "the session exercises a streamed tool call"
    assert recorded.direct.tool_calls[0][0] == "get_weather"
    assert recorded.first == recorded.direct
    assert recorded.second == recorded.direct


def test_cassette_holds_every_event_in_arrival_order(recorded: Recorded) -> None:
    cassette = read_cassette(recorded.cassette)
    assert cassette.bad_lines == ()
    assert [e.exchange.endpoint for e in cassette.entries] == ["/v1/models", "/v1/chat/completions"]
    response = cassette.entries[1].exchange.response
    assert response is not None
    assert response.events is not None
    events = response.events
    assert len(events) == recorded.direct.chunks + 1, "every chunk the client got, and [DONE]"
    assert events[-1].data == "[DONE]"
    times = [e.t_ms for e in events]
    assert times == sorted(times)
    assert times[0] > 0
    assert cassette.entries[1].exchange.duration_ms >= times[-1]
    state = ChatCompletionStreamState(input_tools=TOOLS)
    for event in events[:-1]:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(event.json()))
    message = state.get_final_completion().choices[0].message
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or ()] == list(
        recorded.direct.tool_calls
    )


def test_the_token_never_reaches_disk(recorded: Recorded) -> None:
    for path in (recorded.cassette, recorded.again, recorded.har):
        assert TOKEN not in path.read_text()
    line = json.loads(recorded.cassette.read_text().splitlines()[1])
    assert line["request"]["headers"]["authorization"] == "[REDACTED]"
    har = json.loads(recorded.har.read_text())
    assert len(har["log"]["entries"]) == 2
    assert har["log"]["entries"][1]["response"]["content"]["text"].endswith("data: [DONE]\n\n")


def test_live_verdicts_found_nothing(recorded: Recorded) -> None:
    for entry in read_cassette(recorded.cassette).entries:
        assert entry.validator_error is None
        assert entry.findings == (), "\n".join(map(str, entry.findings))


def test_check_passes(recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(recorded.cassette), "--report-dir", str(tmp_path)]) == 0, capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {i["id"]: i["status"] for i in report["items"]}
    assert "pass" in statuses.values()
    assert "fail" not in statuses.values()


def test_two_recordings_of_the_same_session_do_not_differ(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(recorded.cassette), str(recorded.again)]) == 0, capsys.readouterr().out


def test_a_modified_recording_differs(recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = recorded.again.read_text().splitlines()
    line = json.loads(lines[1])
    for event in line["response"]["events"]:
        if '"finish_reason":"tool_calls"' in event["data"].replace(" ", ""):
            event["data"] = event["data"].replace("tool_calls", "stop")
            event["raw"] = "data: " + event["data"]
    lines[1] = json.dumps(line)
    modified = tmp_path / "modified.jsonl"
    modified.write_text("\n".join(lines) + "\n")
    assert main(["diff", str(recorded.cassette), str(modified)]) == 1
    assert 'finish_reason changed: "tool_calls" -> "stop"' in capsys.readouterr().out


def test_replay_serves_the_same_result(recorded: Recorded) -> None:
    app = ReplayApp(read_cassette(recorded.cassette).exchanges, speed=0)
    with serve_app(app) as url:
        assert _session(url, recorded.model) == recorded.direct


def test_corrupt_line_is_reported_with_its_number(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = recorded.cassette.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[1][:40], lines[1]]) + "\n")
    assert main(["diff", str(recorded.cassette), str(broken)]) == 0
    err = capsys.readouterr().err
    assert f"{broken}:2: not valid JSON" in err
    assert "Traceback" not in err
