"""The answer an exchange carries, the same way for a plain body and a stream: text, tool calls, finish, usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.exchange import Exchange
from conformance.verdicts.context import Context, Endpoint, as_dict

__all__ = ["Answer", "ToolCall", "ToolDelta", "answer", "answer_of", "tool_deltas"]


@dataclass(frozen=True)
class ToolCall:
    index: int
    id: str | None
    name: str | None
    arguments: str
    fragments: int
    """How many deltas carried a piece of `arguments` (1 for a non-streamed call)."""
    chunk: int | None = None
    """Event index of the call's first delta (None when not streamed)."""
    pointer: str = ""
    """Where the call (or, streamed, its first delta) sits in the body or chunk."""


@dataclass(frozen=True)
class ToolDelta:
    """One entry of `delta.tool_calls` in a stream chunk."""

    chunk: int
    choice: int
    position: int
    """Position in the chunk's `choices` list (not the choice index)."""
    slot: int
    """Position in the delta's `tool_calls` list."""
    entry: Any

    @property
    def index(self) -> int | None:
        value = self.entry.get("index") if isinstance(self.entry, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def function(self) -> dict[str, Any]:
        function = self.entry.get("function") if isinstance(self.entry, dict) else None
        return function if isinstance(function, dict) else {}

    @property
    def pointer(self) -> str:
        return f"/choices/{self.position}/delta/tool_calls/{self.slot}"


@dataclass(frozen=True)
class Answer:
    """What choice 0 of a successful chat or text completion said."""

    streamed: bool
    content: str | None
    reasoning: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    finish_chunk: int | None
    usage: Mapping[str, Any] | None
    usage_chunk: int | None
    error: Any
    """The error object when the stream reported one."""


def answer_of(exchange: Exchange) -> Answer | None:
    return answer(Context(exchange))


def answer(ctx: Context) -> Answer | None:
    """Choice 0 of a 2xx chat or text completion, accumulated from its stream if it streamed; else None."""
    if "answer" not in ctx.memo:
        ctx.memo["answer"] = _answer(ctx)
    result: Answer | None = ctx.memo["answer"]
    return result


def _answer(ctx: Context) -> Answer | None:
    if not ctx.ok or ctx.endpoint not in (Endpoint.CHAT, Endpoint.COMPLETIONS) or ctx.response is None:
        return None
    if ctx.stream is not None:
        return _from_stream(ctx)
    body = ctx.body
    if not isinstance(body, dict):
        return None
    choice = _first_choice(body.get("choices"))
    message = as_dict(choice.get("message"))
    if ctx.endpoint is Endpoint.COMPLETIONS:
        content = choice.get("text") if isinstance(choice.get("text"), str) else None
    else:
        content = message.get("content") if isinstance(message.get("content"), str) else None
    calls = []
    raw_calls = message.get("tool_calls")
    for position, call in enumerate(raw_calls if isinstance(raw_calls, list) else []):
        if not isinstance(call, dict):
            continue
        function = as_dict(call.get("function"))
        arguments = function.get("arguments")
        calls.append(
            ToolCall(
                index=position,
                id=call.get("id") if isinstance(call.get("id"), str) else None,
                name=function.get("name") if isinstance(function.get("name"), str) else None,
                arguments=arguments if isinstance(arguments, str) else "",
                fragments=1 if arguments else 0,
                pointer=f"/choices/{_position(body.get('choices'))}/message/tool_calls/{position}",
            )
        )
    usage = body.get("usage")
    return Answer(
        streamed=False,
        content=content,
        reasoning=_reasoning(message),
        tool_calls=tuple(calls),
        finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
        finish_chunk=None,
        usage=usage if isinstance(usage, dict) else None,
        usage_chunk=None,
        error=None,
    )


def _from_stream(ctx: Context) -> Answer:
    stream = ctx.stream
    assert stream is not None
    content: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    finish_chunk: int | None = None
    usage: Mapping[str, Any] | None = None
    usage_chunk: int | None = None
    for i, chunk in stream.chunks:
        if isinstance(chunk.get("usage"), dict) and usage is None:
            usage, usage_chunk = chunk["usage"], i
    for i, _, choice in stream.choice_chunks():
        if choice.get("index", 0) != 0:
            continue
        delta = as_dict(choice.get("delta"))
        text = choice.get("text") if ctx.endpoint is Endpoint.COMPLETIONS else delta.get("content")
        if isinstance(text, str):
            content.append(text)
        piece = _reasoning(delta)
        if piece:
            reasoning.append(piece)
        if isinstance(choice.get("finish_reason"), str) and finish is None:
            finish, finish_chunk = choice["finish_reason"], i
    calls: dict[int, dict[str, Any]] = {}
    for td in tool_deltas(ctx):
        if td.choice != 0:
            continue
        key = td.index if td.index is not None else td.slot
        call = calls.setdefault(
            key, {"id": None, "name": None, "arguments": [], "chunk": td.chunk, "pointer": td.pointer}
        )
        entry = td.entry if isinstance(td.entry, dict) else {}
        if call["id"] is None and isinstance(entry.get("id"), str) and entry["id"]:
            call["id"] = entry["id"]
        name = td.function.get("name")
        if call["name"] is None and isinstance(name, str) and name:
            call["name"] = name
        arguments = td.function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call["arguments"].append(arguments)
    tool_calls = tuple(
        ToolCall(
            index=k,
            id=c["id"],
            name=c["name"],
            arguments="".join(c["arguments"]),
            fragments=len(c["arguments"]),
            chunk=c["chunk"],
            pointer=c["pointer"],
        )
        for k, c in sorted(calls.items())
    )
    error = stream.errors[0][1].get("error") if stream.errors else None
    return Answer(
        streamed=True,
        content="".join(content) if content else None,
        reasoning="".join(reasoning) if reasoning else None,
        tool_calls=tool_calls,
        finish_reason=finish,
        finish_chunk=finish_chunk,
        usage=usage,
        usage_chunk=usage_chunk,
        error=error,
    )


def tool_deltas(ctx: Context) -> list[ToolDelta]:
    """Every tool-call delta entry of a chat stream, in arrival order."""
    if ctx.stream is None or ctx.endpoint is not Endpoint.CHAT:
        return []
    out: list[ToolDelta] = []
    for i, position, choice in ctx.stream.choice_chunks():
        delta = choice.get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not isinstance(calls, list):
            continue
        index = choice.get("index", 0)
        out.extend(
            ToolDelta(chunk=i, choice=index if isinstance(index, int) else 0, position=position, slot=k, entry=e)
            for k, e in enumerate(calls)
        )
    return out


def _first_choice(choices: Any) -> dict[str, Any]:
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return choice
    return {}


def _position(choices: Any) -> int:
    if isinstance(choices, list):
        for k, choice in enumerate(choices):
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return k
    return 0


def _reasoning(part: Mapping[str, Any]) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value
    return None
