"""Rules for OpenAI Responses API exchanges (`/v1/responses`): events, ids, the final object, tools and echoes."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as JsonSchemaError
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from conformance import schemas
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue, as_dict
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES", "TERMINAL", "ResponsesView", "view"]

_POST = frozenset({Endpoint.RESPONSES})
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
"""The events that end a Responses stream with the final response object."""


@dataclass
class _Item:
    """What the stream said about one output item."""

    index: int
    chunk: int
    item: dict[str, Any]
    done: dict[str, Any] | None = None
    text: dict[int, list[str]] = field(default_factory=dict)
    """Concatenated text deltas per content_index (output_text and reasoning_text)."""
    text_done: dict[int, str] = field(default_factory=dict)
    parts: set[int] = field(default_factory=set)
    arguments: list[str] = field(default_factory=list)
    arguments_done: str | None = None

    @property
    def id(self) -> Any:
        return self.item.get("id")


class ResponsesView:
    """One /v1/responses exchange: its events in order, the items they built, and the final response."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        stream = ctx.stream
        self.events: list[tuple[int, dict[str, Any]]] = []
        if stream is not None:
            self.events = sorted([*stream.chunks, *stream.errors], key=lambda pair: pair[0])

    @property
    def streamed(self) -> bool:
        return self.ctx.stream is not None

    @cached_property
    def terminal(self) -> tuple[int, dict[str, Any]] | None:
        """The last response.completed / .incomplete / .failed event."""
        found = [(i, e) for i, e in self.events if e.get("type") in TERMINAL]
        return found[-1] if found else None

    @cached_property
    def final(self) -> dict[str, Any] | None:
        """The response object: the body, or the `response` of the stream's terminal event."""
        if not self.ctx.ok:
            return None
        if not self.streamed:
            return self.ctx.body if isinstance(self.ctx.body, dict) else None
        if self.terminal is None:
            return None
        response = self.terminal[1].get("response")
        return response if isinstance(response, dict) else None

    @property
    def output(self) -> list[dict[str, Any]]:
        output = as_dict(self.final).get("output")
        return [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []

    @property
    def function_calls(self) -> list[tuple[int, dict[str, Any]]]:
        return [(k, item) for k, item in enumerate(self.output) if item.get("type") == "function_call"]

    @property
    def text(self) -> str:
        """Every output_text of every message item, as openai-python's `output_text` joins them."""
        return "".join(
            str(part.get("text", ""))
            for item in self.output
            if item.get("type") == "message" and isinstance(item.get("content"), list)
            for part in item["content"]
            if isinstance(part, dict) and part.get("type") == "output_text"
        )

    @property
    def usage(self) -> dict[str, Any]:
        return as_dict(as_dict(self.final).get("usage"))

    @cached_property
    def stream_items(self) -> tuple[list[_Item], list[Issue]]:
        """The items as the events built them, and every inconsistency in indices and ids met on the way."""
        built: list[_Item] = []
        issues: list[Issue] = []

        def target(i: int, event: dict[str, Any]) -> _Item | None:
            index = event.get("output_index")
            if not isinstance(index, int) or not 0 <= index < len(built):
                issues.append(
                    Issue(
                        f"{event.get('type')} has output_index {index!r}, but no response.output_item.added "
                        "opened that index before it; openai-python's responses.stream() indexes "
                        "snapshot.output[output_index] and fails",
                        item=items.RESPONSES_STREAMING,
                        chunk=i,
                        pointer="/output_index",
                        expected=f"0..{len(built) - 1}" if built else "an added item first",
                        seen=index,
                    )
                )
                return None
            found = built[index]
            if "item_id" in event and event["item_id"] != found.id:
                issues.append(
                    Issue(
                        f"{event.get('type')} names item_id {event['item_id']!r}, but output_index {index} is the "
                        f"item {found.id!r}",
                        item=items.RESPONSES_STREAMING,
                        chunk=i,
                        pointer="/item_id",
                        expected=found.id,
                        seen=event["item_id"],
                    )
                )
            return found

        for i, event in self.events:
            kind = event.get("type")
            if kind == "response.output_item.added":
                item = as_dict(event.get("item"))
                if event.get("output_index") != len(built):
                    issues.append(
                        Issue(
                            f"response.output_item.added has output_index {event.get('output_index')!r}; items are "
                            f"numbered in the order they are added, so the next one is {len(built)}",
                            item=items.RESPONSES_STREAMING,
                            chunk=i,
                            pointer="/output_index",
                            expected=len(built),
                            seen=event.get("output_index"),
                        )
                    )
                built.append(_Item(index=len(built), chunk=i, item=item))
                continue
            if not isinstance(kind, str) or "output_index" not in event:
                continue
            found = target(i, event)
            if found is None:
                continue
            content_index = event.get("content_index")
            if kind == "response.output_item.done":
                found.done = as_dict(event.get("item"))
            elif kind == "response.content_part.added" and isinstance(content_index, int):
                found.parts.add(content_index)
            elif kind in ("response.output_text.delta", "response.reasoning_text.delta"):
                if isinstance(content_index, int) and content_index not in found.parts:
                    issues.append(
                        Issue(
                            f"{kind} for content_index {content_index!r} before a response.content_part.added "
                            "opened it; openai-python's responses.stream() indexes the snapshot's content and fails",
                            item=items.RESPONSES_STREAMING,
                            chunk=i,
                            pointer="/content_index",
                            expected=sorted(found.parts),
                            seen=content_index,
                        )
                    )
                found.text.setdefault(content_index if isinstance(content_index, int) else -1, []).append(
                    str(event.get("delta", ""))
                )
            elif kind in ("response.output_text.done", "response.reasoning_text.done"):
                found.text_done[content_index if isinstance(content_index, int) else -1] = str(event.get("text", ""))
            elif kind == "response.function_call_arguments.delta":
                found.arguments.append(str(event.get("delta", "")))
            elif kind == "response.function_call_arguments.done":
                found.arguments_done = str(event.get("arguments", ""))
        return built, issues


def view(ctx: Context) -> ResponsesView:
    """The Responses view of an exchange, computed once per context."""
    if "responses" not in ctx.memo:
        ctx.memo["responses"] = ResponsesView(ctx)
    result: ResponsesView = ctx.memo["responses"]
    return result


def request_tools(request: dict[str, Any]) -> dict[str, Any]:
    """The request's flat function tools: name -> parameters (None when omitted)."""
    tools = request.get("tools")
    return (
        {
            tool["name"]: tool.get("parameters")
            for tool in tools or ()
            if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str)
        }
        if isinstance(tools, list)
        else {}
    )


