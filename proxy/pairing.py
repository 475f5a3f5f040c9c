"""Which recorded exchange answers which request: a key of method, path and the request body without volatile fields."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.exchange import Exchange, Request

__all__ = ["LOOPBACK_PORT", "VOLATILE_KEY", "Pairing", "describe", "pair", "request_key", "without_volatile"]

VOLATILE_KEY = re.compile(
    r"^(id|\w+_id|\w+_ids|created|created_at|completed_at|expires_at|timestamp|system_fingerprint|timings)$"
)
"""Field names whose values change from run to run: ids (a tool call id sent back in the next request, a
previous response id), creation times, fingerprints, llama.cpp's `timings`."""


LOOPBACK_PORT = re.compile(r"(\bhttps?://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])):\d+")
"""A loopback URL's port: a server a client starts for the exchange (the suite's MCP server, named by
`server_url` in an `ephemeral_mcp` integration or an `mcp` tool) listens on a new one each run."""


def without_volatile(value: Any) -> Any:
    """A JSON value with every volatile field dropped, at any depth, and loopback ports made generic."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if not VOLATILE_KEY.match(k)}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    if isinstance(value, str):
        return LOOPBACK_PORT.sub(r"\1:PORT", value)
    return value


def request_key(request: Request) -> str:
    """`METHOD PATH BODY`, the body as sorted compact JSON without volatile fields."""
    body = request.body
    text = "" if body is None else json.dumps(without_volatile(body), sort_keys=True, separators=(",", ":"))
    return f"{request.method.upper()} {request.path} {text}".rstrip()


def describe(request: Request) -> str:
    return f"{request.method.upper()} {request.path}"


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[tuple[int, int], ...]
    """(index in old, index in new) of exchanges with the same key, the n-th with the n-th."""
    only_old: tuple[int, ...]
    only_new: tuple[int, ...]


def pair(old: Sequence[Exchange], new: Sequence[Exchange]) -> Pairing:
    waiting: dict[str, list[int]] = defaultdict(list)
    for i, exchange in enumerate(new):
        waiting[request_key(exchange.request)].append(i)
    pairs: list[tuple[int, int]] = []
    only_old: list[int] = []
    for i, exchange in enumerate(old):
        candidates = waiting.get(request_key(exchange.request))
        if candidates:
            pairs.append((i, candidates.pop(0)))
        else:
            only_old.append(i)
    only_new = sorted(j for rest in waiting.values() for j in rest)
    return Pairing(tuple(pairs), tuple(only_old), tuple(only_new))
