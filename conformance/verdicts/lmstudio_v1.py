"""Rules for LM Studio's native REST API v1 (`/api/v1/models*`, `/api/v1/chat`), items `0.4.0/rest-v1-*`.

One exchange is read through `V1View` (its route, the events of a stream, the chat result); each rule judges
one exchange and tags its findings with the item it enforces: the model routes `0.4.0/rest-v1-models`, chats
`0.4.0/rest-v1-chat`, tool calls of chats with `integrations` `0.4.0/rest-v1-mcp`. `validate_context` is what
`conformance.verdicts.validate_context` calls for paths the OpenAI rules do not know, so `conformance run`,
`conformance check` and the proxy share these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from conformance.findings import Finding
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.context import LMSTUDIO_V1_PATH, Context, Issue, as_dict, excerpt
from conformance.verdicts.frames import Frame, frames_of
from conformance.verdicts.rule import schema_issues

__all__ = [
    "RULES",
    "Frame",
    "Route",
    "V1Rule",
    "V1View",
    "is_native_path",
    "refusal_of_loopback",
    "route_of",
    "validate_context",
    "view",
]


class Route(StrEnum):
    """The routes of LM Studio's v1 API, whatever the prefix before `/api/v1` (none, or a proxy's)."""

    MODELS = "GET /api/v1/models"
    LOAD = "POST /api/v1/models/load"
    UNLOAD = "POST /api/v1/models/unload"
    DOWNLOAD = "POST /api/v1/models/download"
    DOWNLOAD_STATUS = "GET /api/v1/models/download/status/{job_id}"
    CHAT = "POST /api/v1/chat"


_NATIVE = LMSTUDIO_V1_PATH


def is_native_path(path: str) -> bool:
    """Whether a path is one of LM Studio's v1 routes (judged here, not by the OpenAI rules)."""
    return _NATIVE.search(path.split("?", 1)[0].rstrip("/")) is not None


def route_of(method: str, path: str) -> Route | None:
    match = _NATIVE.search(path.split("?", 1)[0].rstrip("/"))
    if match is None:
        return None
    rest, method = match.group(1), method.upper()
    if method == "POST":
        return {
            "chat": Route.CHAT,
            "models/load": Route.LOAD,
            "models/unload": Route.UNLOAD,
            "models/download": Route.DOWNLOAD,
        }.get(rest)
    if method == "GET":
        if rest == "models":
            return Route.MODELS
        if rest.startswith("models/download/status/") and rest.count("/") == 3:
            return Route.DOWNLOAD_STATUS
    return None


_BODY_SCHEMA = {
    Route.MODELS: Schema.LMSTUDIO_V1_MODEL_LIST,
    Route.LOAD: Schema.LMSTUDIO_V1_LOAD,
    Route.UNLOAD: Schema.LMSTUDIO_V1_UNLOAD,
    Route.DOWNLOAD: Schema.LMSTUDIO_V1_DOWNLOAD,
    Route.DOWNLOAD_STATUS: Schema.LMSTUDIO_V1_DOWNLOAD,
    Route.CHAT: Schema.LMSTUDIO_V1_CHAT,
}
_REFUSED_LOOPBACK = "non-public address"
"""LM Studio >= 0.4.15 refuses MCP URLs on loopback: "URL resolves to a non-public address" (LMS#1993)."""