# ---- streaming ---------------------------------------------------------------------------------


@rule("responses-stream-is-sse", items.RESPONSES_STREAMING, _POST)
def stream_is_sse(ctx: Context) -> Iterator[Issue]:
    """A 2xx answer to `stream: true` is a `text/event-stream` whose events are JSON objects."""
    if not ctx.asked_stream or not ctx.ok or ctx.response is None:
        return
    if not ctx.response.is_stream:
        yield Issue(
            "stream: true was asked, but the answer is not a text/event-stream",
            expected="content-type text/event-stream",
            seen=ctx.response.headers.get("content-type"),
        )
        return
    assert ctx.stream is not None
    for i, reason in ctx.stream.invalid:
        yield Issue(f"event data is {reason}", chunk=i, expected="a JSON object with `type`")


@rule("responses-event-schema", items.RESPONSES_STREAMING, _POST)
def event_schema(ctx: Context) -> Iterator[Issue]:
    """Every event validates against the strict schema of its type (and its `event:` name, when sent, is its type)."""
    stream = ctx.stream
    if stream is None:
        return
    events = ctx.response.events if ctx.response is not None else None
    for i, event in view(ctx).events:
        for error in schemas.errors(Schema.RESPONSE_STREAM_EVENT, event):
            yield Issue(
                f"{event.get('type', 'event')} breaks the `{Schema.RESPONSE_STREAM_EVENT.value}` schema: "
                f"{error.message}",
                chunk=i,
                pointer=error.pointer,
                expected=error.constraint,
            )
        name = events[i].event if events is not None else None
        if name is not None and name != event.get("type"):
            yield Issue(
                f"the SSE event name {name!r} differs from the data's type {event.get('type')!r}",
                chunk=i,
                pointer="/type",
                expected=event.get("type"),
                seen=name,
            )


