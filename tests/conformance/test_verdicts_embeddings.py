"""Tests for the embeddings and model-list rules."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange
from conformance.verdicts.embeddings import decode_vector, input_count


def embeddings_body(*vectors: Any, usage: tuple[int, int] = (4, 4)) -> dict[str, Any]:
    return {
        "object": "list",
        "model": "m",
        "data": [{"object": "embedding", "index": k, "embedding": v} for k, v in enumerate(vectors)],
        "usage": {"prompt_tokens": usage[0], "total_tokens": usage[1]},
    }


def exchange(wire: Any, body: Any, **request: Any) -> Any:
    return wire.plain({"model": "m", **request}, body, path="/v1/embeddings")


def test_good_embeddings_pass(wire: Any) -> None:
    body = embeddings_body([0.1, 0.2], [0.3, 0.4])
    assert validate_exchange(exchange(wire, body, input=["a", "b"])) == []


def test_base64_embeddings_decode_as_float32(wire: Any) -> None:
    b64 = base64.b64encode(struct.pack("<2f", 0.5, -0.25)).decode()
    assert validate_exchange(exchange(wire, embeddings_body(b64), input="a", encoding_format="base64")) == []
    assert decode_vector(b64) == [0.5, -0.25]


def test_float64_base64_is_still_decodable_but_a_float_list_when_not_asked_is_required(wire: Any) -> None:
    b64 = base64.b64encode(struct.pack("<2f", 0.5, -0.25)).decode()
    [finding] = validate_exchange(exchange(wire, embeddings_body(b64), input="a"))
    assert finding.item == ids.EMBEDDINGS
    assert finding.pointer == "/data/0/embedding"


def test_wrong_count_and_indexes(wire: Any) -> None:
    body = embeddings_body([0.1, 0.2], [0.3, 0.4])
    body["data"][1]["index"] = 5
    findings = validate_exchange(exchange(wire, body, input=["a", "b", "c"]))
    assert sorted(f.message.split(";")[0] for f in findings if f.check == "embedding-count") == [
        "2 embedding(s) for 3 input(s)",
        "embedding indexes are not 0..n-1 in order",
    ]


def test_mixed_dimensions_zero_vectors_and_nan(wire: Any) -> None:
    body = embeddings_body([0.1, 0.2], [0.0, 0.0], [0.1, 0.2, 0.3])
    findings = validate_exchange(exchange(wire, body, input=["a", "b", "c"]))
    messages = [f.message for f in findings if f.check == "embedding-vectors"]
    assert any("all zeros" in m for m in messages)
    assert any("3 dimensions" in m for m in messages)
    nan = embeddings_body([float("nan"), 0.2])
    assert "NaN" in validate_exchange(exchange(wire, nan, input="a"))[0].message


def test_bad_base64(wire: Any) -> None:
    [finding] = validate_exchange(exchange(wire, embeddings_body("not base64!"), input="a", encoding_format="base64"))
    assert "base64" in finding.message


def test_embedding_usage(wire: Any) -> None:
    findings = validate_exchange(exchange(wire, embeddings_body([0.1], usage=(0, 0)), input="a"))
    assert [f.pointer for f in findings] == ["/usage/prompt_tokens"]


@pytest.mark.parametrize(("value", "count"), [("a", 1), (["a", "b"], 2), ([1, 2, 3], 1), ([[1], [2]], 2), (None, None)])
def test_input_count(value: Any, count: int | None) -> None:
    assert input_count(value) == count


def test_models_list_rules(wire: Any) -> None:
    good = {"object": "list", "data": [{"id": "a", "object": "model", "owned_by": "me"}]}
    assert validate_exchange(wire.plain(None, good, path="/v1/models", method="GET")) == []
    twice = {"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "a", "object": "model"}]}
    [finding] = validate_exchange(wire.plain(None, twice, path="/v1/models", method="GET"))
    assert finding.item == ids.BASE_MODELS
    assert finding.pointer == "/data/1/id"


def test_lmstudio_models_without_capabilities(wire: Any) -> None:
    body = {"object": "list", "data": [{"id": "a", "object": "model", "type": "llm"}]}
    [finding] = validate_exchange(wire.plain(None, body, path="/api/v0/models", method="GET"))
    assert finding.item == ids.MODEL_CAPABILITIES
    assert finding.pointer == "/data/0"
    assert "capabilities" in finding.message


def test_single_model(wire: Any) -> None:
    [finding] = validate_exchange(wire.plain(None, {"id": "a"}, path="/v1/models/a", method="GET"))
    assert finding.item == ids.BASE_MODELS
