"""Rules on the event stream itself: SSE framing, JSON payloads, the [DONE] terminator, error events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from openai._streaming import SSEDecoder

from conformance import schemas
from conformance.exchange import SSEEvent
from conformance.sse import field_lines
from conformance.verdicts import items
from conformance.verdicts.context import DONE, Context, Issue
from conformance.verdicts.rule import CHAT_LIKE, Rule, rule

__all__ = ["RULES"]

_IGNORED_AFTER_DONE = frozenset({"id", "retry"})
"""Fields a block after [DONE] may carry: openai-python stops reading at [DONE], so nothing after it matters."""


@rule("stream-is-sse", items.BASE_STREAMING, CHAT_LIKE)
def stream_is_sse(ctx: Context) -> Iterator[Issue]:
    """`stream: true` is answered with text/event-stream, anything else with a plain body."""
    if not ctx.ok or ctx.response is None:
        return
    content_type = ctx.response.headers.get("content-type", "")
    if ctx.asked_stream and not ctx.response.is_stream:
        yield Issue(
            f"the request asked for `stream: true` but the answer is a `{content_type or 'no content-type'}` body, "
            "not `text/event-stream`; streaming clients read no chunk from it",
            item=ctx.base_item,
            expected="text/event-stream",
            seen=content_type,
        )
    elif not ctx.asked_stream and ctx.response.is_stream:
        yield Issue(
            "the request did not ask for a stream but the answer is `text/event-stream`; "
            "clients parse a non-streamed answer as one JSON body",
            item=ctx.base_item,
            expected="application/json",
            seen=content_type,
        )


@rule("sse-data-field", items.BASE_STREAMING, CHAT_LIKE)
def sse_data_field(ctx: Context) -> Iterator[Issue]:
    """Every event block carries `data:`; a comment-only block is harmless unless openai-python makes it an event."""
    stream = ctx.stream
    if stream is None:
        return
    empty = _empty_dispatches(stream.events)
    for i, event in enumerate(stream.events):
        if event.data is not None:
            continue
        names = [name for name, _ in field_lines(event.raw.splitlines())]
        if "error" in names:
            yield Issue(
                "the error is sent as an SSE `error:` field without `data:`; OpenAI clients drop such a block "
                'and show an empty reply (llama.cpp #16104). Send it as `data: {"error": {"message": ...}}`',
                chunk=i,
                item=items.STREAM_ERRORS,
                expected='data: {"error": {...}}',
                seen=event.raw,
            )
        elif "event" in names:
            yield Issue(
                f"event block with `event: {event.event}` but no `data:` field; openai-python decodes it as an "
                "empty data line and fails to parse it as JSON",
                chunk=i,
                item=_stream_item(ctx),
                expected="a data: line in every event",
                seen=event.raw,
            )
        elif i in empty:
            yield Issue(
                _empty_event_message(names, empty[i], i),
                chunk=i,
                item=_stream_item(ctx),
                expected="no id:/retry: fields, or a data: line in every block after one",
                seen=event.raw,
            )
        elif set(names) - _IGNORED_AFTER_DONE:
            yield Issue(
                f"event block without a `data:` field (fields: {', '.join(sorted(set(names)))}); clients skip it, "
                "so whatever it meant to say is lost",
                chunk=i,
                item=_stream_item(ctx),
                expected="a data: line in every event",
                seen=event.raw,
            )


def _empty_dispatches(events: Sequence[SSEEvent]) -> dict[int, int | None]:
    """Blocks before [DONE] that openai-python's own SSEDecoder turns into an event with empty data, mapped to the
    block whose `id:` made it so (None when the block's own `retry:` did).

    The decoder dispatches at a blank line whenever an id or retry is set, and never forgets the last id (as the
    spec says), so after one `id:` even a `: keep-alive` comment block becomes an event whose data `""` the client
    then fails to parse as JSON."""
    decoder = SSEDecoder()
    out: dict[int, int | None] = {}
    id_from: int | None = None
    for i, event in enumerate(events):
        if event.data == DONE:
            break
        before = decoder._last_event_id  # the SDK's own state: which id it carries into the next blocks
        for line in event.raw.splitlines():
            decoder.decode(line)
        if decoder._last_event_id != before:
            id_from = i
        dispatched = decoder.decode("")
        if dispatched is not None and dispatched.data == "" and event.data is None:
            out[i] = id_from if decoder._last_event_id else None
    return out


def _empty_event_message(names: list[str], id_from: int | None, index: int) -> str:
    fields = ", ".join(f"`{n}:`" for n in sorted(set(names))) or "only a comment"
    if id_from is None:
        cause = "its `retry:` field"
    elif id_from == index:
        cause = "its `id:` field"
    else:
        cause = f"the `id:` of block #{id_from}, which the decoder keeps for every later block"
    return (
        f"data-less block ({fields}) before [DONE]: openai-python's SSEDecoder still dispatches it as an event "
        f"because of {cause}, with data '' that `sse.json()` fails to parse (JSONDecodeError), so the client "
        "crashes mid-stream. Send no `id:`/`retry:` fields (after one `id:`, every block needs `data:`)"
    )


@rule("stream-terminated", items.BASE_STREAMING, CHAT_LIKE)
def stream_terminated(ctx: Context) -> Iterator[Issue]:
    """The stream does not end inside an event (every event ends with a blank line)."""
    stream = ctx.stream
    if stream is None or not stream.tail.strip():
        return
    is_error = "error" in stream.tail
    yield Issue(
        "the stream ended inside an unterminated event (no blank line after it); clients never dispatch it"
        + (", so the error it carries is lost" if is_error else ""),
        raw=stream.tail,
        item=items.STREAM_ERRORS if is_error else _stream_item(ctx),
        expected="each event followed by a blank line",
        seen=stream.tail,
    )


@rule("done-terminator", items.BASE_STREAMING, CHAT_LIKE)
def done_terminator(ctx: Context) -> Iterator[Issue]:
    """The stream ends with exactly one `data: [DONE]` and nothing after it (an error event may end it instead)."""
    stream = ctx.stream
    if stream is None:
        return
    item = _stream_item(ctx)
    if not stream.done:
        if not stream.errors:
            yield Issue(
                "the stream ended without `data: [DONE]`; openai-python only stops at [DONE] or the end of the "
                "connection, so clients cannot tell a finished answer from a dropped one",
                chunk=len(stream.events) - 1 if stream.events else None,
                item=item,
                expected="data: [DONE]",
                seen="end of stream",
            )
        return
    first = stream.done[0]
    for i in stream.done[1:]:
        yield Issue(
            "`data: [DONE]` sent more than once", chunk=i, item=item, expected="one [DONE]", seen="another [DONE]"
        )
    for i in range(first + 1, len(stream.events)):
        event = stream.events[i]
        names = {name for name, _ in field_lines(event.raw.splitlines())}
        if (event.data is not None and event.data != "[DONE]") or names - _IGNORED_AFTER_DONE - {"data"}:
            yield Issue(
                "event after `data: [DONE]`; clients stop reading at [DONE], so it is never seen",
                chunk=i,
                item=item,
                expected="nothing after [DONE]",
                seen=event.raw,
            )
            break


@rule("chunk-json", items.BASE_STREAMING, CHAT_LIKE)
def chunk_json(ctx: Context) -> Iterator[Issue]:
    """Every data payload other than [DONE] is a JSON object."""
    stream = ctx.stream
    if stream is None:
        return
    for i, reason in stream.invalid:
        yield Issue(
            f"event data is {reason}; openai-python parses every data payload as a JSON object",
            chunk=i,
            item=_stream_item(ctx),
            expected="a JSON object",
            seen=stream.events[i].data,
        )


@rule("stream-error-event", items.STREAM_ERRORS, CHAT_LIKE)
def stream_error_event(ctx: Context) -> Iterator[Issue]:
    """An error inside a stream is `data: {"error": {"message": ...}}`, the last event before [DONE] or the end."""
    stream = ctx.stream
    if stream is None:
        return
    for i, payload in stream.errors:
        for error in schemas.errors(schemas.Schema.ERROR, payload):
            yield Issue(
                f"error event is not an OpenAI error object: {error.message}; openai-python shows "
                "`error.message` to the user",
                chunk=i,
                pointer=error.pointer,
                expected='{"error": {"message": "..."}}',
            )
        later = [j for j, _ in stream.chunks if j > i]
        if later:
            yield Issue(
                "chunks continue after the error event; openai-python raises at the error, so they are lost",
                chunk=later[0],
                expected="the error event last (then [DONE] or the end of the stream)",
            )
    for i, event in enumerate(stream.events):
        if event.event == "error" and not any(j == i for j, _ in stream.errors):
            yield Issue(
                '`event: error` whose data is not an {"error": {...}} object; openai-python then takes it for a '
                "normal chunk and never raises",
                chunk=i,
                expected='data: {"error": {"message": "..."}}',
                seen=event.data,
            )


def _stream_item(ctx: Context) -> str:
    return items.BASE_COMPLETIONS if ctx.base_item == items.BASE_COMPLETIONS else items.BASE_STREAMING


RULES: tuple[Rule, ...] = (
    stream_is_sse,
    sse_data_field,
    stream_terminated,
    done_terminator,
    chunk_json,
    stream_error_event,
)
