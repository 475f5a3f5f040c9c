"""OpenAI Responses API (`/v1/responses`): requests translated onto the chat pipeline, output as items and events."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from reference_server.chat import ChatPlan, OutputShaper, Part, plan_chat
from reference_server.engine import Backend, Finished, FinishReason, Generation, Piece, Sampling
from reference_server.errors import ApiError
from reference_server.limits import Limits
from reference_server.mcp_client import McpFailure, McpServer, McpTool, Toolbox, call_tool
from reference_server.models import Models, lease_for
from reference_server.openai_api import ChatCompletionRequest, LifecycleFields, validation_error
from reference_server.reasoning import ReasonedGeneration, Thought, reason
from reference_server.serving import (
    INTERNAL_ERROR,
    EventStream,
    combined,
    first_event,
    limits_of,
    parse_body,
    unless_disconnected,
)
from reference_server.textstream import Channel
from reference_server.toolstream import ToolCallDelta

__all__ = ["DEFAULT_MAX_STORED", "ResponseStore", "ResponsesRequest", "responses_router"]

log = logging.getLogger(__name__)

DEFAULT_MAX_STORED = 1000
"""Responses kept for previous_response_id and GET (oldest evicted first); `conformance serve --responses-store`."""

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
EFFORT_BUDGET: dict[str, int] = {"minimal": 16, "low": 32, "medium": 64, "high": 128, "xhigh": 256, "max": 512}
"""Reasoning budget (tokens) per `reasoning.effort`; `none` (or no effort) reasons not at all."""
_TEXT_PARTS = ("input_text", "output_text", "refusal")
_ITEM_TYPES = (
    "message, function_call, function_call_output, reasoning, mcp_list_tools, mcp_call, mcp_approval_request, "
    "mcp_approval_response"
)


class _Lenient(BaseModel):
    """Unknown fields are accepted and ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")


class FunctionTool(_Lenient):
    """A function tool in the Responses shape: flat, no nested `function` object."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    name: str


class ReasoningConfig(_Lenient):
    effort: ReasoningEffort | None = None
    summary: str | None = None


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> TextFormat:
        if self.type == "json_schema" and self.schema_ is None:
            raise ValueError("a json_schema format needs `schema` (a JSON Schema object)")
        return self


class TextConfig(_Lenient):
    format: TextFormat | None = None


class ResponsesRequest(LifecycleFields):
    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    seed: int | None = None
    """Not an OpenAI field: deterministic sampling, as in chat completions."""


# ---- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """A finished response and the conversation it ends (input and output as chat messages, no instructions)."""

    body: dict[str, Any]
    history: tuple[dict[str, Any], ...]
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Its mcp_approval_request items by id, for the mcp_approval_response that answers one."""


class ResponseStore:
    """Stored responses in memory, at most `limit` of them; the oldest is evicted first."""

    def __init__(self, limit: int = DEFAULT_MAX_STORED) -> None:
        if limit < 0:
            raise ValueError("the response store bound must be 0 or more")
        self.limit = limit
        self._responses: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, stored: StoredResponse) -> None:
        if self.limit == 0:
            return
        self._responses[stored.body["id"]] = stored
        while len(self._responses) > self.limit:
            self._responses.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        return self._responses.get(response_id)

    def delete(self, response_id: str) -> bool:
        return self._responses.pop(response_id, None) is not None

    def __len__(self) -> int:
        return len(self._responses)


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.", code="not_found")


# ---- request translation -----------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _part_text(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise ApiError.bad_request(f"{where} must be a content part object", param="input")
    kind = part.get("type")
    if kind in ("input_image", "input_file", "input_audio"):
        raise ApiError.bad_request(
            f"{where} is an {kind} part: the loaded model reads text only; send input_text parts",
            param="input",
            code="unsupported_content",
        )
    if kind not in _TEXT_PARTS:
        raise ApiError.bad_request(
            f"{where} has type {kind!r}; supported part types are input_text and output_text (and refusal)",
            param="input",
        )
    text = part.get("refusal") if kind == "refusal" else part.get("text")
    if not isinstance(text, str):
        raise ApiError.bad_request(f"{where}: a {kind} part needs a string field", param="input")
    return text


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError.bad_request(f"{where}.content must be a string or a list of content parts", param="input")
    return "\n".join(_part_text(part, f"{where}.content[{index}]") for index, part in enumerate(content))


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "\n".join(_part_text(part, f"{where}.output[{index}]") for index, part in enumerate(output))
    raise ApiError.bad_request(f"{where}.output must be a string or a list of input_text parts", param="input")


