"""The rules for `/v1/messages` and `/v1/messages/count_tokens`: envelope, schemas, framing, order, meaning, SDK.

Each rule judges one exchange and reports `Issue`s; every finding belongs to `0.4.1/anthropic-messages` and
names the rule as its check. The same rules run in `conformance run` (under each catalog check), in
`conformance check` and live in the proxy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as JsonSchemaError

from conformance import schemas
from conformance.findings import Finding
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.anthropic.sdk import sdk_replay
from conformance.verdicts.anthropic.view import Frame, MessagesView, Surface
from conformance.verdicts.context import Issue, as_dict
from conformance.verdicts.rule import schema_issues

__all__ = ["RULES", "STATUS_ERROR_TYPES", "MessagesRule"]

ITEM = items.ANTHROPIC_MESSAGES
STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
"""The error type Anthropic's API gives each status (the SDK picks its exception by status)."""

Judge = Callable[[MessagesView], Iterable[Issue]]


@dataclass(frozen=True)
class MessagesRule:
    id: str
    judge: Judge
    doc: str

    def findings(self, view: MessagesView) -> list[Finding]:
        return [
            issue.finding(item=ITEM, check=self.id, endpoint=view.exchange.endpoint, raw=view.raw_of(issue))
            for issue in self.judge(view)
        ]


def _rule(rule_id: str) -> Callable[[Judge], MessagesRule]:
    def wrap(judge: Judge) -> MessagesRule:
        return MessagesRule(rule_id, judge, (judge.__doc__ or "").strip())

    return wrap


@_rule("error-envelope")
def error_envelope(view: MessagesView) -> Iterator[Issue]:
    """An error status carries Anthropic's envelope `{"type": "error", "error": {"type", "message"}}`, its type
    matching the status (the SDK builds its exception from both)."""
    if view.response is None or view.ok:
        return
    body = view.body
    yield from schema_issues(Schema.ANTHROPIC_ERROR, body, f"the {view.status} error body")
    kind = as_dict(as_dict(body).get("error")).get("type")
    expected = STATUS_ERROR_TYPES.get(view.status or 0)
    if expected is not None and isinstance(kind, str) and kind != expected:
        yield Issue(
            f"status {view.status} comes with error type {kind!r}; Anthropic's API pairs it with {expected!r}",
            pointer="/error/type",
            expected=expected,
            seen=kind,
        )


@_rule("body-schema")
def body_schema(view: MessagesView) -> Iterator[Issue]:
    """A 2xx answer is what was asked: a `message` body (or an event stream when `stream` is true), and
    `{"input_tokens": N}` from count_tokens; never an error object with status 200."""
    if not view.ok or view.response is None:
        return
    if view.surface is Surface.COUNT_TOKENS:
        yield from schema_issues(Schema.ANTHROPIC_COUNT_TOKENS, view.body, "the count_tokens body")
        return
    asked = view.request.get("stream") is True
    if asked and not view.streamed:
        yield Issue(
            "the request asked for `stream: true` but the answer is not a text/event-stream",
            expected="text/event-stream",
            seen=view.response.headers.get("content-type"),
        )
    elif view.streamed and not asked:
        yield Issue("the request did not ask to stream but the answer is an event stream", expected="a message body")
    if not view.streamed:
        yield from schema_issues(Schema.ANTHROPIC_MESSAGE, view.body, "the message body")


@_rule("event-lines")
def event_lines(view: MessagesView) -> Iterator[Issue]:
    """Every frame has an `event:` line equal to its data's `type`: the SDK dispatches on the event name and
    silently drops data without one."""
    for frame in view.frames:
        kind = frame.type
        if kind is None:
            continue
        if frame.name is None:
            yield Issue(
                f"the {kind} frame has no `event:` line; anthropic-python drops it without a word",
                chunk=frame.chunk,
                expected=f"event: {kind}",
                seen=None,
            )
        elif frame.name != kind:
            yield Issue(
                f"the `event:` line says {frame.name!r} but the data's type is {kind!r}",
                chunk=frame.chunk,
                pointer="/type",
                expected=kind,
                seen=frame.name,
            )


