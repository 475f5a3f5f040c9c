"""Tests for the stream-framing and error rules: SSE fields, [DONE], JSON payloads, error bodies and events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.findings import Finding
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def test_a_good_text_stream_has_no_findings(wire: Any) -> None:
    exchange = wire.stream(wire.chat_request(stream=True), wire.text_stream())
    assert validate_exchange(exchange) == []


def test_comment_keepalives_are_harmless(wire: Any) -> None:
    events = [": keep-alive", *wire.text_stream()]
    assert validate_exchange(wire.stream(wire.chat_request(stream=True), events)) == []


@pytest.mark.parametrize("block", ["id: 7", "retry: 3000"])
def test_id_or_retry_only_block_is_an_empty_event_for_openai_python(wire: Any, block: str) -> None:
    events = [*wire.text_stream()[:2], block, *wire.text_stream()[2:]]
    [finding] = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "sse-data-field")
    assert finding.item == ids.BASE_STREAMING
    assert finding.chunk == 2
    assert finding.raw == block
    assert "SSEDecoder" in finding.message
    assert "JSONDecodeError" in finding.message


def test_after_one_id_every_comment_block_is_an_empty_event(wire: Any) -> None:
    first, *rest = wire.text_stream()
    events = ["id: 1\ndata: " + json.dumps(first), *rest[:2], ": ping", *rest[2:], ": ping"]
    findings = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "sse-data-field")
    [finding] = findings  # the same message twice is collapsed into one finding naming both blocks
    assert finding.chunk == 3
    assert "the `id:` of block #0" in finding.message
    assert "2 times in chunks #3, #6" in finding.message
    assert finding.raw == ": ping"


def test_the_sdk_really_fails_on_those_blocks(wire: Any) -> None:
    """The evidence for the rule above: openai-python's decoder yields an event whose data is not JSON."""
    from openai._streaming import SSEDecoder

    decoder = SSEDecoder()
    lines = ["id: 1", 'data: {"a": 1}', "", ": ping", ""]
    events = [e for e in map(decoder.decode, lines) if e is not None]
    assert [e.data for e in events] == ['{"a": 1}', ""]
    with pytest.raises(json.JSONDecodeError):
        events[1].json()


def test_id_and_comment_blocks_after_done_are_harmless(wire: Any) -> None:
    raw = wire.sse_text(wire.text_stream()) + "id: 9\n\n: ping\n\n"
    events = [raw.rstrip("\n")]
    assert validate_exchange(wire.stream(wire.chat_request(stream=True), events, done=False)) == []


def test_error_null_on_a_chunk_is_not_an_error_event(wire: Any) -> None:
    """openai-python raises only when `data.get("error")` is truthy."""
    events = [{**c, "error": None} for c in wire.text_stream()]
    findings = validate_exchange(wire.stream(wire.chat_request(stream=True), events))
    assert by_check(findings, "stream-error-event") == []
    assert by_check(findings, "done-terminator") == []
    assert [f for f in findings if f.item == ids.STREAM_ERRORS] == []


def test_llama_cpp_16104_error_field_without_data(wire: Any) -> None:
    events = [wire.chunk({"role": "assistant", "content": ""}), 'error: {"code": 500, "message": "boom"}']
    findings = validate_exchange(wire.stream(wire.chat_request(stream=True), events, done=False))
    [finding] = by_check(findings, "sse-data-field")
    assert finding.item == ids.STREAM_ERRORS
    assert finding.chunk == 1
    assert finding.raw == 'error: {"code": 500, "message": "boom"}'
    assert "llama.cpp #16104" in finding.message


def test_event_without_data_breaks_the_client(wire: Any) -> None:
    events = [*wire.text_stream(), "event: ping"]
    [finding] = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "sse-data-field")
    assert finding.item == ids.BASE_STREAMING
    assert finding.chunk == 5
    assert "event: ping" in (finding.raw or "")


def test_unterminated_tail_is_reported_and_an_error_in_it_names_stream_errors(wire: Any) -> None:
    tail = 'data: {"error": {"message": "context overflow"}}'
    findings = validate_exchange(wire.stream(wire.chat_request(stream=True), [], done=False, tail=tail))
    [finding] = by_check(findings, "stream-terminated")
    assert finding.item == ids.STREAM_ERRORS
    assert finding.raw == tail


