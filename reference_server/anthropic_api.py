"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`): one adapter over the chat pipeline.

Translation in: an Anthropic request becomes the pipeline's chat request (system blocks and `system`-role
entries folded into one system prompt, `tool_use` blocks into tool calls, `tool_result` blocks into tool
messages, `tool_choice` and `stop_sequences` mapped), so prompt rendering, the tool grammar, stop handling,
usage counting and cancellation are the chat completions' own. Translation out: the pipeline's parts
(text, reasoning, tool-call deltas) become content blocks, streamed as Anthropic's events with `event:`
lines, or folded into one message by the same code. Errors use Anthropic's envelope (see app.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol

import jiter
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from reference_server.chat import ChatPlan, OutputShaper, plan_chat
from reference_server.engine import Backend, Finished, FinishReason, GrammarError, Piece
from reference_server.errors import ApiError, anthropic_error_body
from reference_server.limits import Limits
from reference_server.models import Models, lease_for
from reference_server.openai_api import ChatCompletionRequest, LifecycleFields, validation_error
from reference_server.reasoning import Signer, Thought, reason
from reference_server.serving import EventStream, limits_of, parse_body, unless_disconnected
from reference_server.textstream import Channel
from reference_server.toolstream import ToolCallDelta

__all__ = ["MessagesRequest", "messages_router"]

log = logging.getLogger(__name__)

PING_AFTER_S = 1.0
"""A stream whose first token takes longer than this (a long prompt) starts at once and sends `ping`s."""
PING_EVERY_S = 5.0
ADAPTIVE_BUDGET = 1024
"""Thinking budget (tokens) for `thinking: {"type": "adaptive"}`, capped below max_tokens."""
INTERNAL_ERROR = "The server failed while generating; see the server log."


class _Lenient(BaseModel):
    """Unknown fields (cache_control, citations, service_tier...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")


class TextBlock(_Lenient):
    type: Literal["text"]
    text: str


class ImageBlock(_Lenient):
    type: Literal["image"]
    source: dict[str, Any]


class ToolUseBlock(_Lenient):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Lenient):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Lenient):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Lenient):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class InputMessage(_Lenient):
    role: Literal["user", "assistant", "system"]
    """`system` entries are not Anthropic's, but Claude Code >= 2.1.154 sends them: folded into the system prompt."""
    content: str | list[Block]


class ToolDefinition(_Lenient):
    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoiceAuto(_Lenient):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Lenient):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Lenient):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Lenient):
    type: Literal["none"]


class ThinkingEnabled(_Lenient):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1)


class ThinkingAdaptive(_Lenient):
    type: Literal["adaptive"]


class ThinkingDisabled(_Lenient):
    type: Literal["disabled"]


class CountTokensRequest(LifecycleFields):
    """The body of `/v1/messages/count_tokens`: a message request without `max_tokens`."""

    model: str
    messages: list[InputMessage]
    system: str | list[TextBlock] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: (
        Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")] | None
    ) = None
    thinking: Annotated[ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled, Field(discriminator="type")] | None = (
        None
    )


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    """Accepted; the pipeline samples with llama.cpp's top-k of 40."""
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _budget_below_max_tokens(self) -> MessagesRequest:
        if isinstance(self.thinking, ThinkingEnabled) and self.thinking.budget_tokens >= self.max_tokens:
            raise ValueError("max_tokens must be greater than thinking.budget_tokens")
        return self

    @property
    def budget_tokens(self) -> int | None:
        """The thinking budget when thinking is on, else None."""
        if isinstance(self.thinking, ThinkingEnabled):
            return self.thinking.budget_tokens
        if isinstance(self.thinking, ThinkingAdaptive):
            return max(1, min(ADAPTIVE_BUDGET, self.max_tokens - 1))
        return None


# ---- translation in --------------------------------------------------------------------------------


def _texts(content: str | list[Any], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, TextBlock):
            raise ApiError.bad_request(
                f"{where}.{j}: a block of type {block.type!r} is not allowed here, only text", param=f"{where}.{j}"
            )
        texts.append(block.text)
    return "\n".join(texts)


def _image_refused(where: str) -> ApiError:
    return ApiError.bad_request(
        f"{where}: image input is not supported: this model reads text only. Send the content as text, or serve "
        "a vision model.",
        param=where,
    )


