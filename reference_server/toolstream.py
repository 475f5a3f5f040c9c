"""Turns the streamed JSON of tool calls into OpenAI tool-call deltas as it is generated (partial JSON via jiter)."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jiter

__all__ = ["ContentDelta", "ToolCallDelta", "ToolCallStream", "dump_arguments", "new_call_id"]

_ID_ALPHABET = string.ascii_letters + string.digits
# characters at the end of a partial serialization that may still change: closers, and an unfinished number
_UNSTABLE_TAIL = '"}] 0123456789.-+eE'


def new_call_id() -> str:
    """A tool call id like OpenAI's: call_ and 24 random letters and digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def dump_arguments(arguments: Any) -> str:
    """The arguments string of a tool call: compact JSON, non-ASCII kept."""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of one tool call: the first carries id and name, later ones only argument text."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ContentDelta:
    """Reply text, for an auto tool_choice where the model chose to answer instead of calling."""

    text: str


@dataclass
class _Call:
    id: str
    name: str
    sent: str = ""


def _parse(text: str, mode: str) -> Any:
    try:
        return jiter.from_json(text.encode(), partial_mode=mode)  # type: ignore[arg-type]  # mode is a Literal
    except ValueError:
        return None


class ToolCallStream:
    """Feed generated text; get deltas whose concatenated arguments equal the final arguments exactly.

    wrapped=False expects a JSON list of {"name", "arguments"} objects; wrapped=True expects
    {"tool_calls": [...]} or {"response": "text"} (the auto tool_choice format).
    """

    def __init__(self, *, wrapped: bool, new_id: Callable[[], str] = new_call_id) -> None:
        self._wrapped = wrapped
        self._new_id = new_id
        self._text = ""
        self._calls: list[_Call] = []
        self._content = ""

    @property
    def text(self) -> str:
        return self._text

    def _view(self, document: Any) -> tuple[list[Any], Any]:
        if self._wrapped:
            if not isinstance(document, dict):
                return [], None
            calls = document.get("tool_calls")
            return (calls if isinstance(calls, list) else []), document.get("response")
        return (document if isinstance(document, list) else []), None

    def feed(self, text: str) -> list[ToolCallDelta | ContentDelta]:
        self._text += text
        if not self._text.strip():
            return []
        return self._advance(complete=False)

    def finish(self) -> list[ToolCallDelta | ContentDelta]:
        """Flush at the end of generation: complete calls get the rest of their arguments."""
        complete = _parse(self._text, "off") is not None
        return self._advance(complete=complete)

    def _advance(self, *, complete: bool) -> list[ToolCallDelta | ContentDelta]:
        deltas: list[ToolCallDelta | ContentDelta] = []
        loose_calls, response = self._view(_parse(self._text, "trailing-strings"))
        strict_calls, _ = self._view(_parse(self._text, "on"))
        if isinstance(response, str) and response.startswith(self._content) and len(response) > len(self._content):
            deltas.append(ContentDelta(response[len(self._content) :]))
            self._content = response
        for index, call in enumerate(strict_calls):
            if index == len(self._calls) and isinstance(call, dict) and isinstance(call.get("name"), str):
                self._calls.append(_Call(id=self._new_id(), name=call["name"]))
                deltas.append(ToolCallDelta(index=index, arguments="", id=self._calls[-1].id, name=call["name"]))
        for index, state in enumerate(self._calls):
            if index >= len(loose_calls) or not isinstance(loose_calls[index], dict):
                continue
            arguments = loose_calls[index].get("arguments", {})
            full = dump_arguments(arguments if isinstance(arguments, dict) else {})
            closed = complete or index < len(loose_calls) - 1
            target = full if closed else full.rstrip(_UNSTABLE_TAIL)
            if target.startswith(state.sent) and len(target) > len(state.sent):
                deltas.append(ToolCallDelta(index=index, arguments=target[len(state.sent) :]))
                state.sent = target
        return deltas
