"""Tests for the usage rules: include_usage asked or not, usage arithmetic, usage present."""

from __future__ import annotations

from typing import Any

from conformance.findings import Finding
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def asked(wire: Any, **extra: Any) -> dict[str, Any]:
    return wire.chat_request(stream=True, stream_options={"include_usage": True}, **extra)


def test_usage_chunk_when_asked_passes(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage(5, 3))]
    assert validate_exchange(wire.stream(asked(wire), chunks)) == []


def test_lmstudio_676_no_usage_when_asked(wire: Any) -> None:
    [finding] = validate_exchange(wire.stream(asked(wire), wire.text_stream()))
    assert finding.item == ids.STREAM_INCLUDE_USAGE
    assert finding.check == "stream-usage-when-asked"
    assert "#676" in finding.message
    assert finding.chunk == 5
    assert finding.raw == "data: [DONE]"


def test_usage_on_the_finish_chunk_instead_of_an_extra_chunk(wire: Any) -> None:
    chunks = wire.text_stream()
    chunks[-1]["usage"] = wire.usage(5, 3)
    [finding] = validate_exchange(wire.stream(asked(wire), chunks))
    assert finding.pointer == "/choices"
    assert finding.chunk == 4


def test_usage_on_several_chunks_and_not_last(wire: Any) -> None:
    usage_chunk = wire.chunk(choices=[], usage=wire.usage(5, 3))
    chunks = [*wire.text_stream()[:2], usage_chunk, *wire.text_stream()[2:], usage_chunk]
    findings = validate_exchange(wire.stream(asked(wire), chunks))
    assert [f.chunk for f in by_check(findings, "stream-usage-when-asked")] == [2]


def test_vllm_continuous_usage_stats_allows_usage_on_every_chunk(wire: Any) -> None:
    request = wire.chat_request(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True})
    chunks = [dict(c, usage=wire.usage(5, k)) for k, c in enumerate(wire.text_stream())]
    good = [*chunks, wire.chunk(choices=[], usage=wire.usage(5, 4))]
    assert by_check(validate_exchange(wire.stream(request, good)), "stream-usage-when-asked") == []
    # the final usage chunk with `choices: []` is still required
    [finding] = by_check(validate_exchange(wire.stream(request, chunks)), "stream-usage-when-asked")
    assert finding.pointer == "/choices"
    assert finding.chunk == 4


def test_usage_chunk_followed_by_choice_chunks(wire: Any) -> None:
    chunks = [*wire.text_stream()[:-1], wire.chunk(choices=[], usage=wire.usage(5, 2)), wire.text_stream()[-1]]
    [finding] = by_check(validate_exchange(wire.stream(asked(wire), chunks)), "stream-usage-when-asked")
    assert "last chunk" in finding.message
    assert finding.chunk == 5


def test_llama_cpp_12102_usage_when_not_asked(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage(5, 3))]
    [finding] = validate_exchange(wire.stream(wire.chat_request(stream=True), chunks))
    assert finding.item == ids.STREAM_INCLUDE_USAGE
    assert finding.check == "stream-usage-unasked"
    assert finding.chunk == 5
    assert '"usage"' in (finding.raw or "")


def test_null_usage_when_not_asked_is_fine(wire: Any) -> None:
    chunks = [dict(c, usage=None) for c in wire.text_stream()]
    assert validate_exchange(wire.stream(wire.chat_request(stream=True), chunks)) == []


def test_include_usage_false_counts_as_not_asked(wire: Any) -> None:
    request = wire.chat_request(stream=True, stream_options={"include_usage": False})
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage())]
    assert by_check(validate_exchange(wire.stream(request, chunks)), "stream-usage-unasked")


def test_streamed_usage_arithmetic_is_0_3_19(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage(5, 0, 9))]
    findings = validate_exchange(wire.stream(asked(wire), chunks))
    assert {f.item for f in findings} == {ids.STREAM_USAGE_CORRECT}
    assert sorted(f.pointer for f in findings) == ["/usage/completion_tokens", "/usage/total_tokens"]
    assert all(f.chunk == 5 for f in findings)


def test_non_streamed_usage_arithmetic_and_max_tokens(wire: Any) -> None:
    body = wire.completion(usage=wire.usage(0, 20, 21))
    findings = validate_exchange(wire.plain(wire.chat_request(max_tokens=16), body))
    assert {f.item for f in findings} == {ids.BASE_CHAT}
    assert sorted(f.pointer for f in findings) == [
        "/usage/completion_tokens",
        "/usage/prompt_tokens",
        "/usage/total_tokens",
    ]


def test_usage_missing_from_a_non_streamed_answer(wire: Any) -> None:
    body = wire.completion()
    del body["usage"]
    [finding] = validate_exchange(wire.plain(wire.chat_request(), body))
    assert finding.check == "usage-present"
    assert finding.pointer == "/usage"


def test_completions_endpoint_usage_rules(wire: Any) -> None:
    request = {"model": wire.model, "prompt": "Hi", "stream": True, "stream_options": {"include_usage": True}}
    chunk = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": wire.model}
    chunks = [
        {**chunk, "choices": [{"index": 0, "text": "Hello", "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
    ]
    exchange = wire.stream(request, chunks, path="/v1/completions")
    [finding] = validate_exchange(exchange)
    assert finding.item == ids.STREAM_INCLUDE_USAGE
    good = wire.stream(request, [*chunks, {**chunk, "choices": [], "usage": wire.usage(1, 1)}], path="/v1/completions")
    assert validate_exchange(good) == []
