"""The requests the catalog's plans send: short prompts, small max_tokens, temperature 0, seed 42."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from conformance.check import RequestSpec, Target

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "DEFS_TOOL",
    "EMBEDDINGS",
    "EMPTY_PARAMETERS_TOOL",
    "LMSTUDIO_MODELS",
    "MODELS",
    "NESTED_TOOL",
    "NO_PROPERTIES_TOOL",
    "PARALLEL_PROMPT",
    "SEED",
    "TIME_TOOL",
    "UNKNOWN_MODEL",
    "WEATHER_PROMPT",
    "WEATHER_TOOL",
    "WEATHER_UNITS_TOOL",
    "Capital",
    "RequestFactory",
    "chat",
    "completion",
    "embeddings",
    "get",
    "json_schema_format",
    "named",
    "raw_post",
    "tool",
]

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
LMSTUDIO_MODELS = "/api/v0/models"
SEED = 42
UNKNOWN_MODEL = "no-such-model-llm-conformance"
WEATHER_PROMPT = "What's the weather in Paris?"
PARALLEL_PROMPT = "What's the weather in Paris and in Tokyo?"

RequestFactory = Callable[[Target], RequestSpec]


def tool(name: str, description: str, parameters: Any = None, *, omit_parameters: bool = False) -> dict[str, Any]:
    """A function tool definition; `omit_parameters` leaves the key out entirely."""
    function: dict[str, Any] = {"name": name, "description": description}
    if not omit_parameters:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


_CITY = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}
WEATHER_TOOL = tool("get_weather", "Get the current weather in a city", _CITY)
WEATHER_UNITS_TOOL = tool(
    "get_weather",
    "Get the current weather in a city, in the given temperature unit",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
)
TIME_TOOL = tool("get_time", "Get the current time", omit_parameters=True)
NO_PROPERTIES_TOOL = tool("refresh_weather_cache", "Refresh the weather cache", {"type": "object"})
EMPTY_PARAMETERS_TOOL = tool("refresh_weather_cache", "Refresh the weather cache", {})
NESTED_TOOL = tool(
    "get_forecast",
    "Get the weather forecast for a place and a date",
    {
        "type": "object",
        "properties": {
            "place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                "required": ["city"],
            },
            "days": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["place"],
    },
)
DEFS_TOOL = tool(
    "get_forecast",
    "Get the weather forecast for a place",
    {
        "type": "object",
        "$defs": {
            "place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                "required": ["city"],
            }
        },
        "properties": {"place": {"$ref": "#/$defs/place"}},
        "required": ["place"],
    },
)


class Capital(BaseModel):
    """What base/structured-output asks for, as a pydantic model (what openai-python's parse() reads into)."""

    model_config = ConfigDict(extra="forbid")
    city: str
    country: str


def json_schema_format(*, strict: bool) -> dict[str, Any]:
    """`response_format` json_schema for `Capital`, as openai-python's parse() sends it (strict) or not."""
    schema = Capital.model_json_schema()
    return {"type": "json_schema", "json_schema": {"name": "Capital", "strict": strict, "schema": schema}}


def named(name: str) -> dict[str, Any]:
    """A `tool_choice` forcing one function."""
    return {"type": "function", "function": {"name": name}}


def chat(
    user: str = "Say hello.",
    *,
    system: str | None = None,
    max_tokens: int = 16,
    stream: bool = False,
    include_usage: bool | None = None,
    messages: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> RequestFactory:
    """A chat completion request for the target's model; `extra` fields go into the body as given."""

    def build(target: Target) -> RequestSpec:
        body: dict[str, Any] = {"model": target.model}
        if messages is not None:
            body["messages"] = copy.deepcopy(messages)
        else:
            body["messages"] = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": user}
            ]
        body.update({"temperature": 0, "seed": SEED, "max_tokens": max_tokens})
        if stream:
            body["stream"] = True
        if include_usage is not None:
            body["stream_options"] = {"include_usage": include_usage}
        body.update(copy.deepcopy(extra))
        return RequestSpec("POST", CHAT, body=body)

    return build


def completion(
    prompt: str = "The capital of France is",
    *,
    max_tokens: int = 8,
    stream: bool = False,
    include_usage: bool | None = None,
) -> RequestFactory:
    def build(target: Target) -> RequestSpec:
        body: dict[str, Any] = {
            "model": target.model,
            "prompt": prompt,
            "temperature": 0,
            "seed": SEED,
            "max_tokens": max_tokens,
        }
        if stream:
            body["stream"] = True
        if include_usage is not None:
            body["stream_options"] = {"include_usage": include_usage}
        return RequestSpec("POST", COMPLETIONS, body=body)

    return build


def embeddings(text: str | list[str], *, encoding_format: str | None = None) -> RequestFactory:
    def build(target: Target) -> RequestSpec:
        body: dict[str, Any] = {"model": target.model, "input": copy.deepcopy(text)}
        if encoding_format is not None:
            body["encoding_format"] = encoding_format
        return RequestSpec("POST", EMBEDDINGS, body=body)

    return build


def get(path: str) -> RequestFactory:
    def build(target: Target) -> RequestSpec:
        return RequestSpec("GET", path)

    return build


def raw_post(path: str, body: bytes) -> RequestFactory:
    """A POST whose body is sent byte for byte (for malformed JSON)."""

    def build(target: Target) -> RequestSpec:
        return RequestSpec("POST", path, body=body, headers={"content-type": "application/json"})

    return build