def _string_field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise ApiError.bad_request(f"{where} needs a string {name!r}", param="input")
    return value


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for Responses input items (replayed reasoning items carry nothing the prompt needs)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise ApiError.bad_request(
                    f"{where}.role is {role!r}; use user, system, developer or assistant", param="input"
                )
            messages.append({"role": role, "content": _content_text(item.get("content"), where)})
        elif kind == "function_call":
            call = {
                "id": _string_field(item, "call_id", where),
                "type": "function",
                "function": {"name": _string_field(item, "name", where), "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # parallel calls: one assistant turn
                last.setdefault("tool_calls", []).append(call)
                last["content"] = last.get("content") or None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _string_field(item, "call_id", where),
                    "content": _output_text(item.get("output"), where),
                }
            )
        elif kind in ("reasoning", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"):
            continue  # nothing the prompt needs; approval responses are acted on by the route
        elif kind == "mcp_call":
            call_id = _string_field(item, "id", where)
            name, arguments = _string_field(item, "name", where), item.get("arguments") or "{}"
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            result = item.get("output") or item.get("error") or ""
            messages.append({"role": "tool", "tool_call_id": call_id, "content": str(result)})
        else:
            raise ApiError.bad_request(
                f"{where} has type {kind!r}; this server accepts input items of type {_ITEM_TYPES}", param="input"
            )
    return messages


def _function_tools(tools: list[dict[str, Any]]) -> list[FunctionTool]:
    out = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "mcp":
            continue  # see mcp_servers
        if kind != "function":
            raise ApiError.bad_request(
                f"tools[{index}] has type {kind!r}: this server runs only function tools (and mcp tools when "
                "started with --allow-remote-mcp)",
                param=f"tools[{index}].type",
            )
        try:
            out.append(FunctionTool.model_validate(tool))
        except ValidationError as exc:
            error = validation_error(exc.errors())
            raise ApiError.bad_request(f"tools[{index}]: {error.message}", param=f"tools[{index}]") from exc
    return out


class McpToolConfig(_Lenient):
    """A remote MCP tool of the request (OpenAI's `Mcp` tool)."""

    type: Literal["mcp"]
    server_label: str = Field(min_length=1)
    server_url: str | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: Literal["always", "never"] | dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    authorization: str | None = None

    def server(self) -> McpServer:
        headers = dict(self.headers or {})
        if self.authorization:
            headers["Authorization"] = f"Bearer {self.authorization}"
        allowed = self.allowed_tools
        names = allowed.get("tool_names") if isinstance(allowed, dict) else allowed
        return McpServer(
            label=self.server_label,
            url=self.server_url or "",
            headers=headers,
            allowed=None if names is None else frozenset(names),
        )

    def needs_approval(self, tool: str) -> bool:
        """OpenAI's default: every call waits for approval unless `never` covers it."""
        policy = self.require_approval
        if policy is None or policy == "always":
            return True
        if policy == "never":
            return False
        never = policy.get("never") if isinstance(policy, dict) else None
        names = never.get("tool_names") if isinstance(never, dict) else None
        return not (isinstance(names, list) and tool in names)


def mcp_configs(request: ResponsesRequest, *, allowed: bool) -> list[McpToolConfig]:
    """The request's mcp tools; a clear 400 when remote MCP is off or a tool lacks its server_url."""
    configs = []
    for index, tool in enumerate(request.tools or []):
        if not isinstance(tool, dict) or tool.get("type") != "mcp":
            continue
        if not allowed:
            raise ApiError.bad_request(
                f"tools[{index}] is a remote MCP tool, and remote MCP is switched off on this server; start it "
                "with `conformance serve --allow-remote-mcp` to let it connect to MCP servers",
                param=f"tools[{index}].type",
                code="mcp_disabled",
            )
        try:
            config = McpToolConfig.model_validate(tool)
        except ValidationError as exc:
            error = validation_error(exc.errors())
            raise ApiError.bad_request(f"tools[{index}]: {error.message}", param=f"tools[{index}]") from exc
        if not config.server_url:
            raise ApiError.bad_request(
                f"tools[{index}] (MCP server {config.server_label!r}) needs a server_url: this server has no "
                "locally configured MCP servers",
                param=f"tools[{index}].server_url",
            )
        configs.append(config)
    return configs


def _text_format(request: ResponsesRequest) -> dict[str, Any] | None:
    text_format = request.text.format if request.text else None
    if text_format is None or text_format.type == "text":
        return None
    if text_format.type == "json_object":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": text_format.name, "schema": text_format.schema_}}


_PARAMS = {"messages": "input", "response_format": "text.format", "max_completion_tokens": "max_output_tokens"}


def plan_response(
    request: ResponsesRequest,
    history: tuple[dict[str, Any], ...],
    backend: Backend,
    *,
    mcp_tools: Sequence[McpTool] = (),
    results: Sequence[dict[str, Any]] = (),
    limits: Limits | None = None,
) -> tuple[ChatPlan, list[dict[str, Any]]]:
    """The chat plan for a Responses request, and this turn's input as chat messages (for the store).

    `mcp_tools` are offered to the model beside the function tools; `results` (MCP calls and their results)
    end the turn, and then the model answers in text, without tools.
    """
    if request.input is None:
        raise ApiError.bad_request("input is required: a string or a list of input items", param="input")
    inputs = input_messages(request.input)
    instructions = [{"role": "system", "content": request.instructions}] if request.instructions else []
    messages = [*instructions, *history, *inputs, *results]
    if not messages:
        raise ApiError.bad_request("input is empty: send at least one message", param="input")
    tools = [
        {"type": "function", "function": tool.model_dump(include={"name", "description", "parameters"})}
        for tool in _function_tools(request.tools or [])
    ] + [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}
        for t in mcp_tools
    ]
    choice = request.tool_choice
    chat: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "tools": None if results else tools or None,
        "tool_choice": {"type": "function", "function": {"name": choice.name}}
        if isinstance(choice, NamedToolChoice)
        else None
        if results
        else choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": _text_format(request),
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
    }
    try:
        chat_request = ChatCompletionRequest.model_validate(chat)
        return plan_chat(chat_request, backend, limits), inputs
    except ValidationError as exc:
        error = validation_error(exc.errors())
        raise ApiError.bad_request(error.message, param=_PARAMS.get(str(error.param).split(".")[0])) from exc
    except ApiError as exc:
        if exc.param in _PARAMS:
            exc.param = _PARAMS[exc.param]
            exc.message = exc.message.replace("messages", "input")
        raise


