"""Presets: LM Studio preset files read from --presets-dir, named by `preset` in a request of any surface."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from conformance.cli import main
from reference_server.anthropic_api import MessagesRequest
from reference_server.embedded import serve_in_thread
from reference_server.engine import Engine
from reference_server.errors import ApiError
from reference_server.openai_api import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from reference_server.presets import Preset, PresetError, Presets, write_conformance_preset
from reference_server.responses_api import ResponsesRequest
from tests.conftest import TEST_THREADS

SYSTEM = "You are a pirate. Answer every question in the voice of an old sea captain, with nautical words."
COUNT = "Count from 1 to 50, separated by commas."


def _write(directory: Path, stem: str, fields: list[dict[str, Any]], **top: Any) -> Path:
    path = directory / f"{stem}.preset.json"
    path.write_text(json.dumps({"identifier": f"@local:{stem}", "name": stem, **top, "operation": {"fields": fields}}))
    return path


def _field(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


SHORT = [_field("llm.prediction.maxPredictedTokens", {"checked": True, "value": 3})]
PIRATE = [_field("llm.prediction.systemPrompt", SYSTEM)]


@pytest.fixture(scope="module")
def presets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("presets")
    _write(directory, "short", SHORT)
    _write(directory, "pirate", PIRATE, name="Pirate Captain")
    _write(directory, "unchecked", [_field("llm.prediction.maxPredictedTokens", {"checked": False, "value": 3})])
    _write(directory, "top-k-1", [_field("llm.prediction.topKSampling", 1)])
    _write(directory, "min-p-1", [_field("llm.prediction.minPSampling", {"checked": True, "value": 1.0})])
    _write(directory, "no-repeats", [_field("llm.prediction.repeatPenalty", {"checked": True, "value": 3.0})])
    _write(directory, "hot", [_field("llm.prediction.temperature", 2.0)])
    return directory


@pytest.fixture(scope="module")
def http(reference_engine: Engine, presets_dir: Path) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(threads=TEST_THREADS, presets_dir=presets_dir) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        yield client


# ---- reading preset files ------------------------------------------------------------------------------------


def test_a_preset_file_in_lm_studios_layout_is_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "all",
        [
            _field("llm.prediction.temperature", 0.3),
            _field("llm.prediction.topPSampling", {"checked": True, "value": 0.8}),
            _field("llm.prediction.topKSampling", 20),
            _field("llm.prediction.minPSampling", {"checked": True, "value": 0.1}),
            _field("llm.prediction.repeatPenalty", {"checked": True, "value": 1.1}),
            _field("llm.prediction.maxPredictedTokens", {"checked": True, "value": 7}),
            _field("llm.prediction.stopStrings", ["##"]),
            _field("llm.prediction.systemPrompt", "Be brief."),
            _field("llm.prediction.structured", {"type": "json", "jsonSchema": {"type": "object"}}),
            _field("llm.prediction.llama.cpuThreads", 4),  # not a prediction setting the server applies
        ],
        load={"fields": [{"key": "llm.load.contextLength", "value": 4096}]},
    )
    settings = Preset.read(path).settings
    assert (settings.temperature, settings.top_p, settings.top_k, settings.min_p) == (0.3, 0.8, 20, 0.1)
    assert (settings.repeat_penalty, settings.max_tokens, settings.stop) == (1.1, 7, ("##",))
    assert settings.system_prompt == "Be brief."
    assert settings.json_schema == {"type": "object"}


def test_unchecked_settings_unlimited_tokens_and_no_structure_are_left_alone(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "off",
        [
            _field("llm.prediction.topPSampling", {"checked": False, "value": 0.5}),
            _field("llm.prediction.maxPredictedTokens", {"checked": True, "value": -1}),
            _field("llm.prediction.structured", {"type": "none"}),
            _field("llm.prediction.stopStrings", []),
        ],
    )
    settings = Preset.read(path).settings
    assert (settings.top_p, settings.max_tokens, settings.json_schema, settings.stop) == (None, None, None, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON preset file"),
        ("[]", "must hold a JSON object"),
        ('{"operation": {"fields": {}}}', "operation.fields must be a list"),
        ('{"operation": {"fields": [{"value": 1}]}}', "operation.fields[0] must be an object"),
        (
            '{"operation": {"fields": [{"key": "llm.prediction.temperature", "value": "hot"}]}}',
            'llm.prediction.temperature must be a number, not "hot"',
        ),
        ('{"name": 3}', "`name` and `identifier` must be non-empty strings"),
    ],
)
def test_a_malformed_preset_file_is_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.preset.json"
    path.write_text(content)
    with pytest.raises(PresetError) as raised:
        Presets.load(tmp_path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_no_directory_means_no_presets_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    assert len(Presets.load(None)) == 0
    with pytest.raises(PresetError, match="does not exist"):
        Presets.load(tmp_path / "nowhere")


def test_two_presets_with_one_identifier_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a", [], identifier="@local:same")
    _write(tmp_path, "b", [], identifier="@local:same")
    with pytest.raises(PresetError, match="its identifier '@local:same' is also that of"):
        Presets.load(tmp_path)


def test_a_name_two_presets_share_must_be_given_as_an_identifier(tmp_path: Path) -> None:
    _write(tmp_path, "a", [], name="same")
    _write(tmp_path, "b", [], name="same")
    presets = Presets.load(tmp_path)
    assert presets.resolve("@local:b").path.name == "b.preset.json"
    with pytest.raises(ApiError, match="'same' is ambiguous: it names @local:a, @local:b"):
        presets.resolve("same")


def test_a_preset_is_named_by_identifier_name_or_file_name(presets_dir: Path) -> None:
    presets = Presets.load(presets_dir)
    pirate = presets.resolve("@local:pirate")
    assert presets.resolve("Pirate Captain") is pirate
    assert presets.resolve("pirate") is pirate


def test_an_unknown_preset_is_a_400_listing_the_known_ones(presets_dir: Path) -> None:
    with pytest.raises(ApiError) as raised:
        Presets.load(presets_dir).resolve("nope")
    error = raised.value
    assert (error.status, error.param, error.code) == (400, "preset", "preset_not_found")
    assert "'nope'" in error.message
    assert "@local:pirate (Pirate Captain)" in error.message
    with pytest.raises(ApiError, match=r"has no presets .*--presets-dir"):
        Presets().resolve("nope")


# ---- applying: each surface's fields, request fields first ---------------------------------------------------

ALL = [
    _field("llm.prediction.temperature", 0.5),
    _field("llm.prediction.topPSampling", 0.9),
    _field("llm.prediction.topKSampling", 20),
    _field("llm.prediction.maxPredictedTokens", {"checked": True, "value": 7}),
    _field("llm.prediction.stopStrings", ["##"]),
    _field("llm.prediction.systemPrompt", "Be brief."),
    _field("llm.prediction.structured", {"type": "json", "jsonSchema": {"type": "object"}}),
]


@pytest.fixture
def every(tmp_path: Path) -> Preset:
    return Preset.read(_write(tmp_path, "every", ALL))


def test_chat_gets_sampling_limit_stops_system_message_and_schema(every: Preset) -> None:
    body = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], "preset": "every"})
    out = every.apply(body)
    assert (out.temperature, out.top_p, out.max_tokens, out.stop) == (0.5, 0.9, 7, ["##"])
    assert [(m.role, m.content) for m in out.messages] == [("system", "Be brief."), ("user", "hi")]
    assert out.response_format is not None
    assert out.response_format.json_schema is not None
    assert out.response_format.json_schema.schema_ == {"type": "object"}


def test_request_fields_beat_the_preset(every: Preset) -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "messages": [{"role": "developer", "content": "Mine."}, {"role": "user", "content": "hi"}],
            "temperature": 0,
            "max_completion_tokens": 2,
            "stop": "END",
            "response_format": {"type": "text"},
        }
    )
    out = every.apply(body)
    assert (out.temperature, out.max_tokens, out.max_completion_tokens, out.stop) == (0, None, 2, "END")
    assert [m.role for m in out.messages] == ["developer", "user"]
    assert out.response_format is not None
    assert out.response_format.type == "text"
    assert out.top_p == 0.9  # what the request left out still comes from the preset


def test_completions_get_the_limit_and_stops_but_no_system_prompt(every: Preset) -> None:
    out = every.apply(CompletionRequest.model_validate({"prompt": "Once"}))
    assert (out.max_tokens, out.stop, out.temperature) == (7, ["##"], 0.5)
    assert "messages" not in out.model_dump()


def test_anthropic_messages_get_system_stop_sequences_and_top_k(every: Preset) -> None:
    body = MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    )
    out = every.apply(body)
    assert (out.system, out.stop_sequences, out.top_k, out.temperature, out.max_tokens) == (
        "Be brief.",
        ["##"],
        20,
        0.5,
        50,
    )
    own = MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 50,
            "messages": [{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}],
        }
    )
    assert every.apply(own).system is None  # a system entry in messages is the request's own system prompt


def test_responses_get_instructions_output_limit_and_text_format(every: Preset) -> None:
    out = every.apply(ResponsesRequest.model_validate({"input": "hi"}))
    assert (out.instructions, out.max_output_tokens, out.temperature) == ("Be brief.", 7, 0.5)
    assert out.text is not None
    assert out.text.format is not None
    assert out.text.format.schema_ == {"type": "object"}
    mine = every.apply(
        ResponsesRequest.model_validate({"input": "hi", "instructions": "Mine.", "max_output_tokens": 2})
    )
    assert (mine.instructions, mine.max_output_tokens) == ("Mine.", 2)


def test_a_native_chat_model_gets_its_field_names(every: Preset) -> None:
    """/api/v1/chat's request (system_prompt, max_output_tokens, sampling) is matched by field name."""
    from pydantic import BaseModel, ConfigDict

    class V1Chat(BaseModel):
        model_config = ConfigDict(extra="allow")
        input: str
        system_prompt: str | None = None
        max_output_tokens: int | None = None
        temperature: float | None = None
        top_k: int | None = None
        min_p: float | None = None
        repeat_penalty: float | None = None

    out = every.apply(V1Chat(input="hi", temperature=0.1))
    assert (out.system_prompt, out.max_output_tokens, out.temperature, out.top_k) == ("Be brief.", 7, 0.1, 20)


