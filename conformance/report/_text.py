"""Evidence as plain text, the same in every report format: findings, errors and the requests to reproduce them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from conformance.findings import Finding
from conformance.report.reproduce import API_KEY_VARIABLE

__all__ = ["MAX_MESSAGE", "check_text", "clip", "evidence_text", "requests_text", "shown"]

_FINDING_FIELDS = frozenset(f.name for f in fields(Finding))
MAX_MESSAGE = 500
"""Messages are shown up to this many characters (a schema error can quote a whole embedding); report.json
keeps them whole."""


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text`, or its first `limit` characters and how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def check_text(evidence: Iterable[Mapping[str, Any]], requests: Iterable[Mapping[str, Any]]) -> str:
    """The evidence, then the requests sent: what JUnit, pytest and logs show for a failing check."""
    return "\n\n".join(part for part in (evidence_text(evidence), requests_text(requests)) if part)


def evidence_text(evidence: Iterable[Mapping[str, Any]]) -> str:
    """Each entry as Finding prints it (or `key: value` lines for other entries), blank line between."""
    return "\n\n".join(_entry_text(entry) for entry in evidence)


def requests_text(requests: Iterable[Mapping[str, Any]]) -> str:
    """Each request sent (method, URL, headers, body) and a curl command that sends it again."""
    blocks = []
    records = list(requests)
    for number, record in enumerate(records, 1):
        label = f"request {number} of {len(records)}" if len(records) > 1 else "request"
        lines = [f"{label}: {record['method']} {record['url']}"]
        lines.extend(f"  {name}: {value}" for name, value in record.get("headers", {}).items())
        if record.get("body") is not None:
            lines.append("  body: " + _json(record["body"]))
        if record.get("curl"):
            lines.append(f"reproduce (reads ${API_KEY_VARIABLE} when the key was redacted):")
            lines.append(record["curl"])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def shown(value: Any) -> Any:
    """An empty string as `""` (so it is not mistaken for nothing); other values unchanged."""
    return '""' if value == "" else value


def _entry_text(entry: Mapping[str, Any]) -> str:
    if set(entry) == _FINDING_FIELDS:
        shown_entry = {**entry, "expected": shown(entry["expected"]), "seen": shown(entry["seen"])}
        return str(Finding(**{**shown_entry, "message": clip(str(entry["message"]))}))
    lines = []
    for key, value in entry.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if key != "traceback":
            text = clip(text)
        if "\n" in text:
            lines.append(f"{key}:")
            lines.extend("  " + line for line in text.rstrip("\n").splitlines())
        else:
            lines.append(f"{key}: {text}")
    return "\n".join(lines)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
