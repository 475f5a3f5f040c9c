"""Replays a chat stream through openai-python's own accumulator, as a real client would consume it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from conformance.exchange import Exchange
from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES", "Replay", "replay", "replay_of"]


@dataclass(frozen=True)
class Replay:
    """What openai-python rebuilt from a stream: the message dict of choice 0, or where it gave up."""

    message: dict[str, Any] | None
    finish_reason: str | None
    failed_at: int | None = None
    """Event index of the chunk the SDK raised on (None when it did not raise on a chunk)."""
    error: str | None = None


def replay_of(exchange: Exchange) -> Replay | None:
    return replay(Context(exchange))


def replay(ctx: Context) -> Replay | None:
    """Feed every chunk of a successful chat stream to ChatCompletionStreamState; None when there is none."""
    if "sdk" not in ctx.memo:
        ctx.memo["sdk"] = _replay(ctx)
    result: Replay | None = ctx.memo["sdk"]
    return result


def _replay(ctx: Context) -> Replay | None:
    stream = ctx.stream
    if ctx.endpoint is not Endpoint.CHAT or stream is None or stream.errors or not stream.chunks:
        return None
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    with warnings.catch_warnings():
        # pydantic warns when dumping a leniently constructed model with wrong types; the schema rules
        # report those, here only what makes the client raise matters
        warnings.simplefilter("ignore")
        for i, payload in stream.chunks:
            try:
                chunk = ChatCompletionChunk.construct(**payload)
                list(state.handle_chunk(chunk))
            except Exception as exc:  # any exception is what a client would see
                return Replay(None, None, failed_at=i, error=f"{type(exc).__name__}: {exc}")
        try:
            snapshot = state.current_completion_snapshot
            choices = snapshot.choices
            finish = choices[0].finish_reason if choices else None
            if finish not in ("length", "content_filter"):
                # get_final_completion raises on those by design; otherwise it must succeed
                state.get_final_completion()
            message = choices[0].message.to_dict() if choices else None
        except Exception as exc:  # any exception is what a client would see
            return Replay(None, None, failed_at=None, error=f"{type(exc).__name__}: {exc}")
    return Replay(message, finish)


@rule("openai-sdk-accumulates", items.BASE_STREAMING, frozenset({Endpoint.CHAT}))
def openai_sdk_accumulates(ctx: Context) -> Iterator[Issue]:
    """openai-python's ChatCompletionStreamState rebuilds a message from the stream without raising."""
    result = replay(ctx)
    if result is None:
        return
    if result.error is None:
        yield from _rebuilt_names(ctx, result)
        return
    where = "on this chunk" if result.failed_at is not None else "when building the final completion"
    yield Issue(
        f"openai-python's ChatCompletionStreamState raised {where}: {result.error}; clients using "
        "client.chat.completions.stream() fail the same way",
        chunk=result.failed_at,
        expected="a stream the official SDK can accumulate",
        seen=result.error,
    )


def _rebuilt_names(ctx: Context, result: Replay) -> Iterator[Issue]:
    """Tool names as the SDK rebuilt them must be names the request defined (repeated names concatenate)."""
    if not ctx.tools or result.message is None:
        return
    for k, call in enumerate(result.message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name not in ctx.tools:
            yield Issue(
                f"openai-python rebuilds tool call {k}'s name as {name!r}, which the request did not define; "
                "the name or id was sent in more than one delta, and the SDK concatenates string fields",
                pointer=f"/choices/0/message/tool_calls/{k}/function/name",
                expected=sorted(ctx.tools),
                seen=name,
            )


RULES: tuple[Rule, ...] = (openai_sdk_accumulates,)
