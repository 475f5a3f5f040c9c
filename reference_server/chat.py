"""Chat completions: from an OpenAI request to a generation, and from generated text to message parts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reference_server.engine import Backend, Finished, FinishReason, GenerationRequest, Sampling
from reference_server.errors import ApiError
from reference_server.grammar import (
    SchemaError,
    check_schema,
    gbnf_for_schema,
    response_format_schema,
    tool_output_schema,
)
from reference_server.limits import Limits
from reference_server.openai_api import ChatCompletionRequest, Message, NamedToolChoice
from reference_server.prompt import PromptError, tool_instructions
from reference_server.textstream import Channel, ThinkSplitter
from reference_server.tools import ToolMode, ToolPlan, ToolSpec
from reference_server.toolstream import ContentDelta, ToolCallDelta, ToolCallStream

__all__ = [
    "ChatPlan",
    "MessageBuilder",
    "OutputShaper",
    "Part",
    "check_context",
    "finish_reason",
    "plan_chat",
    "resolve_model",
    "sampling_of",
    "template_messages",
    "tool_plan",
]

Part = tuple[Channel, str] | ToolCallDelta


@dataclass(frozen=True)
class ChatPlan:
    """Everything decided before generating: the generation itself and how to read its output."""

    generation: GenerationRequest
    tools: ToolPlan
    model: str
    grammar_param: str | None = None
    """The request field the grammar was built from ("tools" or "response_format"), None without a grammar."""
    prompt: str = ""
    """The rendered prompt text the generation's tokens encode (to extend it, as reasoning does)."""


def resolve_model(backend: Backend, requested: str | None, *, param: str = "model") -> str:
    """The backend's model id if requested names it (id, file name or publisher/id), else 404.

    Which model a request's `model` names is Models.acquire's business; this checks a second name (`draft_model`)
    against the model already chosen.
    """
    info = backend.info
    if requested is None:
        return info.id
    names = {info.id, info.path.name, info.path.name.removesuffix(".gguf")}
    if requested in names or requested.rsplit("/", 1)[-1] in names:
        return info.id
    raise ApiError.model_not_found(requested, param=param)


def tool_plan(request: ChatCompletionRequest) -> ToolPlan:
    tools = tuple(
        ToolSpec(name=tool.function.name, description=tool.function.description, parameters=tool.function.parameters)
        for tool in request.tools or ()
    )
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names):
        raise ApiError.bad_request("tool names must be unique", param="tools")
    choice = request.tool_choice
    parallel = request.parallel_tool_calls is not False
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise ApiError.bad_request(
                f"tool_choice names the function {choice.function.name!r}, which is not in tools", param="tool_choice"
            )
        return ToolPlan(tools, ToolMode.NAMED, named=choice.function.name, parallel=parallel)
    if choice in ("required",) and not tools:
        raise ApiError.bad_request('tool_choice "required" needs at least one tool in tools', param="tool_choice")
    if not tools:
        return ToolPlan((), ToolMode.NONE, parallel=parallel)
    return ToolPlan(tools, ToolMode(choice or "auto"), parallel=parallel)