@rule("responses-sequence-numbers", items.RESPONSES_STREAMING, _POST)
def sequence_numbers(ctx: Context) -> Iterator[Issue]:
    """Events are numbered by `sequence_number`, from 0, one more per event."""
    events = view(ctx).events
    for position, (i, event) in enumerate(events):
        number = event.get("sequence_number")
        if not isinstance(number, int) or isinstance(number, bool):
            continue  # the event schema reports a missing or mistyped sequence_number
        if number != position:
            yield Issue(
                f"event #{position} has sequence_number {number}; events count from 0 by 1, so clients that "
                "resume or order by it see a gap",
                chunk=i,
                pointer="/sequence_number",
                expected=position,
                seen=number,
            )
            return


@rule("responses-stream-order", items.RESPONSES_STREAMING, _POST)
def stream_order(ctx: Context) -> Iterator[Issue]:
    """`response.created` comes first; the stream ends with exactly one completed/incomplete/failed or an error."""
    v = view(ctx)
    if not v.streamed or not v.events:
        if v.streamed:
            yield Issue("the stream has no events", expected="response.created ... response.completed")
        return
    first_i, first = v.events[0]
    if first.get("type") != "response.created":
        yield Issue(
            f"the first event is {first.get('type')!r}; openai-python's responses.stream() raises "
            '"Expected to have received `response.created` before ..."',
            chunk=first_i,
            pointer="/type",
            expected="response.created",
            seen=first.get("type"),
        )
    enders = [(i, e) for i, e in v.events if e.get("type") in (*TERMINAL, "error")]
    last_i, last = v.events[-1]
    if not enders:
        yield Issue(
            "the stream ended without response.completed, response.incomplete, response.failed or an error event; "
            "openai-python's get_final_response() raises",
            chunk=last_i,
            expected="a terminal event",
            seen=last.get("type"),
        )
        return
    end_i, end = enders[0]
    if end_i != last_i:
        yield Issue(
            f"events follow the terminal {end.get('type')!r} event",
            chunk=v.events[[i for i, _ in v.events].index(end_i) + 1][0],
            expected="nothing after the terminal event",
        )
    status = as_dict(end.get("response")).get("status")
    wanted = {"response.completed": "completed", "response.incomplete": "incomplete", "response.failed": "failed"}
    if end.get("type") in wanted and status != wanted[str(end.get("type"))]:
        yield Issue(
            f"{end.get('type')} carries a response with status {status!r}",
            chunk=end_i,
            pointer="/response/status",
            expected=wanted[str(end.get("type"))],
            seen=status,
        )


@rule("responses-stream-items", items.RESPONSES_STREAMING, _POST)
def stream_items(ctx: Context) -> Iterator[Issue]:
    """Each event's output_index / content_index / item_id points at an item and part opened before it."""
    v = view(ctx)
    if not v.streamed:
        return
    built, issues = v.stream_items
    yield from issues
    for found in built:
        if found.done is None and v.terminal is not None:
            yield Issue(
                f"item {found.id!r} (output_index {found.index}) was added but never got response.output_item.done",
                chunk=found.chunk,
                expected="response.output_item.done",
            )


