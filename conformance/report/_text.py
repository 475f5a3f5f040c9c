"""Evidence as plain text, the same in every report format."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from conformance.findings import Finding

__all__ = ["evidence_text"]

_FINDING_FIELDS = frozenset(f.name for f in fields(Finding))


def evidence_text(evidence: Iterable[Mapping[str, Any]]) -> str:
    """Each entry as Finding prints it (or `key: value` lines for other entries), blank line between."""
    return "\n\n".join(_entry_text(entry) for entry in evidence)


def _entry_text(entry: Mapping[str, Any]) -> str:
    if set(entry) == _FINDING_FIELDS:
        return str(Finding(**entry))
    lines = []
    for key, value in entry.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if "\n" in text:
            lines.append(f"{key}:")
            lines.extend("  " + line for line in text.rstrip("\n").splitlines())
        else:
            lines.append(f"{key}: {text}")
    return "\n".join(lines)
