"""One Anthropic exchange as the rules read it: which endpoint, the request, the frames and blocks of a stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from conformance.exchange import Exchange
from conformance.verdicts.context import Context, Issue, as_dict, excerpt
from conformance.verdicts.frames import Frame, frames_of

__all__ = ["Block", "Frame", "MessagesView", "Surface", "surface_of", "view", "view_of"]


class Surface(StrEnum):
    """The Anthropic endpoints, whatever the prefix (`/v1`, or none behind a proxy) and query (`?beta=true`)."""

    MESSAGES = "messages"
    COUNT_TOKENS = "messages/count_tokens"


def surface_of(method: str, path: str) -> Surface | None:
    p = path.split("?", 1)[0].rstrip("/")
    if method.upper() != "POST":
        return None
    if p.endswith("/messages/count_tokens") or p == "messages/count_tokens":
        return Surface.COUNT_TOKENS
    if p.endswith("/messages") or p == "messages":
        return Surface.MESSAGES
    return None


@dataclass
class Block:
    """A content block as the frames built it (lenient: what a careful client would make of them)."""

    index: int
    type: str | None
    start: int
    """Event index of its content_block_start."""
    block: dict[str, Any]
    stop: int | None = None
    deltas: list[int] = field(default_factory=list)
    """Event indexes of its deltas."""
    text: str = ""
    """Concatenated text, thinking or partial_json, by the block's type."""
    signature: str | None = None
    signature_chunk: int | None = None


class MessagesView:
    """The parts of one exchange the Anthropic rules share, computed once."""

    def __init__(self, exchange: Exchange, surface: Surface) -> None:
        self.exchange = exchange
        self.surface = surface
        self.request: dict[str, Any] = exchange.request.json
        self.response = exchange.response
        self.memo: dict[str, Any] = {}
        """Views other modules derive once (the SDK's replay)."""

    @property
    def ok(self) -> bool:
        return self.exchange.ok

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status

    @property
    def body(self) -> Any:
        return None if self.response is None else self.response.body

    @property
    def streamed(self) -> bool:
        return self.response is not None and self.response.events is not None

    @cached_property
    def frames(self) -> list[Frame]:
        """Every event with a data field, in order (comments and data-less blocks left out)."""
        return frames_of(None if self.response is None else self.response.events)

    @cached_property
    def blocks(self) -> list[Block]:
        """The content blocks of a stream, in start order, built from their frames."""
        blocks: list[Block] = []
        by_index: dict[int, Block] = {}
        for frame in self.frames:
            payload = frame.payload or {}
            index = payload.get("index")
            if frame.type == "content_block_start" and isinstance(index, int):
                start = as_dict(payload.get("content_block"))
                kind = start.get("type")
                block = Block(index, kind if isinstance(kind, str) else None, frame.chunk, start)
                blocks.append(block)
                by_index.setdefault(index, block)
            elif frame.type in ("content_block_delta", "content_block_stop") and index in by_index:
                block = by_index[index]
                if frame.type == "content_block_stop":
                    block.stop = frame.chunk if block.stop is None else block.stop
                    continue
                block.deltas.append(frame.chunk)
                delta = as_dict(payload.get("delta"))
                for key in ("text", "partial_json", "thinking"):
                    if isinstance(delta.get(key), str):
                        block.text += delta[key]
                if isinstance(delta.get("signature"), str):
                    block.signature, block.signature_chunk = delta["signature"], frame.chunk
        return blocks

    def first(self, event_type: str) -> Frame | None:
        return next((f for f in self.frames if f.type == event_type), None)

    def last(self, event_type: str) -> Frame | None:
        return next((f for f in reversed(self.frames) if f.type == event_type), None)

    @cached_property
    def message(self) -> dict[str, Any] | None:
        """The answer as a message: the plain body, or the stream folded (start, blocks, last message_delta)."""
        if not self.ok:
            return None
        if not self.streamed:
            return self.body if isinstance(self.body, dict) else None
        start = self.first("message_start")
        if start is None or start.payload is None:
            return None
        message = dict(as_dict(start.payload.get("message")))
        message["content"] = [_final(block) for block in self.blocks]
        delta = self.last("message_delta")
        if delta is not None and delta.payload is not None:
            message.update(as_dict(delta.payload.get("delta")))
            usage = dict(as_dict(message.get("usage")))
            usage.update(as_dict(delta.payload.get("usage")))
            message["usage"] = usage
        return message

    def content(self) -> list[dict[str, Any]]:
        message = self.message or {}
        content = message.get("content")
        return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []

    def blocks_of(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.content() if b.get("type") == kind]

    @cached_property
    def tools(self) -> dict[str, Any]:
        """The request's tools: name -> input_schema."""
        tools = self.request.get("tools")
        out: dict[str, Any] = {}
        for tool in tools if isinstance(tools, list) else []:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                out[tool["name"]] = tool.get("input_schema")
        return out

    @property
    def tool_choice(self) -> dict[str, Any]:
        return as_dict(self.request.get("tool_choice"))

    def raw_of(self, issue: Issue) -> str | None:
        if issue.raw is not None:
            return issue.raw
        events = None if self.response is None else self.response.events
        if issue.chunk is not None and events is not None and 0 <= issue.chunk < len(events):
            return events[issue.chunk].raw
        return excerpt(self.body)


def _final(block: Block) -> dict[str, Any]:
    out = dict(block.block)
    if block.type == "text":
        out["text"] = str(out.get("text") or "") + block.text
    elif block.type == "thinking":
        out["thinking"] = str(out.get("thinking") or "") + block.text
        if block.signature is not None:
            out["signature"] = block.signature
    elif block.type == "tool_use" and block.text:
        try:
            out["input"] = json.loads(block.text)
        except ValueError:
            out["input"] = block.text
    return out


def view_of(exchange: Exchange) -> MessagesView | None:
    """The view of an exchange with an Anthropic endpoint, else None."""
    surface = surface_of(exchange.request.method, exchange.endpoint)
    return None if surface is None else MessagesView(exchange, surface)


def view(ctx: Context) -> MessagesView | None:
    """The view of a context's exchange, made once and kept in its memo."""
    if "anthropic" not in ctx.memo:
        ctx.memo["anthropic"] = view_of(ctx.exchange)
    found: MessagesView | None = ctx.memo["anthropic"]
    return found
