"""Which recorded exchanges exercise an item, so that offline checks pass only items the traffic tried.

`conformance check` and the live proxy judge recordings with these: an item passes on a recording only
when an exchange exercised it (the request asked for the feature and the answer showed it: a tool call for
`$defs`, two calls for the parallel items, an error for the error items). An item without a predicate here
is never exercised by recorded traffic (it needs the suite's own request plans).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conformance.applicability import unimplemented
from conformance.check import Item, Status
from conformance.exchange import Exchange, Request
from conformance.findings import ERROR, Finding
from conformance.verdicts import Context, answer, lmstudio_v1
from conformance.verdicts import items as ids
from conformance.verdicts.context import as_dict
from conformance.verdicts.presets import names_unknown_preset
from conformance.verdicts.tools import normalised_name

__all__ = ["exercises", "recorded_status", "unimplemented"]

Predicate = Callable[[Context], bool]


def _tools(ctx: Context) -> list[Any]:
    tools = ctx.request.get("tools")
    return tools if isinstance(tools, list) else []


def _functions(ctx: Context) -> list[dict[str, Any]]:
    return [t["function"] for t in _tools(ctx) if isinstance(t, dict) and isinstance(t.get("function"), dict)]


def _streamed(ctx: Context) -> bool:
    return ctx.asked_stream and ctx.stream is not None


def _calls(ctx: Context) -> int:
    """How many tool calls a successful answer carries (0 without an answer)."""
    if not ctx.ok:
        return 0
    found = answer(ctx)
    return 0 if found is None or found.error is not None else len(found.tool_calls)


def _called(ctx: Context) -> bool:
    return _calls(ctx) >= 1


def _parallel(ctx: Context) -> bool:
    return _streamed(ctx) and _calls(ctx) >= 2


def _tool_without_parameters(ctx: Context) -> bool:
    return ctx.ok and any("parameters" not in f for f in _functions(ctx))


def _tool_with_defs(ctx: Context) -> bool:
    return _called(ctx) and any("$defs" in str(f.get("parameters")) for f in _functions(ctx))


def _unusual_tool(ctx: Context) -> bool:
    """A tool whose parameters have no properties, are empty, or nest objects (0.3.23's robustness fixes)."""

    def unusual(parameters: Any) -> bool:
        if not isinstance(parameters, dict):
            return False
        properties = parameters.get("properties")
        if not properties:
            return True
        return isinstance(properties, dict) and any(
            isinstance(p, dict) and p.get("type") in ("object", "array") for p in properties.values()
        )

    return ctx.response is not None and any(unusual(f.get("parameters")) for f in _functions(ctx))


def _renamed_tool_called(ctx: Context) -> bool:
    """A tool whose name a server would normalise (camelCase, kebab-case) was called."""
    return _called(ctx) and any(
        isinstance(f.get("name"), str) and normalised_name(f["name"]) != f["name"] for f in _functions(ctx)
    )


def _usage_asked(ctx: Context) -> bool:
    return _streamed(ctx) and ctx.include_usage


def _response_format(kind: str) -> Predicate:
    def predicate(ctx: Context) -> bool:
        response_format = ctx.request.get("response_format")
        return ctx.response is not None and isinstance(response_format, dict) and response_format.get("type") == kind

    return predicate


def _structured(ctx: Context) -> bool:
    return _response_format("json_object")(ctx) or _response_format("json_schema")(ctx)


def _error(ctx: Context) -> bool:
    return ctx.response is not None and ctx.response.status >= 400


def _stream_error(ctx: Context) -> bool:
    return ctx.asked_stream and (_error(ctx) or (ctx.stream is not None and bool(ctx.stream.errors)))


def _reasoning(ctx: Context) -> bool:
    found = answer(ctx) if ctx.ok else None
    return found is not None and bool(found.reasoning)


def _answered(ctx: Context) -> bool:
    return ctx.ok


def _tool_types(ctx: Context) -> set[Any]:
    return {t.get("type") for t in _tools(ctx) if isinstance(t, dict)}


def _reasoning_effort(ctx: Context) -> bool:
    reasoning = ctx.request.get("reasoning")
    return ctx.ok and isinstance(reasoning, dict) and reasoning.get("effort") is not None


def _v1_models(ctx: Context) -> bool:
    """A model listing with models in it, a load or an unload, answered."""
    found = lmstudio_v1.view(ctx)
    if found is None or not ctx.ok or found.route is lmstudio_v1.Route.CHAT:
        return False
    return found.route is not lmstudio_v1.Route.MODELS or bool(as_dict(ctx.body).get("models"))


def _v1_chat(ctx: Context) -> bool:
    """A chat answered with its result (a body, or a stream's chat.end)."""
    found = lmstudio_v1.view(ctx)
    return found is not None and found.route is lmstudio_v1.Route.CHAT and found.result is not None


def _v1_mcp(ctx: Context) -> bool:
    """A chat with an ephemeral MCP integration whose answer has a tool call of it."""
    found = lmstudio_v1.view(ctx)
    return _v1_chat(ctx) and found is not None and bool(found.integrations) and bool(found.tool_calls)


_EXERCISED_BY: dict[str, Predicate] = {
    ids.BASE_CHAT: lambda ctx: _answered(ctx) and not ctx.asked_stream,
    ids.BASE_STREAMING: _streamed,
    ids.BASE_COMPLETIONS: _answered,
    ids.BASE_MODELS: _answered,
    ids.BASE_ERRORS: _error,
    ids.TOOL_CALLING: _called,
    ids.TOOL_CHOICE: lambda ctx: ctx.ok and bool(_tools(ctx)) and ctx.tool_choice is not None,
    ids.FINISH_REASON_TOOL_CALLS: _called,
    ids.NO_EMPTY_FUNCTION_NAME: lambda ctx: _streamed(ctx) and _called(ctx),
    ids.STREAMED_TOOL_ARGUMENTS: lambda ctx: _streamed(ctx) and _called(ctx),
    ids.TOOLS_WITHOUT_PARAMETERS: _tool_without_parameters,
    ids.PARALLEL_TOOL_CALLS_CHUNKED: _parallel,
    ids.TOOL_SCHEMA_DEFS: _tool_with_defs,
    ids.PARALLEL_TOOL_CALLS_STREAM: _parallel,
    ids.TOOL_NAME_NORMALIZATION: _renamed_tool_called,
    ids.TOOLS_REQUEST_ROBUSTNESS: _unusual_tool,
    ids.TTL: lambda ctx: ctx.response is not None and "ttl" in ctx.request,
    ids.SPECULATIVE_DECODING: lambda ctx: ctx.response is not None and "draft_model" in ctx.request,
    ids.PRESETS: lambda ctx: ctx.response is not None and names_unknown_preset(ctx.request),
    ids.STREAM_INCLUDE_USAGE: _streamed,
    ids.STREAM_ERRORS: _stream_error,
    ids.STREAM_USAGE_CORRECT: _usage_asked,
    ids.RESPONSE_FORMAT_TEXT: _response_format("text"),
    ids.STRUCTURED_OUTPUT: _structured,
    ids.REASONING_CONTENT: _reasoning,
    ids.REASONING_FIELD: _reasoning,
    ids.EMBEDDINGS: _answered,
    ids.MODEL_CAPABILITIES: _answered,
    ids.ANTHROPIC_MESSAGES: _answered,
    ids.RESPONSES: _answered,
    ids.RESPONSES_STREAMING: _streamed,
    ids.RESPONSES_STATEFUL: lambda ctx: ctx.ok and isinstance(ctx.request.get("previous_response_id"), str),
    ids.RESPONSES_FUNCTION_TOOLS: lambda ctx: ctx.ok and "function" in _tool_types(ctx),
    ids.RESPONSES_REMOTE_MCP: lambda ctx: ctx.ok and "mcp" in _tool_types(ctx),
    ids.RESPONSES_REASONING_EFFORT: _reasoning_effort,
    ids.REST_V1_MODELS: _v1_models,
    ids.REST_V1_CHAT: _v1_chat,
    ids.REST_V1_MCP: _v1_mcp,
}


def exercises(item_id: str, exchange: Exchange | Request, *, model_families: tuple[str, ...] = ()) -> bool:
    """Whether a recorded exchange to one of the item's endpoints tried what the item is about.

    A request for `/v1/chat/completions` without `ttl` says nothing about 0.3.9/ttl, and a streamed request
    with one tool call nothing about parallel calls, so a cassette of such exchanges leaves those items not
    covered rather than passed. Model-specific items count only exchanges with a model of their family, then
    as tool calling. Given only a Request, the predicates that need the answer see none (not exercised).
    """
    if isinstance(exchange, Request):
        exchange = Exchange(exchange, None)
    ctx = Context(exchange)
    if model_families:
        model = str(ctx.request.get("model", "")).lower()
        return any(family.lower() in model for family in model_families) and _called(ctx)
    predicate = _EXERCISED_BY.get(item_id)
    return predicate is not None and predicate(ctx)


def recorded_status(
    item: Item, exchanges: Sequence[Exchange], findings: Sequence[Finding]
) -> tuple[Status, str] | None:
    """The status of an item on recorded traffic, with the reason, or None when no exchange exercised it.

    Its own error findings fail it (warnings never do); an extension the recorded server lacks skips it;
    otherwise it passes only when an exchange to its endpoints exercised it.
    """
    paths = {endpoint.split()[-1] for endpoint in item.endpoints if endpoint.strip()}
    mine = [e for e in exchanges if e.endpoint in paths]
    errors = [f for f in findings if f.item == item.id and f.severity == ERROR]
    sign = unimplemented(item, mine)
    if sign is not None:
        return Status.SKIP, f"not implemented by this server: {sign[0]}"
    if errors:
        return Status.FAIL, errors[0].message
    if any(exercises(item.id, e, model_families=item.model_families) for e in mine):
        return Status.PASS, ""
    return None