class V1View:
    """One /api/v1 exchange as the rules read it, computed once."""

    def __init__(self, ctx: Context, route: Route) -> None:
        self.ctx = ctx
        self.route = route
        self.request = ctx.request

    @property
    def item(self) -> str:
        """The item the route's generic rules (envelope, schema) enforce."""
        return items.REST_V1_CHAT if self.route is Route.CHAT else items.REST_V1_MODELS

    @property
    def streamed(self) -> bool:
        return self.ctx.response is not None and self.ctx.response.events is not None

    @cached_property
    def frames(self) -> list[Frame]:
        response = self.ctx.response
        return frames_of(None if response is None else response.events)

    @cached_property
    def end(self) -> Frame | None:
        """The last `chat.end` event of a stream."""
        return next((f for f in reversed(self.frames) if f.type == "chat.end"), None)

    @cached_property
    def result(self) -> dict[str, Any] | None:
        """The chat's result: the 2xx body, or the `result` of the stream's `chat.end`."""
        if not self.ctx.ok:
            return None
        if not self.streamed:
            return self.ctx.body if isinstance(self.ctx.body, dict) else None
        if self.end is None or self.end.payload is None:
            return None
        result = self.end.payload.get("result")
        return result if isinstance(result, dict) else None

    @property
    def result_chunk(self) -> int | None:
        return self.end.chunk if self.streamed and self.end is not None else None

    @property
    def result_pointer(self) -> str:
        return "/result" if self.streamed else ""

    @property
    def output(self) -> list[dict[str, Any]]:
        output = as_dict(self.result).get("output")
        return [o for o in output if isinstance(o, dict)] if isinstance(output, list) else []

    def contents(self, kind: str) -> list[str]:
        """The content of each output item of this type (`message`, `reasoning`), in order."""
        return [str(o.get("content", "")) for o in self.output if o.get("type") == kind]

    @property
    def text(self) -> str:
        return "".join(self.contents("message"))

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [o for o in self.output if o.get("type") == "tool_call"]

    @property
    def stats(self) -> dict[str, Any]:
        return as_dict(as_dict(self.result).get("stats"))

    @cached_property
    def integrations(self) -> list[dict[str, Any]]:
        """The request's `ephemeral_mcp` integrations."""
        found = self.request.get("integrations")
        return (
            [i for i in found or () if isinstance(i, dict) and i.get("type") == "ephemeral_mcp"]
            if isinstance(found, list)
            else []
        )

    @property
    def errors(self) -> list[tuple[int | None, dict[str, Any]]]:
        """(event index, `error` object) of the error status body or of each `error` event."""
        if self.ctx.response is None:
            return []
        if not self.ctx.ok:
            return [(None, as_dict(as_dict(self.ctx.body).get("error")))]
        return [(f.chunk, as_dict(f.payload.get("error"))) for f in self.frames if f.type == "error" and f.payload]

    def raw_of(self, issue: Issue) -> str | None:
        return self.ctx.raw_of(issue)


def view(ctx: Context) -> V1View | None:
    """The v1 view of a context's exchange (kept in its memo), None for other routes."""
    if "lmstudio_v1" not in ctx.memo:
        route = route_of(ctx.exchange.request.method, ctx.exchange.endpoint)
        ctx.memo["lmstudio_v1"] = None if route is None else V1View(ctx, route)
    found: V1View | None = ctx.memo["lmstudio_v1"]
    return found


def refusal_of_loopback(ctx: Context) -> str | None:
    """The server's message when it refused an MCP server because its URL is not public (LM Studio >= 0.4.15),
    wherever it says so: an error status, an `error` event, an `invalid_tool_call` or a `tool_call.failure`."""
    found = view(ctx)
    if found is None:
        return None
    messages = [str(error.get("message", "")) for _, error in found.errors]
    messages += [str(o.get("reason", "")) for o in found.output if o.get("type") == "invalid_tool_call"]
    messages += [str(f.payload.get("reason", "")) for f in found.frames if f.type == "tool_call.failure" and f.payload]
    if not found.ctx.ok:
        messages.append(excerpt(found.ctx.body) or "")
    return next((m for m in messages if _REFUSED_LOOPBACK in m.lower()), None)


Judge = Callable[[V1View], Iterable[Issue]]


@dataclass(frozen=True)
class V1Rule:
    id: str
    judge: Judge
    doc: str

    def findings(self, found: V1View) -> list[Finding]:
        return [
            issue.finding(item=found.item, check=self.id, endpoint=found.ctx.exchange.endpoint, raw=found.raw_of(issue))
            for issue in _collapse(list(self.judge(found)))
        ]


def _collapse(issues: list[Issue]) -> list[Issue]:
    """One issue per distinct message: repeats on later events are counted, not listed."""
    groups: dict[tuple[str, str | None], list[Issue]] = {}
    for issue in issues:
        groups.setdefault((issue.message, issue.item), []).append(issue)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1:
            first = replace(first, message=f"{first.message} [{len(group)} times]")
        out.append(first)
    return out


def _rule(rule_id: str) -> Callable[[Judge], V1Rule]:
    def wrap(judge: Judge) -> V1Rule:
        return V1Rule(rule_id, judge, (judge.__doc__ or "").strip())

    return wrap


# ---- every route -----------------------------------------------------------------------------------


