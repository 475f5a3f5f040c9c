"""The requests a check sent, as report evidence: method, URL, headers (the API key redacted), body and curl."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.exchange import Request

__all__ = ["API_KEY_VARIABLE", "REDACTED", "curl", "request_records"]

REDACTED = "[REDACTED]"
API_KEY_VARIABLE = "CONFORMANCE_API_KEY"
"""The environment variable a curl command reads the redacted key from: `export CONFORMANCE_API_KEY=...`."""

_MAX_BODY = 20_000
"""A request body longer than this (as JSON text) is cut in the report, and its curl command omitted."""
_HOP_HEADERS = frozenset({"content-length", "host", "connection", "accept-encoding", "user-agent"})
"""Headers curl sets itself: left out of the command."""


def request_records(requests: Iterable[Request], *, api_key: str | None) -> tuple[dict[str, Any], ...]:
    """One record per request: `method`, `url`, `headers`, `body` and `curl`.

    The run's API key is the one secret the suite holds: wherever it appears in a header it becomes
    `[REDACTED]`, and the curl command reads it from `$CONFORMANCE_API_KEY`. Tokens a check makes up
    (a wrong key for an authentication probe) are part of the probe and kept.
    """
    return tuple(_record(request, api_key) for request in requests)


def _record(request: Request, api_key: str | None) -> dict[str, Any]:
    headers = {name: _redact(value, api_key) for name, value in request.headers.items()}
    text = _body_text(request.body)
    record: dict[str, Any] = {"method": request.method, "url": request.url, "headers": headers}
    if text is not None and len(text) > _MAX_BODY:
        record["body"] = text[:_MAX_BODY] + f"... ({len(text)} chars)"
        record["curl"] = None
        return record
    record["body"] = request.body
    record["curl"] = curl(request.method, request.url, headers, text)
    return record


def curl(method: str, url: str, headers: Mapping[str, str], body: str | None) -> str:
    """A shell command that sends the same request; a redacted value is read from $CONFORMANCE_API_KEY."""
    parts = ["curl", "-sS"]
    if body is not None and _streams(body):
        parts.append("-N")
    if method != ("POST" if body is not None else "GET"):
        parts += ["-X", method]
    lines = [" ".join([*parts, shlex.quote(url)])]
    for name, value in headers.items():
        if name.lower() in _HOP_HEADERS:
            continue
        if REDACTED in value:
            quoted = re.sub(r'(["$`\\])', r"\\\1", f"{name}: {value}")
            lines.append('-H "' + quoted.replace(REDACTED, "${" + API_KEY_VARIABLE + "}") + '"')
        else:
            lines.append("-H " + shlex.quote(f"{name}: {value}"))
    if body is not None:
        lines.append("--data-binary " + shlex.quote(body))
    return " \\\n  ".join(lines)


def _redact(value: str, api_key: str | None) -> str:
    return value.replace(api_key, REDACTED) if api_key else value


def _body_text(body: Any) -> str | None:
    """The body as the client sent it: JSON values as json.dumps wrote them, text as is."""
    if body is None:
        return None
    return body if isinstance(body, str) else json.dumps(body)


def _streams(body: str) -> bool:
    try:
        return bool(json.loads(body).get("stream"))
    except (ValueError, AttributeError):
        return False
