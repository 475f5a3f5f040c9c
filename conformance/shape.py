"""Normalised fingerprints of exchanges: what kinds of chunks and which keys came back, never ids, times or text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from conformance.exchange import Exchange, SSEEvent

__all__ = ["ENUM_KEYS", "chunk_kinds", "collapse", "exchange_shape", "shape", "structure"]

ENUM_KEYS = frozenset({"object", "role", "type", "finish_reason", "encoding_format"})
"""Keys whose string values are protocol words, kept verbatim; every other string becomes "str"."""


def shape(exchanges: Sequence[Exchange]) -> list[dict[str, Any]]:
    """The default fingerprint of a check: one entry per exchange (request line, status, body or stream shape)."""
    return [exchange_shape(e) for e in exchanges]


def exchange_shape(exchange: Exchange) -> dict[str, Any]:
    request = exchange.request
    body = request.json
    out: dict[str, Any] = {
        "request": f"{request.method} {exchange.endpoint}" + (" stream" if body.get("stream") else "")
    }
    response = exchange.response
    if response is None:
        out["error"] = "transport"
        return out
    out["status"] = response.status
    out["content_type"] = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if response.events is not None:
        out["stream"] = chunk_kinds(response.events, tail=response.tail)
    else:
        out["body"] = structure(response.body)
    return out


def structure(value: Any, key: str | None = None) -> Any:
    """Keys and value types of a JSON value, recursively; lists shrink to their distinct element shapes."""
    if isinstance(value, dict):
        return {k: structure(value[k], k) for k in sorted(value)}
    if isinstance(value, list):
        shapes: list[Any] = []
        for element in value:
            s = structure(element)
            if s not in shapes:
                shapes.append(s)
        return shapes
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if value is None:
        return "null"
    if isinstance(value, str) and key in ENUM_KEYS:
        return value
    return "str"


def chunk_kinds(events: Sequence[SSEEvent], *, tail: str = "") -> list[str]:
    """One word per event (e.g. "role+content", "tool_call_args[0]", "finish:stop", "usage", "[DONE]"),
    consecutive repeats collapsed into one."""
    kinds = [_kind(e) for e in events]
    if tail.strip():
        kinds.append("unterminated")
    return collapse(kinds)


def collapse(kinds: Iterable[str]) -> list[str]:
    """The kinds in order, each run of consecutive repeats as one."""
    out: list[str] = []
    for kind in kinds:
        if not out or out[-1] != kind:
            out.append(kind)
    return out


def _kind(event: SSEEvent) -> str:
    if event.data is None:
        return "no-data" if any(not line.startswith(":") for line in event.raw.splitlines()) else "comment"
    if event.data == "[DONE]":
        return "[DONE]"
    try:
        payload = json.loads(event.data)
    except ValueError:
        return "invalid-json"
    if not isinstance(payload, dict):
        return "invalid-json"
    if "error" in payload:
        return "error"
    parts: list[str] = []
    choices = payload.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict):
            parts.extend(_choice_kinds(choice))
    if payload.get("usage") is not None:
        parts.append("usage")
    if not parts:
        return "empty"
    return "+".join(dict.fromkeys(parts))


def _choice_kinds(choice: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    delta = choice.get("delta")
    delta = delta if isinstance(delta, dict) else {}
    if delta.get("role"):
        parts.append("role")
    for key in ("reasoning_content", "reasoning"):
        if isinstance(delta.get(key), str) and delta[key]:
            parts.append("reasoning")
    if isinstance(delta.get("content"), str) and delta["content"]:
        parts.append("content")
    if isinstance(choice.get("text"), str) and choice["text"]:
        parts.append("text")
    calls = delta.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        index = call.get("index", "?")
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        if call.get("id") or function.get("name"):
            parts.append(f"tool_call_start[{index}]")
        if function.get("arguments"):
            parts.append(f"tool_call_args[{index}]")
    if choice.get("finish_reason"):
        parts.append(f"finish:{choice['finish_reason']}")
    return parts