def test_a_setting_the_endpoint_refuses_is_a_400_naming_the_preset(tmp_path: Path) -> None:
    hot = Preset.read(_write(tmp_path, "hot", [_field("llm.prediction.temperature", 1.5)]))
    body = MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    )
    with pytest.raises(ApiError) as raised:
        hot.apply(body)  # Anthropic's temperature is at most 1
    assert raised.value.param == "preset"
    assert "'@local:hot'" in raised.value.message


def test_applying_keeps_everything_else_of_a_rich_request(tmp_path: Path) -> None:
    stops = Preset.read(_write(tmp_path, "stops", [_field("llm.prediction.stopStrings", ["##"])]))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    chat = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "vendor_extra": {"kept": True},
    }
    body = ChatCompletionRequest.model_validate(chat)
    out = stops.apply(body)
    assert out.stop == ["##"]
    assert out.model_dump(exclude={"stop"}) == body.model_dump(exclude={"stop"})
    blocks = {
        "model": "m",
        "max_tokens": 50,
        "thinking": {"type": "enabled", "budget_tokens": 10},
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        ],
    }
    message = MessagesRequest.model_validate(blocks)
    applied = stops.apply(message)
    assert applied.stop_sequences == ["##"]
    assert applied.model_dump(exclude={"stop_sequences"}) == message.model_dump(exclude={"stop_sequences"})


