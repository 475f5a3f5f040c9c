"""The reference server over a real socket: endpoints, stream contract, tools, errors, cancellation."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from reference_server.app import create_app
from reference_server.embedded import run_app, serve_in_thread
from reference_server.engine import Engine, Finished, FinishReason, Generation, GenerationRequest, Piece
from tests.reference_server.conftest import EngineWrapper

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PARIS_TOKYO: Any = [{"role": "user", "content": "What's the weather in Paris and in Tokyo?"}]
HELLO: Any = [{"role": "user", "content": "Say hello in five words."}]
GREEDY = {"temperature": 0, "seed": 7}


@pytest.fixture(scope="module")
def http(reference_base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reference_base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(reference_base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{reference_base_url}/v1", api_key="unused", max_retries=0)


def _chat(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/chat/completions", json={**GREEDY, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[str]:
    """The data fields of a streamed response, read from the socket as they arrive."""
    data: list[str] = []
    with http.stream("POST", path, json={**GREEDY, **body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
            else:
                assert line == "", f"unexpected SSE line {line!r}"
    return data


def _chunks(http: httpx.Client, body: dict[str, Any], path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
    data = _events(http, path, body)
    assert data[-1] == "[DONE]"
    assert "[DONE]" not in data[:-1]
    return [json.loads(item) for item in data[:-1]]


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


# ---- models -----------------------------------------------------------------------------------


def test_v1_models_lists_the_loaded_model(http: httpx.Client, reference_model_id: str) -> None:
    response = http.get("/v1/models")
    assert response.headers.get_list("server") == ["llm-conformance-reference"]  # reports name the server
    body = response.json()
    assert body["object"] == "list"
    assert reference_model_id == "smollm2-135m-instruct"
    [model] = body["data"]
    assert model["id"] == reference_model_id
    assert model["object"] == "model"
    assert isinstance(model["created"], int)
    assert isinstance(model["owned_by"], str)


def test_api_v0_models_has_the_lm_studio_fields(http: httpx.Client, reference_model_id: str) -> None:
    [model] = http.get("/api/v0/models").json()["data"]
    assert model["id"] == reference_model_id
    assert model["type"] == "llm"
    assert model["compatibility_type"] == "gguf"
    assert model["quantization"] == "Q4_1"
    assert model["state"] == "loaded"
    assert model["arch"] == "llama"
    assert model["max_context_length"] == 8192
    assert model["capabilities"] == ["tool_use"]
    assert isinstance(model["publisher"], str)


# ---- chat completions -------------------------------------------------------------------------


def test_chat_completion_shape_and_usage(http: httpx.Client, reference_model_id: str) -> None:
    body = _chat(http, model=reference_model_id, messages=HELLO, max_tokens=8)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == reference_model_id
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_contract_matches_the_non_streaming_answer(http: httpx.Client) -> None:
    request = {"messages": HELLO, "max_tokens": 12}
    chunks = _chunks(http, request)
    first = chunks[0]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks), "no usage without stream_options.include_usage"
    reasons = [chunk["choices"][0]["finish_reason"] for chunk in chunks]
    assert all(reason is None for reason in reasons[:-1])
    assert reasons[-1] in ("stop", "length")
    streamed = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    whole = _chat(http, **request)["choices"][0]
    assert streamed == whole["message"]["content"]
    assert reasons[-1] == whole["finish_reason"]


def test_include_usage_adds_one_final_usage_chunk(http: httpx.Client) -> None:
    request = {"messages": HELLO, "max_tokens": 10}
    chunks = _chunks(http, {**request, "stream_options": {"include_usage": True}})
    last = chunks[-1]
    assert last["choices"] == []
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert last["usage"] == _chat(http, **request)["usage"]
    completion = sum(1 for c in chunks[:-1] if c["choices"][0]["delta"].get("content"))
    assert last["usage"]["completion_tokens"] >= completion


def test_prompt_tokens_count_the_system_prompt_and_tool_definitions(http: httpx.Client) -> None:
    plain = _chat(http, messages=HELLO, max_tokens=1)["usage"]["prompt_tokens"]
    system = [{"role": "system", "content": "You are terse. " * 20}, *HELLO]
    with_system = _chat(http, messages=system, max_tokens=1)["usage"]["prompt_tokens"]
    tools = _chat(http, messages=HELLO, max_tokens=1, tools=[WEATHER], tool_choice="required")["usage"]
    assert with_system > plain + 40
    assert tools["prompt_tokens"] > plain + 40


def test_stop_string_and_max_completion_tokens(http: httpx.Client) -> None:
    counted = _chat(http, messages=HELLO, max_completion_tokens=3)
    assert counted["usage"]["completion_tokens"] <= 3
    text = _chat(http, messages=HELLO, max_tokens=12)["choices"][0]["message"]["content"]
    word = text.split()[1]
    stopped = _chat(http, messages=HELLO, max_tokens=12, stop=[word])["choices"][0]
    assert stopped["message"]["content"] == text[: text.index(word)]
    assert stopped["finish_reason"] == "stop"


def test_lm_studio_extras_are_accepted(http: httpx.Client) -> None:
    body = _chat(http, messages=HELLO, max_tokens=2, ttl=300, response_format={"type": "text"}, top_p=0.9)
    assert body["choices"][0]["message"]["content"] is not None
    assert http.post("/api/v0/chat/completions", json={"messages": HELLO, "max_tokens": 2}).status_code == 200


def test_draft_model_reports_real_speculative_counts(http: httpx.Client, reference_model_id: str) -> None:
    messages = [{"role": "user", "content": "Repeat exactly: one two three, one two three, one two three."}]
    body = _chat(http, messages=messages, max_tokens=24, draft_model=reference_model_id)
    stats = body["stats"]
    assert stats["draft_model"] == reference_model_id
    counts = [stats[f"{kind}_draft_tokens_count"] for kind in ("accepted", "rejected", "ignored")]
    assert stats["total_draft_tokens_count"] == sum(counts)
    assert stats["total_draft_tokens_count"] > 0
    assert stats["tokens_per_second"] > 0
    plain = _chat(http, messages=messages, max_tokens=24)
    assert "stats" not in plain
    assert body["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    streamed = _chunks(http, {"messages": messages, "max_tokens": 24, "draft_model": reference_model_id})
    assert streamed[-1]["stats"]["draft_model"] == reference_model_id


# ---- tools ------------------------------------------------------------------------------------


def test_seeded_answer_does_not_depend_on_what_ran_before(http: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 16}
    first = _chat(http, **body)["choices"][0]["message"]["content"]
    again = _chat(http, **body)["choices"][0]["message"]["content"]  # the whole prompt is cached now
    _chat(http, messages=[{"role": "user", "content": "Name a colour and a fruit."}], max_tokens=4)
    after_other = _chat(http, **body)["choices"][0]["message"]["content"]  # a shared prefix is cached
    assert first == again == after_other


def test_tool_call_cut_by_max_tokens_finishes_with_length(http: httpx.Client) -> None:
    for max_tokens in (5, 12):
        choice = _chat(http, messages=PARIS_TOKYO, tools=[WEATHER], tool_choice="required", max_tokens=max_tokens)[
            "choices"
        ][0]
        assert choice["finish_reason"] == "length"
        assert not (choice["message"]["content"] or "").startswith("[")  # no raw call JSON leaks into content


def _calls(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(call["function"]["name"], json.loads(call["function"]["arguments"])) for call in message["tool_calls"]]


def test_parallel_tool_calls_for_paris_and_tokyo(http: httpx.Client) -> None:
    [choice] = _chat(http, messages=PARIS_TOKYO, max_tokens=60, tools=[WEATHER], tool_choice="required")["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert _calls(choice["message"]) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]
    ids = [call["id"] for call in choice["message"]["tool_calls"]]
    assert all(call_id.startswith("call_") for call_id in ids)
    assert len(set(ids)) == 2
    assert all(call["type"] == "function" for call in choice["message"]["tool_calls"])


def test_streamed_tool_calls_rebuild_with_the_openai_sdk(http: httpx.Client, sdk: openai.OpenAI) -> None:
    request: dict[str, Any] = {"messages": PARIS_TOKYO, "max_tokens": 60, "tools": [WEATHER], "tool_choice": "required"}
    whole = _chat(http, **request)["choices"][0]["message"]
    with sdk.chat.completions.stream(
        model="smollm2-135m-instruct",
        messages=PARIS_TOKYO,
        max_tokens=60,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        seed=7,
    ) as stream:
        final = stream.get_final_completion()
    rebuilt = final.choices[0]
    assert rebuilt.finish_reason == "tool_calls"
    assert rebuilt.message.tool_calls is not None
    assert [(c.function.name, c.function.arguments) for c in rebuilt.message.tool_calls] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in whole["tool_calls"]
    ]
    chunks = _chunks(http, request)
    deltas = [call for chunk in chunks for call in chunk["choices"][0]["delta"].get("tool_calls") or []]
    for index in (0, 1):
        mine = [delta for delta in deltas if delta["index"] == index]
        assert mine[0]["id"].startswith("call_")
        assert mine[0]["type"] == "function"
        assert mine[0]["function"]["name"] == "get_weather"
        assert all("id" not in d and "name" not in d["function"] for d in mine[1:]), "name and id are sent once"
        assert len(mine) > 2, "arguments stream in several fragments as they are generated"


def test_defs_and_refs_in_tool_schemas_are_followed(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"location": {"$ref": "#/$defs/Location"}},
        "required": ["location"],
        "$defs": {
            "Location": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                "required": ["city", "country"],
            }
        },
    }
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": schema}}
    message = _chat(http, messages=PARIS_TOKYO, max_tokens=80, tools=[tool], tool_choice="required")["choices"][0][
        "message"
    ]
    for name, arguments in _calls(message):
        assert name == "get_weather"
        jsonschema.validate(arguments, schema)


def test_tool_without_parameters_gets_empty_arguments_streaming_too(http: httpx.Client) -> None:
    tool = {"type": "function", "function": {"name": "get_time", "description": "Current time"}}
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": "What time is it?"}],
        "max_tokens": 40,
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "parallel_tool_calls": False,
    }
    choice = _chat(http, **request)["choices"][0]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in choice["message"]["tool_calls"]] == [
        ("get_time", "{}")
    ]
    chunks = _chunks(http, request)
    arguments = "".join(
        call["function"].get("arguments", "")
        for chunk in chunks
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []
    )
    assert arguments == "{}"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls", "named tool_choice streams tool_calls too"


def test_parallel_tool_calls_false_allows_one_call(http: httpx.Client) -> None:
    message = _chat(
        http, messages=PARIS_TOKYO, max_tokens=60, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False
    )["choices"][0]["message"]
    assert len(message["tool_calls"]) == 1


def test_tool_choice_none_never_calls(http: httpx.Client) -> None:
    choice = _chat(http, messages=PARIS_TOKYO, max_tokens=10, tools=[WEATHER], tool_choice="none")["choices"][0]
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] in ("stop", "length")
    assert isinstance(choice["message"]["content"], str)


def test_tool_choice_auto_answers_text_or_valid_calls(http: httpx.Client) -> None:
    for messages in (PARIS_TOKYO, HELLO):
        choice = _chat(http, messages=messages, max_tokens=60, tools=[WEATHER])["choices"][0]
        if choice["message"].get("tool_calls"):
            assert choice["finish_reason"] == "tool_calls"
            assert choice["message"]["content"] is None
            assert all(name == "get_weather" for name, _ in _calls(choice["message"]))
        else:
            assert isinstance(choice["message"]["content"], str)
            assert not choice["message"]["content"].lstrip().startswith("{")


def test_tool_choice_auto_reaches_a_call_for_the_weather_question(http: httpx.Client) -> None:
    paris = [{"role": "user", "content": "What's the weather in Paris?"}]  # the model calls for this one
    request: dict[str, Any] = {"messages": paris, "max_tokens": 60, "tools": [WEATHER], "tool_choice": "auto"}
    whole = _chat(http, **request)["choices"][0]
    assert _calls(whole["message"])[0] == ("get_weather", {"city": "Paris"})
    chunks = _chunks(http, request)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == ""


def test_odd_tool_names_come_back_exactly(http: httpx.Client) -> None:
    tool = {"type": "function", "function": {**WEATHER["function"], "name": "Weather-Lookup.v2"}}
    message = _chat(http, messages=PARIS_TOKYO, max_tokens=60, tools=[tool], tool_choice="required")["choices"][0][
        "message"
    ]
    assert {call["function"]["name"] for call in message["tool_calls"]} == {"Weather-Lookup.v2"}


def test_tool_call_history_renders(http: httpx.Client) -> None:
    messages = [
        *PARIS_TOKYO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    assert _chat(http, messages=messages, max_tokens=5, tools=[WEATHER])["choices"][0]["finish_reason"]


# ---- response_format --------------------------------------------------------------------------


def test_json_schema_response_format_is_enforced(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "confidence": {"type": "integer"}},
        "required": ["answer", "confidence"],
    }
    content = _chat(
        http,
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}},
    )["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), schema)


def test_json_object_response_format_starts_an_object(http: httpx.Client) -> None:
    content = _chat(http, messages=HELLO, max_tokens=8, response_format={"type": "json_object"})["choices"][0][
        "message"
    ]["content"]
    assert content.lstrip().startswith("{")


# ---- completions and embeddings ---------------------------------------------------------------


def test_text_completions_stream_and_not(http: httpx.Client, reference_model_id: str) -> None:
    request = {"prompt": "Once upon a time", "max_tokens": 8}
    response = http.post("/v1/completions", json={**GREEDY, **request})
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["model"] == reference_model_id
    assert body["usage"]["completion_tokens"] <= 8
    chunks = _chunks(http, {**request, "stream_options": {"include_usage": True}}, path="/v1/completions")
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == body["choices"][0]["text"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == body["usage"]
    assert chunks[-2]["choices"][0]["finish_reason"] == body["choices"][0]["finish_reason"]


def test_embeddings_float_base64_and_batch(http: httpx.Client) -> None:
    floats = http.post("/v1/embeddings", json={"input": ["hello world", "goodbye"]}).json()
    assert floats["object"] == "list"
    assert [item["index"] for item in floats["data"]] == [0, 1]
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 576
    assert floats["usage"]["prompt_tokens"] > 0
    encoded = http.post("/v1/embeddings", json={"input": "hello world", "encoding_format": "base64"}).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(vector, abs=1e-6)


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"messages": HELLO, "model": "no-such-model"}, 404, "model_not_found", "model"),
        ({"messages": HELLO, "draft_model": "no-such-draft"}, 404, "model_not_found", "draft_model"),
        ({"messages": HELLO, "n": 2}, 400, None, "n"),
        ({"messages": "hello"}, 400, None, "messages"),
        ({"messages": []}, 400, None, "messages"),
        ({"messages": HELLO, "temperature": 5}, 400, None, "temperature"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, None, None),
        ({"messages": HELLO, "tool_choice": "required"}, 400, None, "tool_choice"),
        (
            {"messages": HELLO, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            400,
            None,
            "tool_choice",
        ),
        ({"messages": HELLO, "response_format": {"type": "xml"}}, 400, None, None),
    ],
)
def test_bad_chat_requests(
    http: httpx.Client, body: dict[str, Any], status: int, code: str | None, param: str | None
) -> None:
    error = _error(http.post("/v1/chat/completions", json=body), status)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_only_n_1_is_supported(http: httpx.Client) -> None:
    assert "only n=1" in _error(http.post("/v1/chat/completions", json={"messages": HELLO, "n": 2}), 400)["message"]


def test_malformed_json_is_400_not_422(http: httpx.Client) -> None:
    error = _error(
        http.post("/v1/chat/completions", content=b'{"messages": [', headers={"content-type": "application/json"}), 400
    )
    assert "not valid JSON" in error["message"]


def test_deeply_nested_json_is_400_not_500(http: httpx.Client) -> None:
    body = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = _error(http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"}), 400)
    assert "nests JSON too deeply" in error["message"]


def test_unknown_path_and_method(http: httpx.Client) -> None:
    assert _error(http.get("/v1/nothing-here"), 404)["code"] == "not_found"
    assert _error(http.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_context_length_exceeded_says_how_many_tokens(http: httpx.Client) -> None:
    long = [{"role": "user", "content": "word " * 3000}]
    error = _error(http.post("/v1/chat/completions", json={"messages": long}), 400)
    assert error["code"] == "context_length_exceeded"
    assert "2048" in error["message"]
    tokens = int(error["message"].split("has ")[1].split()[0])
    assert tokens > 2048
    assert _error(http.post("/v1/completions", json={"prompt": "word " * 3000}), 400)["code"] == (
        "context_length_exceeded"
    )


def test_api_key_is_required_when_set() -> None:
    with serve_in_thread(api_key="sekrit", threads=1) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert _error(client.get("/v1/models"), 401)["code"] == "invalid_api_key"
        assert _error(client.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        assert client.get("/v1/models", headers={"Authorization": "Bearer sekrit"}).status_code == 200
        assert client.get("/api/v0/models", headers={"x-api-key": "sekrit"}).status_code == 200
        no_key = client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 1})
        assert _error(no_key, 401)


# ---- failure and cancellation -----------------------------------------------------------------


class _Scripted(Generation):
    """A generation replaying fixed events, optionally failing after them."""

    def __init__(self, events: Sequence[Piece | Finished], fail: bool) -> None:
        self._script: AsyncIterator[Piece | Finished] = self._play(events, fail)

    async def _play(self, events: Sequence[Piece | Finished], fail: bool) -> AsyncIterator[Piece | Finished]:
        for event in events:
            await asyncio.sleep(0)
            yield event
        if fail:
            raise RuntimeError("secret internal detail /home/x/engine.py line 42")

    def cancel(self) -> None:
        pass

    async def __anext__(self) -> Piece | Finished:
        return await anext(self._script)


class _ScriptedBackend(EngineWrapper):
    def __init__(self, engine: Engine, events: Sequence[Piece | Finished], *, fail: bool = False) -> None:
        super().__init__(engine)
        self.events = events
        self.fail = fail

    def generate(self, request: GenerationRequest) -> Generation:
        return _Scripted(self.events, self.fail)


def _finished(completion_tokens: int) -> Finished:
    return Finished(FinishReason.STOP, prompt_tokens=5, completion_tokens=completion_tokens, seconds=0.1)


def test_an_error_mid_stream_is_an_error_event_then_the_end(reference_engine: Engine) -> None:
    backend = _ScriptedBackend(reference_engine, [Piece("Hel"), Piece("lo")], fail=True)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        data = _events(client, "/v1/chat/completions", {"messages": HELLO})
        payloads = [json.loads(item) for item in data]
        assert payloads[1]["choices"][0]["delta"]["content"] == "Hel"
        error = payloads[-1]["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "secret" not in error["message"]
        assert "[DONE]" not in data
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIError):
            for _ in sdk.chat.completions.create(model="smollm2-135m-instruct", messages=HELLO, stream=True):
                pass
        failed_whole = client.post("/v1/chat/completions", json={"messages": HELLO})
        assert "secret" not in _error(failed_whole, 500)["message"]


def test_reasoning_goes_to_reasoning_content(reference_engine: Engine) -> None:
    events: list[Piece | Finished] = [
        Piece("<thi"),
        Piece("nk>Two plus two"),
        Piece(" is four.</think>"),
        Piece("4"),
        _finished(6),
    ]
    backend = _ScriptedBackend(reference_engine, events)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        message = client.post("/v1/chat/completions", json={"messages": HELLO}).json()["choices"][0]["message"]
        assert message["reasoning_content"] == "Two plus two is four."
        assert message["content"] == "4"
        chunks = _chunks(client, {"messages": HELLO})
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
        assert "".join(d.get("reasoning_content", "") for d in deltas) == "Two plus two is four."
        assert "".join(d.get("content") or "" for d in deltas) == "4"


def test_client_disconnect_stops_generation_and_the_server_keeps_serving(
    http: httpx.Client, reference_engine: Engine
) -> None:
    engine = reference_engine
    with http.stream(
        "POST", "/v1/chat/completions", json={"messages": HELLO, "max_tokens": 1500, "stream": True, **GREEDY}
    ) as response:
        next(response.iter_lines())
    deadline = time.monotonic() + 5
    while not engine.idle and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.idle, "the worker stopped generating for the gone client"
    started = time.monotonic()
    assert _chat(http, messages=HELLO, max_tokens=2)["choices"]
    assert time.monotonic() - started < 10