def _text_of(message: Message, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for number, part in enumerate(content):
        kind = part.get("type")
        if kind != "text":
            raise ApiError.bad_request(
                f"messages[{index}].content[{number}] has type {kind!r}, which is not supported: "
                "this model reads text only",
                param=f"messages.{index}.content.{number}.type",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise ApiError.bad_request(
                f"messages[{index}].content[{number}].text must be a string, not {_json_type(text)}",
                param=f"messages.{index}.content.{number}.text",
            )
        texts.append(text)
    return "\n".join(texts)


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (for messages about a field of the wrong type)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


def _calls_text(message: Message, plan: ToolPlan) -> str:
    calls = []
    for call in message.tool_calls or ():
        try:
            arguments: Any = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = call.function.arguments
        calls.append({"name": call.function.name, "arguments": arguments})
    document: Any = {"tool_calls": calls} if plan.mode is ToolMode.AUTO else calls
    return json.dumps(document, ensure_ascii=False)


def template_messages(messages: Sequence[Message], plan: ToolPlan) -> list[dict[str, str]]:
    """Messages as the chat template expects them: string content, tool calls written out, tools in system."""
    out: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        text = _text_of(message, index)
        if message.role == "assistant" and message.tool_calls:
            text = f"{text}\n{_calls_text(message, plan)}" if text else _calls_text(message, plan)
        out.append({"role": role, "content": text})
    if plan.active:
        block = tool_instructions(plan)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def _grammar(request: ChatCompletionRequest, plan: ToolPlan) -> tuple[str | None, str | None]:
    """The GBNF grammar that constrains the reply and the request field it comes from, or (None, None)."""
    if plan.active:
        try:
            for index, tool in enumerate(plan.tools):
                if tool.parameters is not None:
                    try:  # each tool alone first, so an error names the tool it is in
                        check_schema(tool.parameters)
                        gbnf_for_schema(response_format_schema(tool.parameters))
                    except SchemaError as exc:
                        raise SchemaError(f"tools[{index}].function.parameters: {exc}") from exc
            return gbnf_for_schema(tool_output_schema(plan)), "tools"
        except SchemaError as exc:
            raise ApiError.bad_request(str(exc), param="tools") from exc
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None, None
    try:
        if response_format.type == "json_object":
            return gbnf_for_schema({"type": "object"}), "response_format"
        assert response_format.json_schema is not None
        schema = response_format.json_schema.schema_ or {"type": "object"}
        check_schema(schema)
        return gbnf_for_schema(response_format_schema(schema)), "response_format"
    except SchemaError as exc:
        raise ApiError.bad_request(f"response_format.json_schema.schema: {exc}", param="response_format") from exc


def sampling_of(request: Any, max_tokens: int | None) -> Sampling:
    """Sampling parameters from the fields shared by chat and text completions."""
    defaults = Sampling()
    return Sampling(
        temperature=defaults.temperature if request.temperature is None else request.temperature,
        top_p=defaults.top_p if request.top_p is None else request.top_p,
        seed=request.seed,
        max_tokens=max_tokens,
        stop=request.stops,
        frequency_penalty=request.frequency_penalty or 0.0,
        presence_penalty=request.presence_penalty or 0.0,
        top_k=defaults.top_k if request.top_k is None else request.top_k,
        min_p=defaults.min_p if request.min_p is None else request.min_p,
        repeat_penalty=defaults.repeat_penalty if request.repeat_penalty is None else request.repeat_penalty,
    )


def check_context(tokens: int, n_ctx: int, *, param: str) -> None:
    if tokens >= n_ctx:
        raise ApiError.context_length_exceeded(tokens, n_ctx, param=param)


def plan_chat(request: ChatCompletionRequest, backend: Backend, limits: Limits | None = None) -> ChatPlan:
    """Validate a chat request against the model it was leased (`models.Lease.backend`) and build its generation.

    400 on bad input; 404 for a `draft_model` that is not the model itself.

    It renders and tokenizes the prompt: call it off the event loop (`run_in_threadpool`), with the server's
    limits (`serving.limits_of(request)`; None: the defaults).
    """
    limits = limits if limits is not None else Limits()
    model = backend.info.id  # the request's `model` named it: Models.acquire chose this backend
    if request.draft_model is not None:
        resolve_model(backend, request.draft_model, param="draft_model")
    if request.n not in (None, 1):
        raise ApiError.bad_request("only n=1 is supported", param="n")
    limits.check_messages(len(request.messages))
    requested, param = (
        (request.max_completion_tokens, "max_completion_tokens")
        if request.max_completion_tokens is not None
        else (request.max_tokens, "max_tokens")
    )
    max_tokens = limits.output_tokens(requested, param=param)
    plan = tool_plan(request)
    grammar, grammar_param = _grammar(request, plan)
    try:
        prompt = backend.template.render(template_messages(request.messages, plan))
    except PromptError as exc:
        raise ApiError.bad_request(str(exc), param="messages") from exc
    tokens = backend.tokenize(prompt)
    check_context(len(tokens), backend.n_ctx, param="messages")
    generation = GenerationRequest(
        prompt_tokens=tuple(tokens),
        sampling=sampling_of(request, max_tokens),
        grammar=grammar,
        speculative=request.draft_model is not None,
    )
    return ChatPlan(generation=generation, tools=plan, model=model, grammar_param=grammar_param, prompt=prompt)


class OutputShaper:
    """Splits generated text into message parts: tool-call deltas in tool mode, else content and reasoning."""

    def __init__(self, plan: ToolPlan) -> None:
        self._tools = ToolCallStream(wrapped=plan.mode is ToolMode.AUTO) if plan.active else None
        self._think = ThinkSplitter()

    @property
    def tool_mode(self) -> bool:
        return self._tools is not None

    def feed(self, text: str) -> list[Part]:
        if self._tools is None:
            return list(self._think.feed(text))
        return [_part(delta) for delta in self._tools.feed(text)]

    def finish(self) -> list[Part]:
        if self._tools is None:
            return list(self._think.flush())
        return [_part(delta) for delta in self._tools.finish()]


def _part(delta: ToolCallDelta | ContentDelta) -> Part:
    return (Channel.CONTENT, delta.text) if isinstance(delta, ContentDelta) else delta


class MessageBuilder:
    """Folds parts into the non-streaming assistant message, exactly as a client folds the stream."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []

    def add(self, part: Part) -> None:
        if isinstance(part, ToolCallDelta):
            if part.id is not None:
                self.tool_calls.append(
                    {"id": part.id, "type": "function", "function": {"name": part.name, "arguments": ""}}
                )
            self.tool_calls[part.index]["function"]["arguments"] += part.arguments
        elif part[0] is Channel.REASONING:
            self._reasoning.append(part[1])
        else:
            self._content.append(part[1])

    def message(self) -> dict[str, Any]:
        content = "".join(self._content)
        message: dict[str, Any] = {"role": "assistant", "content": None if self.tool_calls and not content else content}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


def finish_reason(finished: Finished, *, called_tools: bool) -> str:
    """`length` whenever max_tokens cut the answer, even mid tool call: its arguments are then incomplete."""
    if finished.reason is FinishReason.LENGTH:
        return "length"
    return "tool_calls" if called_tools else "stop"


def stats_of(finished: Finished, draft_model: str) -> dict[str, Any]:
    """LM Studio's stats object for a request with draft_model (speculative decoding counts)."""
    draft = finished.draft
    return {
        "tokens_per_second": round(finished.tokens_per_second, 3),
        "draft_model": draft_model,
        "total_draft_tokens_count": draft.total if draft else 0,
        "accepted_draft_tokens_count": draft.accepted if draft else 0,
        "rejected_draft_tokens_count": draft.rejected if draft else 0,
        "ignored_draft_tokens_count": draft.ignored if draft else 0,
    }
