"""Tests for the tool-call rules, one per bug users reported (see /work/shared/WIRE.md)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.findings import Finding
from conformance.verdicts import items as ids
from conformance.verdicts import validate_exchange
from conformance.verdicts.tools import normalised_name


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def tools_request(wire: Any, stream: bool = True, **extra: Any) -> dict[str, Any]:
    body = wire.chat_request(tools=[wire.weather_tool()], **{"tool_choice": "required", **extra})
    if stream:
        body["stream"] = True
    return body


def test_good_tool_stream_and_body_pass(wire: Any) -> None:
    assert validate_exchange(wire.stream(tools_request(wire), wire.tool_stream())) == []
    body = wire.completion(None, tool_calls=[wire.tool_call()], finish="tool_calls")
    assert validate_exchange(wire.plain(tools_request(wire, stream=False), body)) == []


def test_lmstudio_649_empty_name_in_later_packets(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] = ""
    findings = validate_exchange(wire.stream(tools_request(wire), chunks))
    [finding] = by_check(findings, "tool-call-name-once")
    assert finding.item == ids.NO_EMPTY_FUNCTION_NAME
    assert finding.chunk == 2
    assert finding.pointer == "/choices/0/delta/tool_calls/0/function/name"
    assert '"name": ""' in (finding.raw or "")
    assert "#649" in finding.message


def test_vllm_14951_name_and_id_repeated_in_every_delta(wire: Any) -> None:
    chunks = wire.tool_stream()
    for chunk in chunks[2:4]:
        entry = chunk["choices"][0]["delta"]["tool_calls"][0]
        entry["id"] = "call_0"
        entry["function"]["name"] = "get_weather"
    findings = validate_exchange(wire.stream(tools_request(wire), chunks))
    [name] = by_check(findings, "tool-call-name-once")
    assert name.item == ids.NO_EMPTY_FUNCTION_NAME
    assert "get_weatherget_weather" in name.message
    assert "2 times in chunks #2, #3" in name.message
    [ident] = by_check(findings, "tool-call-id-once")
    assert ident.item == ids.TOOL_CALLING
    assert ident.chunk == 2
    # the official SDK really concatenates: the rebuilt call names a tool nobody defined
    [sdk] = by_check(findings, "openai-sdk-accumulates")
    assert sdk.seen == "get_weatherget_weatherget_weather"


def test_ollama_7881_delta_without_index_breaks_the_sdk(wire: Any) -> None:
    chunks = wire.tool_stream()
    for chunk in chunks[1:4]:
        chunk["choices"][0]["delta"]["tool_calls"][0].pop("index")
    findings = validate_exchange(wire.stream(tools_request(wire), chunks))
    [index] = by_check(findings, "tool-call-delta-index")
    assert index.item == ids.TOOL_CALLING
    assert index.chunk == 1
    assert index.pointer == "/choices/0/delta/tool_calls/0/index"
    [sdk] = by_check(findings, "openai-sdk-accumulates")
    assert sdk.item == ids.BASE_STREAMING
    assert sdk.chunk == 1
    assert "ChatCompletionStreamState" in sdk.message


def test_delta_without_function_object(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks.insert(2, wire.chunk({"tool_calls": [{"index": 0}]}))
    [finding] = by_check(validate_exchange(wire.stream(tools_request(wire), chunks)), "tool-call-delta-function")
    assert finding.chunk == 2
    assert finding.pointer.endswith("/function")


def test_first_delta_without_id_type_or_name(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks[1]["choices"][0]["delta"]["tool_calls"][0] = {"index": 0, "function": {"arguments": ""}}
    findings = by_check(validate_exchange(wire.stream(tools_request(wire), chunks)), "tool-call-first-delta")
    assert sorted(f.pointer.rsplit("/", 1)[-1] for f in findings) == ["id", "name", "type"]


def test_lmstudio_821_tool_call_left_in_content(wire: Any) -> None:
    markup = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    body = wire.completion(markup)
    findings = validate_exchange(wire.plain(tools_request(wire, stream=False, tool_choice="auto"), body))
    [finding] = by_check(findings, "no-tool-markup-in-content")
    assert finding.item == ids.TOOL_CALLING
    assert finding.pointer == "/choices/0/message/content"
    assert "<tool_call>" in (finding.seen or "")


def test_lmstudio_2115_required_gives_pseudo_xml(wire: Any) -> None:
    body = wire.completion("<function=get_weather>{'city': 'Paris'}</function>")
    findings = validate_exchange(wire.plain(tools_request(wire, stream=False), body))
    [finding] = by_check(findings, "tool-choice-honoured")
    assert finding.item == ids.TOOL_CHOICE
    assert "#2115" in finding.message
    assert by_check(findings, "no-tool-markup-in-content")


def test_lmstudio_821_finish_reason_stop_with_tool_calls(wire: Any) -> None:
    body = wire.completion(None, tool_calls=[wire.tool_call()], finish="stop")
    [finding] = validate_exchange(wire.plain(tools_request(wire, stream=False), body))
    assert finding.item == ids.FINISH_REASON_TOOL_CALLS
    assert finding.pointer == "/choices/0/finish_reason"
    assert finding.seen == "stop"
    assert finding.expected == "tool_calls"


NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("finish", ["stop", "tool_calls", "length"])
def test_named_tool_choice_may_end_with_stop_as_openai_does(wire: Any, finish: str) -> None:
    chunks = wire.tool_stream()
    chunks[-1]["choices"][0]["finish_reason"] = finish
    assert validate_exchange(wire.stream(tools_request(wire, tool_choice=NAMED), chunks)) == []
    body = wire.completion(None, tool_calls=[wire.tool_call()], finish=finish)
    assert validate_exchange(wire.plain(tools_request(wire, stream=False, tool_choice=NAMED), body)) == []


def test_named_tool_choice_with_another_finish_reason_is_flagged(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks[-1]["choices"][0]["finish_reason"] = "function_call"
    [finding] = validate_exchange(wire.stream(tools_request(wire, tool_choice=NAMED), chunks))
    assert finding.item == ids.FINISH_REASON_TOOL_CALLS
    assert finding.chunk == len(chunks) - 1
    assert finding.expected == ["stop", "tool_calls"]
    assert "#25054" in finding.message


def test_required_tool_choice_streamed_still_needs_tool_calls(wire: Any) -> None:
    chunks = wire.tool_stream()
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    [finding] = validate_exchange(wire.stream(tools_request(wire), chunks))
    assert finding.item == ids.FINISH_REASON_TOOL_CALLS
    assert finding.expected == "tool_calls"
    assert "lmstudio #821" in finding.message


@pytest.mark.parametrize(
    "parameters",
    [
        {"type": "object", "properties": {"city": {"type": "any"}}},
        {"type": "object", "properties": {"city": {"type": "string", "pattern": "(?<"}}},
        {"type": "object", "properties": {"city": {"$ref": "#/$defs/missing"}}},
    ],
    ids=["unknown-type", "bad-regex", "dangling-ref"],
)
def test_a_broken_client_schema_skips_argument_validation_only(wire: Any, parameters: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}
    request = wire.chat_request(tools=[tool], tool_choice="required", stream=True)
    assert validate_exchange(wire.stream(request, wire.tool_stream())) == []
    # the other rules still run on that exchange
    chunks = wire.tool_stream()
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    [finding] = validate_exchange(wire.stream(request, chunks))
    assert finding.check == "finish-reason-tool-calls"


def test_finish_reason_tool_calls_without_calls(wire: Any) -> None:
    body = wire.completion("Sunny.", finish="tool_calls")
    [finding] = validate_exchange(wire.plain(tools_request(wire, stream=False, tool_choice="auto"), body))
    assert finding.check == "finish-reason-tool-calls"


def test_vllm_28806_empty_arguments_dropped_for_tool_without_parameters(wire: Any) -> None:
    request = wire.chat_request(tools=[wire.weather_tool("get_time", None)], tool_choice="required", stream=True)
    chunks = wire.tool_stream([("get_time", ())])
    [finding] = validate_exchange(wire.stream(request, chunks))
    assert finding.item == ids.TOOLS_WITHOUT_PARAMETERS
    assert finding.check == "tool-call-arguments"
    assert finding.chunk == 1
    assert "vllm #28806" in finding.message


def test_streamed_arguments_that_do_not_concatenate_to_json(wire: Any) -> None:
    chunks = wire.tool_stream([("get_weather", ('{"city": ', '"Par'))])
    [finding] = validate_exchange(wire.stream(tools_request(wire), chunks))
    assert finding.item == ids.STREAMED_TOOL_ARGUMENTS
    assert finding.seen == '{"city": "Par'


def test_arguments_that_break_the_tool_schema(wire: Any) -> None:
    body = wire.completion(None, tool_calls=[wire.tool_call(arguments='{"town": "Paris"}')], finish="tool_calls")
    [finding] = validate_exchange(wire.plain(tools_request(wire, stream=False), body))
    assert finding.item == ids.TOOL_CALLING
    assert "'city' is a required property" in finding.message
    assert finding.pointer == "/choices/0/message/tool_calls/0/function/arguments"


def test_lmstudio_551_defs_not_followed(wire: Any) -> None:
    parameters = {
        "type": "object",
        "$defs": {"place": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "properties": {"place": {"$ref": "#/$defs/place"}},
        "required": ["place"],
    }
    request = wire.chat_request(tools=[wire.weather_tool("get_forecast", parameters)], tool_choice="required")
    good = wire.completion(None, tool_calls=[wire.tool_call("get_forecast", '{"place": {"city": "Paris"}}')])
    good["choices"][0]["finish_reason"] = "tool_calls"
    assert validate_exchange(wire.plain(request, good)) == []
    bad = wire.completion(None, tool_calls=[wire.tool_call("get_forecast", '{"place": "Paris"}')])
    bad["choices"][0]["finish_reason"] = "tool_calls"
    [finding] = validate_exchange(wire.plain(request, bad))
    assert finding.item == ids.TOOL_SCHEMA_DEFS
    assert "#551" in finding.message


@pytest.mark.parametrize(
    ("defined", "returned"), [("getCurrentWeather", "get_current_weather"), ("get-weather", "get_weather")]
)
def test_tool_name_normalisation_leaks(wire: Any, defined: str, returned: str) -> None:
    request = wire.chat_request(tools=[wire.weather_tool(defined)], tool_choice="required")
    body = wire.completion(None, tool_calls=[wire.tool_call(returned)], finish="tool_calls")
    [finding] = validate_exchange(wire.plain(request, body))
    assert finding.item == ids.TOOL_NAME_NORMALIZATION
    assert finding.expected == defined
    assert finding.seen == returned


def test_unknown_tool_name(wire: Any) -> None:
    body = wire.completion(None, tool_calls=[wire.tool_call("launch_rocket")], finish="tool_calls")
    [finding] = validate_exchange(wire.plain(tools_request(wire, stream=False), body))
    assert finding.item == ids.TOOL_CALLING
    assert "did not define" in finding.message


def test_tool_choice_none_with_a_call(wire: Any) -> None:
    body = wire.completion(None, tool_calls=[wire.tool_call()], finish="tool_calls")
    [finding] = validate_exchange(wire.plain(tools_request(wire, stream=False, tool_choice="none"), body))
    assert finding.item == ids.TOOL_CHOICE


def test_named_tool_choice_calls_another_tool(wire: Any) -> None:
    request = wire.chat_request(
        tools=[wire.weather_tool(), wire.weather_tool("get_time", None)],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    body = wire.completion(None, tool_calls=[wire.tool_call()], finish="tool_calls")
    [finding] = validate_exchange(wire.plain(request, body))
    assert finding.item == ids.TOOL_CHOICE
    assert finding.expected == "get_time"


def test_lmstudio_723_parallel_calls_interleaved(wire: Any) -> None:
    chunks = wire.tool_stream([("get_weather", ('{"city": "Paris"}',)), ("get_weather", ('{"city": "Tokyo"}',))])
    # move call 0's arguments after call 1's start
    chunks[2], chunks[3] = chunks[3], chunks[2]
    findings = validate_exchange(wire.stream(tools_request(wire), chunks))
    [finding] = by_check(findings, "tool-call-order")
    assert finding.item == ids.PARALLEL_TOOL_CALLS_STREAM
    assert finding.chunk == 3


def test_parallel_call_index_gap(wire: Any) -> None:
    chunks = wire.tool_stream([("get_weather", ('{"city": "Paris"}',)), ("get_weather", ('{"city": "Tokyo"}',))])
    for chunk in chunks[3:5]:
        chunk["choices"][0]["delta"]["tool_calls"][0]["index"] = 2
    [finding] = by_check(validate_exchange(wire.stream(tools_request(wire), chunks)), "tool-call-order")
    assert finding.expected == 1
    assert finding.seen == 2


def test_two_parallel_calls_in_one_chunk_pass(wire: Any) -> None:
    both = [
        wire.tool_delta(0, id="call_0", name="get_weather", arguments='{"city": "Paris"}'),
        wire.tool_delta(1, id="call_1", name="get_weather", arguments='{"city": "Tokyo"}'),
    ]
    chunks = [
        wire.chunk({"role": "assistant", "content": None}),
        wire.chunk({"tool_calls": both}),
        wire.chunk({}, finish="tool_calls"),
    ]
    assert validate_exchange(wire.stream(tools_request(wire), chunks)) == []


def test_llama_cpp_python_1883_auto_stream_server_error(wire: Any) -> None:
    request = tools_request(wire, tool_choice="auto")
    body = {"error": {"message": "'NoneType' object is not subscriptable", "type": "server_error"}}
    [finding] = validate_exchange(wire.plain(request, body, status=500))
    assert finding.item == ids.TOOLS_REQUEST_ROBUSTNESS
    assert finding.check == "tools-no-server-error"
    assert "NoneType" in finding.seen


def test_normalised_name() -> None:
    assert normalised_name("getCurrentWeather") == "get_current_weather"
    assert normalised_name("get-weather") == "get_weather"
    assert normalised_name("get_weather") == "get_weather"


def test_call_cut_by_max_tokens_must_finish_with_length(wire: Any) -> None:
    request = tools_request(wire, stream=False, max_tokens=24)
    body = wire.completion(None, tool_calls=[wire.tool_call(arguments='{"city":"Paris')], finish="tool_calls")
    body["usage"] = wire.usage(200, 24)
    [finding] = validate_exchange(wire.plain(request, body))
    assert finding.item == ids.FINISH_REASON_TOOL_CALLS
    assert finding.check == "tool-call-arguments"
    assert "must be 'length'" in finding.message
    body["choices"][0]["finish_reason"] = "length"
    assert validate_exchange(wire.plain(request, body)) == []


def test_required_choice_cut_before_any_call_is_not_blamed_on_tool_choice(wire: Any) -> None:
    body = wire.completion("[{", finish="length")
    findings = validate_exchange(wire.plain(tools_request(wire, stream=False, max_tokens=2), body))
    assert by_check(findings, "tool-choice-honoured") == []
