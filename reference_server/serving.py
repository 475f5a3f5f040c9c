"""The request lifecycle every wire adapter shares: a bounded body, preparation off the event loop, the first
generation event as an HTTP status, and no work left running for a client that hung up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from reference_server.engine import Finished, GrammarError
from reference_server.errors import ApiError
from reference_server.limits import Limits
from reference_server.openai_api import parse_request
from reference_server.presets import Presets

__all__ = [
    "INTERNAL_ERROR",
    "EventStream",
    "combined",
    "first_event",
    "limits_of",
    "parse_body",
    "read_body",
    "unless_disconnected",
]

log = logging.getLogger(__name__)
INTERNAL_ERROR = "The server failed while generating; see the server log."


def limits_of(request: Request) -> Limits:
    """The limits the app was created with (create_app stores them in app.state)."""
    limits: Limits = request.app.state.limits
    return limits


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it is larger than the server's --max-body-bytes."""
    limits = limits_of(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise limits.body_too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise limits.body_too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body[M: BaseModel](request: Request, model: type[M]) -> M:
    """Read and validate a JSON body, with the preset it names applied (the server's, in app.state.presets).

    Parsing runs in a worker thread, as any request preparation should. An unknown preset is a 400.
    """
    presets: Presets = getattr(request.app.state, "presets", None) or Presets()
    return await run_in_threadpool(_parse, model, await read_body(request), presets)


def _parse[M: BaseModel](model: type[M], body: bytes, presets: Presets) -> M:
    return presets.apply_named(parse_request(model, body))


async def first_event[E](generation: AsyncIterator[E], *, grammar_param: str | None = None) -> AsyncIterator[E]:
    """The generation's events, after waiting for the first so a failure before any output gets a proper status.

    grammar_param names the request field the generation's grammar came from, for the 400 llama.cpp's refusal
    of it becomes.
    """
    try:
        first = await anext(generation)
    except GrammarError as exc:
        raise ApiError.bad_request(str(exc), param=grammar_param) from exc
    except ApiError:
        raise
    except Exception as exc:
        log.exception("generation failed before the first token")
        raise ApiError(500, INTERNAL_ERROR, type_="server_error", code="internal_error") from exc
    return _events(first, generation)


async def _events[E](first: E, generation: AsyncIterator[E]) -> AsyncIterator[E]:
    yield first
    if isinstance(first, Finished):
        return
    async for event in generation:
        yield event


async def unless_disconnected[T](request: Request, work: Awaitable[T], on_disconnect: Callable[[], object]) -> T:
    """Await work, calling on_disconnect (e.g. Generation.cancel, or the work task's cancel) if the client hangs up.

    For a request whose body was read: the next ASGI message is then http.disconnect, sent when the client
    goes away (or when the response is complete, by which time this has returned).
    """

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        on_disconnect()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class EventStream(StreamingResponse):
    """SSE response that notices a client disconnect at once (to stop generation), whatever the ASGI server."""

    def __init__(self, content: AsyncIterator[bytes], on_disconnect: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self._on_disconnect()

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except OSError:  # the client went away while we were writing
            self._on_disconnect()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def combined(first: Finished, second: Finished) -> Finished:
    """Two generations of one answer (before and after its tool calls) counted as one; the second's reason."""
    return Finished(
        reason=second.reason,
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        seconds=first.seconds + second.seconds,
        cached_tokens=first.cached_tokens + second.cached_tokens,
    )
