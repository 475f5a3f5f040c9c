"""Rules validating every body and every stream chunk against the strict JSON Schemas."""

from __future__ import annotations

from collections.abc import Iterator

from conformance import schemas
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import ALL_ENDPOINTS, CHAT_LIKE, Rule, rule

__all__ = ["RULES", "body_schema_of"]

_BODY_SCHEMA = {
    Endpoint.CHAT: Schema.CHAT_COMPLETION,
    Endpoint.COMPLETIONS: Schema.TEXT_COMPLETION,
    Endpoint.EMBEDDINGS: Schema.EMBEDDING_LIST,
    Endpoint.MODELS: Schema.MODEL_LIST,
    Endpoint.MODEL: Schema.MODEL,
    Endpoint.LMSTUDIO_MODELS: Schema.LMSTUDIO_MODEL_LIST,
    Endpoint.RESPONSES: Schema.RESPONSE,
    Endpoint.RESPONSE: Schema.RESPONSE,
}
_CHUNK_SCHEMA = {Endpoint.CHAT: Schema.CHAT_COMPLETION_CHUNK, Endpoint.COMPLETIONS: Schema.TEXT_COMPLETION_CHUNK}
_SAME_IN_EVERY_CHUNK = ("id", "object", "model")
"""Not `created`: llama-server stamps each chunk, so it changes across a second boundary; openai-python keeps the
first chunk's value, so clients do not notice."""


def body_schema_of(endpoint: Endpoint) -> Schema:
    return _BODY_SCHEMA[endpoint]


@rule("body-schema", items.BASE_CHAT, ALL_ENDPOINTS)
def body_schema(ctx: Context) -> Iterator[Issue]:
    """A successful plain (non-stream) body validates against its endpoint's schema."""
    if not ctx.ok or ctx.response is None or ctx.response.is_stream or ctx.endpoint is None:
        return
    schema = _BODY_SCHEMA[ctx.endpoint]
    if not isinstance(ctx.body, dict):
        yield Issue(
            f"the {ctx.response.status} body is not a JSON object; clients parse it as a `{schema.value}` object",
            item=ctx.base_item,
            pointer="",
            expected=f"a {schema.value} JSON object",
            seen=ctx.body,
        )
        return
    for error in schemas.errors(schema, ctx.body):
        yield Issue(
            f"body breaks the `{schema.value}` schema: {error.message}",
            item=ctx.base_item,
            pointer=error.pointer,
            expected=error.constraint,
        )


@rule("chunk-schema", items.BASE_STREAMING, CHAT_LIKE)
def chunk_schema(ctx: Context) -> Iterator[Issue]:
    """Every stream chunk validates against the chunk schema of its endpoint."""
    stream = ctx.stream
    if stream is None or ctx.endpoint is None:
        return
    schema = _CHUNK_SCHEMA[ctx.endpoint]
    for i, chunk in stream.chunks:
        for error in schemas.errors(schema, chunk):
            yield Issue(
                f"chunk breaks the `{schema.value}` schema: {error.message}",
                chunk=i,
                item=ctx.base_item,
                pointer=error.pointer,
                expected=error.constraint,
            )


@rule("chunk-metadata", items.BASE_STREAMING, CHAT_LIKE)
def chunk_metadata(ctx: Context) -> Iterator[Issue]:
    """`id`, `object`, `created` and `model` are the same in every chunk of a stream."""
    stream = ctx.stream
    if stream is None or not stream.chunks:
        return
    first_index, first = stream.chunks[0]
    for key in _SAME_IN_EVERY_CHUNK:
        for i, chunk in stream.chunks[1:]:
            if key in chunk and chunk[key] != first.get(key):
                yield Issue(
                    f"`{key}` changes within the stream (chunk #{first_index} has {first.get(key)!r}); clients keep "
                    "the first chunk's value for the whole message",
                    chunk=i,
                    item=ctx.base_item,
                    pointer=f"/{key}",
                    expected=first.get(key),
                    seen=chunk[key],
                )
                break


RULES: tuple[Rule, ...] = (body_schema, chunk_schema, chunk_metadata)
