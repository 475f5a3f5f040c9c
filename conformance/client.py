"""Sends a check's requests over real HTTP and records each as an Exchange, SSE events timed on arrival."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from conformance.check import RequestSpec, Target
from conformance.exchange import Exchange, Request, Response
from conformance.sse import SSEParser

__all__ = ["decode_body", "send"]


def send(client: httpx.Client, target: Target, spec: RequestSpec) -> Exchange:
    """Send `spec` to `target`; transport failures come back as an Exchange with `error` set."""
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

    def elapsed() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    try:
        with client.stream(spec.method, url, content=content, headers=headers) as reply:
            response_headers = {k.lower(): v for k, v in reply.headers.items()}
            if "text/event-stream" in reply.headers.get("content-type", ""):
                parser = SSEParser()
                events = []
                for chunk in reply.iter_raw():
                    events.extend(parser.feed(chunk, elapsed()))
                tail = parser.close(elapsed())
                response = Response(reply.status_code, response_headers, events=tuple(events), tail=tail)
            else:
                raw = reply.read()
                response = Response(reply.status_code, response_headers, body=decode_body(raw))
    except httpx.TransportError as exc:
        return Exchange(
            request,
            None,
            error=f"{type(exc).__name__}: {exc}",
            id=uuid.uuid4().hex,
            started_at=started_at,
            duration_ms=elapsed(),
        )
    return Exchange(request, response, id=uuid.uuid4().hex, started_at=started_at, duration_ms=elapsed())


def decode_body(raw: bytes) -> Any:
    """JSON when the body parses as JSON, else its text, None when empty."""
    if not raw:
        return None
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
