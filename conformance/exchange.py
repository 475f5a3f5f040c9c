"""Recorded HTTP exchanges: what verdicts judge, what the proxy records and what cassettes hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CASSETTE_VERSION", "Exchange", "Request", "Response", "SSEEvent"]

CASSETTE_VERSION = 1


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event block as it arrived on the wire.

    `data` is the joined `data:` lines, or None when the block had no data field (a client drops such
    a block: comments, or a non-standard field like `error:`). `raw` is the block exactly as received,
    without its terminating blank line, so framing can be judged later.
    """

    t_ms: float
    event: str | None
    data: str | None
    raw: str

    def json(self) -> Any:
        """The data payload decoded as JSON; raises ValueError when it is not JSON."""
        if self.data is None:
            raise ValueError("event has no data field")
        return json.loads(self.data)

    def to_dict(self) -> dict[str, Any]:
        return {"t_ms": self.t_ms, "event": self.event, "data": self.data, "raw": self.raw}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SSEEvent:
        return cls(t_ms=float(d["t_ms"]), event=d.get("event"), data=d.get("data"), raw=d.get("raw", ""))


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    """JSON value when the body was JSON, else text, None when empty."""

    @property
    def json(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty dict (for request-conditional rules)."""
        return self.body if isinstance(self.body, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Request:
        return cls(
            method=d["method"],
            url=d.get("url", ""),
            path=d["path"],
            headers=d.get("headers") or {},
            body=d.get("body"),
        )


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    """JSON value when the body was JSON, else text; None for an event stream."""
    events: tuple[SSEEvent, ...] | None = None
    """The events of a `text/event-stream` response, None for any other response."""
    tail: str = ""
    """Text after the last complete event: an event the server never terminated."""

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "headers": dict(self.headers)}
        if self.events is None:
            d["body"] = self.body
        else:
            d["events"] = [e.to_dict() for e in self.events]
            if self.tail:
                d["tail"] = self.tail
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Response:
        events = d.get("events")
        return cls(
            status=int(d["status"]),
            headers=d.get("headers") or {},
            body=d.get("body"),
            events=None if events is None else tuple(SSEEvent.from_dict(e) for e in events),
            tail=d.get("tail", ""),
        )


@dataclass(frozen=True)
class Exchange:
    """One request and what came back: a response, or a transport `error` when none did."""

    request: Request
    response: Response | None
    error: str | None = None
    id: str = ""
    started_at: str = ""
    duration_ms: float = 0.0
    retried: str | None = None
    """Set when a first attempt failed before any response byte on a reused keep-alive connection: that
    error. The request was then sent again on a fresh connection, and the rest is the second attempt's."""

    @property
    def ok(self) -> bool:
        """A 2xx response came back."""
        return self.response is not None and 200 <= self.response.status < 300

    @property
    def endpoint(self) -> str:
        """The request path without query string, e.g. `/v1/chat/completions`."""
        return self.request.path.split("?", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The cassette line (version 1) without `findings`, which the recorder adds."""
        d: dict[str, Any] = {
            "version": CASSETTE_VERSION,
            "id": self.id,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "request": self.request.to_dict(),
        }
        if self.response is not None:
            d["response"] = self.response.to_dict()
        if self.error is not None:
            d["error"] = self.error
        if self.retried is not None:
            d["retried"] = self.retried
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Exchange:
        if d.get("version") != CASSETTE_VERSION:
            raise ValueError(f"unknown cassette version {d.get('version')!r} (this build reads {CASSETTE_VERSION})")
        response = d.get("response")
        return cls(
            request=Request.from_dict(d["request"]),
            response=None if response is None else Response.from_dict(response),
            error=d.get("error"),
            id=d.get("id", ""),
            started_at=d.get("started_at", ""),
            duration_ms=float(d.get("duration_ms", 0.0)),
            retried=d.get("retried"),
        )