@_rule("event-schema")
def event_schema(view: MessagesView) -> Iterator[Issue]:
    """Every event's data is a JSON object valid against the strict schema of its type."""
    for frame in view.frames:
        if frame.payload is None:
            yield Issue(f"the event's data is {frame.problem}", chunk=frame.chunk, expected="a JSON object")
            continue
        yield from schema_issues(
            Schema.ANTHROPIC_EVENT, frame.payload, f"the {frame.type or 'untyped'} event", chunk=frame.chunk
        )


_DELTAS_OF = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
}


@_rule("event-order")
def event_order(view: MessagesView) -> Iterator[Issue]:
    """`message_start` first; blocks started with indices 0, 1, 2..., each delta and stop addressing the open
    block with a delta of its kind, each closed before the next starts; then `message_delta`, `message_stop`
    last (the order the SDK's accumulator assumes)."""
    if not view.ok or not view.streamed:
        return
    frames = [f for f in view.frames if f.type not in (None, "ping")]
    if not frames:
        yield Issue("the stream carries no event", expected="message_start ... message_stop")
        return
    if frames[0].type != "message_start":
        yield Issue(
            f"the first event is {frames[0].type!r}; the SDK raises 'Unexpected event order' before message_start",
            chunk=frames[0].chunk,
            expected="message_start",
            seen=frames[0].type,
        )
    yield from _block_order(frames)
    yield from _message_end(view, frames)


def _block_order(frames: list[Frame]) -> Iterator[Issue]:
    started = 0
    open_block: tuple[int, str | None] | None = None
    for frame in frames:
        payload = frame.payload or {}
        index = payload.get("index")
        if frame.type == "content_block_start":
            if open_block is not None:
                yield Issue(
                    f"block {index} starts while block {open_block[0]} is still open; close each block "
                    "(content_block_stop) before the next starts",
                    chunk=frame.chunk,
                    expected=f"content_block_stop for index {open_block[0]}",
                    seen="content_block_start",
                )
            if index != started:
                yield Issue(
                    f"content_block_start has index {index!r}, expected {started}: the SDK appends each started "
                    "block, so indices must count 0, 1, 2... in start order",
                    chunk=frame.chunk,
                    pointer="/index",
                    expected=started,
                    seen=index,
                )
            started += 1
            kind = as_dict(payload.get("content_block")).get("type")
            open_block = (index if isinstance(index, int) else started - 1, kind if isinstance(kind, str) else None)
        elif frame.type in ("content_block_delta", "content_block_stop"):
            if open_block is None or index != open_block[0]:
                yield Issue(
                    f"{frame.type} addresses block {index!r}, but "
                    + ("no block is open" if open_block is None else f"the open block is {open_block[0]}"),
                    chunk=frame.chunk,
                    pointer="/index",
                    expected=None if open_block is None else open_block[0],
                    seen=index,
                )
            if frame.type == "content_block_stop":
                open_block = None
                continue
            delta_kind = as_dict(payload.get("delta")).get("type")
            allowed = _DELTAS_OF.get(open_block[1] or "") if open_block is not None else None
            if allowed is not None and delta_kind not in allowed:
                yield Issue(
                    f"a {delta_kind!r} delta in a {open_block[1] if open_block else None} block",
                    chunk=frame.chunk,
                    pointer="/delta/type",
                    expected=sorted(allowed),
                    seen=delta_kind,
                )
        elif frame.type in ("message_delta", "message_stop") and open_block is not None:
            yield Issue(
                f"{frame.type} arrives while block {open_block[0]} is still open",
                chunk=frame.chunk,
                expected=f"content_block_stop for index {open_block[0]}",
                seen=frame.type,
            )
            open_block = None


