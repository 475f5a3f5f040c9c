"""Tests for the catalog: the public item ids, kinds, checks and skip reasons."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator

import pytest

from conformance.catalog import CLI_SKIP_REASON, ITEMS, by_id
from conformance.check import Kind, RequestSpec, Target
from conformance.exchange import Exchange

API_IDS = {
    "0.3.6/tool-calling",
    "0.3.9/ttl",
    "0.3.9/reasoning-content",
    "0.3.10/speculative-decoding",
    "0.3.14/presets",
    "0.3.15/tool-choice",
    "0.3.15/finish-reason-tool-calls",
    "0.3.16/model-capabilities",
    "0.3.16/no-empty-function-name",
    "0.3.17/usage-includes-system-and-tools",
    "0.3.17/streamed-tool-arguments",
    "0.3.17/tools-without-parameters",
    "0.3.18/stream-include-usage",
    "0.3.18/stream-errors",
    "0.3.18/response-format-text",
    "0.3.18/parallel-tool-calls-chunked",
    "0.3.18/tool-schema-defs",
    "0.3.19/stream-usage-correct",
    "0.3.19/parallel-tool-calls-stream",
    "0.3.23/reasoning-field",
    "0.3.23/tool-name-normalization",
    "0.3.23/tools-request-robustness",
    "0.3.25/embeddings",
    "0.3.29/responses",
    "0.3.29/responses-stateful",
    "0.3.29/responses-streaming",
    "0.3.29/responses-function-tools",
    "0.3.29/responses-remote-mcp",
    "0.3.29/responses-reasoning-effort",
    "0.4.0/rest-v1-chat",
    "0.4.0/rest-v1-models",
    "0.4.0/rest-v1-mcp",
    "0.4.0/auth-tokens",
    "0.4.1/anthropic-messages",
    "base/chat-completions",
    "base/chat-streaming",
    "base/models",
    "base/errors",
}
NOT_BUILT = {i for i in API_IDS if i.startswith("0.4.")} - {
    "0.4.1/anthropic-messages",
    "0.4.0/rest-v1-models",
    "0.4.0/rest-v1-chat",
    "0.4.0/rest-v1-mcp",
    "0.4.0/auth-tokens",
}
MODEL_SPECIFIC = {
    "0.3.18/mistral-v13-tool-calling": ("mistral",),
    "0.3.19/mistral-tool-parsing": ("mistral",),
    "0.3.24/seed-oss-tool-calling": ("seed-oss",),
    "0.3.25/nemotron-tool-calling": ("nemotron",),
}
CLI_VERSIONS = {"0.3.5", "0.3.26", "0.3.27", "0.3.29"}


def test_every_contract_id_is_present_and_unique() -> None:
    ids = [item.id for item in ITEMS]
    assert len(ids) == len(set(ids))
    assert set(ids) >= API_IDS
    assert set(MODEL_SPECIFIC) <= set(ids)


def test_ids_and_versions_are_well_formed() -> None:
    for item in ITEMS:
        assert re.fullmatch(r"(base|\d+\.\d+\.\d+)/[a-z0-9]+(-[a-z0-9]+)*", item.id), item.id
        assert item.id.startswith(item.version + "/"), item.id
        assert item.title


def test_catalog_order_is_base_first_then_by_version() -> None:
    versions = [tuple(int(p) for p in i.version.split(".")) for i in ITEMS if i.version != "base"]
    assert versions == sorted(versions)
    assert [i.version for i in ITEMS[:5]] == ["base"] * 5


def test_check_ids_are_kebab_case_unique_and_tagged_with_their_item() -> None:
    for item in ITEMS:
        check_ids = [c.id for c in item.checks]
        assert len(check_ids) == len(set(check_ids)), item.id
        for check in item.checks:
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", check.id), check.id
            assert check.item == item.id
            assert check.title


def test_in_scope_api_items_have_checks_and_the_rest_none() -> None:
    for item in ITEMS:
        if item.kind is not Kind.API:
            continue
        if item.id in NOT_BUILT:
            assert item.checks == (), item.id
            assert not item.covered
        else:
            assert item.checks, item.id
        assert item.skip_reason is None


def test_cli_items_are_skipped_with_the_reason() -> None:
    cli = [item for item in ITEMS if item.kind is Kind.CLI]
    assert {item.version for item in cli} == CLI_VERSIONS
    assert len(cli) == 6
    for item in cli:
        assert item.skip_reason == CLI_SKIP_REASON
        assert item.checks == ()


def test_model_specific_items_reuse_the_tool_calling_checks() -> None:
    core = [c.id for c in by_id("0.3.6/tool-calling").checks]
    for item_id, families in MODEL_SPECIFIC.items():
        item = by_id(item_id)
        assert item.kind is Kind.MODEL_SPECIFIC
        assert item.model_families == families
        assert [c.id for c in item.checks] == core


def test_by_id_names_known_ids_when_missing() -> None:
    with pytest.raises(KeyError, match="base/chat-completions"):
        by_id("9.9.9/nope")


def test_plans_are_small_seeded_and_use_the_target_model() -> None:
    target = Target(base_url="http://x.invalid", model="target-model", preset="a-preset")
    for item in ITEMS:
        if item.extension == "anthropic":
            continue  # Anthropic's API has no seed: tests/conformance/test_anthropic_checks.py
        for check in item.checks:
            specs = list(check.plan(target))  # a plan may send nothing (0.4.0/auth-tokens without --api-key)
            for spec in specs:
                assert isinstance(spec, RequestSpec)
                body = spec.body if isinstance(spec.body, dict) else {}
                if ("messages" in body or "prompt" in body) and item.id != "base/errors":
                    assert body["temperature"] == 0, check.id
                    assert body["seed"] == 42, check.id
                    assert body["max_tokens"] <= (96 if body.get("tools") else 48), check.id
                if "model" in body and item.id not in ("base/errors", "0.3.18/stream-errors"):
                    assert body["model"] == "target-model", check.id


def _specs_without_answers(plan: Generator[RequestSpec, Exchange, None]) -> Iterator[RequestSpec]:
    """The requests a plan sends when fed no answers: up to the first one that needs an earlier answer."""
    try:
        spec = next(plan)
        while True:
            yield spec
            spec = plan.send(None)  # type: ignore[arg-type]
    except (StopIteration, AttributeError, TypeError, KeyError, IndexError):
        return
    finally:
        plan.close()


def test_every_generation_request_has_max_tokens_error_probes_included() -> None:
    """A lenient server answers a broken request by generating: max_tokens bounds what it can do."""
    target = Target(base_url="http://x.invalid", model="target-model")
    for item in ITEMS:
        for check in item.checks:
            for spec in _specs_without_answers(check.plan(target)):
                path = spec.path.split("?")[0]
                if spec.method != "POST" or path.endswith(("/embeddings", "/count_tokens")) or "/api/v1/models" in path:
                    continue  # nothing is generated
                field = "max_output_tokens" if path.startswith(("/v1/responses", "/api/v1/chat")) else "max_tokens"
                if isinstance(spec.body, bytes):
                    assert f'"{field}": '.encode() in spec.body, f"{item.id}::{check.id}"
                else:
                    assert isinstance(spec.body.get(field), int), f"{item.id}::{check.id}"


def test_parallel_plans_ask_about_two_cities_with_required_tools() -> None:
    target = Target(base_url="http://x.invalid", model="m")
    for check in by_id("0.3.18/parallel-tool-calls-chunked").checks:
        body = next(check.plan(target)).body
        assert body["messages"][-1]["content"] == "What's the weather in Paris and in Tokyo?"
        assert body["tool_choice"] == "required"
        assert body["tools"][0]["function"]["name"] == "get_weather"