def _tool_result(block: ToolResultBlock, where: str) -> dict[str, Any]:
    content = block.content
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, ImageBlock):
                raise _image_refused(f"{where}.content.{j}")
        text = "\n".join(part.text for part in content if isinstance(part, TextBlock))
    else:
        text = content or ""
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _chat_messages(body: CountTokensRequest, signer: Signer) -> list[dict[str, Any]]:
    """The conversation as chat messages; signatures of returned thinking blocks are checked (400 if wrong)."""
    system = [] if body.system is None else [_texts(body.system, "system")]
    out: list[dict[str, Any]] = []
    for i, message in enumerate(body.messages):
        where = f"messages.{i}.content"
        if message.role == "system":
            system.append(_texts(message.content, where))
            continue
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for j, block in enumerate(message.content):
            at = f"{where}.{j}"
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ImageBlock):
                raise _image_refused(at)
            elif message.role == "user" and isinstance(block, ToolResultBlock):
                results.append(_tool_result(block, at))
            elif message.role == "assistant" and isinstance(block, ToolUseBlock):
                arguments = json.dumps(block.input, ensure_ascii=False)
                calls.append(
                    {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}
                )
            elif message.role == "assistant" and isinstance(block, ThinkingBlock):
                if not signer.verify(block.thinking, block.signature):
                    raise ApiError.bad_request(
                        f"{at}.signature: invalid signature in thinking block: it was not issued by this server for "
                        "this text. Send thinking blocks back unchanged, or leave them out.",
                        param=f"{at}.signature",
                    )
            elif isinstance(block, RedactedThinkingBlock):
                raise ApiError.bad_request(
                    f"{at}: this server never issues redacted_thinking blocks, so it cannot accept one",
                    param=at,
                )
            else:
                raise ApiError.bad_request(
                    f"{at}: a {block.type} block is not allowed in a {message.role} message", param=at
                )
        out.extend(results)
        if message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif texts or not results:
            out.append({"role": "user", "content": "\n".join(texts)})
    if system:
        out.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return out


def _tool_choice(body: CountTokensRequest) -> dict[str, Any]:
    choice = body.tool_choice
    fields: dict[str, Any] = {}
    if body.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in body.tools
        ]
    if choice is None:
        return fields
    if isinstance(choice, ToolChoiceNone):
        return {**fields, "tool_choice": "none"}
    if choice.disable_parallel_tool_use:
        fields["parallel_tool_calls"] = False
    if isinstance(choice, ToolChoiceTool):
        return {**fields, "tool_choice": {"type": "function", "function": {"name": choice.name}}}
    return {**fields, "tool_choice": "required" if isinstance(choice, ToolChoiceAny) else "auto"}


def _plan(body: CountTokensRequest, backend: Backend, signer: Signer, limits: Limits) -> ChatPlan:
    chat: dict[str, Any] = {"model": body.model, "messages": _chat_messages(body, signer), **_tool_choice(body)}
    if isinstance(body, MessagesRequest):
        chat.update(
            max_tokens=body.max_tokens,
            stop=body.stop_sequences or None,
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
        )
    try:
        request = ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc
    return plan_chat(request, backend, limits)


# ---- translation out -------------------------------------------------------------------------------


class _Events(Protocol):
    def cancel(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Thought | Piece | Finished]: ...