@_rule("v1-error-envelope")
def error_envelope(found: V1View) -> Iterator[Issue]:
    """An error status carries LM Studio's native envelope `{"error": {"type", "message", "code"?, "param"?}}`
    (not OpenAI's `invalid_request_error` shape alone: native clients read `error.type`)."""
    ctx = found.ctx
    if ctx.response is None or ctx.ok:
        return
    yield from schema_issues(Schema.LMSTUDIO_V1_ERROR, ctx.body, f"the {ctx.status} error body")


@_rule("v1-body-schema")
def body_schema(found: V1View) -> Iterator[Issue]:
    """A 2xx answer is the route's object (validated against its strict schema); a chat asked to stream is an
    event stream, one not asked is a JSON body."""
    ctx = found.ctx
    if not ctx.ok or ctx.response is None:
        return
    asked = ctx.asked_stream and found.route is Route.CHAT
    if asked and not found.streamed:
        yield Issue(
            "stream: true was asked, but the answer is not a text/event-stream",
            expected="content-type text/event-stream",
            seen=ctx.response.headers.get("content-type"),
        )
    elif found.streamed and not asked:
        yield Issue("the request did not ask to stream but the answer is an event stream", expected="a JSON body")
    if found.streamed:
        return
    schema = _BODY_SCHEMA[found.route]
    if not isinstance(ctx.body, dict):
        yield Issue(
            f"the {ctx.status} body is not a JSON object",
            pointer="",
            expected=f"a {schema.value} object",
            seen=ctx.body,
        )
        return
    yield from schema_issues(schema, ctx.body, "the body")


# ---- models --------------------------------------------------------------------------------------


@_rule("v1-models-unique")
def models_unique(found: V1View) -> Iterator[Issue]:
    """Each model key and each loaded instance id appears once in GET /api/v1/models (clients pick by them)."""
    if found.route is not Route.MODELS or not found.ctx.ok:
        return
    models = as_dict(found.ctx.body).get("models")
    keys: set[Any] = set()
    instances: set[Any] = set()
    for k, model in enumerate(models if isinstance(models, list) else []):
        model = as_dict(model)
        key = model.get("key")
        if isinstance(key, str) and key in keys:
            yield Issue(
                f"model key {key!r} is listed twice", pointer=f"/models/{k}/key", expected="unique keys", seen=key
            )
        keys.add(key)
        loaded = model.get("loaded_instances")
        for n, instance in enumerate(loaded if isinstance(loaded, list) else []):
            instance_id = as_dict(instance).get("id")
            if isinstance(instance_id, str) and instance_id in instances:
                yield Issue(
                    f"loaded instance id {instance_id!r} is listed twice; unload names an instance by it",
                    pointer=f"/models/{k}/loaded_instances/{n}/id",
                    expected="unique instance ids",
                    seen=instance_id,
                )
            instances.add(instance_id)


@_rule("v1-load-config")
def load_config(found: V1View) -> Iterator[Issue]:
    """A load with `echo_load_config: true` answers with `load_config`, whose `context_length` is the one asked."""
    if found.route is not Route.LOAD or not found.ctx.ok or not isinstance(found.ctx.body, dict):
        return
    body = found.ctx.body
    config = body.get("load_config")
    if found.request.get("echo_load_config") is True and not isinstance(config, dict):
        yield Issue(
            "echo_load_config was true but the answer has no load_config object",
            pointer="/load_config",
            expected="load_config {context_length, ...}",
            seen=config,
        )
        return
    asked = found.request.get("context_length")
    if isinstance(config, dict) and isinstance(asked, int) and config.get("context_length") != asked:
        yield Issue(
            f"the model was asked to load with context_length {asked} but load_config says "
            f"{config.get('context_length')!r}",
            pointer="/load_config/context_length",
            expected=asked,
            seen=config.get("context_length"),
        )


@_rule("v1-unload-echo")
def unload_echo(found: V1View) -> Iterator[Issue]:
    """An unload answers with the instance_id it unloaded."""
    if found.route is not Route.UNLOAD or not found.ctx.ok or not isinstance(found.ctx.body, dict):
        return
    asked, seen = found.request.get("instance_id"), found.ctx.body.get("instance_id")
    if isinstance(asked, str) and seen != asked:
        yield Issue(
            "the unload answer names another instance than the one asked",
            pointer="/instance_id",
            expected=asked,
            seen=seen,
        )


