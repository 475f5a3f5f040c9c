"""The reference server's /v1/responses over a real socket, driven by the official openai SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import openai
import pytest

from conformance.cli import main
from conformance.mcp_server import DICE_OUTPUT
from reference_server.app import create_app
from reference_server.embedded import run_app
from reference_server.engine import Engine, Finished, FinishReason, Generation, GenerationRequest, Piece
from reference_server.responses_api import ResponseStore, StoredResponse
from tests.reference_server.conftest import EngineWrapper, named_events

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
GREEDY: dict[str, Any] = {"temperature": 0, "extra_body": {"seed": 7}}
RAW_GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}
HELLO = "Say hello in five words."
# Keys the Open Responses schema requires on every response object (research 4.5).
REQUIRED_KEYS = {
    "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model", "previous_response_id",
    "instructions", "output", "error", "tools", "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
    "presence_penalty", "frequency_penalty", "top_logprobs", "temperature", "reasoning", "usage", "max_output_tokens",
    "max_tool_calls", "store", "background", "service_tier", "safety_identifier", "prompt_cache_key", "metadata",
}  # fmt: skip


@pytest.fixture(scope="module")
def http(reference_base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reference_base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(reference_base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{reference_base_url}/v1", api_key="unused", max_retries=0)


def _raw_events(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of a streamed response, read from the socket."""
    return named_events(http, "/v1/responses", {**RAW_GREEDY, **body, "stream": True})


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_create_has_every_required_field_and_exact_usage(http: httpx.Client, reference_model_id: str) -> None:
    body = http.post("/v1/responses", json={"model": reference_model_id, "input": HELLO, **RAW_GREEDY}).json()
    assert set(body) >= REQUIRED_KEYS
    assert body["object"] == "response"
    assert body["id"].startswith("resp_")
    assert body["status"] == "completed"
    assert body["store"] is True
    [message] = body["output"]
    assert message["id"].startswith("msg_")
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["status"] == "completed"
    [part] = message["content"]
    assert part == {"type": "output_text", "text": part["text"], "annotations": [], "logprobs": []}
    chat = http.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": HELLO}], **RAW_GREEDY}
    ).json()
    assert part["text"] == chat["choices"][0]["message"]["content"], "the same pipeline answers both APIs"
    usage = body["usage"]
    assert usage["input_tokens"] == chat["usage"]["prompt_tokens"]
    assert usage["output_tokens"] == chat["usage"]["completion_tokens"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert 0 <= usage["input_tokens_details"]["cached_tokens"] <= usage["input_tokens"]


def test_sdk_create_instructions_and_items(sdk: openai.OpenAI, reference_model_id: str) -> None:
    items: Any = [
        {"role": "developer", "content": "Answer briefly."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi!"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": "Name a color."},
    ]
    response = sdk.responses.create(
        model=reference_model_id, input=items, instructions="You are terse.", max_output_tokens=24, **GREEDY
    )
    assert response.status in ("completed", "incomplete")
    assert response.instructions == "You are terse."
    assert response.output_text
    plain = sdk.responses.create(model=reference_model_id, input="Name a color.", max_output_tokens=24, **GREEDY)
    assert response.usage is not None
    assert plain.usage is not None
    assert response.usage.input_tokens > plain.usage.input_tokens


def test_stream_with_the_sdk_helper_equals_the_answer(
    sdk: openai.OpenAI, http: httpx.Client, reference_model_id: str
) -> None:
    with sdk.responses.stream(model=reference_model_id, input=HELLO, **GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[1].type == "response.in_progress"
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas
    whole = http.post("/v1/responses", json={"model": reference_model_id, "input": HELLO, **RAW_GREEDY}).json()
    assert final.output_text == whole["output"][0]["content"][0]["text"]
    assert final.usage is not None
    assert final.usage.output_tokens == whole["usage"]["output_tokens"]
    # every item id of the stream is the final response's
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    assert added == [item.id for item in final.output]
    assert {e.item_id for e in events if e.type == "response.output_text.delta"} == {final.output[0].id}


def test_raw_stream_event_names_order_and_indices(http: httpx.Client) -> None:
    events = _raw_events(http, {"input": HELLO, "max_output_tokens": 16})
    assert all(name == data["type"] for name, data in events)
    types = [data["type"] for _, data in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert types[-1] in ("response.completed", "response.incomplete")
    created = events[0][1]["response"]
    assert created["status"] == "in_progress"
    assert created["output"] == []
    assert created["usage"] is None
    final = events[-1][1]["response"]
    assert created["id"] == final["id"]
    for _, data in events[2:-1]:
        assert data["output_index"] == 0
        if "item_id" in data:
            assert data["item_id"] == final["output"][0]["id"]
    text = "".join(data["delta"] for _, data in events if data["type"] == "response.output_text.delta")
    assert text == final["output"][0]["content"][0]["text"]


def test_max_output_tokens_gives_incomplete(http: httpx.Client, sdk: openai.OpenAI) -> None:
    body = http.post(
        "/v1/responses", json={"input": "Write a long story about a dragon.", "max_output_tokens": 3}
    ).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert body["usage"]["output_tokens"] == 3
    events = _raw_events(http, {"input": "Write a long story about a dragon.", "max_output_tokens": 3})
    assert events[-1][1]["type"] == "response.incomplete"
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_function_tool_round_trip(sdk: openai.OpenAI, reference_model_id: str) -> None:
    first = sdk.responses.create(
        model=reference_model_id,
        input="What's the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        **GREEDY,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls, first.output
    call = calls[0]
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.call_id.startswith("call_")
    assert call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    assert call.status == "completed"
    second = sdk.responses.create(
        model=reference_model_id,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
        max_output_tokens=32,
        **GREEDY,
    )
    assert second.previous_response_id == first.id
    assert second.output_text
    question = sdk.responses.create(
        model=reference_model_id, input="What's the weather in Paris?", max_output_tokens=1, **GREEDY
    )
    assert second.usage is not None
    assert first.usage is not None
    assert question.usage is not None
    # the question and the call are in the second prompt (the tools are not: a client sends them again if needed)
    assert second.usage.input_tokens > question.usage.input_tokens + first.usage.output_tokens


def test_function_call_items_replayed_without_previous_response(http: httpx.Client) -> None:
    items = [
        {"role": "user", "content": "What's the weather in Paris and Tokyo?"},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Tokyo"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "Sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "Rain"}]},
    ]
    body = http.post("/v1/responses", json={"input": items, "tools": [WEATHER], "max_output_tokens": 8}).json()
    assert body["status"] in ("completed", "incomplete"), body


@pytest.mark.parametrize("parameters", [None, {}])
def test_tools_with_parameters_omitted_or_empty(http: httpx.Client, parameters: Any) -> None:
    tool: dict[str, Any] = {"type": "function", "name": "get_time", "description": "The current time"}
    if parameters is not None:
        tool["parameters"] = parameters
    body = http.post(
        "/v1/responses",
        json={
            "input": "What time is it?",
            "tools": [tool],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            **RAW_GREEDY,
        },
    ).json()
    [call] = [item for item in body["output"] if item["type"] == "function_call"]
    assert json.loads(call["arguments"]) == {}
    assert body["tools"][0]["name"] == "get_time"


def test_streamed_function_call_with_the_sdk(sdk: openai.OpenAI, reference_model_id: str) -> None:
    with sdk.responses.stream(
        model=reference_model_id,
        input="What's the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        **GREEDY,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    [call] = [item for item in final.output if item.type == "function_call"]
    assert done.item_id == call.id
    assert done.arguments == call.arguments
    [added] = [e for e in events if e.type == "response.output_item.added"]
    assert added.item.type == "function_call"
    assert added.item.call_id == call.call_id
    assert final.tool_choice.type == "function"  # type: ignore[union-attr]  # a named choice is echoed


def test_text_format_json_schema(http: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
    body = http.post(
        "/v1/responses",
        json={
            "input": "Name a color.",
            "text": {"format": {"type": "json_schema", "name": "color", "schema": schema, "strict": True}},
            **RAW_GREEDY,
        },
    ).json()
    assert "color" in json.loads(body["output"][0]["content"][0]["text"])
    assert body["text"]["format"]["type"] == "json_schema"
    missing = http.post("/v1/responses", json={"input": "x", "text": {"format": {"type": "json_schema", "name": "c"}}})
    assert "schema" in _error(missing, 400)["message"]


def test_chained_turns_stored_fetched_deleted(sdk: openai.OpenAI, http: httpx.Client, reference_model_id: str) -> None:
    first = sdk.responses.create(
        model=reference_model_id, input="My name is Ada.", instructions="Be brief.", max_output_tokens=16, **GREEDY
    )
    second = sdk.responses.create(
        model=reference_model_id,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=16,
        metadata={"turn": "2"},
        **GREEDY,
    )
    alone = sdk.responses.create(model=reference_model_id, input="What is my name?", max_output_tokens=16, **GREEDY)
    assert first.usage is not None
    assert second.usage is not None
    assert alone.usage is not None
    # the earlier input and output are in the prompt, the earlier instructions are not (as OpenAI does)
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    assert second.metadata == {"turn": "2"}
    fetched = sdk.responses.retrieve(second.id)
    assert fetched.id == second.id
    assert fetched.output_text == second.output_text
    sdk.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    assert _error(http.delete(f"/v1/responses/{second.id}"), 404)


def test_unknown_previous_response_and_store_false(http: httpx.Client, sdk: openai.OpenAI) -> None:
    unknown = http.post("/v1/responses", json={"input": "Hi", "previous_response_id": "resp_nope"})
    error = _error(unknown, 400)
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"
    assert "resp_nope" in error["message"]
    private = http.post("/v1/responses", json={"input": "Hi", "store": False, "max_output_tokens": 2}).json()
    assert private["store"] is False
    assert _error(http.get(f"/v1/responses/{private['id']}"), 404)
    chained = http.post("/v1/responses", json={"input": "Hi", "previous_response_id": private["id"]})
    assert _error(chained, 400)["code"] == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError, match="not found"):
        sdk.responses.create(model="x", input="Hi", previous_response_id="resp_nope")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA"}]}
                ]
            },
            "input",
            "text only",
        ),
        ({"input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "input", "input_text"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "function tools"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0]", "name"),
        ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "effort"),
        (
            {"input": "hi", "tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]},
            "tool_choice",
            "nope",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input", "item_reference"),
        ({}, "input", "input is required"),
        ({"input": "hi", "model": "gpt-unknown"}, "model", "gpt-unknown"),
    ],
)
def test_bad_requests_get_clear_openai_errors(http: httpx.Client, body: dict[str, Any], param: str, words: str) -> None:
    response = http.post("/v1/responses", json=body)
    error = _error(response, 404 if param == "model" else 400)
    assert error["param"] == param
    assert words in error["message"]


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_reasoning_effort_is_accepted_and_echoed(http: httpx.Client, effort: str) -> None:
    body = http.post(
        "/v1/responses", json={"input": "Hi", "reasoning": {"effort": effort}, "max_output_tokens": 1}
    ).json()
    assert body["reasoning"]["effort"] == effort


