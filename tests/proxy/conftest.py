"""Fixtures of the proxy tests: fake live verdicts, and the official client pointed at a proxy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from conformance.exchange import Exchange
from conformance.findings import Finding
from reference_server.embedded import run_app

Validator = Callable[[Exchange], list[Finding]]


class FakeVerdicts:
    """Stands in for conformance.verdicts: records what it was given, returns what the test asks."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []
        self.result: Validator = lambda exchange: []

    def validate_exchange(self, exchange: Exchange) -> list[Finding]:
        self.seen.append(exchange)
        return self.result(exchange)


@pytest.fixture
def fake_verdicts(monkeypatch: pytest.MonkeyPatch) -> FakeVerdicts:
    """The real package stays importable (the catalog's coverage rules use its item ids); only the entry point
    the recorder and `check` call is replaced."""
    import conformance.verdicts

    fake = FakeVerdicts()
    monkeypatch.setattr(conformance.verdicts, "validate_exchange", fake.validate_exchange)
    return fake


def _sse_app_events(body: dict[str, object]) -> list[bytes]:
    words = ["Hello", " from", " the", " fake", " upstream"][: int(str(body.get("max_tokens", 5)))]
    chunks = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant"}}],
        }
    ]
    chunks += [
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]}
        for w in words
    ]
    chunks.append(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


async def fake_upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny OpenAI-ish upstream: streams chat completions with a pause between events, answers JSON otherwise."""
    if scope["type"] != "http":
        return
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    body = json.loads(raw) if raw else {}
    if scope["path"] == "/v1/chat/completions" and body.get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for event in _sse_app_events(body):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.sleep(0.005)
        await send({"type": "http.response.body", "body": b""})
        return
    payload = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}], "echo": body}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def serve_app(app: Any) -> AbstractContextManager[str]:
    """Uvicorn on a free port in a thread; yields the root URL."""
    return run_app(app)


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[str]:
    with serve_app(fake_upstream_app) as url:
        yield url
