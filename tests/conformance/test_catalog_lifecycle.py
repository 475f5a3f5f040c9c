"""The lifecycle checks: 0.3.16/model-capabilities on real LM Studio lists, 0.3.9/ttl against a fake server with
model state and a simulated clock, each broken one way."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.catalog import by_id
from conformance.check import Check, Status
from conformance.runner import CheckRun, applicable, judge_check
from conformance.verdicts import items as ids
from tests.conformance.conftest import TARGET, Wire

NOT_EXERCISED = "not exercised: "

# GET /api/v0/models of LM Studio 0.4.25 as the research quotes it (wire-v2 section 2): the embedding row has no
# `capabilities`, and `object` comes after `data`.
LMSTUDIO_0_4_25 = {
    "data": [
        {
            "id": "qwen3.6-35b-a3b-mtp",
            "object": "model",
            "type": "vlm",
            "publisher": "unsloth",
            "arch": "qwen35moe",
            "compatibility_type": "gguf",
            "quantization": "Q3_K_M",
            "state": "loaded",
            "max_context_length": 262144,
            "loaded_context_length": 262144,
            "capabilities": ["tool_use"],
        },
        {
            "id": "text-embedding-nomic-embed-text-v1.5",
            "object": "model",
            "type": "embeddings",
            "publisher": "nomic-ai",
            "arch": "nomic-bert",
            "compatibility_type": "gguf",
            "quantization": "Q4_K_M",
            "state": "not-loaded",
            "max_context_length": 2048,
        },
    ],
    "object": "list",
}


def _item_check(item_id: str) -> tuple[Any, Check]:
    item = by_id(item_id)
    return item, item.checks[0]


def _judged_listing(body: Any, status: int = 200) -> CheckRun:
    item, check = _item_check(ids.MODEL_CAPABILITIES)
    exchange = Wire.plain(None, body, status=status, path="/api/v0/models", method="GET")
    return applicable(item, TARGET, judge_check(check, [exchange]))


# -- 0.3.16/model-capabilities ------------------------------------------------------------------------------------


def test_capabilities_pass_on_lm_studio_0_4_25_with_an_embedding_row() -> None:
    result = _judged_listing(LMSTUDIO_0_4_25).result
    assert (result.status, result.message, result.evidence) == (Status.PASS, "", ())


@pytest.mark.parametrize("kind", ["llm", "vlm", None])
def test_capabilities_fail_on_an_llm_row_without_them(kind: str | None) -> None:
    body = {"object": "list", "data": [dict(row) for row in LMSTUDIO_0_4_25["data"]]}
    del body["data"][0]["capabilities"]
    if kind is None:
        del body["data"][0]["type"]
    else:
        body["data"][0]["type"] = kind
    result = _judged_listing(body).result
    assert result.status == Status.FAIL
    assert "'capabilities' is a required property" in result.message
    [finding] = result.evidence
    assert finding["item"] == ids.MODEL_CAPABILITIES
    assert finding["pointer"] == "/data/0"
    assert "qwen3.6-35b-a3b-mtp" in finding["raw"]


def test_capabilities_of_the_wrong_type_fail_even_on_an_embedding_row() -> None:
    body = {"object": "list", "data": [dict(row) for row in LMSTUDIO_0_4_25["data"]]}
    body["data"][1]["capabilities"] = "tool_use"
    result = _judged_listing(body).result
    assert result.status == Status.FAIL
    assert result.evidence[0]["pointer"] == "/data/1/capabilities"


def test_capabilities_not_exercised_by_a_list_of_embedding_models() -> None:
    body = {"object": "list", "data": [LMSTUDIO_0_4_25["data"][1]]}
    result = _judged_listing(body).result
    assert result.status == Status.SKIP
    assert (
        result.message
        == NOT_EXERCISED + "GET /api/v0/models lists no LLM or VLM row (embedding rows need no `capabilities`)"
    )