def test_store_evicts_the_oldest() -> None:
    store = ResponseStore(2)
    for name in ("resp_a", "resp_b", "resp_c"):
        store.put(StoredResponse(body={"id": name}, history=()))
    assert store.get("resp_a") is None
    assert store.get("resp_b") is not None
    assert store.get("resp_c") is not None
    assert len(store) == 2


def test_evicted_previous_response_is_not_found(reference_engine: Engine) -> None:
    with run_app(create_app(reference_engine, max_stored_responses=1)) as url, httpx.Client(base_url=url) as client:
        first = client.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 1}).json()
        client.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 1})
        again = client.post("/v1/responses", json={"input": "Hi", "previous_response_id": first["id"]})
        assert _error(again, 400)["code"] == "previous_response_not_found"


# ---- scripted generations: reasoning text and failures -------------------------------------------


class _Scripted(Generation):
    def __init__(self, events: Sequence[Piece | Finished], fail: bool) -> None:
        self._script = self._play(events, fail)

    async def _play(self, events: Sequence[Piece | Finished], fail: bool) -> AsyncIterator[Piece | Finished]:
        for event in events:
            await asyncio.sleep(0)
            yield event
        if fail:
            raise RuntimeError("secret internal detail")

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


def test_error_mid_stream_is_an_error_event_the_sdk_raises(reference_engine: Engine) -> None:
    backend = _ScriptedBackend(reference_engine, [Piece("Hel"), Piece("lo")], fail=True)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        events = _raw_events(client, {"input": HELLO})
        last = events[-1][1]
        assert last["type"] == "error"
        assert last["sequence_number"] == len(events) - 1
        assert "secret" not in last["message"]
        assert last["error"]["message"] == last["message"]
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        stream = sdk.responses.stream(model=reference_engine.info.id, input=HELLO)
        with pytest.raises(openai.APIError, match="failed while generating"), stream as events_seen:
            for _ in events_seen:
                pass
        failed_whole = client.post("/v1/responses", json={"input": HELLO})
        assert "secret" not in _error(failed_whole, 500)["message"]


