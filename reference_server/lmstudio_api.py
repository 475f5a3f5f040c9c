"""LM Studio's native REST API v1 (`/api/v1/*`): the model list, load and unload, downloads, and stateful chat.

Chat requests are translated onto the shared chat pipeline (`chat.plan_chat`, `reasoning.reason`, the engine);
this module only reads the native request and writes the native answer: output items, `stats` and the named
SSE events (`chat.start` ... `chat.end`). Errors on these routes use LM Studio's native envelope
(`errors.native_error_body`, chosen by path prefix in app.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from reference_server.chat import ChatPlan, OutputShaper, plan_chat
from reference_server.downloads import Downloads
from reference_server.engine import Backend, Finished, FinishReason, Generation
from reference_server.errors import ApiError, native_error_body
from reference_server.limits import Limits
from reference_server.mcp_client import McpFailure, McpServer, Toolbox, call_tool
from reference_server.models import Instance, Lease, ModelEntry, Models
from reference_server.openai_api import ChatCompletionRequest, validation_error
from reference_server.reasoning import ReasonedGeneration, Thought, reason
from reference_server.serving import (
    INTERNAL_ERROR,
    EventStream,
    combined,
    limits_of,
    parse_body,
    unless_disconnected,
)
from reference_server.textstream import Channel
from reference_server.toolstream import ToolCallDelta

__all__ = [
    "REASONING_BUDGET",
    "REASONING_OPTIONS",
    "ChatRequest",
    "ChatStore",
    "capabilities",
    "connect",
    "lmstudio_router",
    "mcp_servers",
    "model_row",
]

log = logging.getLogger(__name__)

ReasoningSetting = Literal["off", "low", "medium", "high", "on"]
REASONING_OPTIONS: tuple[ReasoningSetting, ...] = ("off", "low", "medium", "high", "on")
"""The `reasoning` settings an LLM of this server allows (any model reasons on demand, see reasoning.py)."""
REASONING_BUDGET: dict[str, int] = {"low": 32, "medium": 64, "high": 128, "on": 64}
"""Thinking budget (tokens) per `reasoning` setting, capped at half the output limit; `off` does not reason."""


def _models(request: Request) -> Models:
    models: Models = request.app.state.models
    return models


async def _parse[M: BaseModel](request: Request, model: type[M]) -> M:
    """The body as `model`; a missing field is LM Studio's `"<field>" is required` (missing_required_parameter)."""
    try:
        return await parse_body(request, model)
    except ApiError as exc:
        cause = exc.__cause__
        missing = cause.errors()[0] if isinstance(cause, ValidationError) and cause.errors() else None
        if missing is not None and missing["type"] == "missing" and len(missing["loc"]) == 1:
            field_name = str(missing["loc"][0])
            raise ApiError.bad_request(
                f'"{field_name}" is required', param=field_name, code="missing_required_parameter"
            ) from cause
        raise


# ---- requests ----------------------------------------------------------------------------------


class _Lenient(BaseModel):
    """Unknown top-level fields are accepted and ignored (load options of other engines, for one)."""

    model_config = ConfigDict(extra="allow")


class LoadRequest(_Lenient):
    model: str = Field(min_length=1)
    context_length: int | None = Field(default=None, ge=1)
    echo_load_config: bool = False
    ttl: float | None = Field(default=None, gt=0)


class UnloadRequest(_Lenient):
    instance_id: str = Field(min_length=1)


class DownloadRequest(_Lenient):
    model: str = Field(min_length=1)
    quantization: str | None = None


class ChatRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    system_prompt: str | None = None
    integrations: list[str | dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, ge=1)
    reasoning: ReasoningSetting | None = None
    context_length: int | None = Field(default=None, ge=1)
    store: bool = True
    previous_response_id: str | None = None
    ttl: float | None = Field(default=None, gt=0)
    preset: str | None = None
    seed: int | None = None
    """Not an LM Studio field: deterministic sampling, as on the other surfaces of this server."""


# ---- the model list ----------------------------------------------------------------------------


