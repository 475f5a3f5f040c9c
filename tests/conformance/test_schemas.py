"""Tests for the JSON Schemas: valid Draft 2020-12, references resolve, strict where clients depend on fields."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conformance import schemas
from conformance.schemas import Schema


@pytest.mark.parametrize("schema", list(Schema))
def test_every_schema_is_valid_draft_2020_12(schema: Schema) -> None:
    document = schemas.load(schema)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"{schemas.BASE_URI}{schema.value}.json"
    Draft202012Validator.check_schema(document)
    assert isinstance(schemas.validator(schema), Draft202012Validator)


def test_good_chat_completion_conforms(wire: Any) -> None:
    body = wire.completion(tool_calls=[wire.tool_call()], finish="tool_calls", system_fingerprint=None)
    body["vendor_extra"] = {"anything": True}
    assert schemas.errors(Schema.CHAT_COMPLETION, body) == []


def test_chat_completion_errors_carry_pointer_and_constraint(wire: Any) -> None:
    body = wire.completion(finish="eos", usage={"prompt_tokens": 1})
    found = {(e.pointer, e.constraint.split(":")[0]) for e in schemas.errors(Schema.CHAT_COMPLETION, body)}
    assert ("/choices/0/finish_reason", "enum") in found
    assert ("/usage", "required") in found


def test_tool_call_without_id_or_with_empty_name_breaks_the_schema(wire: Any) -> None:
    call = wire.tool_call(name="")
    del call["id"]
    errors = schemas.errors(Schema.CHAT_COMPLETION, wire.completion(tool_calls=[call], finish="tool_calls"))
    pointers = {e.pointer for e in errors}
    assert "/choices/0/message/tool_calls/0" in pointers
    assert "/choices/0/message/tool_calls/0/function/name" in pointers


def test_chunk_schema_accepts_a_usage_chunk_and_rejects_bad_finish(wire: Any) -> None:
    assert schemas.errors(Schema.CHAT_COMPLETION_CHUNK, wire.chunk(choices=[], usage=wire.usage())) == []
    errors = schemas.errors(Schema.CHAT_COMPLETION_CHUNK, wire.chunk({"content": "x"}, finish="done"))
    assert [e.pointer for e in errors] == ["/choices/0/finish_reason"]


def test_error_schema_rejects_fastapi_detail_and_string_errors() -> None:
    assert schemas.errors(Schema.ERROR, {"error": {"message": "bad", "type": "invalid_request_error"}}) == []
    assert schemas.errors(Schema.ERROR, {"detail": [{"msg": "field required"}]})[0].pointer == ""
    assert schemas.errors(Schema.ERROR, {"error": "Unexpected endpoint"})[0].pointer == "/error"


def test_embeddings_accept_floats_or_base64_only() -> None:
    good: dict[str, Any] = {
        "object": "list",
        "model": "m",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert schemas.errors(Schema.EMBEDDING_LIST, good) == []
    good["data"][0]["embedding"] = "AAAAAA=="
    assert schemas.errors(Schema.EMBEDDING_LIST, good) == []
    good["data"][0]["embedding"] = [[0.1]]
    assert schemas.errors(Schema.EMBEDDING_LIST, good)


def test_lmstudio_models_require_capabilities_of_strings() -> None:
    body: dict[str, Any] = {
        "object": "list",
        "data": [{"id": "m", "object": "model", "type": "llm", "capabilities": ["tool_use"]}],
    }
    assert schemas.errors(Schema.LMSTUDIO_MODEL_LIST, body) == []
    body["data"][0]["capabilities"] = [1]
    assert schemas.errors(Schema.LMSTUDIO_MODEL_LIST, body)[0].pointer == "/data/0/capabilities/0"
    del body["data"][0]["capabilities"]
    assert schemas.errors(Schema.LMSTUDIO_MODEL_LIST, body)[0].constraint.startswith("required")


def test_stats_schema_needs_the_six_fields() -> None:
    stats = {
        "tokens_per_second": 10.5,
        "draft_model": "small",
        "total_draft_tokens_count": 3,
        "accepted_draft_tokens_count": 2,
        "rejected_draft_tokens_count": 1,
        "ignored_draft_tokens_count": 0,
    }
    assert schemas.errors(Schema.LMSTUDIO_STATS, stats) == []
    stats["accepted_draft_tokens_count"] = -1
    assert schemas.errors(Schema.LMSTUDIO_STATS, stats)[0].pointer == "/accepted_draft_tokens_count"


def test_pointer_escapes_per_rfc_6901() -> None:
    assert schemas.pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
