"""LM Studio's REST API v0: model rows for the whole catalog with live state, and the generation routes' extras."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_server.embedded import serve_in_thread
from reference_server.engine import Finished, FinishReason
from reference_server.lmstudio_v0 import model_row, stop_reason
from reference_server.model import ModelInfo
from reference_server.models import ModelEntry, Models

HELLO = [{"role": "user", "content": "Say hello."}]
GREEDY = {"temperature": 0, "seed": 7}
TIMEOUT_S = 120.0
ROW_KEYS = {
    "id",
    "object",
    "type",
    "publisher",
    "arch",
    "compatibility_type",
    "quantization",
    "state",
    "max_context_length",
}


@pytest.fixture(scope="module")
def jit_server(jit_models_dir: Path) -> Iterator[str]:
    with serve_in_thread(models_dir=jit_models_dir, threads=1, ctx=512) as url:
        yield url


def _rows(client: httpx.Client) -> dict[str, dict[str, Any]]:
    body = client.get("/api/v0/models").json()
    assert body["object"] == "list"
    return {row["id"]: row for row in body["data"]}


def test_every_catalog_entry_has_a_row_whose_state_follows_loads(jit_server: str, reference_model_id: str) -> None:
    with httpx.Client(base_url=jit_server, timeout=TIMEOUT_S) as client:
        rows = _rows(client)
        loaded, jit = rows[reference_model_id], rows["smollm2-jit"]
        assert set(loaded) == ROW_KEYS | {"loaded_context_length", "capabilities"}
        assert (loaded["state"], loaded["loaded_context_length"], loaded["capabilities"]) == (
            "loaded",
            512,
            ["tool_use"],
        )
        assert set(jit) == ROW_KEYS | {"capabilities"}  # no loaded_context_length while not loaded
        assert jit["state"] == "not-loaded"
        assert (jit["type"], jit["publisher"], jit["arch"]) == ("llm", "local", "llama")
        assert (jit["compatibility_type"], jit["quantization"], jit["max_context_length"]) == ("gguf", "Q4_1", 8192)
        answer = client.post(
            "/api/v0/completions", json={"model": "smollm2-jit", "prompt": "Hi", "max_tokens": 2, **GREEDY}
        )
        assert answer.status_code == 200, answer.text
        row = client.get("/api/v0/models/smollm2-jit").json()
        assert row["state"] == "loaded"
        assert row["loaded_context_length"] == 512
        assert client.get("/api/v0/models/local/smollm2-jit").json()["id"] == "smollm2-jit"
        missing = client.get("/api/v0/models/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"


def test_an_embedding_row_is_typed_embeddings_and_has_no_capabilities() -> None:
    info = ModelInfo(
        id="nomic-embed",
        path=Path("nomic.gguf"),
        arch="nomic-bert",
        publisher="nomic-ai",
        quantization="Q4_K_M",
        max_context_length=2048,
        created=0,
    )
    entry = ModelEntry(
        key="nomic-embed",
        path=info.path,
        type="embedding",
        info=info,
        size_bytes=1,
        display_name="Nomic",
        params_string=None,
    )
    row = model_row(Models(wheels=False), entry)
    assert row["type"] == "embeddings"
    assert "capabilities" not in row
    assert row["state"] == "not-loaded"


def _check_extras(body: dict[str, Any], *, stop: str) -> None:
    stats = body["stats"]
    assert set(stats) == {"tokens_per_second", "time_to_first_token", "generation_time", "stop_reason"}
    assert stats["stop_reason"] == stop
    for name in ("tokens_per_second", "time_to_first_token", "generation_time"):
        assert isinstance(stats[name], float | int), name
        assert stats[name] >= 0, name
    assert body["model_info"] == {"arch": "llama", "quant": "Q4_1", "format": "gguf", "context_length": 2048}
    runtime = body["runtime"]
    assert runtime["name"].startswith("llama.cpp-")
    assert runtime["supported_formats"] == ["gguf"]
    assert isinstance(runtime["version"], str)


@pytest.mark.parametrize(
    ("path", "body", "object_name"),
    [
        ("/api/v0/chat/completions", {"messages": HELLO}, "chat.completion"),
        ("/api/v0/completions", {"prompt": "Once upon a time"}, "text_completion"),
    ],
)
def test_v0_generation_answers_as_v1_plus_stats_model_info_and_runtime(
    reference_base_url: str, path: str, body: dict[str, Any], object_name: str
) -> None:
    request = {**body, "max_tokens": 3, **GREEDY}
    with httpx.Client(base_url=reference_base_url, timeout=TIMEOUT_S) as client:
        answer = client.post(path, json=request).json()
        assert answer["object"] == object_name
        assert answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 3
        _check_extras(answer, stop="maxPredictedTokensReached")
        assert answer["stats"]["tokens_per_second"] > 0
        v1 = client.post(path.replace("/api/v0", "/v1"), json=request).json()
        assert not {"stats", "model_info", "runtime"} & set(v1)
        assert v1["choices"] == answer["choices"]
        with client.stream("POST", path, json={**request, "stream": True}) as stream:
            data = [line[6:] for line in stream.iter_lines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        chunks = [json.loads(item) for item in data[:-1]]
        final = [chunk for chunk in chunks if chunk["choices"] and chunk["choices"][0]["finish_reason"]]
        assert len(final) == 1
        _check_extras(final[0], stop="maxPredictedTokensReached")
        assert all("stats" not in chunk for chunk in chunks if chunk is not final[0])


def test_a_v0_answer_that_ends_by_itself_says_eos_found(reference_base_url: str) -> None:
    request = {"messages": [{"role": "user", "content": "Reply with the word yes."}], "max_tokens": 60, **GREEDY}
    answer = httpx.post(f"{reference_base_url}/api/v0/chat/completions", json=request, timeout=TIMEOUT_S).json()
    assert answer["choices"][0]["finish_reason"] == "stop", answer["choices"][0]
    assert answer["stats"]["stop_reason"] == "eosFound"


def test_v0_embeddings_answer_as_v1_plus_stats_model_info_and_runtime(reference_base_url: str) -> None:
    with httpx.Client(base_url=reference_base_url, timeout=TIMEOUT_S) as client:
        v0 = client.post("/api/v0/embeddings", json={"input": "hello"}).json()
        v1 = client.post("/v1/embeddings", json={"input": "hello"}).json()
    extra = {key: v0.pop(key) for key in ("stats", "model_info", "runtime")}
    assert v0 == v1
    assert set(extra["stats"]) == {"tokens_per_second", "time_to_first_token", "generation_time", "stop_reason"}
    assert extra["stats"]["tokens_per_second"] > 0
    assert extra["model_info"]["format"] == "gguf"
    assert extra["runtime"]["supported_formats"] == ["gguf"]


@pytest.mark.parametrize(
    ("reason", "stop", "tools", "expected"),
    [
        (FinishReason.STOP, None, False, "eosFound"),
        (FinishReason.STOP, "\n", False, "stopStringFound"),
        (FinishReason.STOP, None, True, "toolCalls"),
        (FinishReason.LENGTH, None, True, "maxPredictedTokensReached"),
        (FinishReason.CANCELLED, None, False, "userStopped"),
    ],
)
def test_stop_reason_names_how_the_generation_ended(
    reason: FinishReason, stop: str | None, tools: bool, expected: str
) -> None:
    finished = Finished(reason, prompt_tokens=1, completion_tokens=1, seconds=0.1, stop_sequence=stop)
    assert stop_reason(finished, called_tools=tools) == expected