def _bits_per_weight(quantization: str) -> int | None:
    """Bits per weight as LM Studio reports them: the number in the quantization name (Q4_K_M -> 4, F16 -> 16)."""
    digits = "".join(c for c in quantization.lstrip("IiQqFfBb").split("_")[0] if c.isdigit())
    return int(digits) if digits else None


def capabilities(entry: ModelEntry) -> dict[str, Any] | None:
    """The `capabilities` of an LLM row (None for embedding models, whose rows have none)."""
    if entry.type != "llm":
        return None
    return {
        "vision": False,
        "trained_for_tool_use": True,
        "reasoning": {"allowed_options": list(REASONING_OPTIONS), "default": "off"},
    }


def model_row(entry: ModelEntry, instances: Sequence[Instance]) -> dict[str, Any]:
    """One row of GET /api/v1/models, in LM Studio's field order."""
    row: dict[str, Any] = {
        "type": entry.type,
        "publisher": entry.info.publisher,
        "key": entry.key,
        "display_name": entry.display_name,
    }
    if entry.type == "llm":
        row["architecture"] = entry.info.arch
    row.update(
        quantization={"name": entry.info.quantization, "bits_per_weight": _bits_per_weight(entry.info.quantization)},
        size_bytes=entry.size_bytes,
        params_string=entry.params_string,
        loaded_instances=[
            {"id": instance.id, "config": {"context_length": instance.context_length}}
            for instance in instances
            if instance.entry.key == entry.key
        ],
        max_context_length=entry.info.max_context_length,
        format="gguf",
    )
    caps = capabilities(entry)
    if caps is not None:
        row["capabilities"] = caps
        row["description"] = None
    return row


# ---- stateful chats ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredChat:
    """The conversation a response_id ends: its system prompt and turns as chat messages."""

    system_prompt: str | None
    turns: tuple[dict[str, Any], ...]


