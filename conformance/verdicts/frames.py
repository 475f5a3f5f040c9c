"""The events of a stream whose data are JSON objects typed by a `type` field (Anthropic, LM Studio v1)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conformance.exchange import SSEEvent

__all__ = ["Frame", "frames_of"]


@dataclass(frozen=True)
class Frame:
    """One SSE event of a stream that carries data: its position among all events, `event:` name, payload."""

    chunk: int
    name: str | None
    payload: dict[str, Any] | None
    """The data decoded as a JSON object, None when it is not one (see `problem`)."""
    problem: str | None = None

    @property
    def type(self) -> str | None:
        value = None if self.payload is None else self.payload.get("type")
        return value if isinstance(value, str) else None


def frames_of(events: Iterable[SSEEvent] | None) -> list[Frame]:
    """Every event with a data field, in order (comments and data-less blocks left out)."""
    out: list[Frame] = []
    for i, event in enumerate(events or ()):
        if event.data is None:
            continue
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            out.append(Frame(i, event.event, None, f"not JSON ({exc})"))
            continue
        if isinstance(payload, dict):
            out.append(Frame(i, event.event, payload))
        else:
            out.append(Frame(i, event.event, None, f"a JSON {type(payload).__name__}, not an object"))
    return out
