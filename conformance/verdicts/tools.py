"""Rules on tool calls: delta shape and order in streams, names, arguments, finish_reason, tool_choice."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from conformance.schemas import pointer as json_pointer
from conformance.verdicts import items
from conformance.verdicts.answer import ToolCall, answer, tool_deltas
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES", "TOOL_MARKUP", "normalised_name"]

_CHAT = frozenset({Endpoint.CHAT})
_CALL_FINISH = frozenset({"tool_calls", "length"})
"""finish_reason of an answer with tool calls for tool_choice auto/required (length: cut by max_tokens)."""
_NAMED_FINISH = _CALL_FINISH | {"stop"}
"""A named tool_choice: OpenAI itself answers "stop" (streamed and not), vLLM "tool_calls" (vllm PR #25054)."""
TOOL_MARKUP = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|tool_call", "<function=", "<|python_tag|>")
"""Markers chat templates wrap tool calls in; seen in content, the server failed to parse a call."""


def normalised_name(name: str) -> str:
    """snake_case, the way servers normalise tool names before showing them to a model."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", spaced).strip("_").lower()


@rule("tool-call-delta-index", items.TOOL_CALLING, _CHAT)
def tool_call_delta_index(ctx: Context) -> Iterator[Issue]:
    """Every streamed tool-call delta has an integer `index`."""
    for d in tool_deltas(ctx):
        if d.index is None:
            yield Issue(
                "tool-call delta without an integer `index`; openai-python's stream helper needs it to know which "
                "call a fragment belongs to and raises without it (ollama #7881)",
                chunk=d.chunk,
                pointer=d.pointer + "/index",
                expected="an integer index",
                seen=d.entry.get("index") if isinstance(d.entry, dict) else d.entry,
            )


@rule("tool-call-delta-function", items.TOOL_CALLING, _CHAT)
def tool_call_delta_function(ctx: Context) -> Iterator[Issue]:
    """Every streamed tool-call delta carries a `function` object."""
    for d in tool_deltas(ctx):
        function = d.entry.get("function") if isinstance(d.entry, dict) else None
        if not isinstance(function, dict):
            yield Issue(
                "tool-call delta without a `function` object; openai-python's ChatCompletionStreamState asserts "
                "one in every tool-call delta",
                chunk=d.chunk,
                pointer=d.pointer + "/function",
                expected='{"arguments": "..."}',
                seen=function,
            )


@rule("tool-call-first-delta", items.TOOL_CALLING, _CHAT)
def tool_call_first_delta(ctx: Context) -> Iterator[Issue]:
    """The first delta of each streamed call has the `id`, `type: "function"` and a non-empty `function.name`."""
    started: set[tuple[int, int]] = set()
    for d in tool_deltas(ctx):
        if d.index is None or (d.choice, d.index) in started:
            continue
        started.add((d.choice, d.index))
        entry = d.entry if isinstance(d.entry, dict) else {}
        if not isinstance(entry.get("id"), str) or not entry["id"]:
            yield Issue(
                f"the first delta of tool call {d.index} has no `id`; clients need it to send the result back",
                chunk=d.chunk,
                pointer=d.pointer + "/id",
                expected="a non-empty string",
                seen=entry.get("id"),
            )
        if entry.get("type") != "function":
            yield Issue(
                f'the first delta of tool call {d.index} lacks `type: "function"`; openai-python uses the type to '
                "decide how to parse the call",
                chunk=d.chunk,
                pointer=d.pointer + "/type",
                expected="function",
                seen=entry.get("type"),
            )
        name = d.function.get("name")
        if not isinstance(name, str) or not name:
            yield Issue(
                f"the first delta of tool call {d.index} has no function name; clients learn the name only from "
                "the first delta",
                chunk=d.chunk,
                pointer=d.pointer + "/function/name",
                expected="the tool's name",
                seen=name,
            )


@rule("tool-call-id-once", items.TOOL_CALLING, _CHAT)
def tool_call_id_once(ctx: Context) -> Iterator[Issue]:
    """A streamed call's `id` is sent once, in its first delta, never repeated or empty later."""
    started: set[tuple[int, int]] = set()
    for d in tool_deltas(ctx):
        if d.index is None:
            continue
        key = (d.choice, d.index)
        if key not in started:
            started.add(key)
            continue
        value = d.entry.get("id") if isinstance(d.entry, dict) else None
        if value is not None:
            yield Issue(
                f"tool call {d.index}'s `id` is sent again in a later delta ({value!r}); clients concatenate string "
                "fields of deltas, so the id they send back no longer matches (vllm #14951)",
                chunk=d.chunk,
                pointer=d.pointer + "/id",
                expected="no id after the first delta",
                seen=value,
            )


@rule("tool-call-name-once", items.NO_EMPTY_FUNCTION_NAME, _CHAT)
def tool_call_name_once(ctx: Context) -> Iterator[Issue]:
    """A streamed call's `function.name` is sent once, in its first delta, never repeated or empty later."""
    names: dict[tuple[int, int], str | None] = {}
    for d in tool_deltas(ctx):
        if d.index is None:
            continue
        key = (d.choice, d.index)
        name = d.function.get("name")
        if key not in names:
            names[key] = name if isinstance(name, str) else None
            continue
        if name is None:
            continue
        if name == "":
            message = (
                f'a later delta of tool call {d.index} carries `name: ""`; clients that take the last name (or check '
                "for one) lose the tool name (lmstudio #649)"
            )
        else:
            first = names[key] or ""
            message = (
                f"tool call {d.index}'s name is sent again in a later delta; clients concatenate the deltas, so "
                f"the name becomes {first + name!r} (vllm #14951)"
            )
        yield Issue(
            message,
            chunk=d.chunk,
            pointer=d.pointer + "/function/name",
            expected="no name after the first delta",
            seen=name,
        )


@rule("tool-call-order", items.PARALLEL_TOOL_CALLS_STREAM, _CHAT)
def tool_call_order(ctx: Context) -> Iterator[Issue]:
    """Streamed calls use indexes 0, 1, 2... in order, each call's deltas contiguous (no interleaving)."""
    current: dict[int, int] = {}
    started: dict[int, set[int]] = {}
    interleaved: set[int] = set()
    for d in tool_deltas(ctx):
        if d.index is None or d.choice in interleaved:
            continue
        seen = started.setdefault(d.choice, set())
        if d.index not in seen:
            if d.index != len(seen):
                yield Issue(
                    f"a new tool call starts with index {d.index} after {len(seen)} call(s); openai-python inserts "
                    "calls by index and cannot fill the gap",
                    chunk=d.chunk,
                    pointer=d.pointer + "/index",
                    expected=len(seen),
                    seen=d.index,
                )
            seen.add(d.index)
        elif current.get(d.choice) != d.index:
            interleaved.add(d.choice)
            yield Issue(
                f"a fragment of tool call {d.index} arrives after tool call {current.get(d.choice)} started; "
                f"openai-python has already reported call {d.index} as done",
                chunk=d.chunk,
                pointer=d.pointer + "/index",
                expected=current.get(d.choice),
                seen=d.index,
            )
        current[d.choice] = d.index


@rule("tool-call-arguments", items.TOOL_CALLING, _CHAT)
def tool_call_arguments(ctx: Context) -> Iterator[Issue]:
    """Each call's (concatenated) `arguments` is a JSON object valid against the tool's `parameters` schema."""
    found = answer(ctx)
    if found is None:
        return
    for call in found.tool_calls:
        yield from _arguments(ctx, call, found.streamed, found.finish_reason)


@rule("tool-call-name-defined", items.TOOL_CALLING, _CHAT)
def tool_call_name_defined(ctx: Context) -> Iterator[Issue]:
    """Each call names a tool the request defined, spelled exactly as defined."""
    found = answer(ctx)
    if found is None:
        return
    defined = ctx.tools
    for call in found.tool_calls:
        if call.name is None or call.name in defined:
            continue
        pointer, chunk = _call_location(call, found.streamed)
        originals = [n for n in defined if normalised_name(n) == normalised_name(call.name)]
        if originals:
            yield Issue(
                f"tool call names {call.name!r}, the normalised form of the defined tool {originals[0]!r}; clients "
                "look the tool up by the exact name they defined",
                chunk=chunk,
                pointer=pointer,
                item=items.TOOL_NAME_NORMALIZATION,
                expected=originals[0],
                seen=call.name,
            )
        else:
            yield Issue(
                f"tool call names {call.name!r}, which the request did not define",
                chunk=chunk,
                pointer=pointer,
                expected=sorted(defined),
                seen=call.name,
            )


@rule("finish-reason-tool-calls", items.FINISH_REASON_TOOL_CALLS, _CHAT)
def finish_reason_tool_calls(ctx: Context) -> Iterator[Issue]:
    """An answer with tool calls finishes with `tool_calls` (or `length`; a named tool_choice may also say `stop`,
    as OpenAI does); one without never says `tool_calls`."""
    found = answer(ctx)
    if found is None or found.error is not None or found.finish_reason is None:
        return
    pointer = "/choices/0/finish_reason"
    named = ctx.named_tool is not None
    accepted = _NAMED_FINISH if named else _CALL_FINISH
    if found.tool_calls and found.finish_reason not in accepted:
        if named:
            message = (
                f"the answer to a named tool_choice has {len(found.tool_calls)} tool call(s) but finish_reason is "
                f"{found.finish_reason!r}; OpenAI ends a forced function call with 'stop' and vLLM ended it with "
                "'tool_calls' (vllm PRs #9209, #25054), clients accept only those two"
            )
            expected: Any = ["stop", "tool_calls"]
        else:
            message = (
                f"the answer has {len(found.tool_calls)} tool call(s) but finish_reason is {found.finish_reason!r}; "
                "agent loops run tools only when finish_reason is 'tool_calls' (lmstudio #821)"
            )
            expected = "tool_calls"
        yield Issue(
            message,
            chunk=found.finish_chunk,
            pointer=pointer,
            expected=expected,
            seen=found.finish_reason,
        )
    elif not found.tool_calls and found.finish_reason == "tool_calls":
        yield Issue(
            "finish_reason is 'tool_calls' but the answer has no tool call",
            chunk=found.finish_chunk,
            pointer=pointer,
            expected="stop or length",
            seen=found.finish_reason,
        )


@rule("tool-choice-honoured", items.TOOL_CHOICE, _CHAT)
def tool_choice_honoured(ctx: Context) -> Iterator[Issue]:
    """`tool_choice` "required" or a named function yields tool calls (of that function); "none" yields none."""
    found = answer(ctx)
    choice = ctx.tool_choice
    if found is None or found.error is not None or not ctx.tools or choice in (None, "auto"):
        return
    if found.finish_reason == "length" and not found.tool_calls:
        return  # cut off before a call could be parsed: max_tokens, not tool_choice, decided
    where = "/choices/0/delta/tool_calls" if found.streamed else "/choices/0/message/tool_calls"
    named = ctx.named_tool
    if choice == "none" and found.tool_calls:
        yield Issue(
            'tool_choice is "none" but the answer calls a tool',
            chunk=found.tool_calls[0].chunk,
            pointer=where,
            expected="no tool_calls",
            seen=[c.name for c in found.tool_calls],
        )
    elif (choice == "required" or named) and not found.tool_calls:
        yield Issue(
            f"tool_choice is {json.dumps(choice)} but the answer has no tool_calls"
            + (f"; the content is {found.content[:120]!r}" if found.content else "")
            + " (lmstudio #2115)",
            chunk=found.finish_chunk,
            pointer=where,
            expected="at least one tool call",
            seen=found.content,
        )
    elif named:
        for call in found.tool_calls:
            if call.name != named:
                pointer, chunk = _call_location(call, found.streamed)
                yield Issue(
                    f"tool_choice forces {named!r} but the answer calls {call.name!r}",
                    chunk=chunk,
                    pointer=pointer,
                    expected=named,
                    seen=call.name,
                )


@rule("no-tool-markup-in-content", items.TOOL_CALLING, _CHAT)
def no_tool_markup_in_content(ctx: Context) -> Iterator[Issue]:
    """With tools offered, the content holds no tool-call markup (an unparsed call)."""
    found = answer(ctx)
    if found is None or not found.content or not ctx.tools or ctx.tool_choice == "none":
        return
    hits = [m for m in TOOL_MARKUP if m in found.content]
    if hits:
        yield Issue(
            f"the content contains tool-call markup {', '.join(hits)}: the server left a call unparsed, so clients "
            "see text instead of tool_calls (lmstudio #821, #2115)",
            chunk=found.finish_chunk if found.streamed else None,
            pointer="/choices/0/delta/content" if found.streamed else "/choices/0/message/content",
            expected="tool_calls, not markup in content",
            seen=found.content[:200],
        )


@rule("parallel-tool-calls-false", items.PARALLEL_TOOL_CALLS_CHUNKED, _CHAT)
def parallel_tool_calls_false(ctx: Context) -> Iterator[Issue]:
    """With `parallel_tool_calls: false` the answer has at most one tool call."""
    found = answer(ctx)
    if found is None or found.error is not None or ctx.request.get("parallel_tool_calls") is not False:
        return
    if len(found.tool_calls) > 1:
        call = found.tool_calls[1]
        pointer, chunk = _call_location(call, found.streamed)
        yield Issue(
            f"parallel_tool_calls is false but the answer has {len(found.tool_calls)} tool calls; clients that "
            "run one tool at a time ask for at most one",
            chunk=chunk,
            pointer=pointer.rsplit("/function", 1)[0],
            expected="at most one tool call",
            seen=[c.name for c in found.tool_calls],
        )


def _arguments(ctx: Context, call: ToolCall, streamed: bool, finish: str | None) -> Iterator[Issue]:
    pointer = call.pointer + "/function/arguments"
    item = items.STREAMED_TOOL_ARGUMENTS if streamed else items.TOOL_CALLING
    parameters = ctx.tools.get(call.name or "")
    without_parameters = call.name in ctx.tools and not parameters
    if finish == "length":
        return
    if call.arguments == "":
        yield Issue(
            f"tool call {call.index} ({call.name}) has empty arguments"
            + ("; a tool without parameters still gets '{}' (vllm #28806)" if without_parameters else "")
            + "; clients json-parse the arguments and fail on an empty string",
            chunk=call.chunk,
            pointer=pointer,
            item=items.TOOLS_WITHOUT_PARAMETERS if without_parameters else item,
            expected="a JSON object, at least '{}'",
            seen=call.arguments,
        )
        return
    try:
        value = json.loads(call.arguments)
    except ValueError as exc:
        cut = _hit_limit(ctx)
        yield Issue(
            f"tool call {call.index} ({call.name}) arguments are not valid JSON ({exc})"
            + (" once its fragments are concatenated" if streamed else "")
            + (
                f"; usage.completion_tokens reached max_tokens: the call was cut off, so finish_reason must be "
                f"'length', not {finish!r}"
                if cut
                else ""
            ),
            chunk=call.chunk,
            pointer=pointer,
            item=items.FINISH_REASON_TOOL_CALLS if cut else item,
            expected="a JSON object",
            seen=call.arguments,
        )
        return
    if not isinstance(value, dict):
        yield Issue(
            f"tool call {call.index} ({call.name}) arguments are a JSON {type(value).__name__}, not an object",
            chunk=call.chunk,
            pointer=pointer,
            item=item,
            expected="a JSON object",
            seen=call.arguments,
        )
        return
    if not isinstance(parameters, dict) or not parameters:
        return
    uses_defs = "$defs" in parameters or "definitions" in parameters
    try:
        validator = validator_for(parameters, default=Draft202012Validator)(parameters)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
    except Exception:
        # the client's own schema is broken (unknown type, bad regex, bad $ref...): not the server's fault, so
        # these arguments go unchecked and no finding is made
        return
    for error in errors[:3]:
        yield Issue(
            f"tool call {call.index} ({call.name}) arguments do not match the tool's parameters schema: "
            f"{error.message}" + (" (the schema's $defs/$ref were not followed? lmstudio #551)" if uses_defs else ""),
            chunk=call.chunk,
            pointer=pointer,
            item=items.TOOL_SCHEMA_DEFS if uses_defs else item,
            expected=f"arguments valid at {json_pointer(error.absolute_schema_path) or '/'} of the parameters schema",
            seen=call.arguments,
        )


def _hit_limit(ctx: Context) -> bool:
    found = answer(ctx)
    limit = ctx.request.get("max_completion_tokens", ctx.request.get("max_tokens"))
    usage = found.usage if found is not None else None
    completion = usage.get("completion_tokens") if usage is not None else None
    return isinstance(limit, int) and isinstance(completion, int) and completion >= limit


def _call_location(call: ToolCall, streamed: bool) -> tuple[str, int | None]:
    return call.pointer + "/function/name", call.chunk if streamed else None


RULES: tuple[Rule, ...] = (
    tool_call_delta_index,
    tool_call_delta_function,
    tool_call_first_delta,
    tool_call_id_once,
    tool_call_name_once,
    tool_call_order,
    tool_call_arguments,
    tool_call_name_defined,
    finish_reason_tool_calls,
    tool_choice_honoured,
    parallel_tool_calls_false,
    no_tool_markup_in_content,
)
