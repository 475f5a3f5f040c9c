"""What a verdict reports: a Finding per violation, raised together as a ConformanceFailure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ERROR", "WARNING", "ConformanceFailure", "Finding", "cap", "clip"]

ERROR = "error"
"""Breaks or misleads a real client, or contradicts the API's documented contract: fails the item."""
WARNING = "warning"
"""Deviates from OpenAI's behaviour where the documentation leaves room (seed determinism): never fails."""

_MAX_RAW = 600
_MAX_TEXT = 2000
"""Longest message, expected or seen value kept in a report (a jsonschema message can embed a whole body)."""


@dataclass(frozen=True)
class Finding:
    """One violation, with the evidence a maintainer needs to find it on the wire."""

    item: str
    """Changelog item id, e.g. `0.3.18/stream-include-usage`."""
    check: str
    """The rule or check that found it."""
    message: str
    endpoint: str | None = None
    exchange: int | None = None
    """Index of the offending exchange among those a check sent (None for a single exchange)."""
    chunk: int | None = None
    """Index of the offending SSE event in the response stream, None for a plain body."""
    raw: str | None = None
    """The offending event's raw text or an excerpt of the body."""
    pointer: str | None = None
    """JSON pointer into the body or the chunk's payload."""
    expected: Any = None
    seen: Any = None
    severity: str = ERROR
    """`error` or `warning`."""

    def __str__(self) -> str:
        label = "" if self.severity == ERROR else f"{self.severity}: "
        where = [f"[{self.item}] {self.check}: {label}{clip(self.message)}"]
        if self.endpoint:
            where.append(
                f"  endpoint: {self.endpoint}" + ("" if self.exchange is None else f" (request #{self.exchange})")
            )
        if self.chunk is not None:
            where.append(f"  chunk #{self.chunk}")
        if self.pointer is not None:
            where.append(f"  at: {self.pointer or '/'}")
        if self.expected is not None:
            where.append(f"  expected: {_short(self.expected)}")
        if self.seen is not None:
            where.append(f"  seen: {_short(self.seen)}")
        if self.raw is not None:
            where.append(f"  raw: {_clip(self.raw)}")
        return "\n".join(where)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "check": self.check,
            "message": clip(self.message),
            "endpoint": self.endpoint,
            "exchange": self.exchange,
            "chunk": self.chunk,
            "raw": None if self.raw is None else _clip(self.raw),
            "pointer": self.pointer,
            "expected": cap(self.expected),
            "seen": cap(self.seen),
            "severity": self.severity,
        }


class ConformanceFailure(AssertionError):
    """Raised by a check that found violations; pytest prints it natively, reports read `findings`."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("\n".join(str(f) for f in self.findings))


def clip(text: str, limit: int = _MAX_TEXT) -> str:
    """`text`, cut to `limit` characters with a note of its full length."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def cap(value: Any, limit: int = _MAX_TEXT) -> Any:
    """A JSON value as is when its JSON text is short, else that text clipped (evidence stays readable)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clip(value, limit)
    text = json.dumps(value, default=str)
    return value if len(text) <= limit else clip(text, limit)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_RAW else text[:_MAX_RAW] + f"... ({len(text)} chars)"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _clip(text)