def _message_end(view: MessagesView, frames: list[Frame]) -> Iterator[Issue]:
    errors = [f for f in frames if f.type == "error"]
    last = frames[-1]
    if errors:
        if last.type != "error":
            yield Issue("events follow an error event", chunk=last.chunk, expected="error as the last event")
        return
    deltas = [f for f in frames if f.type == "message_delta"]
    if not deltas:
        yield Issue(
            "the stream has no message_delta: clients get no stop_reason and no output_tokens",
            chunk=last.chunk,
            expected="message_delta with stop_reason and usage",
        )
    if last.type != "message_stop":
        yield Issue(
            f"the stream ends with {last.type!r}, not message_stop",
            chunk=last.chunk,
            expected="message_stop",
            seen=last.type,
        )
    for frame in frames:
        if frame.type == "message_stop" and frame is not last:
            yield Issue("events follow message_stop", chunk=frame.chunk, expected="message_stop last")
    if view.response is not None and view.response.tail.strip():
        yield Issue(
            "the stream ends inside an unterminated event",
            raw=view.response.tail,
            expected="every event ended by a blank line",
        )


@_rule("stream-error-event")
def stream_error_event(view: MessagesView) -> Iterator[Issue]:
    """An error after the stream started is `event: error` with Anthropic's envelope; not an OpenAI-style
    `{"error": {...}}` payload nor an `error:` field the SDK never reads."""
    if view.response is None or view.response.events is None:
        return
    for i, event in enumerate(view.response.events):
        if event.data is None and any(line.startswith("error:") for line in event.raw.splitlines()):
            yield Issue(
                "an error sent as an SSE `error:` field: clients read only `event:` and `data:`",
                chunk=i,
                expected='event: error + data: {"type": "error", "error": {...}}',
            )
    for frame in view.frames:
        payload = frame.payload or {}
        if "error" in payload and payload.get("type") != "error":
            yield Issue(
                'an error payload without `"type": "error"`: anthropic-python only raises on an `event: error` frame',
                chunk=frame.chunk,
                pointer="/type",
                expected="error",
                seen=payload.get("type"),
            )


@_rule("usage")
def usage(view: MessagesView) -> Iterator[Issue]:
    """`message_start` reports `input_tokens`; `message_delta` reports cumulative `output_tokens` (never
    decreasing); output_tokens stays within max_tokens."""
    if not view.ok or view.surface is not Surface.MESSAGES:
        return
    limit = view.request.get("max_tokens")
    output: int | None = None
    chunk = None
    if view.streamed:
        for frame in view.frames:
            if frame.type != "message_delta":
                continue
            count = as_dict(as_dict(frame.payload).get("usage")).get("output_tokens")
            if isinstance(count, int) and output is not None and count < output:
                yield Issue(
                    f"output_tokens falls from {output} to {count}: message_delta usage is cumulative",
                    chunk=frame.chunk,
                    pointer="/usage/output_tokens",
                    expected=f">= {output}",
                    seen=count,
                )
            if isinstance(count, int):
                output, chunk = count, frame.chunk
    else:
        count = as_dict(as_dict(view.body).get("usage")).get("output_tokens")
        output = count if isinstance(count, int) else None
    if isinstance(limit, int) and output is not None and output > limit:
        yield Issue(
            f"output_tokens is {output}, more than max_tokens {limit}",
            chunk=chunk,
            pointer="/usage/output_tokens",
            expected=f"<= {limit}",
            seen=output,
        )


@_rule("stop-reason")
def stop_reason(view: MessagesView) -> Iterator[Issue]:
    """`stop_reason` says what happened: `tool_use` exactly when a tool_use block ends the answer (unless cut
    by max_tokens), `stop_sequence` with the request's sequence that matched in `stop_sequence`, else null."""
    message = view.message
    if message is None or view.surface is not Surface.MESSAGES:
        return
    reason = message.get("stop_reason")
    sequence = message.get("stop_sequence")
    chunk = _delta_chunk(view)
    pointer = "/delta" if view.streamed else ""
    uses = view.blocks_of("tool_use")
    if uses and reason not in ("tool_use", "max_tokens"):
        yield Issue(
            f"the answer has {len(uses)} tool_use block(s) but stop_reason is {reason!r}; agents run tools only "
            'on "tool_use"',
            chunk=chunk,
            pointer=f"{pointer}/stop_reason",
            expected="tool_use",
            seen=reason,
        )
    if reason == "tool_use" and not uses:
        yield Issue(
            'stop_reason is "tool_use" but the answer has no tool_use block',
            chunk=chunk,
            pointer=f"{pointer}/stop_reason",
            expected="a tool_use block",
            seen=[b.get("type") for b in view.content()],
        )
    asked = view.request.get("stop_sequences")
    asked = [s for s in asked if isinstance(s, str)] if isinstance(asked, list) else []
    if reason == "stop_sequence" and sequence not in asked:
        yield Issue(
            f'stop_reason is "stop_sequence" but stop_sequence is {sequence!r}, not one of the request\'s',
            chunk=chunk,
            pointer=f"{pointer}/stop_sequence",
            expected=asked,
            seen=sequence,
        )
    if reason != "stop_sequence" and sequence is not None:
        yield Issue(
            f"stop_sequence is {sequence!r} but stop_reason is {reason!r}",
            chunk=chunk,
            pointer=f"{pointer}/stop_sequence",
            expected=None,
            seen=sequence,
        )


