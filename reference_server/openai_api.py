"""OpenAI wire types: request models (pydantic) and the JSON of responses and stream chunks."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reference_server.errors import ApiError

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "ChatChunks",
    "ChatCompletionRequest",
    "CompletionChunks",
    "CompletionRequest",
    "EmbeddingRequest",
    "LifecycleFields",
    "Message",
    "encode_embedding",
    "parse_request",
    "usage",
]


class _Lenient(BaseModel):
    """Unknown fields are accepted and ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")


class FunctionCall(_Lenient):
    name: str
    arguments: str = ""


class ToolCall(_Lenient):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_present(self) -> Message:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self


class FunctionDefinition(_Lenient):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Lenient):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Lenient):
    include_usage: bool = False


class JsonSchemaFormat(_Lenient):
    name: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a json_schema object")
        return self


class LifecycleFields(_Lenient):
    """LM Studio's fields of every generation request: `ttl` for a JIT load, `preset` to apply."""

    ttl: float | None = Field(default=None, gt=0)
    """Idle seconds before the model this request JIT-loads unloads again (ignored when it is already loaded)."""
    preset: str | None = None
    """The name of a preset whose settings apply below the request's own fields."""


class _SamplingFields(LifecycleFields):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    top_k: int | None = Field(default=None, ge=0)
    """Not OpenAI's: llama.cpp's and LM Studio's top-k (0: off), as its presets' topKSampling."""
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    """1: none."""
    draft_model: str | None = None

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


DEFAULT_COMPLETION_TOKENS = 16


class CompletionRequest(_SamplingFields):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=1)
    """None: DEFAULT_COMPLETION_TOKENS (OpenAI's default for legacy completions), capped by the server's limit."""

    @property
    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ApiError.bad_request("only one prompt per request is supported", param="prompt")
        return self.prompt[0]


class EmbeddingRequest(LifecycleFields):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None

    @property
    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise ApiError.bad_request("input must not be empty", param="input")
        return texts


def parse_request[T: BaseModel](model: type[T], body: bytes) -> T:
    """Validate a JSON body; malformed JSON and schema violations become 400 errors naming the field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError.bad_request(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError.bad_request("the request body nests JSON too deeply") from exc
    if not isinstance(data, dict):
        raise ApiError.bad_request("the request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body) and (where := _lone_surrogate(data)) is not None:
        raise ApiError.bad_request(
            f"{where or 'a key'} contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), "
            "which is not a Unicode character; send the text as valid UTF-8 or escape it as a surrogate pair",
            param=where or None,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # only an escape can put a surrogate in parsed JSON
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(data: Any) -> str | None:
    """The dotted path of the first string (or key, then "") holding a lone surrogate; None if there is none."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return ""
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{index}") for index, item in enumerate(value))
    return None


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A 400 ApiError describing the first validation error of pydantic or FastAPI."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    where = f"{param}: " if param else ""
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError.bad_request(f"invalid request: {where}{first.get('msg', 'invalid value')}{more}", param=param)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def encode_embedding(vector: Sequence[float]) -> str:
    """encoding_format base64: the little-endian float32 bytes of the vector, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload).encode() + b"\n\n"


class ChatCompletionChunksBase:
    """Shared SSE framing: one id and created for every chunk of a response."""

    object_name = ""

    def __init__(self, *, id: str, created: int, model: str) -> None:
        self.id = id
        self.created = created
        self.model = model
        head = f'{{"id":{_dumps(id)},"object":"{self.object_name}","created":{created},"model":{_dumps(model)},'
        self._head = head

    def envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object_name,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return _event(self.envelope([], usage=usage(prompt_tokens, completion_tokens)))


class ChatChunks(ChatCompletionChunksBase):
    """The chat.completion.chunk events of one streamed chat completion."""

    object_name = "chat.completion.chunk"

    def __init__(self, *, id: str, created: int, model: str) -> None:
        super().__init__(id=id, created=created, model=model)
        self._content_head = (self._head + '"choices":[{"index":0,"delta":{"content":').encode()
        self._tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event(self.envelope([choice], **extra))

    def content(self, text: str) -> bytes:
        """The hot path: one content token, formatted without building a dict."""
        return b"data: " + self._content_head + _dumps(text).encode() + self._tail


class CompletionChunks(ChatCompletionChunksBase):
    """The text_completion events of one streamed completion."""

    object_name = "text_completion"

    def __init__(self, *, id: str, created: int, model: str) -> None:
        super().__init__(id=id, created=created, model=model)
        self._text_head = (self._head + '"choices":[{"index":0,"text":').encode()
        self._tail = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def text(self, text: str) -> bytes:
        return b"data: " + self._text_head + _dumps(text).encode() + self._tail

    def finish(self, finish_reason: str, **extra: Any) -> bytes:
        choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
        return _event(self.envelope([choice], **extra))
