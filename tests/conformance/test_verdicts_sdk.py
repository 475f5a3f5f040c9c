"""Tests for the replay through openai-python's ChatCompletionStreamState."""

from __future__ import annotations

from typing import Any

from conformance.verdicts import replay_of, validate_exchange


def test_replay_rebuilds_text_and_tool_calls(wire: Any) -> None:
    text = replay_of(wire.stream(wire.chat_request(stream=True), wire.text_stream()))
    assert text is not None
    assert text.error is None
    assert text.message is not None
    assert text.message["content"] == "Hello there."
    assert text.finish_reason == "stop"
    request = wire.chat_request(stream=True, tools=[wire.weather_tool()])
    calls = replay_of(wire.stream(request, wire.tool_stream()))
    assert calls is not None
    assert calls.message is not None
    [call] = calls.message["tool_calls"]
    assert call["id"] == "call_0"
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == '{"city": "Paris"}'


def test_replay_of_a_length_finish_does_not_raise(wire: Any) -> None:
    result = replay_of(wire.stream(wire.chat_request(stream=True), wire.text_stream(finish="length")))
    assert result is not None
    assert result.error is None
    assert result.finish_reason == "length"


def test_replay_names_the_chunk_the_sdk_raised_on(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks[2]["choices"][0]["delta"]["tool_calls"][0].pop("index")
    result = replay_of(wire.stream(wire.chat_request(stream=True, tools=[wire.weather_tool()]), chunks))
    assert result is not None
    assert result.failed_at == 2
    assert result.error is not None
    assert "index" in result.error


def test_replay_skips_non_streams_and_error_streams(wire: Any) -> None:
    assert replay_of(wire.plain(wire.chat_request(), wire.completion())) is None
    errored = wire.stream(wire.chat_request(stream=True), [{"error": {"message": "x"}}], done=False)
    assert replay_of(errored) is None


def test_sdk_rule_passes_on_good_streams(wire: Any) -> None:
    exchange = wire.stream(wire.chat_request(stream=True, tools=[wire.weather_tool()]), wire.tool_stream())
    assert [f for f in validate_exchange(exchange) if f.check == "openai-sdk-accumulates"] == []
