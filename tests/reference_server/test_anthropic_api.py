"""Anthropic Messages on the reference server, over a real socket, through the official `anthropic` SDK and raw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from reference_server import anthropic_api
from reference_server.app import create_app
from reference_server.embedded import run_app, serve_in_thread
from reference_server.engine import Engine, Finished, FinishReason, Generation, GenerationRequest, Piece
from reference_server.reasoning import Signer
from tests.reference_server.conftest import EngineWrapper

WEATHER_SCHEMA: Any = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/unit"}},
    "required": ["city", "unit"],
    "$defs": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "input_schema": WEATHER_SCHEMA,
}
TIME: Any = {
    "name": "get_time",
    "description": "Get the local time in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO: Any = [{"role": "user", "content": "Say hello in five words."}]
MODEL = "smollm2-135m-instruct"
GREEDY: Any = {"temperature": 0}  # the SDK (2.x) no longer names sampling parameters
PARIS: Any = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.fixture(scope="module")
def http(reference_base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reference_base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(reference_base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=reference_base_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(reference_model_id: str) -> str:
    return reference_model_id


def _create(http: httpx.Client, path: str = "/v1/messages", **body: Any) -> dict[str, Any]:
    response = http.post(path, json={"temperature": 0, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _stream(http: httpx.Client, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every frame, checking the framing line by line."""
    frames: list[tuple[str, dict[str, Any]]] = []
    lines: list[str] = []
    with http.stream("POST", "/v1/messages", json={"temperature": 0, **body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                lines.append(line)
                continue
            assert len(lines) == 2, lines
            assert lines[0].startswith("event: ")
            assert lines[1].startswith("data: ")
            name, data = lines[0][7:], json.loads(lines[1][6:])
            assert data["type"] == name, "the event: line names the data's type"
            frames.append((name, data))
            lines = []
    assert not lines, "the stream ended inside an event"
    return frames


def _error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error"}
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    assert "Traceback" not in response.text
    message: str = body["error"]["message"]
    assert message
    return message


def _check_order(frames: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Anthropic's event grammar: start, blocks opened and closed in order with indices 0, 1, 2..., delta, stop."""
    names = [name for name, _ in frames if name != "ping"]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    for name, data in frames[1:-2]:
        if name == "content_block_start":
            assert open_index is None, "a block started before the previous one stopped"
            assert data["index"] == len(blocks)
            open_index = data["index"]
            blocks.append(data["content_block"])
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            assert name == "ping", name
    assert open_index is None
    return blocks


# ---- plain messages ---------------------------------------------------------------------------


def test_create_through_the_sdk(client: anthropic.Anthropic, model: str, http: httpx.Client) -> None:
    message = client.messages.create(model=model, max_tokens=12, messages=HELLO, extra_body=GREEDY)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == model
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.stop_sequence is None
    assert 0 < message.usage.output_tokens <= 12
    count = client.messages.count_tokens(model=model, messages=HELLO)
    assert message.usage.input_tokens == count.input_tokens > 5


def test_stream_framing_equals_the_plain_answer(client: anthropic.Anthropic, http: httpx.Client, model: str) -> None:
    body = {"model": model, "max_tokens": 12, "messages": HELLO}
    frames = _stream(http, **body)
    blocks = _check_order(frames)
    assert blocks == [{"type": "text", "text": ""}]
    start = frames[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    plain = _create(http, **body)
    assert start["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    text = "".join(d["delta"]["text"] for n, d in frames if n == "content_block_delta")
    assert text == plain["content"][0]["text"]
    delta = frames[-2][1]
    assert delta["delta"] == {"stop_reason": plain["stop_reason"], "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == plain["usage"]["output_tokens"]
    with client.messages.stream(**body, extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    assert final.model_dump(exclude={"id"}) == anthropic.types.Message.model_validate(plain).model_dump(exclude={"id"})


def test_system_as_string_blocks_and_role_are_one_system_prompt(http: httpx.Client, model: str) -> None:
    rule = "You answer in French."

    def count(**body: Any) -> int:
        response = http.post("/v1/messages/count_tokens?beta=true", json={"model": model, **body})
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"input_tokens"}
        tokens: int = response.json()["input_tokens"]
        return tokens

    as_string = count(system=rule, messages=HELLO)
    assert count(system=rule * 3, messages=HELLO) > as_string  # the template adds its own prompt when none is given
    assert count(system=[{"type": "text", "text": rule, "cache_control": {"type": "ephemeral"}}], messages=HELLO) == (
        as_string
    )
    assert count(messages=[{"role": "system", "content": rule}, *HELLO]) == as_string
    answered = _create(
        http,
        path="/v1/messages?beta=true",
        model=model,
        max_tokens=4,
        messages=[*HELLO[:1], {"role": "system", "content": rule}],
    )
    assert answered["usage"]["input_tokens"] == as_string


def test_multi_turn_and_metadata(http: httpx.Client, model: str) -> None:
    turns = [
        {"role": "user", "content": "Hi, my name is Ada."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada!"}]},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    body = _create(http, model=model, max_tokens=6, messages=turns, metadata={"user_id": "u1"}, top_k=10, top_p=0.9)
    assert body["content"][0]["type"] == "text"


def test_stop_sequences_name_the_one_that_matched(http: httpx.Client, model: str) -> None:
    text = _create(http, model=model, max_tokens=12, messages=HELLO)["content"][0]["text"]
    word = text.split()[1]
    stopped = _create(http, model=model, max_tokens=12, messages=HELLO, stop_sequences=["zzzz", word])
    assert stopped["stop_reason"] == "stop_sequence"
    assert stopped["stop_sequence"] == word
    assert stopped["content"][0]["text"] == text[: text.index(word)]
    frames = _stream(http, model=model, max_tokens=12, messages=HELLO, stop_sequences=[word])
    assert frames[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": word}


def test_max_tokens_cuts_with_stop_reason_max_tokens(http: httpx.Client, model: str) -> None:
    body = _create(http, model=model, max_tokens=2, messages=[{"role": "user", "content": "Count to fifty."}])
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 2


# ---- tools ------------------------------------------------------------------------------------


def test_tool_choice_any_gives_schema_valid_tool_use(http: httpx.Client, model: str) -> None:
    body = _create(http, model=model, max_tokens=60, messages=PARIS, tools=[WEATHER], tool_choice={"type": "any"})
    uses = [block for block in body["content"] if block["type"] == "tool_use"]
    assert uses, body
    assert body["stop_reason"] == "tool_use"
    for use in uses:
        assert use["id"].startswith("toolu_")
        assert use["name"] == "get_weather"
        jsonschema.validate(use["input"], WEATHER_SCHEMA)
    assert len({use["id"] for use in uses}) == len(uses)


def test_streamed_tool_use_rebuilds_with_the_sdk(client: anthropic.Anthropic, http: httpx.Client, model: str) -> None:
    body: Any = {
        "model": model,
        "max_tokens": 60,
        "messages": PARIS,
        "tools": [WEATHER, TIME],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    }
    frames = _stream(http, **body)
    blocks = _check_order(frames)
    assert [b["type"] for b in blocks] == ["tool_use"]
    assert blocks[0]["input"] == {}
    assert blocks[0]["name"] == "get_weather"
    fragments = [d["delta"]["partial_json"] for n, d in frames if n == "content_block_delta"]
    assert len(fragments) > 1, "input_json_delta fragments arrive as generated"
    jsonschema.validate(json.loads("".join(fragments)), WEATHER_SCHEMA)
    assert frames[-2][1]["delta"]["stop_reason"] == "tool_use"
    plain = _create(http, **body)
    with client.messages.stream(**body, extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        (b["type"], b.get("input")) for b in plain["content"]
    ]


def test_tool_round_trip_with_the_sdk(client: anthropic.Anthropic, model: str) -> None:
    first = client.messages.create(
        model=model, max_tokens=60, messages=PARIS, tools=[WEATHER], tool_choice={"type": "any"}, extra_body=GREEDY
    )
    use = next(block for block in first.content if block.type == "tool_use")
    second = client.messages.create(
        model=model,
        max_tokens=10,
        extra_body=GREEDY,
        tools=[WEATHER],
        messages=[
            *PARIS,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": [{"type": "text", "text": "18 C, sunny"}],
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
        tool_choice={"type": "none"},
    )
    assert [block.type for block in second.content] == ["text"]
    assert second.stop_reason in ("end_turn", "max_tokens")
    failed = client.messages.create(
        model=model,
        max_tokens=4,
        extra_body=GREEDY,
        messages=[
            *PARIS,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "down", "is_error": True}],
            },
        ],
    )
    assert failed.content


def test_tool_choice_none_and_auto(http: httpx.Client, model: str) -> None:
    none = _create(http, model=model, max_tokens=8, messages=PARIS, tools=[WEATHER], tool_choice={"type": "none"})
    assert all(block["type"] == "text" for block in none["content"])
    assert none["stop_reason"] != "tool_use"
    auto = _create(http, model=model, max_tokens=60, messages=PARIS, tools=[WEATHER], tool_choice={"type": "auto"})
    kinds = {block["type"] for block in auto["content"]}
    assert kinds in ({"text"}, {"tool_use"})
    assert (auto["stop_reason"] == "tool_use") == (kinds == {"tool_use"})


def test_count_tokens_includes_tools(http: httpx.Client, model: str) -> None:
    plain = http.post("/v1/messages/count_tokens", json={"model": model, "messages": PARIS}).json()["input_tokens"]
    tools = {"model": model, "messages": PARIS, "tools": [WEATHER], "tool_choice": {"type": "any"}}
    with_tools = http.post("/v1/messages/count_tokens", json=tools).json()["input_tokens"]
    assert with_tools > plain + 30
    frames = _stream(http, **tools, max_tokens=3)
    assert frames[0][1]["message"]["usage"]["input_tokens"] == with_tools


# ---- thinking ---------------------------------------------------------------------------------


def test_thinking_block_first_signed_and_verified(client: anthropic.Anthropic, http: httpx.Client, model: str) -> None:
    body: Any = {
        "model": model,
        "max_tokens": 40,
        "messages": HELLO,
        "thinking": {"type": "enabled", "budget_tokens": 12},
    }
    plain = _create(http, **body)
    kinds = [block["type"] for block in plain["content"]]
    assert kinds[0] == "thinking"
    assert kinds[1:] in (["text"], [])
    thinking = plain["content"][0]
    assert thinking["thinking"].strip()
    assert thinking["signature"]
    assert plain["usage"]["output_tokens"] <= 40
    frames = _stream(http, **body)
    blocks = _check_order(frames)
    assert blocks[0] == {"type": "thinking", "thinking": "", "signature": ""}
    first_block = [(n, d) for n, d in frames if d.get("index") == 0]
    assert first_block[-2][1]["delta"]["type"] == "signature_delta"
    assert first_block[-1][0] == "content_block_stop"
    with client.messages.stream(**body, extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == thinking["thinking"]
    assert final.content[0].signature == thinking["signature"]
    follow = [*HELLO, {"role": "assistant", "content": plain["content"]}, {"role": "user", "content": "Again."}]
    assert http.post("/v1/messages", json={**body, "messages": follow}).status_code == 200
    forged = json.loads(json.dumps(follow))
    forged[1]["content"][0]["thinking"] += " (edited)"
    message = _error(http.post("/v1/messages", json={**body, "messages": forged}), 400, "invalid_request_error")
    assert "signature" in message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**{**body, "messages": forged})


def test_thinking_stays_within_its_budget(http: httpx.Client, model: str, reference_engine: Engine) -> None:
    body = {"model": model, "max_tokens": 30, "messages": HELLO, "thinking": {"type": "enabled", "budget_tokens": 4}}
    answer = _create(http, **body)
    thinking = answer["content"][0]["thinking"]
    assert 0 < len(reference_engine.tokenize(thinking)) <= 4 + 1  # + a BOS the tokenizer may add
    assert answer["usage"]["output_tokens"] <= 30
    assert Signer(b"k").verify("text", Signer(b"k").sign("text"))
    assert not Signer(b"k").verify("text", Signer(b"other").sign("text"))


def test_thinking_budget_must_stay_below_max_tokens(http: httpx.Client, model: str) -> None:
    body = {"model": model, "max_tokens": 8, "messages": HELLO, "thinking": {"type": "enabled", "budget_tokens": 8}}
    assert "budget_tokens" in _error(http.post("/v1/messages", json=body), 400, "invalid_request_error")


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        ({"messages": HELLO}, 400, "invalid_request_error", "max_tokens"),
        ({"max_tokens": 4, "messages": "hello"}, 400, "invalid_request_error", "messages"),
        ({"max_tokens": "four", "messages": HELLO}, 400, "invalid_request_error", "max_tokens"),
        ({"max_tokens": 4, "messages": HELLO, "model": "claude-nope"}, 404, "not_found_error", "claude-nope"),
        (
            {
                "max_tokens": 4,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
                        ],
                    }
                ],
            },
            400,
            "invalid_request_error",
            "image input is not supported",
        ),
        (
            {"max_tokens": 4, "messages": HELLO, "tool_choice": {"type": "tool", "name": "x"}},
            400,
            "invalid_request_error",
            "x",
        ),
        (
            {"max_tokens": 4, "messages": [{"role": "user", "content": "word " * 3000}]},
            400,
            "invalid_request_error",
            "context",
        ),
    ],
)
def test_bad_requests_get_the_anthropic_envelope(
    http: httpx.Client, model: str, body: dict[str, Any], status: int, kind: str, words: str
) -> None:
    message = _error(http.post("/v1/messages", json={"model": model, **body}), status, kind)
    assert words in message


def test_malformed_json_unknown_path_and_sdk_errors(http: httpx.Client, client: anthropic.Anthropic) -> None:
    bad = http.post("/v1/messages", content=b'{"model": ', headers={"content-type": "application/json"})
    assert "not valid JSON" in _error(bad, 400, "invalid_request_error")
    _error(http.post("/v1/messages/batches", json={}), 404, "not_found_error")
    _error(http.get("/v1/messages"), 405, "invalid_request_error")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope", max_tokens=4, messages=HELLO)


def test_auth_with_x_api_key_or_bearer() -> None:
    with serve_in_thread(api_key="sekrit", threads=1) as url, httpx.Client(base_url=url, timeout=60) as raw:
        body = {"model": MODEL, "messages": HELLO}
        _error(raw.post("/v1/messages/count_tokens", json=body), 401, "authentication_error")
        _error(
            raw.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": "wrong"}),
            401,
            "authentication_error",
        )
        assert raw.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": "sekrit"}).status_code == 200
        bearer = {"authorization": "Bearer sekrit", "anthropic-version": "2023-06-01"}
        assert raw.post("/v1/messages/count_tokens", json=body, headers=bearer).status_code == 200
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.count_tokens(**body)
        token = anthropic.Anthropic(base_url=url, auth_token="sekrit", api_key=None, max_retries=0)
        assert token.messages.count_tokens(**body).input_tokens > 0


# ---- failures, pings --------------------------------------------------------------------------


class _Wrapper(EngineWrapper):
    """The real engine, with generate() replaced by a script."""

    def __init__(
        self, engine: Engine, script: Sequence[Piece | Finished], *, fail: bool = False, delay: float = 0
    ) -> None:
        super().__init__(engine)
        self.script = script
        self.fail = fail
        self.delay = delay

    def generate(self, request: GenerationRequest) -> Generation:
        return _Scripted(self)


class _Scripted(Generation):
    def __init__(self, backend: _Wrapper) -> None:
        self._script: AsyncIterator[Piece | Finished] = self._play(backend)

    async def _play(self, backend: _Wrapper) -> AsyncIterator[Piece | Finished]:
        await asyncio.sleep(backend.delay)
        for event in backend.script:
            yield event
        if backend.fail:
            raise RuntimeError("secret internal detail /home/x/engine.py")

    def cancel(self) -> None:
        pass

    async def __anext__(self) -> Piece | Finished:
        return await anext(self._script)


def _raw_frames(client: httpx.Client) -> list[str]:
    with client.stream(
        "POST", "/v1/messages", json={"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True}
    ) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line]


def test_an_error_mid_stream_is_an_error_event(reference_engine: Engine) -> None:
    backend = _Wrapper(reference_engine, [Piece("Hel"), Piece("lo")], fail=True)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as raw:
        lines = _raw_frames(raw)
        assert lines[-2] == "event: error"
        error = json.loads(lines[-1][6:])
        assert error["type"] == "error"
        assert error["error"]["type"] == "api_error"
        assert "secret" not in error["error"]["message"]
        assert "event: message_stop" not in lines
        sdk = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        with (
            pytest.raises(anthropic.APIStatusError),
            sdk.messages.stream(model=MODEL, max_tokens=8, messages=HELLO) as s,
        ):
            s.get_final_message()
        _error(raw.post("/v1/messages", json={"model": MODEL, "max_tokens": 8, "messages": HELLO}), 500, "api_error")


def test_pings_while_the_first_token_is_slow(reference_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_api, "PING_AFTER_S", 0.05)
    monkeypatch.setattr(anthropic_api, "PING_EVERY_S", 0.1)
    script: list[Piece | Finished] = [
        Piece("Hi"),
        Finished(FinishReason.STOP, prompt_tokens=5, completion_tokens=1, seconds=1),
    ]
    backend = _Wrapper(reference_engine, script, delay=0.6)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as raw:
        lines = _raw_frames(raw)
    names = [line[7:] for line in lines if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[1] == "ping"
    assert names[names.index("content_block_start") - 1] == "ping"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
