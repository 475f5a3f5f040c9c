"""ASGI app that answers requests with a cassette's recorded responses, SSE events at their recorded pace."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from conformance.client import decode_body
from conformance.exchange import Exchange, Request, Response
from proxy.pairing import describe, request_key
from proxy.redact import Redactor

__all__ = ["ReplayApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DROPPED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "date", "server"}
)
"""Not replayed: bodies are stored decoded, and the replaying server frames its own messages."""


class ReplayApp:
    """Serves the recorded exchange whose request key matches (method, path, body without volatile fields).

    Several recordings of the same request are served in turn, starting again after the last. `speed`
    scales the recorded pace (2 = twice as fast); 0 answers at once.
    """

    def __init__(self, exchanges: Sequence[Exchange], speed: float = 1.0, redactor: Redactor | None = None) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (no delay) or positive")
        self.speed = speed
        self._redactor = redactor or Redactor()
        self._recorded: dict[str, list[Exchange]] = defaultdict(list)
        for exchange in exchanges:
            self._recorded[request_key(exchange.request)].append(exchange)
        self._served: Counter[str] = Counter()
        self._catalogue = Counter(describe(e.request) for e in exchanges)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
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
            return
        exchange = recordings[self._served[key] % len(recordings)]
        self._served[key] += 1
        await self._serve(exchange, started, send)

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

    async def _serve(self, exchange: Exchange, started: float, send: Send) -> None:
        response = exchange.response
        if response is None:
            await _send_json(send, 502, _error(f"recorded failure: {exchange.error}", "proxy_error", "recorded_error"))
            return
        headers = _headers(response)
        if response.events is None:
            await self._wait(started, exchange.duration_ms)
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": _body_bytes(response)})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        for event in response.events:
            await self._wait(started, event.t_ms)
            await send({"type": "http.response.body", "body": (event.raw + "\n\n").encode(), "more_body": True})
        await send({"type": "http.response.body", "body": response.tail.encode()})

    async def _wait(self, started: float, at_ms: float) -> None:
        if self.speed == 0:
            return
        delay = started + at_ms / 1000 / self.speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


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
    """Anthropic clients read `{"type": "error", "error": {"type", "message"}}` on /v1/messages*."""
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