# ---- chat ----------------------------------------------------------------------------------------


def _chat_stream(found: V1View) -> bool:
    return found.route is Route.CHAT and found.streamed and found.ctx.ok


@_rule("v1-chat-event-schema")
def event_schema(found: V1View) -> Iterator[Issue]:
    """Every event's data is a JSON object valid against the strict schema of its type, under an `event:` line
    equal to that type (LM Studio's streams always name their events)."""
    if not _chat_stream(found):
        return
    for frame in found.frames:
        if frame.payload is None:
            yield Issue(f"the event's data is {frame.problem}", chunk=frame.chunk, expected="a JSON object with `type`")
            continue
        yield from schema_issues(
            Schema.LMSTUDIO_V1_CHAT_EVENT, frame.payload, f"the {frame.type or 'untyped'} event", chunk=frame.chunk
        )
        if frame.name is None:
            yield Issue(
                "the event has no `event:` line; LM Studio names every event by its type, and clients dispatch on it",
                chunk=frame.chunk,
                expected=f"event: {frame.type}",
                seen=None,
            )
        elif frame.name != frame.type:
            yield Issue(
                f"the `event:` line says {frame.name!r} but the data's type is {frame.type!r}",
                chunk=frame.chunk,
                pointer="/type",
                expected=f"event: {frame.type}",
                seen=frame.name,
            )


_BLOCKS = ("message", "reasoning")
_PHASES = ("model_load", "prompt_processing")


@_rule("v1-chat-event-order")
def event_order(found: V1View) -> Iterator[Issue]:
    """`chat.start` first and `chat.end` last, once each; `message.*` and `reasoning.*` blocks go start, deltas,
    end, one block open at a time; `model_load.*` and `prompt_processing.*` go start, progress (not
    decreasing), end, the load ended before the prompt is processed and the prompt before text is generated;
    an `error` event is followed by `chat.end`; `tool_call.*` events go start, arguments, success or failure."""
    if not _chat_stream(found):
        return
    frames = [f for f in found.frames if f.type is not None]
    if not frames:
        yield Issue("the stream carries no event", expected="chat.start ... chat.end")
        return
    first, last = frames[0], frames[-1]
    if first.type != "chat.start":
        yield Issue(
            f"the first event is {first.type!r}; the stream always begins with chat.start",
            chunk=first.chunk,
            pointer="/type",
            expected="chat.start",
            seen=first.type,
        )
    if last.type != "chat.end":
        yield Issue(
            f"the last event is {last.type!r}; the stream always ends with chat.end, which carries the result",
            chunk=last.chunk,
            pointer="/type",
            expected="chat.end",
            seen=last.type,
        )
    for kind in ("chat.start", "chat.end"):
        repeats = [f for f in frames if f.type == kind][1:]
        if repeats:
            yield Issue(f"{kind} is sent more than once", chunk=repeats[0].chunk, expected=f"one {kind}", seen=kind)
    yield from _nesting(frames)
    for n, frame in enumerate(frames):
        if frame.type == "error" and (n + 1 >= len(frames) or frames[-1].type != "chat.end"):
            yield Issue(
                "the error event is not followed by chat.end; the final payload is still sent in chat.end",
                chunk=frame.chunk,
                expected="chat.end after the error",
                seen=None if n + 1 >= len(frames) else frames[-1].type,
            )


def _nesting(frames: list[Frame]) -> Iterator[Issue]:
    """Blocks and phases opened and closed in order."""
    open_block: str | None = None
    phases: dict[str, float | None] = {}
    """Open phases and their last progress."""
    done: set[str] = set()
    tool_open = False
    for frame in frames:
        kind = frame.type or ""
        group, _, step = kind.rpartition(".")
        if group in _BLOCKS:
            if step == "start":
                if open_block is not None:
                    yield Issue(
                        f"{kind} while the {open_block} block is still open",
                        chunk=frame.chunk,
                        expected=f"{open_block}.end first",
                        seen=kind,
                    )
                for phase in phases:
                    yield Issue(
                        f"{kind} while {phase} has not ended; text is generated after the prompt is processed",
                        chunk=frame.chunk,
                        expected=f"{phase}.end first",
                        seen=kind,
                    )
                open_block = group
            elif open_block != group:
                yield Issue(
                    f"{kind} outside a {group} block (no {group}.start open)",
                    chunk=frame.chunk,
                    expected=f"{group}.start first",
                    seen=kind,
                )
            elif step == "end":
                open_block = None
        elif group in _PHASES:
            yield from _phase(frame, group, step, phases, done)
        elif group == "tool_call":
            if step == "start":
                tool_open = True
            elif step in ("arguments", "success") and not tool_open:
                yield Issue(
                    f"{kind} without a tool_call.start before it",
                    chunk=frame.chunk,
                    expected="tool_call.start first",
                    seen=kind,
                    item=items.REST_V1_MCP,
                )
            if step in ("success", "failure"):
                tool_open = False
        elif kind == "chat.end":
            for still in ([open_block] if open_block else []) + list(phases):
                yield Issue(
                    f"chat.end while {still} has not ended",
                    chunk=frame.chunk,
                    expected=f"{still}.end before chat.end",
                    seen=kind,
                )


