"""Fixtures and test doubles shared by the reference server's tests."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from conformance.mcp_server import loopback_mcp
from reference_server.engine import Embeddings, Engine, Generation, GenerationRequest, _Job
from reference_server.model import ModelInfo
from reference_server.prompt import ChatTemplate


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """The suite's loopback MCP server (the mcp package, streamable HTTP) with one dice tool, `roll_dice`."""
    with loopback_mcp() as url:
        yield url


ENGINE_DEADLINE_S = 300  # generous: waits for the engine's worker, never for a duration

type InWorker = Callable[[Callable[[], Any]], Any]


@pytest.fixture
def in_worker(reference_engine: Engine) -> InWorker:
    """Runs a function in the session engine's worker thread (the only thread that may touch its llama.cpp
    context) and returns its result."""

    def run(work: Callable[[], Any]) -> Any:
        results: queue.SimpleQueue[object] = queue.SimpleQueue()
        reference_engine._submit(_Job(work=lambda job: results.put(work()), emit=results.put))
        result = results.get(timeout=ENGINE_DEADLINE_S)
        if isinstance(result, BaseException):
            raise result
        return result

    return run


class EngineWrapper:
    """The session's real engine behind the Backend surface (under another model's `info` when given);
    subclasses observe, slow down or script parts of it."""

    def __init__(self, engine: Engine, info: ModelInfo | None = None) -> None:
        self.engine = engine
        self.info: ModelInfo = engine.info if info is None else info
        self.template: ChatTemplate = engine.template

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    def tokenize(self, text: str) -> list[int]:
        return self.engine.tokenize(text)

    def generate(self, request: GenerationRequest) -> Generation:
        return self.engine.generate(request)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        return await self.engine.embed(texts)


def named_events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event of a streamed POST, read line by line from the socket."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
            else:
                assert line == "", f"unexpected SSE line {line!r}"
    return events
