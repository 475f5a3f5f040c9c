"""The shared request lifecycle: preparation off the event loop, and no work kept for a client that hung up."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from reference_server.app import create_app
from reference_server.embedded import run_app
from reference_server.engine import Embeddings, Engine, Finished, FinishReason, Generation, GenerationRequest, Piece
from reference_server.serving import combined
from tests.reference_server.conftest import EngineWrapper

GREEDY = {"temperature": 0, "seed": 7}
MARK = "PREPARE-SLOWLY"
DEADLINE_S = 120  # generous: these tests wait for events, never for a duration


class _BlockingTokenizer(EngineWrapper):
    """Tokenizing a prompt that holds MARK blocks until released: a preparation as slow as the test wants."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self.outcome = "not prepared"

    def tokenize(self, text: str) -> list[int]:
        if MARK in text:
            self.threads.append(threading.current_thread().name)
            self.entered.set()
            self.outcome = "released by the test" if self.release.wait(DEADLINE_S) else "never released"
        return self.engine.tokenize(text)


def _data_lines(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_preparing_a_big_request_does_not_stall_another_clients_stream(reference_engine: Engine) -> None:
    backend = _BlockingTokenizer(reference_engine)
    big: list[httpx.Response] = []
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=DEADLINE_S) as client:
        body = {"messages": [{"role": "user", "content": "Count from one to twenty."}], "max_tokens": 24, **GREEDY}
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("data: ")
            huge = {"messages": [{"role": "user", "content": MARK + " word" * 60_000}], "max_tokens": 1}
            sender = threading.Thread(target=lambda: big.append(client.post("/v1/chat/completions", json=huge)))
            sender.start()
            assert backend.entered.wait(DEADLINE_S), "the big request never reached its preparation"
            # The big request is now stuck in its preparation: the rest of the stream must still arrive.
            rest = [line[6:] for line in lines if line.startswith("data: ")]
            assert not backend.release.is_set()
            backend.release.set()
        sender.join(DEADLINE_S)
    assert backend.outcome == "released by the test", "the stream stalled while the big request was prepared"
    assert rest[-1] == "[DONE]"
    assert len(rest) >= 3, rest
    assert backend.threads
    assert backend.threads[0] != threading.main_thread().name
    assert big[0].status_code == 400
    assert big[0].json()["error"]["code"] == "context_length_exceeded"


class _Recorded(Generation):
    """A real generation whose events (and cancel calls) are written to a log."""

    def __init__(self, inner: Generation, log: list[object]) -> None:
        self._inner = inner
        self._log = log

    def cancel(self) -> None:
        self._log.append("cancel")
        self._inner.cancel()

    async def __anext__(self) -> Piece | Finished:
        event = await anext(self._inner)
        self._log.append(event)
        return event


class _Recording(EngineWrapper):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.logs: list[list[object]] = []

    def generate(self, request: GenerationRequest) -> Generation:
        log: list[object] = []
        self.logs.append(log)
        return _Recorded(self.engine.generate(request), log)


LONG_TOKENS = 1500
# A grammar that cannot end before 1000 integers: without a cancel the generation runs to its max_tokens.
LONG_BODY: Any = {
    "messages": [{"role": "user", "content": "List numbers."}],
    "max_tokens": LONG_TOKENS,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "array", "items": {"type": "integer"}, "minItems": 1000}},
    },
    **GREEDY,
}


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _finished(log: list[object]) -> Finished | None:
    return next((event for event in log if isinstance(event, Finished)), None)


def test_abandoned_non_streaming_requests_stop_and_free_the_queue(reference_engine: Engine) -> None:
    backend = _Recording(reference_engine)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=DEADLINE_S) as client:
        sockets = [_raw_post(url, "/v1/chat/completions", LONG_BODY) for _ in range(3)]
        _wait_for(lambda: len(backend.logs) == 3, "three queued generations")
        _wait_for(lambda: any(isinstance(event, Piece) for log in backend.logs for event in log), "a first token")
        for sock in sockets:  # three clients give up: one generating, two waiting in the queue
            sock.close()
        _wait_for(lambda: all(_finished(log) for log in backend.logs), "the abandoned generations to end")
        fresh = client.post("/v1/chat/completions", json={**LONG_BODY, "max_tokens": 2})
    assert fresh.status_code == 200, fresh.text
    abandoned = [_finished(log) for log in backend.logs[:3]]
    assert all(end is not None and end.reason is FinishReason.CANCELLED for end in abandoned), abandoned
    produced = sorted(end.completion_tokens for end in abandoned if end is not None)
    assert produced[:2] == [0, 0], "the two queued requests were dropped without generating"
    assert produced[2] < LONG_TOKENS, "the running one stopped at its client's disconnect, not at max_tokens"
    last = _finished(backend.logs[3])
    assert last is not None
    assert last.reason is FinishReason.LENGTH
    assert last.completion_tokens == 2


class _RecordingEmbeddings(_Recording):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.embeds: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        self.embeds.append("waiting")
        try:
            result = await self.engine.embed(texts)
        except asyncio.CancelledError:
            self.embeds.append("cancelled")
            raise
        self.embeds.append("done")
        return result


def _raw_post(url: str, path: str, body: Any) -> socket.socket:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(head.encode() + payload)
    return sock


def test_an_abandoned_embeddings_request_leaves_the_queue(reference_engine: Engine) -> None:
    backend = _RecordingEmbeddings(reference_engine)
    with run_app(create_app(backend)) as url, httpx.Client(base_url=url, timeout=DEADLINE_S) as client:
        generating = _raw_post(url, "/v1/chat/completions", LONG_BODY)
        _wait_for(lambda: any(isinstance(event, Piece) for log in backend.logs for event in log), "a first token")
        waiting = _raw_post(url, "/v1/embeddings", {"input": ["queued behind the generation"]})
        _wait_for(lambda: backend.embeds == ["waiting"], "the embeddings request to queue")
        waiting.close()
        _wait_for(lambda: backend.embeds == ["waiting", "cancelled"], "the embeddings request to be cancelled")
        generating.close()
        _wait_for(lambda: all(_finished(log) for log in backend.logs), "the generation to stop")
        assert client.post("/v1/embeddings", json={"input": "fresh"}).status_code == 200
    assert backend.embeds == ["waiting", "cancelled", "waiting", "done"]


def test_combined_counts_two_generations_as_one_with_the_second_reason() -> None:
    before = Finished(FinishReason.LENGTH, prompt_tokens=30, completion_tokens=5, seconds=0.5, cached_tokens=2)
    after = Finished(FinishReason.STOP, prompt_tokens=45, completion_tokens=7, seconds=0.25, cached_tokens=30)
    assert combined(before, after) == Finished(
        FinishReason.STOP, prompt_tokens=75, completion_tokens=12, seconds=0.75, cached_tokens=32
    )