@rule("responses-stream-matches-final", items.RESPONSES_STREAMING, _POST)
def stream_matches_final(ctx: Context) -> Iterator[Issue]:
    """The streamed items are the final response's: same ids, call_ids, text and arguments (Codex pairs them)."""
    v = view(ctx)
    if not v.streamed or v.terminal is None or v.final is None:
        return
    built, _ = v.stream_items
    end_i = v.terminal[0]
    output = v.output
    streamed_ids = [found.id for found in built]
    final_ids = [item.get("id") for item in output]
    if streamed_ids != final_ids:
        yield Issue(
            "the item ids of the stream differ from those of the final response; clients that pair "
            "response.output_item.done with the final output (Codex) lose items",
            chunk=end_i,
            pointer="/response/output",
            expected=streamed_ids,
            seen=final_ids,
        )
        return
    for found, item in zip(built, output, strict=True):
        where = f"/response/output/{found.index}"
        done = found.done or {}
        if item.get("type") == "function_call":
            for key in ("call_id", "name"):
                if found.item.get(key) != item.get(key) or (done and done.get(key) != item.get(key)):
                    yield Issue(
                        f"function_call {found.id!r}: {key} in the stream differs from the final response",
                        chunk=found.chunk,
                        pointer=f"{where}/{key}",
                        expected=item.get(key),
                        seen=found.item.get(key),
                    )
            deltas = "".join(found.arguments)
            finals = {"deltas": deltas, "final": item.get("arguments")}
            if found.arguments_done is not None:
                finals["function_call_arguments.done"] = found.arguments_done
            if len(set(map(str, finals.values()))) > 1:
                yield Issue(
                    f"function_call {found.id!r}: the argument deltas, the .done event and the final response disagree",
                    chunk=end_i,
                    pointer=f"{where}/arguments",
                    expected=item.get("arguments"),
                    seen=finals,
                )
        elif item.get("type") in ("message", "reasoning"):
            content = item.get("content")
            for k, part in enumerate(content if isinstance(content, list) else []):
                text = as_dict(part).get("text")
                if not isinstance(text, str):
                    continue
                deltas = "".join(found.text.get(k, []))
                seen = {"deltas": deltas, **({"done": found.text_done[k]} if k in found.text_done else {})}
                if any(value != text for value in seen.values()):
                    yield Issue(
                        f"{item.get('type')} {found.id!r} content {k}: the streamed text differs from the final "
                        "response's",
                        chunk=end_i,
                        pointer=f"{where}/content/{k}/text",
                        expected=text,
                        seen=seen,
                    )


@rule("responses-function-arguments-done", items.RESPONSES_FUNCTION_TOOLS, _POST)
def function_arguments_done(ctx: Context) -> Iterator[Issue]:
    """A streamed function_call item gets response.function_call_arguments.done before its output_item.done."""
    v = view(ctx)
    if not v.streamed:
        return
    built, _ = v.stream_items
    for found in built:
        if found.item.get("type") == "function_call" and found.done is not None and found.arguments_done is None:
            yield Issue(
                f"function_call {found.id!r} ended without response.function_call_arguments.done (vllm PR #56285); "
                "clients waiting for it never run the tool",
                chunk=found.chunk,
                expected="response.function_call_arguments.done",
            )


@rule("responses-openai-sdk-stream", items.RESPONSES_STREAMING, _POST)
def openai_sdk_stream(ctx: Context) -> Iterator[Issue]:
    """openai-python's ResponseStreamState (behind responses.stream()) folds the stream without raising, and its
    snapshot's text is the final response's."""
    v = view(ctx)
    if not v.streamed or not v.events:
        return
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=[], text_format=omit)
    snapshot: Any = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns on leniently constructed models; the schema rules judge types
        for i, payload in v.events:
            if payload.get("type") == "error":
                return  # the error-event rule judges it; openai-python raises there by design
            try:
                event: Any = construct_type(type_=ResponseStreamEvent, value=payload)
                state.handle_event(event)
            except Exception as exc:  # any exception is what a client would see
                yield Issue(
                    f"openai-python's responses.stream() raised on this event: {type(exc).__name__}: {exc}",
                    chunk=i,
                    expected="an event the official SDK can fold",
                    seen=payload.get("type"),
                )
                return
        snapshot = state._ResponseStreamState__current_snapshot  # type: ignore[attr-defined]  # no public getter
    if snapshot is None or v.final is None:
        return
    rebuilt = "".join(
        str(getattr(part, "text", ""))
        for item in snapshot.output
        if getattr(item, "type", None) == "message"
        for part in getattr(item, "content", [])
        if getattr(part, "type", None) == "output_text"
    )
    if rebuilt != v.text:
        yield Issue(
            "the text openai-python rebuilds from the deltas differs from the final response's output_text",
            chunk=v.terminal[0] if v.terminal else None,
            expected=v.text,
            seen=rebuilt,
        )