class ChatStore:
    """Stored chats in memory, at most `limit`; the oldest is evicted first (`conformance serve --responses-store`)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the chat store bound must be 0 or more")
        self.limit = limit
        self._chats: OrderedDict[str, StoredChat] = OrderedDict()

    def put(self, response_id: str, chat: StoredChat) -> None:
        if self.limit == 0:
            return
        self._chats[response_id] = chat
        while len(self._chats) > self.limit:
            self._chats.popitem(last=False)

    def get(self, response_id: str) -> StoredChat | None:
        return self._chats.get(response_id)


def _response_id() -> str:
    return f"resp_{secrets.token_hex(24)}"


# ---- request translation -----------------------------------------------------------------------


def _input_text(value: str | list[dict[str, Any]], model: str) -> str:
    """The user turn of `input`: a string, or text items joined; image items and other types refused."""
    if isinstance(value, str):
        return value
    if not value:
        raise ApiError.bad_request("'input' must not be an empty array: send a string or text items", param="input")
    texts = []
    for index, item in enumerate(value):
        kind = item.get("type")
        if kind == "image":
            raise ApiError.bad_request(
                f"input.{index} is an image, and the model {model!r} has no vision (capabilities.vision is false); "
                "send text items only",
                param="input",
                code="unsupported_content",
            )
        if kind != "text":
            raise ApiError.bad_request(
                "Invalid discriminator value. Expected 'text' | 'image'", param="input", code="invalid_union"
            )
        extra = sorted(key for key in item if key not in ("type", "content"))
        content = item.get("content")
        if not isinstance(content, str) or extra:
            problems = [] if isinstance(content, str) else [f"'input.{index}.content' is required (a string)"]
            problems += [f"Unrecognized key(s) in object: {', '.join(repr(key) for key in extra)}"] if extra else []
            raise ApiError.bad_request(", ".join(problems), param="input", code="invalid_union")
        texts.append(content)
    return "\n".join(texts)


_PARAMS = {"messages": "input", "max_completion_tokens": "max_output_tokens"}


def plan_native_chat(
    body: ChatRequest,
    messages: list[dict[str, Any]],
    backend: Backend,
    model: str,
    limits: Limits,
    *,
    tools: Sequence[dict[str, Any]] = (),
) -> ChatPlan:
    """The shared chat plan for a native chat request (run it off the event loop: it tokenizes the prompt).

    `tools` (chat-completions function tools: the MCP integrations' tools) are offered with tool_choice auto.
    """
    chat = {
        "model": model,
        "messages": messages,
        "tools": list(tools) or None,
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
    }
    try:
        plan = plan_chat(ChatCompletionRequest.model_validate(chat), backend, limits)
    except ValidationError as exc:
        error = validation_error(exc.errors())
        raise ApiError.bad_request(error.message, param=_PARAMS.get(str(error.param).split(".")[0])) from exc
    except ApiError as exc:
        if exc.param in _PARAMS:
            exc.message = exc.message.replace(exc.param, _PARAMS[exc.param])
            exc.param = _PARAMS[exc.param]
        raise
    sampling = plan.generation.sampling  # LM Studio's samplers beyond the OpenAI fields
    sampling = replace(
        sampling,
        top_k=sampling.top_k if body.top_k is None else body.top_k,
        min_p=sampling.min_p if body.min_p is None else body.min_p,
        repeat_penalty=sampling.repeat_penalty if body.repeat_penalty is None else body.repeat_penalty,
    )
    return replace(plan, generation=replace(plan.generation, sampling=sampling))


def _budget(setting: str | None, max_tokens: int | None) -> int | None:
    budget = REASONING_BUDGET.get(setting) if setting else None
    if budget is None:
        return None
    return budget if max_tokens is None else max(1, min(budget, max_tokens // 2))


# ---- output: items and the events that build them ----------------------------------------------


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


class _Output:
    """Folds generated text into output items; each step returns the stream events it amounts to, so the
    non-streamed body and `chat.end`'s result are built by the same steps."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._open: str | None = None

    def add(self, kind: Literal["reasoning", "message"], text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = [] if self._open == kind else self.close()
        if self._open is None:
            self._open = kind
            self.items.append({"type": kind, "content": ""})
            events.append(_event(f"{kind}.start"))
        self.items[-1]["content"] += text
        events.append(_event(f"{kind}.delta", content=text))
        return events

    def close(self) -> list[dict[str, Any]]:
        kind, self._open = self._open, None
        return [] if kind is None else [_event(f"{kind}.end")]

    def finish(self) -> list[dict[str, Any]]:
        """Close the last item; an answer always ends with a message item, empty if the model said nothing."""
        events = self.close()
        if not any(item["type"] == "message" for item in self.items):
            self.items.append({"type": "message", "content": ""})
            events += [_event("message.start"), _event("message.end")]
        return events


class _LoadEvents:
    """A LoadObserver that turns a JIT load into model_load.* events, whichever thread reports it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._loop = loop
        self._queue = queue
        self.seen = False

    def _put(self, event: dict[str, Any]) -> None:
        self.seen = True
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def started(self, key: str) -> None:
        self._put(_event("model_load.start", model_instance_id=key))

    def progress(self, key: str, fraction: float) -> None:
        self._put(_event("model_load.progress", model_instance_id=key, progress=round(fraction, 4)))

    def ended(self, key: str, seconds: float) -> None:
        self._put(_event("model_load.end", model_instance_id=key, load_time_seconds=round(seconds, 3)))


@dataclass
class _ChatRun:
    """One /api/v1/chat answer being produced: its events, then `result` (the non-streamed body)."""

    body: ChatRequest
    key: str
    models: Models
    limits: Limits
    store: ChatStore
    previous: StoredChat | None
    toolbox: Toolbox | None = None
    output: _Output = field(default_factory=_Output)
    result: dict[str, Any] | None = None
    _generation: Generation | ReasonedGeneration | None = None
    _cancelled: bool = False
    _load_seconds: float | None = None
    _finished: Finished | None = None
    _reasoning_tokens: int = 0
    _first_token_seconds: float = 0.0
    _generating_seconds: float = 0.0

    def cancel(self) -> None:
        """Stop at the next token (the client went away)."""
        self._cancelled = True
        if self._generation is not None:
            self._generation.cancel()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """chat.start, load, prompt, reasoning and message events; sets `result`. Raises ApiError on a failure
        before generation (the stream turns it into an `error` event)."""
        body = self.body
        yield _event("chat.start", model_instance_id=self.key)
        async for event in self._load_for_context():
            yield event
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        observer = _LoadEvents(loop, queue)
        acquiring = asyncio.ensure_future(self.models.acquire(self.key, ttl=body.ttl, observer=observer))
        try:
            while not acquiring.done():
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait({acquiring, getting}, return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    yield getting.result()
                else:
                    getting.cancel()
        finally:
            if not acquiring.done():  # abandoned while loading: the lease it gets is nobody's
                acquiring.add_done_callback(_release_unused)
        lease = acquiring.result()
        try:
            while not queue.empty():
                yield queue.get_nowait()
            if lease.load_seconds is not None:
                self._load_seconds = lease.load_seconds
                if not observer.seen:  # the registry loaded it without reporting: say so all the same
                    yield _event("model_load.start", model_instance_id=self.key)
                    yield _event(
                        "model_load.end", model_instance_id=self.key, load_time_seconds=round(lease.load_seconds, 3)
                    )
            if self._cancelled:
                return
            async for event in self._generate(lease.backend, lease.model):
                yield event
        finally:
            lease.release()

    async def _load_for_context(self) -> AsyncIterator[dict[str, Any]]:
        """`context_length` asks for the model loaded at that context: load (or reload) it so, unless it is."""
        wanted = self.body.context_length
        instance = self.models.instance(self.key)
        if wanted is None or (instance is not None and instance.context_length == wanted):
            return
        yield _event("model_load.start", model_instance_id=self.key)
        started = time.perf_counter()
        if instance is not None:
            await self.models.unload(instance.id)
        ttl = self.body.ttl if self.body.ttl is not None else self.models.default_ttl
        await self.models.load(self.key, context_length=wanted, ttl=ttl)
        self._load_seconds = time.perf_counter() - started
        yield _event("model_load.end", model_instance_id=self.key, load_time_seconds=round(self._load_seconds, 3))

    def _messages(self) -> tuple[list[dict[str, Any]], str | None, tuple[dict[str, Any], ...]]:
        previous = self.previous
        system = self.body.system_prompt
        if system is None and previous is not None:
            system = previous.system_prompt
        turns = (
            *(previous.turns if previous else ()),
            {"role": "user", "content": _input_text(self.body.input, self.key)},
        )
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *turns], system, turns

    async def _generate(self, backend: Backend, model: str) -> AsyncIterator[dict[str, Any]]:
        body = self.body
        messages, system, turns = self._messages()
        tools = self.toolbox.function_tools() if self.toolbox else []
        plan = await run_in_threadpool(
            partial(plan_native_chat, body, messages, backend, model, self.limits, tools=tools)
        )
        yield _event("prompt_processing.start")
        budget = _budget(body.reasoning, plan.generation.sampling.max_tokens)
        started = time.perf_counter()
        generation = backend.generate(plan.generation) if budget is None else reason(backend, plan, budget)
        calls: list[dict[str, Any]] = []
        think_text: list[str] = []
        async for event in self._round(generation, OutputShaper(plan.tools), calls, think_text, started):
            yield event
        thought = generation.thought_tokens if isinstance(generation, ReasonedGeneration) else 0
        finished = self._finished
        assert finished is not None, "generation ended without a Finished event"
        if finished.reason is FinishReason.CANCELLED:
            return
        said: list[dict[str, Any]] = []
        if calls and finished.reason is FinishReason.STOP:
            for event in self.output.close():
                yield event
            said = [{"role": "assistant", "content": None, "tool_calls": calls}]
            for call in calls:
                async for event in self._call(call, said):
                    yield event
            limit = plan.generation.sampling.max_tokens
            left = None if limit is None else limit - finished.completion_tokens
            if left is not None and left <= 0:  # no tokens left to answer with the results
                self._finished = replace(finished, reason=FinishReason.LENGTH)
            else:
                follow_body = body.model_copy(update={"max_output_tokens": left})
                follow = await run_in_threadpool(
                    partial(plan_native_chat, follow_body, [*messages, *said], backend, model, self.limits)
                )
                follow_up = backend.generate(follow.generation)
                async for event in self._round(follow_up, OutputShaper(follow.tools), [], think_text, started):
                    yield event
                assert self._finished is not None
                self._finished = combined(finished, self._finished)
        self._generating_seconds = time.perf_counter() - started - self._first_token_seconds
        if self._finished is None or self._finished.reason is FinishReason.CANCELLED:
            return
        for event in self.output.finish():
            yield event
        self._reasoning_tokens = thought + (len(backend.tokenize("".join(think_text))) if think_text else 0)
        self.result = self.body_so_far()
        if body.store:
            response_id = _response_id()
            self.result["response_id"] = response_id
            reply = "".join(item["content"] for item in self.output.items if item["type"] == "message")
            answer = {"role": "assistant", "content": reply}
            self.store.put(response_id, StoredChat(system, (*turns, *said, answer)))

    async def _round(
        self,
        generation: Generation | ReasonedGeneration,
        shaper: OutputShaper,
        calls: list[dict[str, Any]],
        think_text: list[str],
        started: float,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one generation; tool calls it makes are collected in `calls` (chat tool_calls)."""
        self._generation = generation
        if self._cancelled:
            generation.cancel()
        first = self._finished is None
        try:
            async for event in generation:
                if first:
                    first = False
                    self._first_token_seconds = time.perf_counter() - started
                    yield _event("prompt_processing.progress", progress=1.0)
                    yield _event("prompt_processing.end")
                if isinstance(event, Finished):
                    self._finished = event
                    break
                if isinstance(event, Thought):
                    for item_event in self.output.add("reasoning", event.text):
                        yield item_event
                    continue
                for part in shaper.feed(event.text):
                    for item_event in self._add(part, think_text, calls):
                        yield item_event
            if self._finished is not None and self._finished.reason is not FinishReason.CANCELLED:
                for part in shaper.finish():
                    for item_event in self._add(part, think_text, calls):
                        yield item_event
        finally:
            generation.cancel()

    def _add(
        self, part: tuple[Channel, str] | ToolCallDelta, think_text: list[str], calls: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if isinstance(part, ToolCallDelta):
            if part.id is not None:
                calls.append({"id": part.id, "type": "function", "function": {"name": part.name, "arguments": ""}})
            calls[part.index]["function"]["arguments"] += part.arguments
            return []
        channel, text = part
        if channel is Channel.REASONING:
            think_text.append(text)
            return self.output.add("reasoning", text)
        return self.output.add("message", text)

    async def _call(self, call: dict[str, Any], said: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """Run one tool call on its MCP server: its events and output item; its result is appended to `said`."""
        name, raw = call["function"]["name"], call["function"]["arguments"]
        server = self.toolbox.servers.get(name) if self.toolbox else None
        provider = {"type": "ephemeral_mcp", "server_label": server.label} if server else None
        try:
            arguments = json.loads(raw or "{}")
        except ValueError:
            arguments = None
        if server is None or not isinstance(arguments, dict):
            kind = "invalid_name" if server is None else "invalid_arguments"
            reason = f"Cannot find tool with name {name}." if server is None else f"Invalid arguments for {name}: {raw}"
            metadata: dict[str, Any] = {"type": kind, "tool_name": name}
            if server is not None:
                metadata.update(arguments=raw, provider_info=provider)
            self.output.items.append({"type": "invalid_tool_call", "reason": reason, "metadata": metadata})
            said.append({"role": "tool", "tool_call_id": call["id"], "content": reason})
            yield _event("tool_call.failure", reason=reason, metadata=metadata)
            return
        yield _event("tool_call.start", tool=name, provider_info=provider)
        yield _event("tool_call.arguments", tool=name, arguments=arguments, provider_info=provider)
        try:
            output, error = await call_tool(server, name, arguments)
        except McpFailure as exc:
            output, error = "", str(exc)
        text = output if error is None else f"Error: {error}"
        item = {"type": "tool_call", "tool": name, "arguments": arguments, "output": text, "provider_info": provider}
        self.output.items.append(item)
        said.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        yield _event("tool_call.success", tool=name, arguments=arguments, output=text, provider_info=provider)

    def body_so_far(self) -> dict[str, Any]:
        """The response body of what was produced (all of it once `result` is set)."""
        finished = self._finished
        output_tokens = finished.completion_tokens if finished else 0
        seconds = self._generating_seconds
        stats: dict[str, Any] = {
            "input_tokens": finished.prompt_tokens if finished else 0,
            "total_output_tokens": output_tokens,
            "reasoning_output_tokens": self._reasoning_tokens,
            "tokens_per_second": round(output_tokens / seconds, 3) if seconds > 0 else 0.0,
            "time_to_first_token_seconds": round(self._first_token_seconds, 3),
        }
        if self._load_seconds is not None:
            stats["model_load_time_seconds"] = round(self._load_seconds, 3)
        return {"model_instance_id": self.key, "output": json.loads(json.dumps(self.output.items)), "stats": stats}


def _release_unused(acquiring: asyncio.Future[Lease]) -> None:
    if not acquiring.cancelled() and acquiring.exception() is None:
        acquiring.result().release()


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _frame(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(event).encode() + b"\n\n"


async def _stream(run: _ChatRun) -> AsyncIterator[bytes]:
    """The SSE stream: every event of the run; a failure becomes an `error` event; `chat.end` always last."""
    try:
        async for event in run.events():
            yield _frame(event)
    except ApiError as exc:
        yield _frame(_event("error", error=_stream_error(exc)))
    except Exception:
        log.exception("generation failed mid-stream")
        yield _frame(_event("error", error={"type": "internal_error", "message": INTERNAL_ERROR}))
    yield _frame(_event("chat.end", result=run.result if run.result is not None else run.body_so_far()))


def _stream_error(exc: ApiError) -> dict[str, Any]:
    error: dict[str, Any] = native_error_body(exc)["error"]
    return error


# ---- routes ------------------------------------------------------------------------------------


def lmstudio_router(
    *, max_stored_responses: int, download_sources: Sequence[Path] = (), allow_remote_mcp: bool = False
) -> APIRouter:
    """The /api/v1 routes; the model registry is the app's (`request.app.state.models`)."""
    router = APIRouter()
    store = ChatStore(max_stored_responses)
    downloads = Downloads(download_sources)

    @router.get("/api/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        models = _models(request)
        instances = models.instances()
        return {"models": [model_row(entry, instances) for entry in models.entries()]}

    @router.post("/api/v1/models/load")
    async def load(request: Request) -> dict[str, Any]:
        body = await _parse(request, LoadRequest)
        models = _models(request)
        models.entry(body.model)
        instance = await models.load(body.model, context_length=body.context_length, ttl=body.ttl)
        answer: dict[str, Any] = {
            "type": instance.entry.type,
            "instance_id": instance.id,
            "load_time_seconds": round(instance.load_seconds, 3),
            "status": "loaded",
        }
        if body.echo_load_config:
            answer["load_config"] = {"context_length": instance.context_length}
        return answer

    @router.post("/api/v1/models/unload")
    async def unload(request: Request) -> dict[str, Any]:
        body = await _parse(request, UnloadRequest)
        await _models(request).unload(body.instance_id)
        return {"instance_id": body.instance_id}

    @router.post("/api/v1/models/download")
    async def download(request: Request) -> dict[str, Any]:
        body = await _parse(request, DownloadRequest)
        models = _models(request)
        known = {entry.key for entry in models.entries()}
        return await downloads.start(body.model, models.models_dir, known, models.rescan)

    @router.get("/api/v1/models/download/status/{job_id}")
    async def download_status(job_id: str) -> dict[str, Any]:
        return downloads.status(job_id)

    @router.post("/api/v1/chat")
    async def chat(request: Request) -> Response:
        body = await _parse(request, ChatRequest)
        models = _models(request)
        entry = models.entry(body.model)
        _check_chat(body, entry)
        previous = None
        if body.previous_response_id is not None:
            previous = store.get(body.previous_response_id)
            if previous is None:
                raise ApiError.bad_request(
                    f"No stored response with id '{body.previous_response_id}': it was never returned by this "
                    "server, was sent with store: false, or was evicted (restart with a larger --responses-store)",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        toolbox = await connect(mcp_servers(body, allowed=allow_remote_mcp))
        run = _ChatRun(body, entry.key, models, limits_of(request), store, previous, toolbox)
        if body.stream:
            return EventStream(_stream(run), run.cancel)

        async def drain() -> None:
            async for _ in run.events():
                pass

        try:
            await unless_disconnected(request, drain(), run.cancel)
        except ApiError:
            raise
        except Exception as exc:
            log.exception("generation failed")
            raise ApiError(500, INTERNAL_ERROR, type_="internal_error", code="internal_error") from exc
        finally:
            run.cancel()
        if run.result is None:  # cancelled: the client is gone
            raise ApiError(499, "The client closed the request.", code="client_closed_request")
        return JSONResponse(run.result)

    return router


def _check_chat(body: ChatRequest, entry: ModelEntry) -> None:
    """What can be refused before anything is loaded: the model's kind, its capabilities, the input items."""
    caps = capabilities(entry)
    if caps is None:
        raise ApiError.bad_request(
            f"{entry.key!r} is an embedding model; /api/v1/chat needs an LLM (see GET /api/v1/models)", param="model"
        )
    allowed = caps["reasoning"]["allowed_options"]
    if body.reasoning is not None and body.reasoning not in allowed:
        raise ApiError.bad_request(
            f"The model {entry.key!r} does not support the reasoning setting {body.reasoning!r}; "
            f"it allows {', '.join(allowed)} (capabilities.reasoning.allowed_options)",
            param="reasoning",
        )
    _input_text(body.input, entry.key)
    if body.previous_response_id is not None and not body.previous_response_id.startswith("resp_"):
        raise ApiError.bad_request(
            "previous_response_id must start with 'resp_' (a response_id this server returned)",
            param="previous_response_id",
        )


class EphemeralMcp(_Lenient):
    """An `ephemeral_mcp` integration: a remote MCP server named in the request."""

    type: Literal["ephemeral_mcp"]
    server_label: str = Field(min_length=1)
    server_url: str = Field(min_length=1)
    allowed_tools: list[str] | None = None
    headers: dict[str, str] | None = None

    def server(self) -> McpServer:
        allowed = None if self.allowed_tools is None else frozenset(self.allowed_tools)
        return McpServer(
            label=self.server_label, url=self.server_url, headers=dict(self.headers or {}), allowed=allowed
        )


def mcp_servers(body: ChatRequest, *, allowed: bool) -> list[McpServer]:
    """The request's ephemeral MCP servers; plugins (mcp.json servers) do not exist here, and remote MCP is opt-in."""
    servers = []
    for index, integration in enumerate(body.integrations or []):
        kind = integration.get("type") if isinstance(integration, dict) else "plugin"
        if kind != "ephemeral_mcp":
            raise ApiError(
                400,
                f"integrations.{index} names a plugin ({integration!r}); this server has no plugins or mcp.json "
                'servers: use {"type": "ephemeral_mcp", "server_label": ..., "server_url": ...}',
                type_="plugin_connection_error",
                param=f"integrations.{index}",
                code="plugin_not_found",
            )
        if not allowed:
            raise ApiError.bad_request(
                f"integrations.{index} is an ephemeral MCP server, and per-request MCP servers are switched off on "
                "this server; start it with `conformance serve --allow-remote-mcp` to let it connect to them",
                param=f"integrations.{index}",
                code="mcp_disabled",
            )
        try:
            servers.append(EphemeralMcp.model_validate(integration).server())
        except ValidationError as exc:
            error = validation_error(exc.errors())
            raise ApiError.bad_request(f"integrations.{index}: {error.message}", param=f"integrations.{index}") from exc
    return servers


async def connect(servers: Sequence[McpServer]) -> Toolbox | None:
    """The tools of the request's MCP servers (None without any); an unreachable server is mcp_connection_error."""
    if not servers:
        return None
    try:
        return await Toolbox.connect(servers)
    except McpFailure as exc:
        raise ApiError(424, str(exc), type_="mcp_connection_error", param="integrations") from exc
    except ValueError as exc:
        raise ApiError.bad_request(str(exc), param="integrations") from exc