def _phase(frame: Frame, group: str, step: str, phases: dict[str, float | None], done: set[str]) -> Iterator[Issue]:
    kind = frame.type
    if step == "start":
        if group in phases:
            yield Issue(f"{kind} while {group} is already open", chunk=frame.chunk, expected=f"{group}.end", seen=kind)
        if group == "prompt_processing" and "model_load" in phases:
            yield Issue(
                "prompt_processing.start before model_load.end: the prompt is processed by the loaded model",
                chunk=frame.chunk,
                expected="model_load.end first",
                seen=kind,
            )
        if group == "model_load" and "prompt_processing" in done | set(phases):
            yield Issue(
                "model_load.start after the prompt was processed: the model loads before it reads the prompt",
                chunk=frame.chunk,
                expected="model_load.* before prompt_processing.*",
                seen=kind,
            )
        phases[group] = None
        return
    if group not in phases:
        yield Issue(
            f"{kind} without an open {group}.start", chunk=frame.chunk, expected=f"{group}.start first", seen=kind
        )
        return
    if step == "progress":
        progress = as_dict(frame.payload).get("progress")
        last = phases[group]
        if isinstance(progress, int | float) and last is not None and progress < last:
            yield Issue(
                f"{kind} goes back from {last} to {progress}",
                chunk=frame.chunk,
                pointer="/progress",
                expected=f">= {last}",
                seen=progress,
            )
        if isinstance(progress, int | float):
            phases[group] = float(progress)
    elif step == "end":
        del phases[group]
        done.add(group)


@_rule("v1-chat-stream-matches-result")
def stream_matches_result(found: V1View) -> Iterator[Issue]:
    """chat.end's result says what the events said: each message and reasoning item's content is its block's
    deltas joined, each tool_call item is a tool_call.success; a model load shown by events has its
    stats.model_load_time_seconds."""
    if not _chat_stream(found) or found.result is None:
        return
    built: dict[str, list[str]] = {kind: [] for kind in _BLOCKS}
    successes: list[Any] = []
    loaded = False
    for frame in found.frames:
        payload = frame.payload or {}
        group, _, step = (frame.type or "").rpartition(".")
        if group in _BLOCKS and step == "start":
            built[group].append("")
        elif group in _BLOCKS and step == "delta" and built[group]:
            built[group][-1] += str(payload.get("content", ""))
        elif frame.type == "tool_call.success":
            successes.append([payload.get("tool"), payload.get("arguments"), payload.get("output")])
        elif frame.type == "model_load.end":
            loaded = True
    for kind in _BLOCKS:
        if built[kind] != found.contents(kind):
            yield Issue(
                f"the {kind} items of chat.end's result differ from the {kind}.delta contents the stream sent",
                chunk=found.result_chunk,
                pointer="/result/output",
                expected=built[kind],
                seen=found.contents(kind),
            )
    calls = [[c.get("tool"), c.get("arguments"), c.get("output")] for c in found.tool_calls]
    if calls != successes:
        yield Issue(
            "the tool_call items of chat.end's result differ from the tool_call.success events of the stream",
            chunk=found.result_chunk,
            pointer="/result/output",
            expected=successes,
            seen=calls,
            item=items.REST_V1_MCP if found.integrations else None,
        )
    if loaded and "model_load_time_seconds" not in found.stats:
        yield Issue(
            "the stream shows a model load, but the result's stats have no model_load_time_seconds",
            chunk=found.result_chunk,
            pointer="/result/stats",
            expected="model_load_time_seconds",
            seen=sorted(found.stats),
        )


