"""The FastAPI application: the OpenAI-compatible routes, the other surfaces' routers, auth and error handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reference_server.auth import ApiKeys, authorize
from reference_server.chat import (
    MessageBuilder,
    OutputShaper,
    Part,
    check_context,
    finish_reason,
    plan_chat,
    sampling_of,
    stats_of,
)
from reference_server.engine import Backend, Finished, GenerationRequest, Piece
from reference_server.errors import ApiError, anthropic_error_body, error_body, native_error_body
from reference_server.limits import Limits
from reference_server.lmstudio_api import lmstudio_router
from reference_server.lmstudio_v0 import embedding_fields, lmstudio_v0_router
from reference_server.models import Lease, LeaseScope, ModelEntry, Models, lease_for
from reference_server.openai_api import (
    DEFAULT_COMPLETION_TOKENS,
    ChatChunks,
    ChatCompletionRequest,
    CompletionChunks,
    CompletionRequest,
    EmbeddingRequest,
    encode_embedding,
    usage,
    validation_error,
)
from reference_server.presets import Presets
from reference_server.responses_api import DEFAULT_MAX_STORED, ResponseStore, responses_router
from reference_server.serving import (
    INTERNAL_ERROR,
    EventStream,
    first_event,
    limits_of,
    parse_body,
    unless_disconnected,
)
from reference_server.textstream import Channel
from reference_server.toolstream import ToolCallDelta

__all__ = ["AnswerHook", "HookFactory", "answer_chat", "answer_completion", "create_app"]

log = logging.getLogger(__name__)
DONE = b"data: [DONE]\n\n"
ANTHROPIC_PREFIX = "/v1/messages"
NATIVE_PREFIX = "/api/v1"


def _error_event(message: str) -> bytes:
    return b"data: " + json.dumps(error_body(message, type_="server_error", code="internal_error")).encode() + b"\n\n"


def _completion_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _chunk_for(chunks: ChatChunks, part: Part) -> bytes:
    if isinstance(part, ToolCallDelta):
        call: dict[str, Any] = {"index": part.index}
        if part.id is not None:
            call.update(id=part.id, type="function", function={"name": part.name, "arguments": part.arguments})
        else:
            call["function"] = {"arguments": part.arguments}
        return chunks.delta({"tool_calls": [call]})
    channel, text = part
    return chunks.content(text) if channel is Channel.CONTENT else chunks.delta({"reasoning_content": text})


def create_app(
    models: Models | Backend,
    *,
    api_keys: ApiKeys | None = None,
    limits: Limits | None = None,
    max_stored_responses: int = DEFAULT_MAX_STORED,
    allow_remote_mcp: bool = False,
    presets: Presets | None = None,
    download_sources: Sequence[Path] = (),
) -> FastAPI:
    """The server app around a model registry (a bare backend, real or a test double, is served alone).

    Routers of other wire formats get auth with `dependencies=[Depends(authorize)]`, the limits from
    `serving.limits_of(request)`, and their model with `models.lease_for(request, body.model, ttl=body.ttl)`.
    """
    if not isinstance(models, Models):
        models = Models.serving(models)
    app = FastAPI(title="llm-conformance reference server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api_keys = api_keys if api_keys is not None else ApiKeys()
    app.state.limits = limits if limits is not None else Limits()
    app.state.models = models
    app.state.presets = presets if presets is not None else Presets()
    app.state.download_sources = tuple(download_sources)
    app.add_middleware(LeaseScope)
    _install_error_handlers(app)

    router = APIRouter(dependencies=[Depends(authorize)])

    def openai_model(entry: ModelEntry) -> dict[str, Any]:
        info = entry.info
        return {"id": entry.key, "object": "model", "created": info.created, "owned_by": info.publisher}

    @router.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        await models.refresh()
        return {"object": "list", "data": [openai_model(entry) for entry in models.entries()]}

    @router.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        return openai_model(await models.find(model_id))

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer_chat(request)

    @router.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer_completion(request)

    @router.post("/v1/embeddings")
    @router.post("/api/v0/embeddings")  # LM Studio's twin: the /v1 answer plus stats, model_info and runtime
    async def embeddings(request: Request) -> dict[str, Any]:
        started = time.perf_counter()
        body = await parse_body(request, EmbeddingRequest)
        lease = await lease_for(request, body.model, ttl=body.ttl)
        backend, model = lease.backend, lease.model
        texts = body.texts
        limits_of(request).check_embedding_inputs(len(texts))
        await run_in_threadpool(_check_embedding_inputs, backend, texts)
        work = asyncio.ensure_future(backend.embed(texts))
        try:
            result = await unless_disconnected(request, work, work.cancel)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this request itself is being cancelled, not the work
                raise
            raise ApiError(499, "The client closed the request.", code="client_closed_request") from None
        base64 = body.encoding_format == "base64"
        data = [
            {"object": "embedding", "index": index, "embedding": encode_embedding(vector) if base64 else vector}
            for index, vector in enumerate(result.vectors)
        ]
        answer = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }
        if request.url.path.startswith("/api/v0/"):
            answer |= embedding_fields(lease, result.prompt_tokens, time.perf_counter() - started)
        return answer

    from reference_server.anthropic_api import messages_router  # imports this module: loaded once it is ready

    router.include_router(messages_router(models))
    router.include_router(lmstudio_v0_router(models, chat=answer_chat, completion=answer_completion))
    app.include_router(router)
    responses = responses_router(models, ResponseStore(max_stored_responses), allow_remote_mcp=allow_remote_mcp)
    app.include_router(responses, dependencies=[Depends(authorize)])
    native = lmstudio_router(
        max_stored_responses=max_stored_responses, download_sources=download_sources, allow_remote_mcp=allow_remote_mcp
    )
    app.include_router(native, dependencies=[Depends(authorize)])
    return app


class AnswerHook(Protocol):
    """What a twin route (LM Studio's /api/v0) adds to a /v1 answer: it sees the events and writes extra
    top-level fields on the response, or on the final chunk of a stream."""

    def watch(self, events: AsyncIterator[Piece | Finished]) -> AsyncIterator[Piece | Finished]: ...

    def fields(self, finished: Finished, *, called_tools: bool) -> dict[str, Any]: ...


HookFactory = Callable[[Lease], AnswerHook]


class _Extras:
    """An answer's extra top-level fields: LM Studio's speculative decoding `stats` for a request with
    draft_model, and a twin route's hook's fields (a hookless /v1 answer without draft_model has none)."""

    def __init__(self, draft_model: str | None, inner: AnswerHook | None) -> None:
        self.draft_model = draft_model
        self.inner = inner

    def watch(self, events: AsyncIterator[Piece | Finished]) -> AsyncIterator[Piece | Finished]:
        return events if self.inner is None else self.inner.watch(events)

    def fields(self, finished: Finished, *, called_tools: bool) -> dict[str, Any]:
        fields = {} if self.inner is None else self.inner.fields(finished, called_tools=called_tools)
        if self.draft_model is not None:
            fields["stats"] = {**stats_of(finished, self.draft_model), **fields.get("stats", {})}
        return fields


async def answer_chat(request: Request, hook: HookFactory | None = None) -> Response:
    """POST /v1/chat/completions (and its twins, which pass a hook adding their own fields)."""
    body = await parse_body(request, ChatCompletionRequest)
    lease = await lease_for(request, body.model, ttl=body.ttl)
    backend = lease.backend
    plan = await run_in_threadpool(plan_chat, body, backend, limits_of(request))
    extra = _Extras(plan.model if body.draft_model is not None else None, hook(lease) if hook else None)
    generation = backend.generate(plan.generation)
    try:
        events = await unless_disconnected(
            request, first_event(generation, grammar_param=plan.grammar_param), generation.cancel
        )
    except BaseException:
        generation.cancel()
        raise
    events = extra.watch(events)
    shaper = OutputShaper(plan.tools)
    chunks = ChatChunks(id=_completion_id("chatcmpl"), created=int(time.time()), model=plan.model)
    if body.stream:
        stream = _chat_stream(events, shaper, chunks, include_usage=body.include_usage, extra=extra)
        return EventStream(stream, generation.cancel)
    try:
        answer = _chat_response(events, shaper, chunks, extra)
        return JSONResponse(await unless_disconnected(request, answer, generation.cancel))
    finally:
        generation.cancel()


async def answer_completion(request: Request, hook: HookFactory | None = None) -> Response:
    """POST /v1/completions (and its twins, which pass a hook adding their own fields)."""
    body = await parse_body(request, CompletionRequest)
    lease = await lease_for(request, body.model, ttl=body.ttl)
    backend, model = lease.backend, lease.model
    if body.n not in (None, 1):
        raise ApiError.bad_request("only n=1 is supported", param="n")
    limits = limits_of(request)
    max_tokens = (
        min(DEFAULT_COMPLETION_TOKENS, limits.max_output_tokens)
        if body.max_tokens is None
        else limits.output_tokens(body.max_tokens)
    )
    tokens = await run_in_threadpool(backend.tokenize, body.prompt_text)
    check_context(len(tokens), backend.n_ctx, param="prompt")
    extra = _Extras(None, hook(lease) if hook else None)
    generation = backend.generate(
        GenerationRequest(prompt_tokens=tuple(tokens), sampling=sampling_of(body, max_tokens))
    )
    try:
        events = await unless_disconnected(request, first_event(generation), generation.cancel)
    except BaseException:
        generation.cancel()
        raise
    events = extra.watch(events)
    chunks = CompletionChunks(id=_completion_id("cmpl"), created=int(time.time()), model=model)
    if body.stream:
        stream = _completion_stream(events, chunks, include_usage=body.include_usage, extra=extra)
        return EventStream(stream, generation.cancel)
    try:
        answer = _completion_response(events, chunks, extra)
        return JSONResponse(await unless_disconnected(request, answer, generation.cancel))
    finally:
        generation.cancel()


def _check_embedding_inputs(backend: Backend, texts: Sequence[str]) -> None:
    for index, text in enumerate(texts):
        if not text:
            raise ApiError.bad_request(f"input[{index}] is empty; embeddings need some text", param="input")
        check_context(len(backend.tokenize(text)), backend.n_ctx, param="input")


async def _chat_stream(
    events: AsyncIterator[Piece | Finished],
    shaper: OutputShaper,
    chunks: ChatChunks,
    *,
    include_usage: bool,
    extra: AnswerHook,
) -> AsyncIterator[bytes]:
    yield chunks.delta({"role": "assistant", "content": None if shaper.tool_mode else ""})
    called = False
    try:
        finished: Finished | None = None
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
            for part in shaper.feed(event.text):
                called = called or isinstance(part, ToolCallDelta)
                yield _chunk_for(chunks, part)
        assert finished is not None, "generation ended without a Finished event"
        for part in shaper.finish():
            called = called or isinstance(part, ToolCallDelta)
            yield _chunk_for(chunks, part)
        fields = extra.fields(finished, called_tools=called)
        yield chunks.delta({}, finish_reason(finished, called_tools=called), **fields)
        if include_usage:
            yield chunks.usage_chunk(finished.prompt_tokens, finished.completion_tokens)
        yield DONE
    except Exception:
        log.exception("generation failed mid-stream")
        yield _error_event(INTERNAL_ERROR)


async def _chat_response(
    events: AsyncIterator[Piece | Finished], shaper: OutputShaper, chunks: ChatChunks, extra: AnswerHook
) -> dict[str, Any]:
    builder = MessageBuilder()
    finished: Finished | None = None
    try:
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
            for part in shaper.feed(event.text):
                builder.add(part)
    except Exception as exc:
        log.exception("generation failed")
        raise ApiError(500, INTERNAL_ERROR, type_="server_error", code="internal_error") from exc
    assert finished is not None, "generation ended without a Finished event"
    for part in shaper.finish():
        builder.add(part)
    choice = {
        "index": 0,
        "message": builder.message(),
        "logprobs": None,
        "finish_reason": finish_reason(finished, called_tools=bool(builder.tool_calls)),
    }
    response = {
        "id": chunks.id,
        "object": "chat.completion",
        "created": chunks.created,
        "model": chunks.model,
        "choices": [choice],
        "usage": usage(finished.prompt_tokens, finished.completion_tokens),
    }
    return {**response, **extra.fields(finished, called_tools=bool(builder.tool_calls))}


async def _completion_stream(
    events: AsyncIterator[Piece | Finished], chunks: CompletionChunks, *, include_usage: bool, extra: AnswerHook
) -> AsyncIterator[bytes]:
    try:
        finished: Finished | None = None
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
            yield chunks.text(event.text)
        assert finished is not None, "generation ended without a Finished event"
        yield chunks.finish(finish_reason(finished, called_tools=False), **extra.fields(finished, called_tools=False))
        if include_usage:
            yield chunks.usage_chunk(finished.prompt_tokens, finished.completion_tokens)
        yield DONE
    except Exception:
        log.exception("generation failed mid-stream")
        yield _error_event(INTERNAL_ERROR)


async def _completion_response(
    events: AsyncIterator[Piece | Finished], chunks: CompletionChunks, extra: AnswerHook
) -> dict[str, Any]:
    texts: list[str] = []
    finished: Finished | None = None
    try:
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
            texts.append(event.text)
    except Exception as exc:
        log.exception("generation failed")
        raise ApiError(500, INTERNAL_ERROR, type_="server_error", code="internal_error") from exc
    assert finished is not None, "generation ended without a Finished event"
    choice = {
        "index": 0,
        "text": "".join(texts),
        "logprobs": None,
        "finish_reason": finish_reason(finished, called_tools=False),
    }
    return {
        "id": chunks.id,
        "object": "text_completion",
        "created": chunks.created,
        "model": chunks.model,
        "choices": [choice],
        "usage": usage(finished.prompt_tokens, finished.completion_tokens),
        **extra.fields(finished, called_tools=False),
    }


def _install_error_handlers(app: FastAPI) -> None:
    def handler(
        convert: Callable[[Request, Any], ApiError],
    ) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, exc: Exception) -> Response:
            error = convert(request, exc)
            path = request.url.path
            if path.startswith(ANTHROPIC_PREFIX):  # Anthropic clients read their own envelope
                return JSONResponse(anthropic_error_body(error.status, error.message), status_code=error.status)
            if path == NATIVE_PREFIX or path.startswith(NATIVE_PREFIX + "/"):  # LM Studio's native API
                return JSONResponse(native_error_body(error), status_code=error.status)
            return JSONResponse(error.body(), status_code=error.status)

        return handle

    def from_http(request: Request, exc: StarletteHTTPException) -> ApiError:
        if exc.status_code == 404:
            return ApiError(404, f"Unknown path: {request.method} {request.url.path}", code="not_found")
        if exc.status_code == 405:
            return ApiError(
                405, f"Method {request.method} is not allowed on {request.url.path}", code="method_not_allowed"
            )
        return ApiError(exc.status_code, str(exc.detail))

    def from_internal(request: Request, exc: Exception) -> ApiError:
        return ApiError(500, INTERNAL_ERROR, type_="server_error", code="internal_error")

    app.add_exception_handler(ApiError, handler(lambda request, exc: exc))
    app.add_exception_handler(RequestValidationError, handler(lambda request, exc: validation_error(exc.errors())))
    app.add_exception_handler(StarletteHTTPException, handler(from_http))
    app.add_exception_handler(Exception, handler(from_internal))