def test_missing_done_and_events_after_done(wire: Any) -> None:
    no_done = validate_exchange(wire.stream(wire.chat_request(stream=True), wire.text_stream(), done=False))
    [finding] = by_check(no_done, "done-terminator")
    assert finding.item == ids.BASE_STREAMING
    assert "[DONE]" in finding.message

    raw = wire.sse_text(wire.text_stream()) + "data: " + '{"late": true}' + "\n\n"
    events = [raw.rstrip("\n")]
    after = validate_exchange(wire.stream(wire.chat_request(stream=True), events, done=False))
    [finding] = by_check(after, "done-terminator")
    assert finding.chunk == 6
    assert finding.raw == 'data: {"late": true}'


def test_two_done_events(wire: Any) -> None:
    events = [*wire.text_stream(), "data: [DONE]"]
    [finding] = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "done-terminator")
    assert "more than once" in finding.message


def test_data_that_is_not_json(wire: Any) -> None:
    events = [*wire.text_stream()[:2], "data: {not json", *wire.text_stream()[2:]]
    [finding] = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "chunk-json")
    assert finding.chunk == 2
    assert finding.raw == "data: {not json"


def test_error_event_must_be_an_openai_error_object_and_last(wire: Any) -> None:
    events = [wire.chunk({"role": "assistant", "content": ""}), {"error": "boom"}, wire.chunk({"content": "x"})]
    findings = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "stream-error-event")
    assert {f.item for f in findings} == {ids.STREAM_ERRORS}
    assert [f.chunk for f in findings] == [1, 2]
    assert findings[0].pointer == "/error"


def test_well_formed_error_event_ends_the_stream_cleanly(wire: Any) -> None:
    events = [wire.chunk({"role": "assistant", "content": ""}), {"error": {"message": "out of memory"}}]
    assert validate_exchange(wire.stream(wire.chat_request(stream=True), events, done=False)) == []


def test_event_named_error_with_a_non_error_payload(wire: Any) -> None:
    events = ['event: error\ndata: {"message": "boom"}']
    findings = by_check(validate_exchange(wire.stream(wire.chat_request(stream=True), events)), "stream-error-event")
    assert findings[0].chunk == 0
    assert "event: error" in findings[0].message


def test_stream_asked_but_json_body_given(wire: Any) -> None:
    findings = validate_exchange(wire.plain(wire.chat_request(stream=True), wire.completion()))
    [finding] = by_check(findings, "stream-is-sse")
    assert finding.item == ids.BASE_STREAMING


def test_fastapi_422_detail_is_named(wire: Any) -> None:
    body = {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]}
    [finding] = validate_exchange(wire.plain({"model": "m"}, body, status=422))
    assert finding.item == ids.BASE_ERRORS
    assert finding.check == "error-body"
    assert "FastAPI" in finding.message
    assert finding.seen == body


def test_old_vllm_top_level_error_is_flagged_but_says_the_message_still_shows(wire: Any) -> None:
    body = {"object": "error", "message": "model not found", "type": "NotFoundError", "code": 404}
    [finding] = validate_exchange(wire.plain(wire.chat_request(), body, status=404))
    assert finding.item == ids.BASE_ERRORS
    assert finding.check == "error-body"
    assert "openai-python still shows" in finding.message
    assert "non-standard" in finding.message
    assert finding.seen == body


def test_error_string_instead_of_object(wire: Any) -> None:
    [finding] = validate_exchange(wire.plain({"model": "m"}, {"error": "Unexpected endpoint"}, status=404))
    assert finding.pointer == "/error"


def test_error_status_on_a_stream_request_names_stream_errors(wire: Any) -> None:
    [finding] = validate_exchange(wire.plain(wire.chat_request(stream=True), "Internal Server Error", status=500))
    assert finding.item == ids.STREAM_ERRORS
    assert "not a JSON object" in finding.message


def test_error_status_with_event_stream_body(wire: Any) -> None:
    exchange = wire.stream(wire.chat_request(stream=True), [{"error": {"message": "x"}}], status=500)
    [finding] = validate_exchange(exchange)
    assert finding.item == ids.STREAM_ERRORS
    assert "event-stream" in finding.message


def test_good_error_body_passes(wire: Any) -> None:
    body = {"error": {"message": "model not found", "type": "invalid_request_error", "param": "model", "code": None}}
    assert validate_exchange(wire.plain(wire.chat_request(), body, status=404)) == []


def test_no_response_is_a_finding(wire: Any) -> None:
    from conformance.exchange import Exchange

    exchange = Exchange(wire.request(wire.chat_request()), None, error="ConnectError: refused")
    [finding] = validate_exchange(exchange)
    assert finding.check == "response-received"
    assert "ConnectError" in finding.message