@_rule("v1-chat-response-id")
def response_id(found: V1View) -> Iterator[Issue]:
    """A stored chat (the default) has a `response_id` (`resp_...`) to continue it; `store: false` has none."""
    if found.route is not Route.CHAT or found.result is None:
        return
    stored = found.request.get("store", True) is not False
    present = "response_id" in found.result
    if stored and not present:
        yield Issue(
            "the chat is stored by default (store was not false) but the answer has no response_id to continue it",
            chunk=found.result_chunk,
            pointer=f"{found.result_pointer}/response_id",
            expected="resp_...",
            seen=None,
        )
    elif not stored and present:
        yield Issue(
            "store: false was asked, but the answer has a response_id",
            chunk=found.result_chunk,
            pointer=f"{found.result_pointer}/response_id",
            expected="no response_id",
            seen=found.result.get("response_id"),
        )


@_rule("v1-chat-stats")
def stats(found: V1View) -> Iterator[Issue]:
    """The token counts hold together: total_output_tokens within max_output_tokens, reasoning tokens within the
    output; an answer with text has output tokens."""
    if found.route is not Route.CHAT or found.result is None:
        return
    numbers = found.stats
    at = f"{found.result_pointer}/stats"
    total, reasoning = numbers.get("total_output_tokens"), numbers.get("reasoning_output_tokens")
    limit = found.request.get("max_output_tokens")
    if isinstance(limit, int) and isinstance(total, int) and total > limit:
        yield Issue(
            f"total_output_tokens {total} exceeds max_output_tokens {limit}",
            chunk=found.result_chunk,
            pointer=f"{at}/total_output_tokens",
            expected=f"<= {limit}",
            seen=total,
        )
    if isinstance(total, int) and isinstance(reasoning, int) and reasoning > total:
        yield Issue(
            f"reasoning_output_tokens {reasoning} exceeds total_output_tokens {total}",
            chunk=found.result_chunk,
            pointer=f"{at}/reasoning_output_tokens",
            expected=f"<= {total}",
            seen=reasoning,
        )
    if total == 0 and found.text.strip():
        yield Issue(
            "the answer has text but total_output_tokens is 0",
            chunk=found.result_chunk,
            pointer=f"{at}/total_output_tokens",
            expected="> 0",
            seen=total,
        )


# ---- MCP ------------------------------------------------------------------------------------------


@_rule("v1-mcp-tool-calls")
def mcp_tool_calls(found: V1View) -> Iterator[Issue]:
    """A tool_call item of an ephemeral MCP server names a server_label of the request's integrations and a tool
    its allowed_tools allow."""
    if found.route is not Route.CHAT or not found.integrations:
        return
    allowed = {str(i.get("server_label")): i.get("allowed_tools") for i in found.integrations if "server_label" in i}
    for k, item in enumerate(found.output):
        if item.get("type") != "tool_call":
            continue
        info = as_dict(item.get("provider_info"))
        at = f"{found.result_pointer}/output/{k}"
        if info.get("type") != "ephemeral_mcp":
            continue
        label = info.get("server_label")
        if label not in allowed:
            yield Issue(
                f"tool_call {k} names server_label {label!r}, which is not an integration of the request",
                item=items.REST_V1_MCP,
                chunk=found.result_chunk,
                pointer=f"{at}/provider_info/server_label",
                expected=sorted(allowed),
                seen=label,
            )
            continue
        tools = allowed[str(label)]
        if isinstance(tools, list) and item.get("tool") not in tools:
            yield Issue(
                f"tool_call {k} calls {item.get('tool')!r}, which the integration's allowed_tools do not allow",
                item=items.REST_V1_MCP,
                chunk=found.result_chunk,
                pointer=f"{at}/tool",
                expected=tools,
                seen=item.get("tool"),
            )


RULES: tuple[V1Rule, ...] = (
    error_envelope,
    body_schema,
    models_unique,
    load_config,
    unload_echo,
    event_schema,
    event_order,
    stream_matches_result,
    response_id,
    stats,
    mcp_tool_calls,
)


def validate_context(ctx: Context) -> list[Finding]:
    """Every v1 rule's findings on one exchange; [] when it is not an /api/v1 exchange."""
    found = view(ctx)
    return [] if found is None else [finding for rule in RULES for finding in rule.findings(found)]