@rule("responses-error-event", items.RESPONSES_STREAMING, _POST)
def error_event(ctx: Context) -> Iterator[Issue]:
    """An error after the stream started is an `error` event with a message that openai-python raises."""
    for i, event in view(ctx).events:
        if event.get("type") != "error" or isinstance(event.get("error"), dict):
            continue
        if isinstance(event.get("message"), str):
            yield Issue(
                "the error event has only flat fields; openai-python yields it as an ordinary event instead of "
                'raising, so clients that do not look for type "error" miss the failure (add an `error` object '
                "with the message, as Open Responses does)",
                chunk=i,
                pointer="/error",
                expected={"error": {"message": "..."}},
                seen=event,
                item=items.RESPONSES_STREAMING,
            )


# ---- the response object -----------------------------------------------------------------------


@rule("responses-usage", items.RESPONSES, _POST)
def usage_numbers(ctx: Context) -> Iterator[Issue]:
    """A finished response has usage whose total is input + output, details within their totals."""
    v = view(ctx)
    final = v.final
    if final is None or final.get("status") not in ("completed", "incomplete"):
        return
    item = items.RESPONSES_STREAMING if v.streamed else items.RESPONSES
    chunk = v.terminal[0] if v.terminal else None
    prefix = "/response/usage" if v.streamed else "/usage"
    usage = v.usage
    if not usage:
        yield Issue(
            f"the {final.get('status')} response has no usage",
            item=item,
            chunk=chunk,
            pointer=prefix,
            expected="input_tokens, output_tokens, total_tokens",
        )
        return
    counts = {key: usage.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")}
    if all(isinstance(value, int) for value in counts.values()):
        if counts["total_tokens"] != counts["input_tokens"] + counts["output_tokens"]:  # type: ignore[operator]
            yield Issue(
                "usage.total_tokens is not input_tokens + output_tokens",
                item=item,
                chunk=chunk,
                pointer=f"{prefix}/total_tokens",
                expected=counts["input_tokens"] + counts["output_tokens"],  # type: ignore[operator]
                seen=counts["total_tokens"],
            )
        cached = as_dict(usage.get("input_tokens_details")).get("cached_tokens")
        if isinstance(cached, int) and cached > counts["input_tokens"]:  # type: ignore[operator]
            yield Issue(
                "cached_tokens exceeds input_tokens",
                item=item,
                chunk=chunk,
                pointer=f"{prefix}/input_tokens_details/cached_tokens",
                expected=f"<= {counts['input_tokens']}",
                seen=cached,
            )
    limit = ctx.request.get("max_output_tokens")
    output = usage.get("output_tokens")
    if isinstance(limit, int) and isinstance(output, int) and output > limit:
        yield Issue(
            f"output_tokens {output} exceeds max_output_tokens {limit}",
            item=item,
            chunk=chunk,
            pointer=f"{prefix}/output_tokens",
            expected=f"<= {limit}",
            seen=output,
        )


@rule("responses-incomplete-details", items.RESPONSES, _POST)
def incomplete_details(ctx: Context) -> Iterator[Issue]:
    """An `incomplete` response says why in incomplete_details.reason; a cut answer is not `completed`."""
    v = view(ctx)
    final = v.final
    if final is None:
        return
    chunk = v.terminal[0] if v.terminal else None
    reason = as_dict(final.get("incomplete_details")).get("reason")
    if final.get("status") == "incomplete" and reason is None:
        yield Issue(
            "status is incomplete but incomplete_details.reason is missing",
            chunk=chunk,
            pointer="/incomplete_details",
            expected={"reason": "max_output_tokens"},
            seen=final.get("incomplete_details"),
        )
    limit = ctx.request.get("max_output_tokens")
    output = v.usage.get("output_tokens")
    open_items = [item.get("id") for item in v.output if item.get("status") == "incomplete"]
    if final.get("status") == "completed" and open_items:
        yield Issue(
            "status is completed but output items are incomplete",
            chunk=chunk,
            pointer="/output",
            expected="status incomplete, incomplete_details.reason max_output_tokens",
            seen=open_items,
        )
    if final.get("status") == "completed" and isinstance(limit, int) and output == limit and not v.function_calls:
        yield Issue(
            f"the answer used all {limit} max_output_tokens yet the status is completed; a cut answer is "
            '"incomplete" with incomplete_details.reason "max_output_tokens"',
            chunk=chunk,
            pointer="/status",
            expected="incomplete",
            seen="completed",
            item=items.RESPONSES,
        )


@rule("responses-function-calls", items.RESPONSES_FUNCTION_TOOLS, _POST)
def function_calls(ctx: Context) -> Iterator[Issue]:
    """function_call items name a tool of the request, with JSON-object arguments valid for its parameters and a
    unique call_id."""
    v = view(ctx)
    if v.final is None:
        return
    tools = request_tools(ctx.request)
    prefix = "/response/output" if v.streamed else "/output"
    chunk = v.terminal[0] if v.terminal else None
    seen_ids: set[str] = set()
    for k, call in v.function_calls:
        name, call_id = call.get("name"), call.get("call_id")
        if name not in tools:
            yield Issue(
                f"function_call {k} names {name!r}, which the request did not define",
                chunk=chunk,
                pointer=f"{prefix}/{k}/name",
                expected=sorted(tools),
                seen=name,
            )
        if isinstance(call_id, str):
            if call_id in seen_ids:
                yield Issue(
                    f"call_id {call_id!r} is used twice; the function_call_output that answers it is ambiguous",
                    chunk=chunk,
                    pointer=f"{prefix}/{k}/call_id",
                    expected="a unique call_id",
                    seen=call_id,
                )
            seen_ids.add(call_id)
        if call.get("status") == "incomplete":
            continue  # cut by max_output_tokens: the arguments may be unfinished
        try:
            arguments = json.loads(str(call.get("arguments")))
        except ValueError:
            yield Issue(
                f"function_call {k}'s arguments are not JSON",
                chunk=chunk,
                pointer=f"{prefix}/{k}/arguments",
                expected="a JSON object string",
                seen=call.get("arguments"),
            )
            continue
        if not isinstance(arguments, dict):
            yield Issue(
                f"function_call {k}'s arguments are a JSON {type(arguments).__name__}, not an object",
                chunk=chunk,
                pointer=f"{prefix}/{k}/arguments",
                expected="a JSON object string",
                seen=call.get("arguments"),
            )
            continue
        schema = tools.get(name) if isinstance(name, str) else None
        if isinstance(schema, dict) and schema:
            try:
                problems = list(Draft202012Validator(schema).iter_errors(arguments))
            except JsonSchemaError:
                problems = []  # the client's schema is broken, not the server's answer
            for problem in problems[:1]:
                yield Issue(
                    f"function_call {k}'s arguments break the tool's parameters schema: {problem.message}",
                    chunk=chunk,
                    pointer=f"{prefix}/{k}/arguments",
                    expected=schema,
                    seen=arguments,
                )


@rule("responses-tool-choice", items.RESPONSES_FUNCTION_TOOLS, _POST)
def tool_choice(ctx: Context) -> Iterator[Issue]:
    """tool_choice is honoured: `required` gives a function_call, a named choice calls only that function, `none`
    calls nothing."""
    v = view(ctx)
    final = v.final
    if final is None or final.get("status") != "completed" or not request_tools(ctx.request):
        return
    choice = ctx.request.get("tool_choice")
    names = [call.get("name") for _, call in v.function_calls]
    chunk = v.terminal[0] if v.terminal else None
    named = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "function" else None
    if (choice == "required" or named) and not names:
        yield Issue(
            f"tool_choice {json.dumps(choice)} but the answer has no function_call item"
            + (f"; its text: {v.text[:120]!r}" if v.text else "")
            + " (lmstudio #2115: calls written as text)",
            chunk=chunk,
            pointer="/output",
            expected="a function_call item",
            seen=[item.get("type") for item in v.output],
        )
    if named and any(name != named for name in names):
        yield Issue(
            f"tool_choice names {named!r} but the answer calls {names}",
            chunk=chunk,
            pointer="/output",
            expected=named,
            seen=names,
        )
    if choice == "none" and names:
        yield Issue(
            'tool_choice "none" but the answer calls functions',
            chunk=chunk,
            pointer="/output",
            expected="no function_call item",
            seen=names,
        )


@rule("responses-tools-accepted", items.RESPONSES_FUNCTION_TOOLS, _POST)
def tools_accepted(ctx: Context) -> Iterator[Issue]:
    """Flat function tools, with `parameters` omitted or `{}`, are accepted (lmstudio #2254)."""
    if ctx.status is None or ctx.status < 400 or ctx.status >= 500:
        return
    tools = request_tools(ctx.request)
    if not tools or not any(not parameters for parameters in tools.values()):
        return
    message = as_dict(as_dict(ctx.body).get("error")).get("message")
    if "param" in str(message).lower() or "tool" in str(message).lower():
        yield Issue(
            f"a function tool whose parameters are omitted or {{}} was rejected with {ctx.status}: {message!r} "
            "(lmstudio #2254); a function without arguments is valid",
            pointer="/error",
            expected="2xx",
            seen=ctx.status,
        )


@rule("responses-previous-response-echoed", items.RESPONSES_STATEFUL, _POST)
def previous_response_echoed(ctx: Context) -> Iterator[Issue]:
    """A response continuing `previous_response_id` names it in its own previous_response_id."""
    asked = ctx.request.get("previous_response_id")
    v = view(ctx)
    if not isinstance(asked, str) or v.final is None:
        return
    if v.final.get("previous_response_id") != asked:
        yield Issue(
            "previous_response_id is not echoed; a server that drops it may have ignored the earlier turns "
            "(ollama PR #15404, mlx-vlm #1264)",
            chunk=v.terminal[0] if v.terminal else None,
            pointer="/previous_response_id",
            expected=asked,
            seen=v.final.get("previous_response_id"),
        )


@rule("responses-reasoning-effort", items.RESPONSES_REASONING_EFFORT, _POST)
def reasoning_effort(ctx: Context) -> Iterator[Issue]:
    """`reasoning.effort` is accepted (no 4xx) and echoed in the response's `reasoning`."""
    effort = as_dict(ctx.request.get("reasoning")).get("effort")
    if effort is None:
        return
    if ctx.status is not None and 400 <= ctx.status < 500:
        yield Issue(
            f"reasoning.effort {effort!r} was rejected with {ctx.status}",
            pointer="/error",
            expected="2xx",
            seen=as_dict(as_dict(ctx.body).get("error")).get("message"),
        )
        return
    v = view(ctx)
    if v.final is None:
        return
    echoed = as_dict(v.final.get("reasoning")).get("effort")
    if echoed != effort:
        yield Issue(
            f"reasoning.effort {effort!r} is echoed as {echoed!r}",
            chunk=v.terminal[0] if v.terminal else None,
            pointer="/reasoning/effort",
            expected=effort,
            seen=echoed,
        )


RULES: tuple[Rule, ...] = (
    stream_is_sse,
    event_schema,
    sequence_numbers,
    stream_order,
    stream_items,
    stream_matches_final,
    function_arguments_done,
    openai_sdk_stream,
    error_event,
    usage_numbers,
    incomplete_details,
    function_calls,
    tool_choice,
    tools_accepted,
    previous_response_echoed,
    reasoning_effort,
)
