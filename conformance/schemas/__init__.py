"""Strict JSON Schemas (Draft 2020-12) of the OpenAI-compatible and Anthropic bodies and events, with validators."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

__all__ = ["BASE_URI", "Schema", "SchemaError", "errors", "load", "pointer", "validator"]

BASE_URI = "https://llm-conformance.local/schemas/"


class Schema(StrEnum):
    """The schemas shipped in this package, by file name without `.json`."""

    CHAT_COMPLETION = "chat.completion"
    CHAT_COMPLETION_CHUNK = "chat.completion.chunk"
    TEXT_COMPLETION = "text_completion"
    TEXT_COMPLETION_CHUNK = "text_completion.chunk"
    EMBEDDING_LIST = "embedding.list"
    MODEL = "model"
    MODEL_LIST = "model.list"
    LMSTUDIO_MODEL_LIST = "lmstudio.model.list"
    LMSTUDIO_STATS = "lmstudio.stats"
    LMSTUDIO_V1_MODEL_LIST = "lmstudio.v1.model.list"
    LMSTUDIO_V1_LOAD = "lmstudio.v1.load"
    LMSTUDIO_V1_UNLOAD = "lmstudio.v1.unload"
    LMSTUDIO_V1_DOWNLOAD = "lmstudio.v1.download"
    LMSTUDIO_V1_CHAT = "lmstudio.v1.chat"
    LMSTUDIO_V1_CHAT_EVENT = "lmstudio.v1.chat.event"
    LMSTUDIO_V1_ERROR = "lmstudio.v1.error"
    RESPONSE = "response"
    RESPONSE_STREAM_EVENT = "response.stream-event"
    ERROR = "error"
    COMMON = "common"
    ANTHROPIC_MESSAGE = "anthropic.message"
    ANTHROPIC_EVENT = "anthropic.event"
    ANTHROPIC_COUNT_TOKENS = "anthropic.count_tokens"
    ANTHROPIC_ERROR = "anthropic.error"
    ANTHROPIC_COMMON = "anthropic.common"


@dataclass(frozen=True)
class SchemaError:
    """One way an instance breaks a schema: where (JSON pointer) and what, in words."""

    pointer: str
    message: str
    schema_path: str
    constraint: str
    """The broken keyword and its value, e.g. `enum: ["stop", "length"]`."""


def load(schema: Schema) -> dict[str, Any]:
    """The schema document as a dict (a fresh copy each call)."""
    text = resources.files(__name__).joinpath(f"{schema.value}.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def _registry() -> Registry[Any]:
    resources_ = [Resource.from_contents(load(s)) for s in Schema]
    return Registry().with_resources((BASE_URI + f"{s.value}.json", r) for s, r in zip(Schema, resources_, strict=True))


@cache
def validator(schema: Schema) -> Draft202012Validator:
    """A Draft 2020-12 validator for `schema`, resolving references to the other shipped schemas."""
    document = load(schema)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, registry=_registry())


def errors(schema: Schema, instance: Any) -> list[SchemaError]:
    """Every violation of `schema` by `instance`, shallowest first; empty when it conforms."""
    found = sorted(
        validator(schema).iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    return [_describe(e) for e in found]


def pointer(path: Any) -> str:
    """A JSON pointer (RFC 6901) for a sequence of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _describe(error: ValidationError) -> SchemaError:
    where = pointer(error.absolute_path)
    message = error.message
    if error.validator == "oneOf" or error.validator == "anyOf":
        best = min(error.context or [], key=lambda e: len(e.absolute_path), default=None)
        if best is not None:
            message = best.message
    value = json.dumps(error.validator_value, default=str)
    constraint = f"{error.validator}: {value if len(value) <= 200 else value[:200] + '...'}"
    return SchemaError(
        pointer=where, message=message, schema_path=pointer(error.absolute_schema_path), constraint=constraint
    )