def test_think_text_becomes_a_reasoning_item(reference_engine: Engine) -> None:
    finished = Finished(FinishReason.STOP, prompt_tokens=5, completion_tokens=6, seconds=0.1)
    events = [Piece("<think>Two plus"), Piece(" two is four.</think>"), Piece("4"), finished]
    backend = _ScriptedBackend(reference_engine, events)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = client.post("/v1/responses", json={"input": HELLO}).json()
        reasoning, message = body["output"]
        assert reasoning["type"] == "reasoning"
        assert reasoning["content"] == [{"type": "reasoning_text", "text": "Two plus two is four."}]
        assert message["content"][0]["text"] == "4"
        assert body["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
        streamed = _raw_events(client, {"input": HELLO})
        deltas = [d["delta"] for _, d in streamed if d["type"] == "response.reasoning_text.delta"]
        assert "".join(deltas) == "Two plus two is four."
        assert [d["output_index"] for _, d in streamed if d["type"] == "response.output_text.delta"] == [1]


def test_negative_store_bound_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--responses-store", "-1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--responses-store" in err
    assert "Traceback" not in err


# ---- remote MCP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mcp_app(reference_engine: Engine) -> Iterator[str]:
    with run_app(create_app(reference_engine, allow_remote_mcp=True)) as url:
        yield url


def _dice(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "dice", "server_url": url, **extra}


def test_remote_mcp_is_off_unless_allowed(http: httpx.Client, mcp_url: str) -> None:
    response = http.post("/v1/responses", json={"input": "Roll a die.", "tools": [_dice(mcp_url)]})
    error = _error(response, 400)
    assert error["code"] == "mcp_disabled"
    assert "--allow-remote-mcp" in error["message"]


def test_mcp_call_without_approval(mcp_app: str, mcp_url: str, reference_model_id: str) -> None:
    sdk = openai.OpenAI(base_url=f"{mcp_app}/v1", api_key="x", max_retries=0)
    tool: Any = _dice(mcp_url, require_approval="never", headers={"X-Secret": "s3cret"})
    response = sdk.responses.create(
        model=reference_model_id,
        input="Roll a 20-sided die.",
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=64,
        **GREEDY,
    )
    listing, call, *answer = response.output
    assert listing.type == "mcp_list_tools"
    assert [t.name for t in listing.tools] == ["roll_dice"]
    assert call.type == "mcp_call"
    assert call.name == "roll_dice"
    assert call.output is not None
    assert call.output.startswith(DICE_OUTPUT)
    assert call.error is None
    assert answer
    assert answer[0].type == "message"
    assert "s3cret" not in response.model_dump_json()
    with sdk.responses.stream(
        model=reference_model_id,
        input="Roll a 20-sided die.",
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=64,
        **GREEDY,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert "response.mcp_list_tools.completed" in types
    assert "response.mcp_call.completed" in types
    assert [e.item.id for e in events if e.type == "response.output_item.added"] == [i.id for i in final.output]


def test_mcp_call_waits_for_approval(mcp_app: str, mcp_url: str, reference_model_id: str) -> None:
    sdk = openai.OpenAI(base_url=f"{mcp_app}/v1", api_key="x", max_retries=0)
    tool: Any = _dice(mcp_url)
    asked = sdk.responses.create(
        model=reference_model_id,
        input="Roll a die.",
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=64,
        **GREEDY,
    )
    request = next(item for item in asked.output if item.type == "mcp_approval_request")
    assert not [item for item in asked.output if item.type == "mcp_call"]
    approved = sdk.responses.create(
        model=reference_model_id,
        previous_response_id=asked.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
        tools=[tool],
        max_output_tokens=16,
        **GREEDY,
    )
    call = next(item for item in approved.output if item.type == "mcp_call")
    assert call.approval_request_id == request.id
    assert call.output is not None
    assert DICE_OUTPUT in call.output
    assert approved.output[-1].type == "message"
    with pytest.raises(openai.BadRequestError, match="did not make"):
        sdk.responses.create(
            model=reference_model_id,
            input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_unknown", "approve": True}],
            tools=[tool],
        )


def test_unreachable_mcp_server_is_a_clear_424(mcp_app: str) -> None:
    with httpx.Client(base_url=mcp_app, timeout=60) as client:
        response = client.post(
            "/v1/responses", json={"input": "Roll a die.", "tools": [_dice("http://127.0.0.1:9/mcp")]}
        )
    error = _error(response, 424)
    assert error["type"] == "external_connector_error"
    assert "'dice'" in error["message"]
    assert "127.0.0.1:9" in error["message"]


REASON: dict[str, Any] = {
    "input": "What is 17 + 25? Answer with the number.",
    "max_output_tokens": 128,
    "reasoning": {"effort": "low"},
}
LOW_BUDGET = 32  # EFFORT_BUDGET["low"], below half of max_output_tokens (the answer completes)


def _item_shape(response: Any) -> list[tuple[str, list[str]]]:
    return [(item.type, [part.type for part in item.content or []]) for item in response.output]


def test_reasoning_effort_low_starts_with_a_reasoning_item(sdk: openai.OpenAI, reference_model_id: str) -> None:
    response = sdk.responses.create(model=reference_model_id, **REASON, **GREEDY)
    assert [item.type for item in response.output][:2] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None
    assert [part.type for part in reasoning.content] == ["reasoning_text"]
    assert reasoning.content[0].text.strip()
    assert "<" not in reasoning.content[0].text
    assert response.usage is not None
    assert 0 < response.usage.output_tokens_details.reasoning_tokens <= LOW_BUDGET
    assert response.usage.output_tokens > response.usage.output_tokens_details.reasoning_tokens
    assert response.reasoning is not None
    assert response.reasoning.effort == "low"
    # stored with its reasoning item, and the chain continues from it
    fetched = sdk.responses.retrieve(response.id)
    assert [item.type for item in fetched.output] == [item.type for item in response.output]
    follow = sdk.responses.create(
        model=reference_model_id, input="And plus one?", previous_response_id=response.id, max_output_tokens=16
    )
    assert follow.status in ("completed", "incomplete")


def test_reasoning_effort_streamed_equals_the_answer(sdk: openai.OpenAI, reference_model_id: str) -> None:
    whole = sdk.responses.create(model=reference_model_id, **REASON, **GREEDY)
    with sdk.responses.stream(model=reference_model_id, **REASON, **GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _item_shape(final) == _item_shape(whole)
    assert final.output[0].type == "reasoning"
    assert final.output[0].content is not None
    assert whole.output[0].type == "reasoning"
    assert whole.output[0].content is not None
    assert final.output[0].content[0].text == whole.output[0].content[0].text  # greedy, seeded
    assert final.output_text == whole.output_text
    assert final.usage is not None
    assert whole.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == whole.usage.output_tokens_details.reasoning_tokens
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    reasoning_deltas = [i for i, kind in enumerate(types) if kind == "response.reasoning_text.delta"]
    text_deltas = [i for i, kind in enumerate(types) if kind == "response.output_text.delta"]
    assert reasoning_deltas
    assert text_deltas
    assert max(reasoning_deltas) < min(text_deltas)
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == (
        final.output[0].content[0].text
    )
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    done = [e.item.id for e in events if e.type == "response.output_item.done"]
    assert added == done == [item.id for item in final.output]
    for e in events:
        if e.type in ("response.reasoning_text.delta", "response.reasoning_text.done"):
            assert (e.item_id, e.output_index, e.content_index) == (added[0], 0, 0)
        if e.type == "response.output_text.delta":
            assert (e.item_id, e.output_index) == (added[1], 1)


def test_no_reasoning_item_without_effort(sdk: openai.OpenAI, reference_model_id: str) -> None:
    plain = {key: value for key, value in REASON.items() if key != "reasoning"}
    extras: list[dict[str, Any]] = [{}, {"reasoning": {"effort": "none"}}]
    for extra in extras:
        response = sdk.responses.create(model=reference_model_id, **plain, **extra, **GREEDY)
        assert [item.type for item in response.output] == ["message"]
        assert response.usage is not None
        assert response.usage.output_tokens_details.reasoning_tokens == 0
