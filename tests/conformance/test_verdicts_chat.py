"""Tests for the chat rules: schema, metadata, role, finish_reason, reasoning fields and leaked markup."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.findings import Finding
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def stream_request(wire: Any) -> dict[str, Any]:
    return wire.chat_request(stream=True)


def test_good_body_passes(wire: Any) -> None:
    assert validate_exchange(wire.plain(wire.chat_request(), wire.completion())) == []


def test_body_schema_names_pointer(wire: Any) -> None:
    body = wire.completion()
    body["choices"][0]["message"]["role"] = "bot"
    [finding] = validate_exchange(wire.plain(wire.chat_request(), body))
    assert finding.check == "body-schema"
    assert finding.item == ids.BASE_CHAT
    assert finding.pointer == "/choices/0/message/role"
    assert finding.expected == 'const: "assistant"'


def test_body_that_is_not_json(wire: Any) -> None:
    [finding] = validate_exchange(wire.plain(wire.chat_request(), "<html>oops</html>"))
    assert finding.check == "body-schema"
    assert finding.raw == "<html>oops</html>"


def test_chunk_schema_names_chunk_and_pointer(wire: Any) -> None:
    chunks = wire.text_stream()
    chunks[2]["object"] = "chat.completion"
    findings = by_check(validate_exchange(wire.stream(stream_request(wire), chunks)), "chunk-schema")
    assert [(f.chunk, f.pointer) for f in findings] == [(2, "/object")]
    assert findings[0].item == ids.BASE_STREAMING


def test_id_changes_within_a_stream(wire: Any) -> None:
    chunks = wire.text_stream()
    chunks[3]["id"] = "chatcmpl-2"
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.check == "chunk-metadata"
    assert finding.chunk == 3
    assert finding.seen == "chatcmpl-2"


def test_created_ticking_within_a_stream_is_fine(wire: Any) -> None:
    """llama-server stamps each chunk, so a stream crossing a second changes `created`; clients keep the first."""
    chunks = wire.text_stream()
    for k, chunk in enumerate(chunks):
        chunk["created"] = 1700000000 + k // 3
    assert validate_exchange(wire.stream(stream_request(wire), chunks)) == []


def test_first_delta_without_role(wire: Any) -> None:
    chunks = wire.text_stream()
    del chunks[0]["choices"][0]["delta"]["role"]
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.check == "first-delta-role"
    assert finding.chunk == 0


def test_role_repeated_in_every_delta_breaks_the_sdk_role(wire: Any) -> None:
    chunks = wire.text_stream()
    for chunk in chunks[1:]:
        chunk["choices"][0]["delta"]["role"] = "assistant"
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert "assistantassistant" in finding.message
    assert finding.chunk == 1


def test_finish_reason_missing(wire: Any) -> None:
    chunks = wire.text_stream()[:-1]
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.check == "finish-reason-once"
    assert "no chunk" in finding.message


def test_content_after_finish_reason(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk({"content": " late"})]
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.check == "finish-reason-once"
    assert finding.chunk == 5


@pytest.mark.parametrize(
    ("content", "item", "check"),
    [
        ("<think>hmm</think>Hello", ids.REASONING_CONTENT, "no-think-markup"),
        ("<|channel|>analysis<|message|>hmm<|end|>Hello", ids.REASONING_FIELD, "no-harmony-markup"),
    ],
)
def test_reasoning_markup_leaked_into_content(wire: Any, content: str, item: str, check: str) -> None:
    [finding] = validate_exchange(wire.plain(wire.chat_request(), wire.completion(content)))
    assert finding.item == item
    assert finding.check == check
    assert finding.pointer == "/choices/0/message/content"


@pytest.mark.parametrize("text", ["<think>hmm</think>Hello", "<|channel|>analysis<|message|>hmm<|end|>Hello"])
def test_reasoning_markup_rules_do_not_judge_legacy_completions(wire: Any, text: str) -> None:
    """/v1/completions has no reasoning field to move the markup to: the text is the model's raw output."""
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": wire.model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": wire.usage(1, 5),
    }
    findings = validate_exchange(wire.plain({"model": wire.model, "prompt": "Hi"}, body, path="/v1/completions"))
    assert by_check(findings, "no-think-markup") == []
    assert by_check(findings, "no-harmony-markup") == []


def test_think_markup_split_across_chunks_names_the_chunk_completing_it(wire: Any) -> None:
    chunks = wire.text_stream(("<th", "ink>", "hmm", "</think>", "Hi"))
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.item == ids.REASONING_CONTENT
    assert finding.chunk == 2


def test_reasoning_fields_in_the_right_place_pass(wire: Any) -> None:
    body = wire.completion("5", reasoning_content="2 plus 3 is 5")
    assert validate_exchange(wire.plain(wire.chat_request(), body)) == []
    chunks = wire.text_stream()
    chunks.insert(1, wire.chunk({"reasoning": "thinking"}))
    assert validate_exchange(wire.stream(stream_request(wire), chunks)) == []


def test_reasoning_field_not_a_string(wire: Any) -> None:
    body = wire.completion("5", reasoning={"text": "hmm"})
    [finding] = validate_exchange(wire.plain(wire.chat_request(), body))
    assert finding.item == ids.REASONING_FIELD
    assert finding.pointer == "/choices/0/message/reasoning"


def test_reasoning_content_misplaced_in_a_stream(wire: Any) -> None:
    chunks = wire.text_stream()
    chunks[1]["choices"][0]["reasoning_content"] = "hmm"
    [finding] = validate_exchange(wire.stream(stream_request(wire), chunks))
    assert finding.item == ids.REASONING_CONTENT
    assert finding.chunk == 1
    assert finding.pointer == "/choices/0/reasoning_content"


def test_reasoning_with_harmony_delimiters_left_in(wire: Any) -> None:
    body = wire.completion("5", reasoning="<|channel|>analysis<|message|>2+3")
    [finding] = validate_exchange(wire.plain(wire.chat_request(), body))
    assert finding.check == "reasoning-field"
    assert "<|channel|>" in finding.message


def test_draft_model_without_stats(wire: Any) -> None:
    request = wire.chat_request(draft_model=wire.model)
    [finding] = validate_exchange(wire.plain(request, wire.completion()))
    assert finding.item == ids.SPECULATIVE_DECODING
    assert finding.pointer == "/stats"


def test_draft_model_stats_with_a_negative_count(wire: Any) -> None:
    body = wire.completion()
    body["stats"] = {
        "tokens_per_second": 3.0,
        "draft_model": "d",
        "total_draft_tokens_count": 1,
        "accepted_draft_tokens_count": 1,
        "rejected_draft_tokens_count": -1,
        "ignored_draft_tokens_count": 0,
    }
    [finding] = validate_exchange(wire.plain(wire.chat_request(draft_model="d"), body))
    assert finding.pointer == "/stats/rejected_draft_tokens_count"
