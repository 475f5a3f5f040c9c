"""HAR 1.2 export of recorded (already redacted) exchanges, for browser devtools: SSE bodies as text, with timings;
and the way back, `python -m proxy.har IN.har OUT.jsonl`, for traffic saved from devtools."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from conformance.client import decode_body
from conformance.exchange import Exchange, Request, Response
from conformance.sse import parse_sse

__all__ = ["HarRecord", "HarTimings", "event_stream_text", "har_document", "read_har", "write_har"]

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


def read_har(document: Mapping[str, Any]) -> list[Exchange]:
    """The exchanges of a HAR document (devtools' "Save all as HAR", or `conformance record --har`); an event
    stream's text is parsed into events, all at `t_ms` 0 (HAR keeps no per-event time). ValueError when it is not
    a HAR document."""
    log = document.get("log")
    if not isinstance(log, Mapping) or not isinstance(log.get("entries"), list):
        raise ValueError("not a HAR document (no log.entries)")
    return [_exchange(entry) for entry in log["entries"] if isinstance(entry, Mapping)]


def _exchange(entry: Mapping[str, Any]) -> Exchange:
    request, response = entry.get("request") or {}, entry.get("response") or {}
    url = str(request.get("url", ""))
    parts = urlsplit(url)
    text = (request.get("postData") or {}).get("text")
    recorded = Request(
        method=str(request.get("method", "GET")),
        url=url,
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        headers=_header_map(request.get("headers")),
        body=decode_body(text.encode()) if isinstance(text, str) else None,
    )
    status = response.get("status")
    if not isinstance(status, int) or status <= 0:  # no answer: devtools shows status 0
        return Exchange(recorded, None, error=str(entry.get("_error") or "no response"), started_at=_started(entry))
    headers = _header_map(response.get("headers"))
    content = str((response.get("content") or {}).get("text") or "")
    if headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream":
        events, tail = parse_sse(content.encode())
        answer = Response(status, headers, events=tuple(events), tail=tail)
    else:
        answer = Response(status, headers, body=decode_body(content.encode()))
    time_ms = entry.get("time")
    return Exchange(
        recorded,
        answer,
        error=entry.get("_error"),
        started_at=_started(entry),
        duration_ms=float(time_ms) if isinstance(time_ms, int | float) else 0.0,
    )


def _started(entry: Mapping[str, Any]) -> str:
    return str(entry.get("startedDateTime") or "")


def _header_map(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in headers if isinstance(headers, list) else ():
        if isinstance(header, Mapping) and "name" in header:
            name = str(header["name"]).lower()
            if name.startswith(":"):  # HTTP/2 pseudo-headers
                continue
            value = str(header.get("value", ""))
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m proxy.har IN.har OUT.jsonl`: a cassette of the HAR's exchanges, redacted as the recorder does."""
    from proxy.cassette import CassetteWriter, Entry
    from proxy.redact import Redactor

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m proxy.har IN.har OUT.jsonl", file=sys.stderr)
        return 2
    source, target = Path(args[0]), Path(args[1])
    try:
        exchanges = read_har(json.loads(source.read_text(encoding="utf-8-sig")))
    except (OSError, ValueError, RecursionError) as exc:
        print(f"{source}: cannot read it as a HAR file ({exc})", file=sys.stderr)
        return 2
    writer = CassetteWriter(target)
    redactor = Redactor()
    try:
        for exchange in exchanges:
            writer.write(Entry(redactor.exchange(exchange)))
    except OSError as exc:
        print(f"{target}: cannot write the cassette ({exc.strerror or exc})", file=sys.stderr)
        return 2
    finally:
        writer.close()
    print(f"{len(exchanges)} exchange{'' if len(exchanges) == 1 else 's'} from {source} written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
