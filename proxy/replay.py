"""ASGI app that answers requests with a cassette's recorded responses, SSE events at their recorded pace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from types import FrameType
from typing import Any

import uvicorn

from conformance.client import decode_body
from conformance.exchange import Exchange, Request, Response
from proxy.pairing import describe, request_key
from proxy.redact import Redactor

__all__ = ["MAX_WAIT_MS", "ReplayApp", "ReplayServer", "absurd_time"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DROPPED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "date"}
)
"""Not replayed: bodies are stored decoded, and the replaying server frames its own messages. `server` is kept, so
that a report against a replay names the server that was recorded."""

MAX_WAIT_MS = 24 * 3600 * 1000.0
"""Latest recorded time (`t_ms`, `duration_ms`) a replay waits for: a day. Later, negative or non-finite times are
not a recording's; `absurd_time` names them."""


def absurd_time(exchange: Exchange) -> str | None:
    """What is wrong with the recorded times of an exchange that replay would wait on, None when nothing is."""
    response = exchange.response
    if response is None:
        return None
    times = [("duration_ms", exchange.duration_ms)] if response.events is None else []
    times += [(f"events[{n}].t_ms", e.t_ms) for n, e in enumerate(response.events or ())]
    for name, value in times:
        if not math.isfinite(value) or not 0 <= value <= MAX_WAIT_MS:
            return f"{name} is {value!r}, not a time from 0 to {MAX_WAIT_MS:.0f} ms"
    return None


class ReplayApp:
    """Serves the recorded exchange whose request key matches (method, path, body without volatile fields).

    Several recordings of the same request are served in turn, starting again after the last. `speed`
    scales the recorded pace (2 = twice as fast); 0 answers at once.
    """

    def __init__(
        self,
        exchanges: Sequence[Exchange],
        speed: float = 1.0,
        redactor: Redactor | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError("speed must be 0 (no delay) or positive")
        self.speed = speed
        self._log = log or _ignore
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._redactor = redactor or Redactor()
        self._recorded: dict[str, list[Exchange]] = defaultdict(list)
        for exchange in exchanges:
            self._recorded[request_key(exchange.request)].append(exchange)
        self._served: Counter[str] = Counter()
        self._catalogue = Counter(describe(e.request) for e in exchanges)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self._closing_event()  # on the server's loop, so that `close` can reach it from the start
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = await _request(scope, receive)
        key = request_key(self._redactor.exchange(Exchange(request, None)).request)
        recordings = self._recorded.get(key)
        if not recordings:
            await _send_json(send, 404, _in_format_of(request, self._no_match(request)))
            self._log(f"{describe(request)} 404 · no recorded exchange matches")
            return
        turn = self._served[key] % len(recordings)
        exchange = recordings[turn]
        self._served[key] += 1
        what = f"recording {turn + 1} of {len(recordings)}"
        left = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, left))
        try:
            outcome = await self._serve(exchange, started, send, left)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        status = exchange.response.status if exchange.response is not None else 502
        self._log(f"{describe(request)} {status} · {what}" + (f" · {outcome}" if outcome else ""))

    def _no_match(self, request: Request) -> dict[str, Any]:
        wanted = describe(request)
        same_path = self._catalogue.get(wanted, 0)
        hint = f" ({same_path} recorded for {wanted} with another body)" if same_path else ""
        listing = ", ".join(f"{name} x{count}" for name, count in sorted(self._catalogue.items())[:10])
        more = " ..." if len(self._catalogue) > 10 else ""
        return _error(
            f"no recorded exchange matches {wanted}{hint}; the cassette holds: {listing or 'nothing'}{more}",
            "invalid_request_error",
            "no_recorded_exchange",
        )

    def close(self) -> None:
        """Stop the responses in progress (a replay server shutting down): streams end after their current event.
        Thread-safe, and safe to call from a signal handler."""
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)

    async def _serve(self, exchange: Exchange, started: float, send: Send, left: asyncio.Event) -> str:
        """Send the recorded response; returns what the log line adds (the events sent, a client that left)."""
        response = exchange.response
        if response is None:
            await _send_json(send, 502, _error(f"recorded failure: {exchange.error}", "proxy_error", "recorded_error"))
            return "a recorded failure"
        headers = _headers(response)
        if response.events is None:
            stop = await self._wait(started, exchange.duration_ms, left)
            if stop == _LEFT:
                return "the client left before the answer"
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": _body_bytes(response)})
            return ""
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        total = len(response.events)
        for sent, event in enumerate(response.events):
            stop = await self._wait(started, event.t_ms, left)
            if stop == _LEFT:
                return f"the client left after {sent} of {total} events"
            if stop == _CLOSING:
                await send({"type": "http.response.body", "body": b""})
                return f"cut by the shutdown after {sent} of {total} events"
            await send({"type": "http.response.body", "body": (event.raw + "\n\n").encode(), "more_body": True})
        await send({"type": "http.response.body", "body": response.tail.encode()})
        return f"{total} events"

    async def _wait(self, started: float, at_ms: float, left: asyncio.Event) -> str | None:
        """Wait until `at_ms` after `started` (scaled by the speed); `_LEFT` when the client left first, `_CLOSING`
        when the server began to shut down, else None."""
        closing = self._closing_event()
        if not left.is_set() and not closing.is_set() and self.speed > 0 and math.isfinite(at_ms):
            delay = started + min(max(at_ms, 0.0), MAX_WAIT_MS) / 1000 / self.speed - time.perf_counter()
            if delay > 0:
                waiters = [asyncio.create_task(left.wait()), asyncio.create_task(closing.wait())]
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        if left.is_set():
            return _LEFT
        return _CLOSING if closing.is_set() else None

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
        return self._closing


_LEFT = "left"
_CLOSING = "closing"


class ReplayServer(uvicorn.Server):
    """uvicorn's server, which on Ctrl+C also tells the replay to end its streams (they would otherwise run on to
    the end of their recorded pace, and hold the exit)."""

    def __init__(self, config: uvicorn.Config, app: ReplayApp) -> None:
        super().__init__(config)
        self._replay = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._replay.close()
        super().handle_exit(sig, frame)


async def _watch_disconnect(receive: Receive, left: asyncio.Event) -> None:
    """Once the request body is read, the next message is `http.disconnect`: the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass
    left.set()


def _ignore(line: str) -> None:
    pass


async def _request(scope: Scope, receive: Receive) -> Request:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        path += "?" + scope["query_string"].decode("latin-1")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get("host", "replay")
    return Request(
        method=scope["method"],
        url=f"{scope.get('scheme', 'http')}://{host}{path}",
        path=path,
        headers=headers,
        body=decode_body(body),
    )


def _headers(response: Response) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS]


def _body_bytes(response: Response) -> bytes:
    body = response.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False).encode()


def _error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _in_format_of(request: Request, error: dict[str, Any]) -> dict[str, Any]:
    """Anthropic clients read `{"type": "error", "error": {"type", "message"}}` on /v1/messages*, LM Studio's native
    clients `{"error": {"type", "message", "code"}}` on /api/v1/*."""
    if request.path.startswith("/api/v1/"):
        inner = error["error"]
        return {"error": {"type": "invalid_request", "message": inner["message"], "code": inner["code"]}}
    if not request.path.startswith("/v1/messages"):
        return error
    return {"type": "error", "error": {"type": "not_found_error", "message": error["error"]["message"]}}


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