def _delta_chunk(view: MessagesView) -> int | None:
    frame = view.last("message_delta")
    return None if frame is None else frame.chunk


@_rule("tool-use")
def tool_use(view: MessagesView) -> Iterator[Issue]:
    """tool_use blocks have unique `toolu_`-style ids, a tool the request defined (the one `tool_choice`
    names), an input object valid against its `input_schema`; none under `tool_choice: none`, at most one with
    `disable_parallel_tool_use`; streamed input fragments join into that JSON."""
    if view.message is None or view.surface is not Surface.MESSAGES:
        return
    choice = view.tool_choice
    streamed_blocks = {b.index: b for b in view.blocks if b.type == "tool_use"}
    ids: list[str] = []
    for k, block in enumerate(view.content()):
        if block.get("type") != "tool_use":
            continue
        source = streamed_blocks.get(k)
        chunk = None if source is None else source.start
        pointer = f"/content/{k}"
        name, call_id, arguments = block.get("name"), block.get("id"), block.get("input")
        if isinstance(call_id, str):
            ids.append(call_id)
        if view.tools and name not in view.tools:
            yield Issue(
                f"tool_use block {k} names {name!r}, which the request did not define",
                chunk=chunk,
                pointer=f"{pointer}/name",
                expected=sorted(view.tools),
                seen=name,
            )
        if choice.get("type") == "tool" and name != choice.get("name"):
            yield Issue(
                f"tool_choice forces {choice.get('name')!r} but tool_use block {k} calls {name!r}",
                chunk=chunk,
                pointer=f"{pointer}/name",
                expected=choice.get("name"),
                seen=name,
            )
        if source is not None and source.text:
            if (view.message or {}).get("stop_reason") == "max_tokens" and k == len(view.content()) - 1:
                continue  # cut mid-input by max_tokens: the fragments end unfinished
            try:
                arguments = json.loads(source.text)
            except ValueError as exc:
                yield Issue(
                    f"the input_json_delta fragments of block {k} do not join into JSON ({exc})",
                    chunk=source.deltas[-1] if source.deltas else source.start,
                    pointer="/delta/partial_json",
                    expected="valid JSON",
                    seen=source.text,
                )
                continue
        if not isinstance(arguments, dict):
            yield Issue(
                f"tool_use block {k}'s input is not a JSON object",
                chunk=chunk,
                pointer=f"{pointer}/input",
                expected="an object",
                seen=arguments,
            )
            continue
        schema = view.tools.get(name) if isinstance(name, str) else None
        cut = k == len(view.content()) - 1 and (view.message or {}).get("stop_reason") == "max_tokens"
        if isinstance(schema, dict) and not cut:  # a call cut by max_tokens has an unfinished input
            yield from _input_issues(schema, arguments, k, chunk, pointer)
    if len(set(ids)) != len(ids):
        yield Issue("tool_use blocks share an id; tool_result blocks refer back by id", expected="unique ids", seen=ids)
    if choice.get("type") == "none" and view.blocks_of("tool_use"):
        yield Issue('tool_choice is "none" but the answer calls a tool', expected="no tool_use block")
    if choice.get("disable_parallel_tool_use") is True and len(view.blocks_of("tool_use")) > 1:
        yield Issue(
            "disable_parallel_tool_use is set but the answer has several tool_use blocks",
            expected="at most one tool_use block",
            seen=len(view.blocks_of("tool_use")),
        )


