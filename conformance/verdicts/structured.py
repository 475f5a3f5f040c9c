"""Rules on structured output: `response_format` json_object and json_schema answers are JSON, valid against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from conformance.schemas import pointer as json_pointer
from conformance.verdicts import items
from conformance.verdicts.answer import answer
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES", "requested_schema"]

_MAX_ERRORS = 3


def requested_schema(ctx: Context) -> tuple[str, Any] | None:
    """(`json_object`, None) or (`json_schema`, the schema) when the request asks for structured output."""
    response_format = ctx.request.get("response_format")
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return kind, None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        return kind, spec.get("schema") if isinstance(spec, dict) else None
    return None


@rule("structured-output-valid", items.STRUCTURED_OUTPUT, frozenset({Endpoint.CHAT}))
def structured_output_valid(ctx: Context) -> Iterator[Issue]:
    """With `response_format` json_object the content is a JSON object; with json_schema it is JSON valid against
    the schema (unless max_tokens cut the answer)."""
    asked = requested_schema(ctx)
    found = answer(ctx) if asked is not None and ctx.ok else None
    if asked is None or found is None or found.error is not None or found.finish_reason == "length":
        return
    if found.tool_calls:
        return
    kind, schema = asked
    pointer = "/choices/0/delta/content" if found.streamed else "/choices/0/message/content"
    chunk = found.finish_chunk if found.streamed else None
    try:
        value = json.loads(found.content or "")
    except ValueError as exc:
        yield Issue(
            f"response_format is {kind} but the content is not JSON ({exc}); clients json-parse it "
            "(openai-python's chat.completions.parse() raises)",
            chunk=chunk,
            pointer=pointer,
            expected="a JSON " + ("object" if kind == "json_object" else "value valid against the schema"),
            seen=found.content,
        )
        return
    if kind == "json_object" and not isinstance(value, dict):
        yield Issue(
            f"response_format is json_object but the content is a JSON {type(value).__name__}, not an object",
            chunk=chunk,
            pointer=pointer,
            expected="a JSON object",
            seen=found.content,
        )
        return
    if not isinstance(schema, dict):
        return
    try:
        validator = validator_for(schema, default=Draft202012Validator)(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
    except Exception:
        return  # the client's own schema is broken: not the server's fault
    for error in errors[:_MAX_ERRORS]:
        yield Issue(
            f"the content does not match the response_format json_schema: {error.message}",
            chunk=chunk,
            pointer=pointer,
            expected=f"content valid at {json_pointer(error.absolute_schema_path) or '/'} of the schema",
            seen=found.content,
        )


RULES: tuple[Rule, ...] = (structured_output_valid,)
