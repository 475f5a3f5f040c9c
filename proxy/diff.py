"""Structural differences between two cassettes: responses and event sequences, volatile values ignored."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deepdiff import DeepDiff
from deepdiff.operator import BaseOperator

from conformance.exchange import Exchange, SSEEvent
from conformance.sse import field_lines
from proxy.pairing import describe, pair

__all__ = ["Change", "Difference", "diff_exchanges", "glob_regex"]

_VOLATILE_PATHS = (
    r"\['(?:id|created|created_at|completed_at|expires_at|timestamp|system_fingerprint|timings)'\]",
    r"\['[^']*_ids?'\]",
)
"""Ignored wherever they are (deepdiff paths): ids, creation times, fingerprints, llama.cpp timings."""

_GENERATED_PATHS = (
    r"\['(?:content|text|delta|reasoning_content|reasoning|refusal|arguments|partial_json|thinking|signature)'\]$",
    r"\['input'\]\[.+\]$",
    r"\['sequence_number'\]$",
    r"\['(?:tokens_per_second|time_to_first_token(?:_seconds)?|generation_time|(?:model_)?load_time_seconds)'\]$",
    r"\['progress'\]$",
    r"\['arguments'\]\[.+\]$",
)
"""Generated text and tool-argument values, Responses event numbers (they count the deltas), LM Studio's timings
(`stats`, `load_time_seconds`) and progress fractions: compared by type only (a string for a string, a number for
a number)."""


class Change(StrEnum):
    CHANGED = "changed"
    TYPE_CHANGED = "type_changed"
    ADDED = "added"
    REMOVED = "removed"
    ONLY_IN_OLD = "only_in_old"
    ONLY_IN_NEW = "only_in_new"


@dataclass(frozen=True)
class Difference:
    request: str
    """Which exchange: `POST /v1/chat/completions #3` (its line in OLD, or in NEW when only there)."""
    change: Change
    path: str = ""
    """Where in the response view: `status`, `body.choices[0].finish_reason`, `events[2].data.usage`."""
    old: Any = None
    new: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "change": str(self.change),
            "path": self.path,
            "old": self.old,
            "new": self.new,
        }

    def __str__(self) -> str:
        if self.change is Change.ONLY_IN_OLD:
            return f"{self.request}: only in OLD (no matching request in NEW)"
        if self.change is Change.ONLY_IN_NEW:
            return f"{self.request}: only in NEW (no matching request in OLD)"
        if self.change is Change.ADDED:
            return f"{self.request}: {self.path} added: {_short(self.new)}"
        if self.change is Change.REMOVED:
            return f"{self.request}: {self.path} removed: {_short(self.old)}"
        return f"{self.request}: {self.path} {self.change}: {_short(self.old)} -> {_short(self.new)}"


class _SameTypeIsEnough(BaseOperator):
    """Generated values differ run to run: equal when both are strings (or both numbers)."""

    def give_up_diffing(self, level: Any, diff_instance: Any) -> bool:
        both = (level.t1, level.t2)
        return all(isinstance(v, str) for v in both) or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in both
        )


def glob_regex(glob: str) -> str:
    """A dotted glob (`usage.*`, `choices[*].logprobs`, `**.model`, `*_tokens`) as a deepdiff path regex."""
    segments = re.sub(r"\[([^\]]*)\]", r".\1", glob).strip(".").split(".")
    out = []
    for segment in segments:
        if segment == "**":
            out.append(r"(?:\[[^\]]+\])*")
        elif segment == "*":
            out.append(r"\[[^\]]+\]")
        elif segment.isdigit():
            out.append(rf"\[{segment}\]")
        else:
            out.append(r"\['" + ".*".join(re.escape(p) for p in segment.split("*")).replace(".*", "[^']*") + r"'\]")
    return "".join(out)


def diff_exchanges(old: Sequence[Exchange], new: Sequence[Exchange], ignore: Sequence[str] = ()) -> list[Difference]:
    """Every structural difference: unpaired exchanges, then per pair what changed in status, body or events."""
    settings = _settings(ignore)
    pairing = pair(old, new)
    found: list[Difference] = []
    for i, j in pairing.pairs:
        label = f"{describe(old[i].request)} #{i + 1}"
        found.extend(_compare(label, _view(old[i], settings), _view(new[j], settings), settings))
    found.extend(Difference(f"{describe(old[i].request)} #{i + 1}", Change.ONLY_IN_OLD) for i in pairing.only_old)
    found.extend(Difference(f"{describe(new[j].request)} #{j + 1}", Change.ONLY_IN_NEW) for j in pairing.only_new)
    return found


def _settings(ignore: Sequence[str]) -> dict[str, Any]:
    return {
        "exclude_regex_paths": [*_VOLATILE_PATHS, *(glob_regex(g) for g in ignore)],
        "custom_operators": [_SameTypeIsEnough(regex_paths=list(_GENERATED_PATHS))],
        "verbose_level": 2,
        "threshold_to_diff_deeper": 0,  # always name the fields, never "the whole object changed"
        "view": "tree",
    }


def _view(exchange: Exchange, settings: dict[str, Any]) -> dict[str, Any]:
    """What is compared: status, media type, failure, and the body or the events (runs of alike events as one)."""
    response = exchange.response
    view: dict[str, Any] = {"failed": exchange.error is not None}
    if response is None:
        return view
    view["status"] = response.status
    view["content_type"] = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if response.events is None:
        view["body"] = response.body
        return view
    events: list[dict[str, Any]] = []
    for event in response.events:
        item = _event_view(event)
        if not events or DeepDiff(events[-1], item, **settings):
            events.append(item)
    view["events"] = events
    view["unterminated_tail"] = bool(response.tail)
    return view


def _event_view(event: SSEEvent) -> dict[str, Any]:
    data: Any = event.data
    if data is not None:
        with contextlib.suppress(ValueError):  # `[DONE]` and other text stay text
            data = json.loads(data)
    fields = sorted({name for name, _ in field_lines(event.raw.splitlines())})
    return {"event": event.event, "fields": fields, "data": data}


_KINDS = {
    "values_changed": Change.CHANGED,
    "type_changes": Change.TYPE_CHANGED,
    "dictionary_item_added": Change.ADDED,
    "iterable_item_added": Change.ADDED,
    "dictionary_item_removed": Change.REMOVED,
    "iterable_item_removed": Change.REMOVED,
}


def _compare(label: str, old: dict[str, Any], new: dict[str, Any], settings: dict[str, Any]) -> list[Difference]:
    tree = DeepDiff(old, new, **settings)
    found = []
    for report_type, levels in tree.items():
        change = _KINDS.get(report_type, Change.CHANGED)
        for level in levels:
            old_value = None if change is Change.ADDED else _plain(level.t1)
            new_value = None if change is Change.REMOVED else _plain(level.t2)
            found.append(Difference(label, change, _dotted(level.path(output_format="list")), old_value, new_value))
    return sorted(found, key=lambda d: d.path)


def _plain(value: Any) -> Any:
    """deepdiff's placeholder for a missing side is not JSON; it becomes None."""
    return value if isinstance(value, str | int | float | bool | list | dict | type(None)) else None


def _dotted(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
