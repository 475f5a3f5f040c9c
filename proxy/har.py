"""HAR 1.2 export of recorded (already redacted) exchanges, for browser devtools: SSE bodies as text, with timings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from conformance.exchange import Exchange, Response

__all__ = ["HarRecord", "HarTimings", "event_stream_text", "har_document", "write_har"]

_CREATOR = {"name": "llm-conformance proxy", "version": "1"}


@dataclass(frozen=True)
class HarTimings:
    """Milliseconds: sending the request, waiting for the response headers, receiving the body."""

    send: float
    wait: float
    receive: float


@dataclass(frozen=True)
class HarRecord:
    exchange: Exchange
    timings: HarTimings
    http_version: str = "HTTP/1.1"


def har_document(records: Sequence[HarRecord]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": _CREATOR, "pages": [], "entries": [_entry(r) for r in records]}}


def write_har(path: Path, records: Sequence[HarRecord]) -> None:
    path.write_text(json.dumps(har_document(records), indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def event_stream_text(response: Response) -> str:
    """The stream as the client received it: each event's raw text and its blank line, then any tail."""
    events = response.events or ()
    return "".join(e.raw + "\n\n" for e in events) + response.tail


def _entry(record: HarRecord) -> dict[str, Any]:
    exchange, timings = record.exchange, record.timings
    entry: dict[str, Any] = {
        "startedDateTime": exchange.started_at,
        "time": round(timings.send + timings.wait + timings.receive, 3),
        "request": _request(exchange, record.http_version),
        "response": _response(exchange.response, record.http_version),
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": round(timings.send, 3),
            "wait": round(timings.wait, 3),
            "receive": round(timings.receive, 3),
        },
    }
    if exchange.error:
        entry["_error"] = exchange.error
    return entry


def _request(exchange: Exchange, http_version: str) -> dict[str, Any]:
    request = exchange.request
    har: dict[str, Any] = {
        "method": request.method,
        "url": request.url,
        "httpVersion": http_version,
        "cookies": [],
        "headers": _headers(request.headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(request.url).query, True)],
        "headersSize": -1,
        "bodySize": -1,
    }
    if request.body is not None:
        text = request.body if isinstance(request.body, str) else json.dumps(request.body, ensure_ascii=False)
        har["postData"] = {"mimeType": request.headers.get("content-type", ""), "text": text}
        har["bodySize"] = len(text.encode())
    return har


def _response(response: Response | None, http_version: str) -> dict[str, Any]:
    if response is None:  # no answer at all: devtools shows status 0 as a failed request
        return {
            "status": 0,
            "statusText": "",
            "httpVersion": http_version,
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        }
    if response.events is not None:
        text = event_stream_text(response)
    elif response.body is None:
        text = ""
    elif isinstance(response.body, str):
        text = response.body
    else:
        text = json.dumps(response.body, ensure_ascii=False)
    size = len(text.encode())
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    return {
        "status": response.status,
        "statusText": reason,
        "httpVersion": http_version,
        "cookies": [],
        "headers": _headers(response.headers),
        "content": {"size": size, "mimeType": response.headers.get("content-type", ""), "text": text},
        "redirectURL": response.headers.get("location", ""),
        "headersSize": -1,
        "bodySize": size,
    }


def _headers(headers: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers.items()]