def reasoning_budget(request: ResponsesRequest, sampling: Sampling) -> int | None:
    """The thinking budget `reasoning.effort` asks for (EFFORT_BUDGET), or None for no reasoning.

    Capped at half the output limit (max_output_tokens, or the server's cap) so the answer keeps room.
    """
    effort = request.reasoning.effort if request.reasoning else None
    budget = EFFORT_BUDGET.get(effort) if effort else None
    if budget is None:
        return None
    limit = sampling.max_tokens
    return budget if limit is None else max(1, min(budget, limit // 2))


# ---- output: items and the events that build them ----------------------------------------------


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


@dataclass
class _Open:
    """The output item being generated."""

    item: dict[str, Any]
    index: int
    kind: str  # "message", "reasoning" or "function_call"
    text: list[str] = field(default_factory=list)


class OutputItems:
    """Folds the pipeline's parts into output items; each step returns the stream events it amounts to.

    The non-streamed answer is built by the same steps with the events dropped, so a client that folds the
    stream gets exactly the final response.
    """

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._open: _Open | None = None
        self.reasoning_text: list[str] = []
        self.held: frozenset[str] = frozenset()
        """Tools the server calls itself (MCP): their calls are held in `pending`, not streamed as function_call."""
        self.pending: list[dict[str, Any]] = []
        self._holding = False

    def add(self, part: Part, *, thought: bool = False) -> list[dict[str, Any]]:
        """The events of one part; `thought` marks reasoning the server asked for (counted by its generation)."""
        if isinstance(part, ToolCallDelta):
            if part.id is not None and part.name in self.held:
                self._holding = True
                self.pending.append({"call_id": part.id, "name": part.name, "arguments": part.arguments})
                return self._close("completed")
            if part.id is None and self._holding:
                self.pending[-1]["arguments"] += part.arguments
                return []
            if part.id is not None:
                self._holding = False
                events = self._close("completed")
                item = {
                    "id": _new_id("fc"),
                    "type": "function_call",
                    "status": "in_progress",
                    "arguments": "",
                    "call_id": part.id,
                    "name": part.name,
                }
                events += self._start(item, "function_call")
                return events + self._arguments(part.arguments)
            return self._arguments(part.arguments)
        channel, text = part
        if not text:
            return []
        kind = "reasoning" if channel is Channel.REASONING else "message"
        events = [] if self._open is not None and self._open.kind == kind else self._close("completed")
        if self._open is None:
            events += self._start_text(kind)
        assert self._open is not None
        self._open.text.append(text)
        if kind == "reasoning" and not thought:
            self.reasoning_text.append(text)
        delta = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
        events.append(
            _event(
                delta,
                item_id=self._open.item["id"],
                output_index=self._open.index,
                content_index=0,
                delta=text,
                **extra,
            )
        )
        return events

    def finish(self, *, cut: bool) -> list[dict[str, Any]]:
        """Close the last item (`incomplete` when max_output_tokens cut it); an answer is never without items."""
        events = [] if self.items else self._start_text("message")
        return events + self._close("incomplete" if cut else "completed")

    def close(self) -> list[dict[str, Any]]:
        """Close the item being generated (before the server's own items, such as MCP calls, follow)."""
        self._holding = False
        return self._close("completed")

    def add_item(self, item: dict[str, Any], *, started: str | None = None) -> list[dict[str, Any]]:
        """A whole item the server made (MCP tool lists, calls, approval requests): added, then done.
        `started` names its in-progress event (`response.mcp_call`): `.in_progress`, then `.completed` or
        `.failed` by the item's status."""
        index = len(self.items)
        self.items.append(item)
        events = [_event("response.output_item.added", output_index=index, item=_copy({**item, **_pending(item)}))]
        if started is not None:
            events.append(_event(f"{started}.in_progress", item_id=item["id"], output_index=index))
            if item["type"] == "mcp_call":
                events.append(
                    _event(
                        "response.mcp_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
            outcome = "failed" if item.get("error") else "completed"
            events.append(_event(f"{started}.{outcome}", item_id=item["id"], output_index=index))
        events.append(_event("response.output_item.done", output_index=index, item=_copy(item)))
        return events

    def _start(self, item: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        self._open = _Open(item=item, index=len(self.items), kind=kind)
        self.items.append(item)
        return [_event("response.output_item.added", output_index=self._open.index, item=_copy(item))]

    def _start_text(self, kind: str) -> list[dict[str, Any]]:
        if kind == "reasoning":
            item = {"id": _new_id("rs"), "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
        else:
            item = {
                "id": _new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
        events = self._start(item, kind)
        assert self._open is not None
        events.append(
            _event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._open.index,
                content_index=0,
                part=_part(kind, ""),
            )
        )
        return events

    def _arguments(self, delta: str) -> list[dict[str, Any]]:
        if not delta:
            return []
        assert self._open is not None
        assert self._open.kind == "function_call"
        self._open.item["arguments"] += delta
        return [
            _event(
                "response.function_call_arguments.delta",
                item_id=self._open.item["id"],
                output_index=self._open.index,
                delta=delta,
            )
        ]

    def _close(self, status: str) -> list[dict[str, Any]]:
        current, self._open = self._open, None
        if current is None:
            return []
        item, index = current.item, current.index
        events: list[dict[str, Any]] = []
        if current.kind == "function_call":
            events.append(
                _event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        else:
            text = "".join(current.text)
            part = _part(current.kind, text)
            item["content"] = [part]
            done = "response.reasoning_text.done" if current.kind == "reasoning" else "response.output_text.done"
            extra: dict[str, Any] = {} if current.kind == "reasoning" else {"logprobs": []}
            events.append(_event(done, item_id=item["id"], output_index=index, content_index=0, text=text, **extra))
            events.append(
                _event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=_copy(part),
                )
            )
        item["status"] = status
        events.append(_event("response.output_item.done", output_index=index, item=_copy(item)))
        return events


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "reasoning":
        return {"type": "reasoning_text", "text": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _pending(item: dict[str, Any]) -> dict[str, Any]:
    """How an item the server makes looks when it is added, before its work is done."""
    if item["type"] == "mcp_call":
        return {"status": "in_progress", "output": None, "error": None}
    if item["type"] == "mcp_list_tools":
        return {"tools": []}
    return {}


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def output_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output items as chat messages, for the conversation a later previous_response_id continues."""
    replay = [item for item in items if item["type"] in ("message", "function_call", "mcp_call")]
    return input_messages(replay) if replay else [{"role": "assistant", "content": ""}]


# ---- the response object -----------------------------------------------------------------------


@dataclass
class ResponseRun:
    """One response being produced: its identity, the echoed request fields, the output so far."""

    request: ResponsesRequest
    model: str
    history: tuple[dict[str, Any], ...]
    turn: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    sampling: Sampling
    backend: Backend
    """The model this response is generated by (the request's lease)."""
    id: str = field(default_factory=lambda: _new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    output: OutputItems = field(default_factory=OutputItems)
    finished: Finished | None = None
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    thinking: ReasonedGeneration | None = None
    """The generation when reasoning.effort asked for reasoning: it counts the thought's tokens."""

    @property
    def store(self) -> bool:
        return self.request.store is not False

    def body(self, status: str, *, usage: dict[str, Any] | None = None, incomplete: bool = False) -> dict[str, Any]:
        request = self.request
        choice = request.tool_choice
        text_format = request.text.format if request.text and request.text.format else None
        finished = status in ("completed", "incomplete", "failed")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if finished else None,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "max_tool_calls": None,
            "model": self.model,
            "output": _copy({"output": self.output.items})["output"] if finished else [],
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id,
            "prompt_cache_key": None,
            "reasoning": {
                "effort": request.reasoning.effort if request.reasoning else None,
                "summary": request.reasoning.summary if request.reasoning else None,
            },
            "safety_identifier": None,
            "service_tier": "default",
            "store": self.store,
            "temperature": self.sampling.temperature,
            "text": {
                "format": text_format.model_dump(by_alias=True, exclude_none=True) if text_format else {"type": "text"}
            },
            "tool_choice": choice.model_dump() if isinstance(choice, NamedToolChoice) else (choice or "auto"),
            "tools": self.tools,
            "top_logprobs": 0,
            "top_p": self.sampling.top_p,
            "presence_penalty": self.sampling.presence_penalty,
            "frequency_penalty": self.sampling.frequency_penalty,
            "truncation": request.truncation or "disabled",
            "usage": usage,
            "user": None,
            "metadata": request.metadata or {},
        }

    def usage(self, finished: Finished, reasoning_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": finished.prompt_tokens,
            "input_tokens_details": {"cached_tokens": finished.cached_tokens},
            "output_tokens": finished.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        }

    def stored(self, body: dict[str, Any]) -> StoredResponse:
        return StoredResponse(
            body=body,
            history=(*self.history, *self.turn, *output_messages(self.output.items)),
            approvals=dict(self.approvals),
        )


def _echo_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    mcp = [  # without its credentials: a response is stored, fetched and logged
        {key: value for key, value in tool.items() if key not in ("headers", "authorization")}
        for tool in request.tools or []
        if isinstance(tool, dict) and tool.get("type") == "mcp"
    ]
    return mcp + [
        {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
            "strict": tool.strict,
        }
        for tool in _function_tools(request.tools or [])
    ]


# ---- routes ------------------------------------------------------------------------------------


def responses_router(models: Models, store: ResponseStore, *, allow_remote_mcp: bool = False) -> APIRouter:
    """POST /v1/responses, GET and DELETE /v1/responses/{id}, on the chat pipeline of the model each request
    leases from `models`.

    With `allow_remote_mcp`, `mcp` tools connect to their servers: the tool list becomes an mcp_list_tools
    item, the model may call those tools (grammar-constrained like function tools), the server calls them
    (or asks for approval first) and the model answers with the results.
    """
    router = APIRouter()

    def reasoning_tokens(run: ResponseRun) -> int:
        """Tokens of the thought the server asked for (as generated), plus `<think>` text the model wrote."""
        text = "".join(run.output.reasoning_text)
        thought = run.thinking.thought_tokens if run.thinking is not None else 0
        return thought + (len(run.backend.tokenize(text)) if text else 0)

    @router.post("/v1/responses")
    async def create(request: Request) -> Response:
        body = await parse_body(request, ResponsesRequest)
        limits = limits_of(request)
        previous: StoredResponse | None = None
        if body.previous_response_id is not None:
            previous = store.get(body.previous_response_id)
            if previous is None:
                raise ApiError.bad_request(
                    f"Previous response with id '{body.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        history = previous.history if previous else ()
        backend = (await lease_for(request, body.model, ttl=body.ttl)).backend
        mcp = await _connect(body)
        resumed = await _approved_calls(body, previous, mcp)
        results = [message for call in resumed for message in _call_messages(call)]
        plan, turn = await run_in_threadpool(
            partial(plan_response, body, history, backend, mcp_tools=mcp.tools, results=results, limits=limits)
        )
        run = ResponseRun(
            request=body,
            model=plan.model,
            history=history,
            turn=turn,
            tools=_echo_tools(body),
            sampling=plan.generation.sampling,
            backend=backend,
        )
        run.output.held = frozenset(tool.name for tool in mcp.tools)
        prelude = [event for item in mcp.listings for event in run.output.add_item(item, started=_LIST_STARTED)]
        prelude += [event for call in resumed for event in run.output.add_item(call, started=_CALL_STARTED)]
        budget = reasoning_budget(body, plan.generation.sampling)
        generation: Generation | ReasonedGeneration
        if budget is None:
            generation = backend.generate(plan.generation)
        else:
            generation = run.thinking = reason(backend, plan, budget)
        try:
            events: AsyncIterator[Thought | Piece | Finished] = await first_event(
                generation, grammar_param=plan.grammar_param
            )
        except BaseException:
            generation.cancel()
            raise
        produced = _produce(run, plan, events, mcp, history, limits)
        if body.stream:
            return EventStream(_stream(prelude, produced, run), generation.cancel)

        async def drain() -> None:
            async for _ in produced:
                pass

        try:
            await unless_disconnected(request, drain(), generation.cancel)
        except Exception as exc:
            log.exception("generation failed")
            raise ApiError(500, INTERNAL_ERROR, type_="server_error", code="internal_error") from exc
        finally:
            generation.cancel()
        assert run.finished is not None
        return JSONResponse(_complete(run, run.finished))

    async def _connect(body: ResponsesRequest) -> _Mcp:
        configs = mcp_configs(body, allowed=allow_remote_mcp)
        try:
            box = await Toolbox.connect([config.server() for config in configs])
        except McpFailure as exc:
            raise ApiError(424, str(exc), type_="external_connector_error", param="tools", code="http_error") from exc
        except ValueError as exc:  # two servers offer one tool name
            raise ApiError.bad_request(str(exc), param="tools") from exc
        mcp = _Mcp(tools=box.tools)
        for config, (server, tools) in zip(configs, box.listed, strict=True):
            mcp.servers.update({tool.name: (config, server) for tool in tools})
            mcp.listings.append(
                {
                    "id": _new_id("mcpl"),
                    "type": "mcp_list_tools",
                    "server_label": server.label,
                    "tools": [
                        {
                            "name": t.name,
                            "description": t.description,
                            "input_schema": t.input_schema,
                            "annotations": t.annotations,
                        }
                        for t in tools
                    ],
                    "error": None,
                }
            )
        return mcp

    async def _approved_calls(
        body: ResponsesRequest, previous: StoredResponse | None, mcp: _Mcp
    ) -> list[dict[str, Any]]:
        """The MCP calls that mcp_approval_response input items approve, made now."""
        calls = []
        for index, item in enumerate(body.input if isinstance(body.input, list) else []):
            if item.get("type") != "mcp_approval_response":
                continue
            request_id = item.get("approval_request_id")
            asked = previous.approvals.get(str(request_id)) if previous else None
            if asked is None:
                raise ApiError.bad_request(
                    f"input[{index}] answers approval request {request_id!r}, which the previous response "
                    "(previous_response_id) did not make",
                    param="input",
                )
            if item.get("approve") is not True:
                continue
            if asked["name"] not in mcp.servers:
                raise ApiError.bad_request(
                    f"input[{index}] approves a call of {asked['name']!r}, but no mcp tool of this request offers "
                    "it; send the mcp tool again",
                    param="tools",
                )
            calls.append(await _call(mcp, asked["name"], asked["arguments"], approval=str(request_id)))
        return calls

    async def _call(mcp: _Mcp, name: str, arguments: str, *, approval: str | None = None) -> dict[str, Any]:
        _, server = mcp.servers[name]
        try:
            parsed = json.loads(arguments or "{}")
            output, error = await call_tool(server, name, parsed if isinstance(parsed, dict) else {})
        except (McpFailure, ValueError) as exc:
            output, error = None, str(exc)
        return {
            "id": _new_id("mcp"),
            "type": "mcp_call",
            "server_label": server.label,
            "name": name,
            "arguments": arguments,
            "output": output,
            "error": error,
            "status": "failed" if error else "completed",
            "approval_request_id": approval,
        }

    async def _produce(
        run: ResponseRun,
        plan: ChatPlan,
        events: AsyncIterator[Thought | Piece | Finished],
        mcp: _Mcp,
        history: tuple[dict[str, Any], ...],
        limits: Limits,
    ) -> AsyncIterator[dict[str, Any]]:
        """The item events of the whole answer; sets run.finished (all generations counted) at the end."""
        finished = None
        async for item_event in _generate(run, OutputShaper(plan.tools), events):
            if isinstance(item_event, Finished):
                finished = item_event
            else:
                yield item_event
        assert finished is not None, "generation ended without a Finished event"
        results: list[dict[str, Any]] = []
        if run.output.pending and finished.reason is FinishReason.STOP:
            for event in run.output.close():
                yield event
            for pending in run.output.pending:
                config, server = mcp.servers[pending["name"]]
                if config.needs_approval(pending["name"]):
                    item = {
                        "id": _new_id("mcpr"),
                        "type": "mcp_approval_request",
                        "server_label": server.label,
                        "name": pending["name"],
                        "arguments": pending["arguments"],
                    }
                    run.approvals[item["id"]] = item
                    for event in run.output.add_item(item):
                        yield event
                    continue
                call = await _call(mcp, pending["name"], pending["arguments"])
                for event in run.output.add_item(call, started=_CALL_STARTED):
                    yield event
                results += _call_messages(call)
            run.output.pending.clear()
        limit = run.request.max_output_tokens
        left = None if limit is None else limit - finished.completion_tokens
        if results and not run.approvals and left is not None and left <= 0:
            finished = replace(finished, reason=FinishReason.LENGTH)  # no tokens left to answer with the results
        elif results and not run.approvals:
            follow_request = run.request.model_copy(update={"max_output_tokens": left})
            outputs = [*_outputs_so_far(run), *results]
            follow, _ = await run_in_threadpool(
                partial(plan_response, follow_request, history, run.backend, results=outputs, limits=limits)
            )
            generation = run.backend.generate(follow.generation)
            try:
                async for item_event in _generate(run, OutputShaper(follow.tools), generation):
                    if isinstance(item_event, Finished):
                        finished = combined(finished, item_event)
                    else:
                        yield item_event
            finally:
                generation.cancel()
        if finished.reason is not FinishReason.CANCELLED:
            for event in run.output.finish(cut=finished.reason is FinishReason.LENGTH):
                yield event
        run.finished = finished

    def _complete(run: ResponseRun, finished: Finished) -> dict[str, Any]:
        cut = finished.reason is FinishReason.LENGTH
        status = "incomplete" if cut else "completed"
        result = run.body(status, usage=run.usage(finished, reasoning_tokens(run)), incomplete=cut)
        if run.store:
            store.put(run.stored(result))
        return result

    async def _stream(
        prelude: list[dict[str, Any]], produced: AsyncIterator[dict[str, Any]], run: ResponseRun
    ) -> AsyncIterator[bytes]:
        frames = _Frames()
        yield frames.frame(_event("response.created", response=run.body("in_progress")))
        yield frames.frame(_event("response.in_progress", response=run.body("in_progress")))
        try:
            for event in prelude:
                yield frames.frame(event)
            async for event in produced:
                yield frames.frame(event)
            assert run.finished is not None
            if run.finished.reason is FinishReason.CANCELLED:
                return
            result = _complete(run, run.finished)
            yield frames.frame(_event(f"response.{result['status']}", response=result))
        except Exception:
            log.exception("generation failed mid-stream")
            yield frames.frame(_error_event(INTERNAL_ERROR))

    @router.get("/v1/responses/{response_id}")
    async def retrieve(response_id: str) -> dict[str, Any]:
        stored = store.get(response_id)
        if stored is None:
            raise _not_found(response_id)
        return stored.body

    @router.delete("/v1/responses/{response_id}")
    async def delete(response_id: str) -> dict[str, Any]:
        if not store.delete(response_id):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    return router


_LIST_STARTED = "response.mcp_list_tools"
_CALL_STARTED = "response.mcp_call"


@dataclass
class _Mcp:
    """The remote MCP side of one request: tool listings (items), the tools, and which server has each."""

    listings: list[dict[str, Any]] = field(default_factory=list)
    tools: list[McpTool] = field(default_factory=list)
    servers: dict[str, tuple[McpToolConfig, McpServer]] = field(default_factory=dict)


def _call_messages(call: dict[str, Any]) -> list[dict[str, Any]]:
    return input_messages([call])


def _outputs_so_far(run: ResponseRun) -> list[dict[str, Any]]:
    """What the model already said this turn (text, function calls), before the MCP calls it made."""
    said = [item for item in run.output.items if item["type"] in ("message", "function_call")]
    return input_messages(said) if said else []


async def _generate(
    run: ResponseRun, shaper: OutputShaper, events: AsyncIterator[Thought | Piece | Finished]
) -> AsyncIterator[dict[str, Any] | Finished]:
    """The item events of one generation (its Thoughts become a reasoning item), then its Finished."""
    async for event in events:
        if isinstance(event, Thought):
            for item_event in run.output.add((Channel.REASONING, event.text), thought=True):
                yield item_event
            continue
        if isinstance(event, Finished):
            if event.reason is not FinishReason.CANCELLED:
                for part in shaper.finish():
                    for item_event in run.output.add(part):
                        yield item_event
            yield event
            return
        for part in shaper.feed(event.text):
            for item_event in run.output.add(part):
                yield item_event
    raise RuntimeError("generation ended without a Finished event")


def _error_event(message: str) -> dict[str, Any]:
    """The `error` event: flat fields for openai-python's ResponseErrorEvent, and a nested `error` object (Open
    Responses' shape) that also makes openai-python raise APIError with the message."""
    error = {"type": "server_error", "code": "internal_error", "message": message, "param": None}
    return _event("error", code="internal_error", message=message, param=None, error=error)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Frames:
    """SSE framing: `event: <type>` and the JSON data, every event numbered from 0 by 1."""

    def __init__(self) -> None:
        self._next = 0

    def frame(self, event: dict[str, Any]) -> bytes:
        payload = {"type": event["type"], "sequence_number": self._next, **event}
        self._next += 1
        kind: str = event["type"]
        return b"event: " + kind.encode() + b"\ndata: " + _dumps(payload).encode() + b"\n\n"
