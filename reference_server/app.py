"""The FastAPI application: OpenAI-compatible routes, LM Studio's /api/v0 twins, auth and error handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

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
    resolve_model,
    sampling_of,
    stats_of,
)
from reference_server.engine import Backend, Finished, GenerationRequest, Piece
from reference_server.errors import ApiError, anthropic_error_body, error_body, native_error_body
from reference_server.limits import Limits
from reference_server.lmstudio_api import lmstudio_router
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

__all__ = ["create_app"]

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
    backend: Backend,
    *,
    api_keys: ApiKeys | None = None,
    limits: Limits | None = None,
    max_stored_responses: int = DEFAULT_MAX_STORED,
    allow_remote_mcp: bool = False,
    download_sources: Sequence[Path] = (),
) -> FastAPI:
    """The server app around a backend (the real Engine, or a test double with the same surface).

    Routers of other wire formats get auth with `dependencies=[Depends(authorize)]` and the limits from
    `serving.limits_of(request)`.
    """
    app = FastAPI(title="llm-conformance reference server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api_keys = api_keys if api_keys is not None else ApiKeys()
    app.state.limits = limits if limits is not None else Limits()
    _install_error_handlers(app)

    router = APIRouter(dependencies=[Depends(authorize)])
    info = backend.info

    def openai_model() -> dict[str, Any]:
        return {"id": info.id, "object": "model", "created": info.created, "owned_by": info.publisher}

    def lmstudio_model() -> dict[str, Any]:
        return {
            "id": info.id,
            "object": "model",
            "type": "llm",
            "publisher": info.publisher,
            "arch": info.arch,
            "compatibility_type": "gguf",
            "quantization": info.quantization,
            "state": "loaded",
            "max_context_length": info.max_context_length,
            "loaded_context_length": backend.n_ctx,
            "capabilities": ["tool_use"],
        }

    @router.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [openai_model()]}

    @router.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        resolve_model(backend, model_id)
        return openai_model()

    @router.get("/api/v0/models")
    async def list_models_v0() -> dict[str, Any]:
        return {"object": "list", "data": [lmstudio_model()]}

    @router.get("/api/v0/models/{model_id:path}")
    async def get_model_v0(model_id: str) -> dict[str, Any]:
        resolve_model(backend, model_id)
        return lmstudio_model()

    @router.post("/v1/chat/completions")
    @router.post("/api/v0/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await parse_body(request, ChatCompletionRequest)
        plan = await run_in_threadpool(plan_chat, body, backend, limits_of(request))
        generation = backend.generate(plan.generation)
        try:
            events = await unless_disconnected(
                request, first_event(generation, grammar_param=plan.grammar_param), generation.cancel
            )
        except BaseException:
            generation.cancel()
            raise
        shaper = OutputShaper(plan.tools)
        chunks = ChatChunks(id=_completion_id("chatcmpl"), created=int(time.time()), model=plan.model)
        draft_model = plan.model if body.draft_model is not None else None
        if body.stream:
            stream = _chat_stream(events, shaper, chunks, include_usage=body.include_usage, draft_model=draft_model)
            return EventStream(stream, generation.cancel)
        try:
            answer = _chat_response(events, shaper, chunks, draft_model)
            return JSONResponse(await unless_disconnected(request, answer, generation.cancel))
        finally:
            generation.cancel()

    @router.post("/v1/completions")
    @router.post("/api/v0/completions")
    async def completions(request: Request) -> Response:
        body = await parse_body(request, CompletionRequest)
        model = resolve_model(backend, body.model)
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
        generation = backend.generate(
            GenerationRequest(prompt_tokens=tuple(tokens), sampling=sampling_of(body, max_tokens))
        )
        try:
            events = await unless_disconnected(request, first_event(generation), generation.cancel)
        except BaseException:
            generation.cancel()
            raise
        chunks = CompletionChunks(id=_completion_id("cmpl"), created=int(time.time()), model=model)
        if body.stream:
            return EventStream(_completion_stream(events, chunks, include_usage=body.include_usage), generation.cancel)
        try:
            answer = _completion_response(events, chunks)
            return JSONResponse(await unless_disconnected(request, answer, generation.cancel))
        finally:
            generation.cancel()

    @router.post("/v1/embeddings")
    @router.post("/api/v0/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await parse_body(request, EmbeddingRequest)
        model = resolve_model(backend, body.model)
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
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }

    from reference_server.anthropic_api import messages_router  # imports this module: loaded once it is ready

    router.include_router(messages_router(backend))
    app.include_router(router)
    responses = responses_router(backend, ResponseStore(max_stored_responses), allow_remote_mcp=allow_remote_mcp)
    app.include_router(responses, dependencies=[Depends(authorize)])
    native = lmstudio_router(
        max_stored_responses=max_stored_responses, download_sources=download_sources, allow_remote_mcp=allow_remote_mcp
    )
    app.include_router(native, dependencies=[Depends(authorize)])
    return app


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
    draft_model: str | None,
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
        extra = {"stats": stats_of(finished, draft_model)} if draft_model else {}
        yield chunks.delta({}, finish_reason(finished, called_tools=called), **extra)
        if include_usage:
            yield chunks.usage_chunk(finished.prompt_tokens, finished.completion_tokens)
        yield DONE
    except Exception:
        log.exception("generation failed mid-stream")
        yield _error_event(INTERNAL_ERROR)


async def _chat_response(
    events: AsyncIterator[Piece | Finished], shaper: OutputShaper, chunks: ChatChunks, draft_model: str | None
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
    if draft_model:
        response["stats"] = stats_of(finished, draft_model)
    return response


async def _completion_stream(
    events: AsyncIterator[Piece | Finished], chunks: CompletionChunks, *, include_usage: bool
) -> AsyncIterator[bytes]:
    try:
        finished: Finished | None = None
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
            yield chunks.text(event.text)
        assert finished is not None, "generation ended without a Finished event"
        yield chunks.finish(finish_reason(finished, called_tools=False))
        if include_usage:
            yield chunks.usage_chunk(finished.prompt_tokens, finished.completion_tokens)
        yield DONE
    except Exception:
        log.exception("generation failed mid-stream")
        yield _error_event(INTERNAL_ERROR)


async def _completion_response(events: AsyncIterator[Piece | Finished], chunks: CompletionChunks) -> dict[str, Any]:
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