def _input_issues(
    schema: dict[str, object], arguments: object, k: int, chunk: int | None, pointer: str
) -> Iterator[Issue]:
    try:
        validator = Draft202012Validator(schema)
        found = list(validator.iter_errors(arguments))
    except (JsonSchemaError, TypeError, ValueError):
        return  # the request's own schema is broken: nothing to judge against
    for error in found[:3]:
        yield Issue(
            f"tool_use block {k}'s input breaks its input_schema: {error.message}",
            chunk=chunk,
            pointer=f"{pointer}/input{schemas.pointer(error.absolute_path)}",
            expected=f"{error.validator}: {json.dumps(error.validator_value, default=str)[:200]}",
            seen=arguments,
        )


@_rule("thinking-blocks")
def thinking_blocks(view: MessagesView) -> Iterator[Issue]:
    """Thinking blocks come first and carry a non-empty `signature` (streamed: a `signature_delta` before the
    block's stop); Claude Code drops thinking blocks without one."""
    if view.message is None or view.surface is not Surface.MESSAGES:
        return
    content = view.content()
    kinds = [b.get("type") for b in content]
    answer_started = False
    for k, kind in enumerate(kinds):
        if kind in ("text", "tool_use"):
            answer_started = True
        elif kind in ("thinking", "redacted_thinking") and answer_started:
            yield Issue(
                f"thinking block {k} comes after the answer started; thinking blocks come first",
                pointer=f"/content/{k}",
                expected="thinking blocks before text and tool_use",
                seen=kinds,
            )
    streamed = {b.index: b for b in view.blocks if b.type == "thinking"}
    for k, block in enumerate(content):
        if block.get("type") != "thinking":
            continue
        source = streamed.get(k)
        if source is not None:
            if source.signature_chunk is None or not source.signature:
                yield Issue(
                    f"thinking block {k} is closed without a signature_delta; Claude Code drops unsigned thinking",
                    chunk=source.stop if source.stop is not None else source.start,
                    expected='a {"type": "signature_delta", "signature": "..."} delta before content_block_stop',
                )
            continue
        if not isinstance(block.get("signature"), str) or not block["signature"]:
            yield Issue(
                f"thinking block {k} has no signature; Claude Code drops unsigned thinking",
                pointer=f"/content/{k}/signature",
                expected="a non-empty signature",
                seen=block.get("signature"),
            )


@_rule("sdk-accumulates")
def sdk_accumulates(view: MessagesView) -> Iterator[Issue]:
    """anthropic-python reads the answer without raising, and its stream accumulator rebuilds every block the
    stream started, with the stream's stop_reason."""
    if any(frame.type == "error" for frame in view.frames):
        return  # an error event makes the SDK raise by design; the stream rules judge its form
    replay = sdk_replay(view)
    if replay is None:
        return
    if replay.error is not None:
        yield Issue(
            f"anthropic-python raised: {replay.error}; clients using messages.stream() or create() fail the same way",
            expected="an answer the official SDK can read",
            seen=replay.error,
        )
        return
    if not view.streamed or replay.message is None:
        return
    rebuilt = [b.get("type") for b in replay.message.get("content") or [] if isinstance(b, dict)]
    started = [b.type for b in view.blocks]
    if rebuilt != started:
        yield Issue(
            "the SDK rebuilds other blocks than the stream started (frames it could not dispatch were dropped)",
            chunk=view.blocks[0].start if view.blocks else None,
            expected=started,
            seen=rebuilt,
        )
    wire = view.message or {}
    if replay.message.get("stop_reason") != wire.get("stop_reason"):
        yield Issue(
            "the SDK's stop_reason differs from the stream's message_delta (the frame was dropped)",
            chunk=_delta_chunk(view),
            expected=wire.get("stop_reason"),
            seen=replay.message.get("stop_reason"),
        )


RULES: tuple[MessagesRule, ...] = (
    error_envelope,
    body_schema,
    event_lines,
    event_schema,
    event_order,
    stream_error_event,
    usage,
    stop_reason,
    tool_use,
    thinking_blocks,
    sdk_accumulates,
)
"""Every Anthropic rule, in the order findings are reported."""
