"""Which recorded requests exercise an item, so that offline checks pass only items the traffic tried."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from conformance.exchange import Request
from conformance.verdicts import items as ids

__all__ = ["exercises"]


def _tools(body: Mapping[str, Any]) -> list[Any]:
    tools = body.get("tools")
    return tools if isinstance(tools, list) else []


def _streamed(body: Mapping[str, Any]) -> bool:
    return body.get("stream") is True


def _with_tools(body: Mapping[str, Any]) -> bool:
    return bool(_tools(body))


def _streamed_tools(body: Mapping[str, Any]) -> bool:
    return _streamed(body) and _with_tools(body)


def _tool_without_parameters(body: Mapping[str, Any]) -> bool:
    return any(isinstance(t, dict) and "parameters" not in (t.get("function") or {}) for t in _tools(body))


def _tool_with_defs(body: Mapping[str, Any]) -> bool:
    return any("$defs" in str((t.get("function") or {}).get("parameters")) for t in _tools(body) if isinstance(t, dict))


def _usage_asked(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return _streamed(body) and isinstance(options, dict) and options.get("include_usage") is True


def _response_format_text(body: Mapping[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "text"


def _tool_types(body: Mapping[str, Any]) -> set[Any]:
    return {t.get("type") for t in _tools(body) if isinstance(t, dict)}


def _reasoning_effort(body: Mapping[str, Any]) -> bool:
    reasoning = body.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("effort") is not None


_EXERCISED_BY: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    ids.RESPONSES_STREAMING: _streamed,
    ids.RESPONSES_STATEFUL: lambda body: isinstance(body.get("previous_response_id"), str),
    ids.RESPONSES_FUNCTION_TOOLS: lambda body: "function" in _tool_types(body),
    ids.RESPONSES_REMOTE_MCP: lambda body: "mcp" in _tool_types(body),
    ids.RESPONSES_REASONING_EFFORT: _reasoning_effort,
    ids.TOOL_CALLING: _with_tools,
    ids.TOOL_CHOICE: lambda body: _with_tools(body) and "tool_choice" in body,
    ids.FINISH_REASON_TOOL_CALLS: _with_tools,
    ids.NO_EMPTY_FUNCTION_NAME: _streamed_tools,
    ids.STREAMED_TOOL_ARGUMENTS: _streamed_tools,
    ids.TOOLS_WITHOUT_PARAMETERS: _tool_without_parameters,
    ids.PARALLEL_TOOL_CALLS_CHUNKED: _streamed_tools,
    ids.TOOL_SCHEMA_DEFS: _tool_with_defs,
    ids.PARALLEL_TOOL_CALLS_STREAM: _streamed_tools,
    ids.TOOL_NAME_NORMALIZATION: _with_tools,
    ids.TOOLS_REQUEST_ROBUSTNESS: _with_tools,
    ids.TTL: lambda body: "ttl" in body,
    ids.SPECULATIVE_DECODING: lambda body: "draft_model" in body,
    ids.STREAM_INCLUDE_USAGE: _streamed,
    ids.STREAM_ERRORS: _streamed,
    ids.STREAM_USAGE_CORRECT: _usage_asked,
    ids.RESPONSE_FORMAT_TEXT: _response_format_text,
    ids.BASE_STREAMING: _streamed,
}


def exercises(item_id: str, request: Request, *, model_families: tuple[str, ...] = ()) -> bool:
    """Whether a request to one of the item's endpoints tries what the item is about.

    A request for `/v1/chat/completions` without `ttl` says nothing about 0.3.9/ttl, so a cassette of such
    requests leaves that item not covered rather than passed. Model-specific items count only requests
    for a model of their family, and then whatever tool-calling would exercise.
    """
    body = request.json
    if model_families:
        model = str(body.get("model", "")).lower()
        return any(family.lower() in model for family in model_families) and _with_tools(body)
    predicate = _EXERCISED_BY.get(item_id)
    return predicate is None or predicate(body)