def test_embeddings_have_nothing_to_fill(every: Preset) -> None:
    body = EmbeddingRequest.model_validate({"input": "hi"})
    assert every.apply(body) is body


def test_a_preset_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="preset"):  # a 400 naming `preset` on the server
        ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], "preset": 3})


def test_the_conformance_preset_is_written_and_readable(tmp_path: Path) -> None:
    name = write_conformance_preset(tmp_path / "p")
    preset = Presets.load(tmp_path / "p").resolve(name)
    assert preset.settings.max_tokens == 3
    assert preset.settings.system_prompt


# ---- on the server: every surface, observable effects --------------------------------------------------------


def _chat(path: str = "/v1/chat/completions", **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": COUNT}], "temperature": 0, "seed": 1, **fields}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v0/chat/completions"])
def test_chat_max_predicted_tokens_cut_the_answer(http: httpx.Client, path: str) -> None:
    reply = http.post(path, json=_chat(preset="short"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["completion_tokens"] == 3
    assert body["choices"][0]["finish_reason"] == "length"
    own = http.post(path, json=_chat(preset="short", max_tokens=5)).json()
    assert own["usage"]["completion_tokens"] == 5  # the request's max_tokens beats the preset


def test_an_unchecked_setting_does_not_apply(http: httpx.Client) -> None:
    body = http.post("/v1/chat/completions", json=_chat(preset="unchecked", max_tokens=6)).json()
    assert body["usage"]["completion_tokens"] == 6


def test_chat_system_prompt_reaches_the_model_unless_the_request_has_one(http: httpx.Client) -> None:
    def prompt_tokens(**fields: Any) -> int:
        reply = http.post("/v1/chat/completions", json=_chat(max_tokens=1, **fields))
        assert reply.status_code == 200, reply.text
        tokens: int = reply.json()["usage"]["prompt_tokens"]
        return tokens

    as_system = prompt_tokens(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": COUNT}])
    assert prompt_tokens(preset="Pirate Captain") == as_system != prompt_tokens()
    own = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": COUNT}]
    assert prompt_tokens(messages=own, preset="pirate") == prompt_tokens(messages=own) < as_system


def _text(http: httpx.Client, **fields: Any) -> str:
    reply = http.post("/v1/chat/completions", json=_chat(max_tokens=20, **fields))
    assert reply.status_code == 200, reply.text
    text: str = reply.json()["choices"][0]["message"]["content"]
    return text


@pytest.mark.parametrize("preset", ["top-k-1", "min-p-1"])
def test_a_sampling_cut_to_one_token_makes_a_hot_request_greedy(http: httpx.Client, preset: str) -> None:
    """Unlike LM Studio 0.3.39 (lmstudio-bug-tracker#1389), a preset's sampling settings apply."""
    greedy = _text(http)
    assert _text(http, temperature=2.0, seed=7) != greedy  # the control: hot sampling wanders off
    assert _text(http, temperature=2.0, seed=7, preset=preset) == greedy


def test_a_preset_temperature_applies_and_the_requests_wins(http: httpx.Client) -> None:
    greedy = _text(http)
    body = {"messages": [{"role": "user", "content": COUNT}], "seed": 7, "max_tokens": 20, "preset": "hot"}
    hot = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    assert hot == _text(http, temperature=2.0, seed=7) != greedy
    assert _text(http, preset="hot") == greedy  # the request's temperature 0 beats the preset's 2.0


def test_a_preset_repeat_penalty_changes_a_repetitive_answer(http: httpx.Client) -> None:
    assert _text(http, preset="no-repeats") != _text(http)


def test_streamed_chat_gets_the_preset_too(http: httpx.Client) -> None:
    body = _chat(preset="short", stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: {")]
    assert events[-1]["usage"]["completion_tokens"] == 3


def test_completions_max_predicted_tokens(http: httpx.Client) -> None:
    body = {"prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": None, "preset": "@local:short"}
    body.pop("max_tokens")
    reply = http.post("/v1/completions", json=body).json()
    assert reply["usage"]["completion_tokens"] == 3
    assert reply["choices"][0]["finish_reason"] == "length"


def test_anthropic_system_prompt_and_its_own_system_first(http: httpx.Client, reference_model_id: str) -> None:
    def input_tokens(**fields: Any) -> int:
        body = {
            "model": reference_model_id,
            "max_tokens": 1,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Hi"}],
            **fields,
        }
        reply = http.post("/v1/messages", json=body)
        assert reply.status_code == 200, reply.text
        tokens: int = reply.json()["usage"]["input_tokens"]
        return tokens

    assert input_tokens(preset="pirate") == input_tokens(system=SYSTEM) != input_tokens()
    assert input_tokens(system="Be brief.", preset="pirate") == input_tokens(system="Be brief.")


def test_responses_output_limit_and_instructions(http: httpx.Client) -> None:
    base = {"input": COUNT, "temperature": 0, "seed": 1, "store": False}
    cut = http.post("/v1/responses", json={**base, "preset": "short"}).json()
    assert cut["usage"]["output_tokens"] == 3
    assert cut["status"] == "incomplete"

    def input_tokens(**fields: Any) -> int:
        reply = http.post("/v1/responses", json={**base, "max_output_tokens": 1, **fields})
        assert reply.status_code == 200, reply.text
        tokens: int = reply.json()["usage"]["input_tokens"]
        return tokens

    assert input_tokens(preset="pirate") == input_tokens(instructions=SYSTEM) != input_tokens()
    assert input_tokens(instructions="Be brief.", preset="pirate") == input_tokens(instructions="Be brief.")


def test_an_unknown_preset_is_refused_in_each_surfaces_envelope(http: httpx.Client, reference_model_id: str) -> None:
    chat = http.post("/v1/chat/completions", json=_chat(preset="no-such-preset"))
    assert chat.status_code == 400
    error = chat.json()["error"]
    assert error["param"] == "preset"
    assert "'no-such-preset'" in error["message"]
    assert "@local:short" in error["message"]
    messages = http.post(
        "/v1/messages",
        json={
            "model": reference_model_id,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "Hi"}],
            "preset": "x",
        },
    )
    assert messages.status_code == 400
    assert messages.json()["type"] == "error"
    assert "no preset named 'x'" in messages.json()["error"]["message"]
    for path, body in (
        ("/v1/responses", {"input": "Hi", "preset": "x"}),
        ("/v1/completions", {"prompt": "Hi", "preset": "x"}),
        ("/v1/embeddings", {"input": "Hi", "preset": "x"}),
    ):
        reply = http.post(path, json=body)
        assert (reply.status_code, reply.json()["error"]["param"]) == (400, "preset"), path


# ---- start-up ------------------------------------------------------------------------------------------------


def test_serve_refuses_a_malformed_preset_file_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.preset.json").write_text("{oops")
    assert main(["serve", "--presets-dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad.preset.json" in err
    assert "not a JSON preset file" in err
    assert "Traceback" not in err
