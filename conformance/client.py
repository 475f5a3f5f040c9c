"""Sends a check's requests over real HTTP and records each as an Exchange, SSE events timed on arrival."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from conformance.check import RequestSpec, Target
from conformance.exchange import Exchange, Request, Response
from conformance.sse import SSEParser

__all__ = ["DEFAULT_EXCHANGE_TIMEOUT", "decode_body", "send"]

DEFAULT_EXCHANGE_TIMEOUT = 120.0
"""Seconds one exchange may take, first byte to last, whatever keeps the socket busy (`--exchange-timeout`)."""
_CONNECT_TIMEOUT = 10.0


class _Deadline(Exception):
    """The exchange ran past its wall-clock deadline."""


class _Attempt:
    """What the transport saw of one attempt: whether it opened a connection and got response headers."""

    def __init__(self) -> None:
        self.connected = False
        self.answered = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` extension: called for each step of the request on the connection."""
        if event.startswith(("connection.connect_tcp.", "connection.connect_unix_socket.")):
            self.connected = True
        elif event.endswith("receive_response_headers.complete"):
            self.answered = True


def send(
    client: httpx.Client,
    target: Target,
    spec: RequestSpec,
    *,
    timeout: float = DEFAULT_EXCHANGE_TIMEOUT,
) -> Exchange:
    """Send `spec` to `target`; transport failures come back as an Exchange with `error` set.

    A transport error before any response byte on a reused keep-alive connection (the server closed it
    without `Connection: close`) is retried once on a fresh connection; the exchange records it in
    `retried`. Past `timeout` seconds the exchange ends with `error` "timed out after N s".
    """
    exchange, attempt = _send_once(client, target, spec, timeout)
    if exchange.response is None and not attempt.connected and not attempt.answered and not _timed_out(exchange):
        retry, _ = _send_once(client, target, spec, timeout)
        return replace(retry, retried=exchange.error)
    return exchange


def _timed_out(exchange: Exchange) -> bool:
    return (exchange.error or "").startswith("timed out")


def _send_once(client: httpx.Client, target: Target, spec: RequestSpec, timeout: float) -> tuple[Exchange, _Attempt]:
    url = target.base_url.rstrip("/") + spec.path
    headers = {k.lower(): v for k, v in spec.headers.items()}
    if spec.auth and target.api_key and "authorization" not in headers:
        headers["authorization"] = f"Bearer {target.api_key}"
    content: bytes | None = None
    if spec.body is not None:
        content = spec.body if isinstance(spec.body, bytes) else json.dumps(spec.body).encode()
        headers.setdefault("content-type", "application/json")
    body = spec.body.decode(errors="replace") if isinstance(spec.body, bytes) else spec.body
    request = Request(method=spec.method, url=url, path=spec.path, headers=headers, body=body)
    started_at = datetime.now(UTC).isoformat()
    start = time.perf_counter()
    attempt = _Attempt()

    def elapsed() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    def check_deadline() -> None:
        if time.perf_counter() - start > timeout:
            raise _Deadline

    def failed(error: str) -> Exchange:
        return Exchange(request, None, error=error, id=uuid.uuid4().hex, started_at=started_at, duration_ms=elapsed())

    limits = httpx.Timeout(timeout, connect=min(_CONNECT_TIMEOUT, timeout))
    try:
        with client.stream(
            spec.method,
            url,
            content=content,
            headers=headers,
            timeout=limits,
            extensions={"trace": attempt.trace},
        ) as reply:
            attempt.answered = True
            response_headers = {k.lower(): v for k, v in reply.headers.items()}
            if "text/event-stream" in reply.headers.get("content-type", ""):
                parser = SSEParser()
                events = []
                for chunk in reply.iter_raw():
                    events.extend(parser.feed(chunk, elapsed()))
                    check_deadline()
                tail = parser.close(elapsed())
                response = Response(reply.status_code, response_headers, events=tuple(events), tail=tail)
            else:
                raw = bytearray()
                for chunk in reply.iter_bytes():
                    raw.extend(chunk)
                    check_deadline()
                response = Response(reply.status_code, response_headers, body=decode_body(bytes(raw)))
    except _Deadline:
        return failed(f"timed out after {timeout:g} s"), attempt
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.TimeoutException) and time.perf_counter() - start >= timeout:
            return failed(f"timed out after {timeout:g} s"), attempt
        return failed(f"{type(exc).__name__}: {exc}"), attempt
    return Exchange(request, response, id=uuid.uuid4().hex, started_at=started_at, duration_ms=elapsed()), attempt


def decode_body(raw: bytes) -> Any:
    """JSON when the body parses as JSON, else its text, None when empty."""
    if not raw:
        return None
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