class Blocks:
    """Turns the pipeline's output into content-block events: one block open at a time, indices 0, 1, 2...

    Thinking blocks are closed with a `signature_delta` (an HMAC of their text) before `content_block_stop`.
    """

    def __init__(self, shaper: OutputShaper, signer: Signer) -> None:
        self._shaper = shaper
        self._signer = signer
        self._index = -1
        self._open: str | None = None
        self._thinking: list[str] = []
        self.called = False

    def feed(self, event: Thought | Piece) -> list[dict[str, Any]]:
        if isinstance(event, Thought):
            return self._thought(event.text)
        return [e for part in self._shaper.feed(event.text) for e in self._part(part)]

    def finish(self) -> list[dict[str, Any]]:
        return [*(e for part in self._shaper.finish() for e in self._part(part)), *self._close()]

    def _part(self, part: tuple[Channel, str] | ToolCallDelta) -> list[dict[str, Any]]:
        if isinstance(part, ToolCallDelta):
            return self._tool(part)
        channel, text = part
        return self._thought(text) if channel is Channel.REASONING else self._text(text)

    def _start(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self._index += 1
        self._open = block["type"]
        events.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return events

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        events = []
        if self._open == "thinking":
            signature = self._signer.sign("".join(self._thinking))
            events.append(self._delta({"type": "signature_delta", "signature": signature}))
            self._thinking = []
        events.append({"type": "content_block_stop", "index": self._index})
        self._open = None
        return events

    def _thought(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = [] if self._open == "thinking" else self._start({"type": "thinking", "thinking": "", "signature": ""})
        self._thinking.append(text)
        return [*events, self._delta({"type": "thinking_delta", "thinking": text})]

    def _text(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = [] if self._open == "text" else self._start({"type": "text", "text": ""})
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def _tool(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        events = []
        if delta.id is not None:
            self.called = True
            block_id = "toolu_" + delta.id.removeprefix("call_")
            events = self._start({"type": "tool_use", "id": block_id, "name": delta.name, "input": {}})
        if delta.arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": delta.arguments}))
        return events


def stop_reason(finished: Finished, *, called: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): max_tokens when cut, tool_use after a call, the matched stop sequence."""
    if finished.reason is FinishReason.LENGTH:
        return "max_tokens", None
    if called:
        return "tool_use", None
    if finished.stop_sequence is not None:
        return "stop_sequence", finished.stop_sequence
    return "end_turn", None


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


class _Message:
    """Folds the stream's events into the non-streaming message, the way the SDK's accumulator does."""

    def __init__(self, start: dict[str, Any]) -> None:
        self.message = start
        self._json: dict[int, str] = {}

    def apply(self, event: dict[str, Any]) -> None:
        content: list[dict[str, Any]] = self.message["content"]
        kind = event["type"]
        if kind == "content_block_start":
            content.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = content[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                self._json[event["index"]] = self._json.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and event["index"] in self._json:
            text = self._json.pop(event["index"])
            content[event["index"]]["input"] = jiter.from_json(text.encode(), partial_mode="trailing-strings")
        elif kind == "message_delta":
            self.message.update(event["delta"])
            self.message["usage"]["output_tokens"] = event["usage"]["output_tokens"]


async def _first(events: AsyncIterator[Thought | Piece | Finished]) -> Thought | Piece | Finished:
    try:
        return await anext(events)
    except GrammarError as exc:
        raise ApiError.bad_request(str(exc), param="tools") from exc
    except ApiError:
        raise
    except Exception as exc:
        log.exception("generation failed before the first token")
        raise ApiError(500, INTERNAL_ERROR, type_="server_error") from exc


class _Reply:
    """One answer in progress: the generation, its block writer and the message_start it announces."""

    def __init__(self, plan: ChatPlan, generation: _Events, signer: Signer) -> None:
        self.generation = generation
        self.events = aiter(generation)
        self.blocks = Blocks(OutputShaper(plan.tools), signer)
        self.input_tokens = len(plan.generation.prompt_tokens)
        self.start: dict[str, Any] = {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self.input_tokens, 0),
        }

    def events_of(self, event: Thought | Piece | Finished) -> list[dict[str, Any]]:
        if not isinstance(event, Finished):
            return self.blocks.feed(event)
        reason, sequence = stop_reason(event, called=self.blocks.called)
        return [
            *self.blocks.finish(),
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": {"output_tokens": event.completion_tokens},
            },
            {"type": "message_stop"},
        ]

    async def stream(self, first: asyncio.Future[Thought | Piece | Finished]) -> AsyncIterator[bytes]:
        yield _sse({"type": "message_start", "message": self.start})
        try:
            while not first.done():
                await asyncio.wait({first}, timeout=PING_EVERY_S)
                if not first.done():
                    yield _sse({"type": "ping"})
            event = first.result()
            while True:
                for out in self.events_of(event):
                    yield _sse(out)
                if isinstance(event, Finished):
                    return
                event = await anext(self.events)
        except Exception as exc:
            log.exception("generation failed mid-stream")
            status = 400 if isinstance(exc, GrammarError | ApiError) else 500
            message = exc.message if isinstance(exc, ApiError) else str(exc) if status == 400 else INTERNAL_ERROR
            yield _sse(anthropic_error_body(status, message))

    async def body(self, first: Thought | Piece | Finished) -> dict[str, Any]:
        message = _Message(self.start)
        event = first
        try:
            while True:
                for out in self.events_of(event):
                    message.apply(out)
                if isinstance(event, Finished):
                    return message.message
                event = await anext(self.events)
        except Exception as exc:
            log.exception("generation failed")
            raise ApiError(500, INTERNAL_ERROR, type_="server_error") from exc


def messages_router(models: Models) -> APIRouter:
    """The Anthropic routes; app.py includes them under its auth dependency. One signing secret per router.

    Each request leases its model from `models` (JIT-loading it) until its response has been sent.
    """
    router = APIRouter()
    signer = Signer()

    @router.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body = await parse_body(request, MessagesRequest)
        backend = (await lease_for(request, body.model, ttl=body.ttl)).backend
        plan = await run_in_threadpool(_plan, body, backend, signer, limits_of(request))
        budget = body.budget_tokens
        generation: _Events = backend.generate(plan.generation) if budget is None else reason(backend, plan, budget)
        reply = _Reply(plan, generation, signer)
        first = asyncio.ensure_future(_first(reply.events))
        try:
            await asyncio.wait({first}, timeout=PING_AFTER_S if body.stream else None)
            if body.stream:
                if first.done():
                    first.result()  # a failure before any output gets its HTTP status
                return EventStream(reply.stream(first), generation.cancel)
            return JSONResponse(await unless_disconnected(request, reply.body(first.result()), generation.cancel))
        except BaseException:
            first.cancel()
            generation.cancel()
            raise
        finally:
            if not body.stream:
                generation.cancel()

    @router.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> dict[str, int]:
        body = await parse_body(request, CountTokensRequest)
        backend = (await lease_for(request, body.model, ttl=body.ttl)).backend
        plan = await run_in_threadpool(_plan, body, backend, signer, limits_of(request))
        return {"input_tokens": len(plan.generation.prompt_tokens)}

    return router
