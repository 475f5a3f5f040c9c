"""Tool-calling items: 0.3.6 to 0.3.23, and the model-specific tool-calling items that reuse their checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from conformance.catalog import exercised as ex
from conformance.catalog import requests as rq
from conformance.catalog.expect import (
    at_least_calls,
    called,
    distinct_call_ids,
    finish,
    fragmented_arguments,
    make_check,
    same_answer,
    succeeded,
    tools_reach_model,
)
from conformance.check import Check, Item, Kind
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import items as ids

__all__ = ["TOOL_ITEMS", "model_specific_items", "tool_calling_checks"]

_TOOL_TOKENS = 64
_WEATHER: dict[str, Any] = {"tools": [rq.WEATHER_TOOL], "max_tokens": _TOOL_TOKENS}
_WEATHER_TEXT: dict[str, Any] = {"tools": [rq.WEATHER_TOOL], "max_tokens": 24}
"""For tool_choice "none", where the answer is text."""
_PARALLEL: dict[str, Any] = {
    "user": rq.PARALLEL_PROMPT,
    "tools": [rq.WEATHER_TOOL],
    "tool_choice": "required",
    "max_tokens": 96,
}

_PARALLEL_SEE = f"{ids.PARALLEL_TOOL_CALLS_CHUNKED} (or the model chose one call: parallel calls are its choice)"
_TIMEZONE_TOOL = rq.tool(
    "get_time",
    "Get the current time in a timezone",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
"""The second tool of the named-choice checks: with parameters, so that 0.3.17's parameter-less tools are not
what a 0.3.15 check depends on."""

_CITY_PARAMETERS = rq.WEATHER_TOOL["function"]["parameters"]
_CAMEL_TOOL = rq.tool("getCurrentWeather", "Get the current weather in a city", _CITY_PARAMETERS)
_KEBAB_TOOL = rq.tool("get-weather", "Get the current weather in a city", _CITY_PARAMETERS)
_REFRESH = "Refresh the weather cache."

_TOOL_RESULT_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": rq.WEATHER_PROMPT},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_conformance_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_conformance_1", "content": '{"temperature_c": 18, "sky": "cloudy"}'},
]


def tool_calling_checks(item: str) -> tuple[Check, ...]:
    """The core tool-calling checks, tagged with `item` (0.3.6, and the model-specific items)."""
    checks = _tool_calling_checks(item)
    return checks if item == ids.TOOL_CALLING else tuple(_owned(check) for check in checks)


def _owned(check: Check) -> Check:
    """A model-specific item owns 0.3.6's rule findings on its checks: on its model family they are its failures."""
    verdict = check.verdict

    def owned(exchanges: Sequence[Exchange]) -> list[Finding]:
        return [replace(f, item=check.item) if f.item == ids.TOOL_CALLING else f for f in verdict(exchanges)]

    return replace(check, verdict=owned)


def _tool_calling_checks(item: str) -> tuple[Check, ...]:
    return (
        make_check(
            item,
            "required-call",
            'tool_choice "required" gets a get_weather call with JSON arguments valid against its schema',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", **_WEATHER)],
            succeeded(),
            called(0, "get_weather"),
            exercised=ex.called(0),
        ),
        make_check(
            item,
            "streamed-call",
            "The same call streamed: indexed deltas, id and name once, arguments concatenating to valid JSON",
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", stream=True, **_WEATHER)],
            succeeded(),
            called(0, "get_weather"),
            exercised=ex.called(0),
        ),
        make_check(
            item,
            "streamed-equals-non-streamed",
            "The streamed call, rebuilt by openai-python, has the non-streamed call's name and arguments",
            [
                rq.chat(rq.WEATHER_PROMPT, tool_choice="required", **_WEATHER),
                rq.chat(rq.WEATHER_PROMPT, tool_choice="required", stream=True, **_WEATHER),
            ],
            succeeded(),
            same_answer(0, 1),
            exercised=ex.all_of(ex.called(0), ex.called(1)),
        ),
        make_check(
            item,
            "tool-result-turn",
            "A conversation holding an assistant tool call and its `tool` result message is accepted",
            [rq.chat(messages=_TOOL_RESULT_TURN, **_WEATHER)],
            succeeded(),
        ),
        make_check(
            item,
            "tools-without-tool-choice",
            'Tools sent without tool_choice (OpenAI\'s default, "auto") reach the model: it calls one, or '
            "prompt_tokens grows over the same request without tools (llama-cpp-python's default format drops them)",
            [rq.chat(rq.WEATHER_PROMPT, max_tokens=8), rq.chat(rq.WEATHER_PROMPT, **_WEATHER)],
            succeeded(),
            tools_reach_model(0, 1),
            exercised=ex.called_or_usage(0, 1),
        ),
        make_check(
            item,
            "auto-choice-streamed",
            'Streaming with tools and tool_choice "auto" works (llama-cpp-python #1883 raised)',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="auto", stream=True, **_WEATHER)],
            succeeded(),
        ),
    )


_TOOL_CALLING = Item(
    id=ids.TOOL_CALLING,
    version="0.3.6",
    title="Tool and function calling through the OpenAI-like API",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=tool_calling_checks(ids.TOOL_CALLING),
)

_TOOL_CHOICE = Item(
    id=ids.TOOL_CHOICE,
    version="0.3.15",
    title='tool_choice parameter: "none", "auto", "required" (and a named function)',
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.TOOL_CHOICE,
            "none-no-calls",
            'tool_choice "none" answers in text without tool calls',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="none", **_WEATHER_TEXT)],
            succeeded(),
        ),
        make_check(
            ids.TOOL_CHOICE,
            "auto-accepted",
            'tool_choice "auto" is accepted (the model decides)',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="auto", **_WEATHER)],
            succeeded(),
        ),
        make_check(
            ids.TOOL_CHOICE,
            "required-calls",
            'tool_choice "required" yields tool_calls, not pseudo-XML in content (lmstudio #2115)',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", **_WEATHER)],
            succeeded(),
            at_least_calls(0, 1),
        ),
        make_check(
            ids.TOOL_CHOICE,
            "required-calls-streamed",
            'tool_choice "required" with stream: true yields streamed tool calls',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", stream=True, **_WEATHER)],
            succeeded(),
            at_least_calls(0, 1),
        ),
        make_check(
            ids.TOOL_CHOICE,
            "named-function",
            'A named tool_choice calls exactly that function, out of two tools; finish_reason "stop" or "tool_calls" '
            'is accepted, as OpenAI returns "stop" (vllm PR #25054)',
            [
                rq.chat(
                    rq.WEATHER_PROMPT,
                    tools=[_TIMEZONE_TOOL, rq.WEATHER_TOOL],
                    tool_choice=rq.named("get_weather"),
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_weather"),
        ),
        make_check(
            ids.TOOL_CHOICE,
            "named-function-streamed",
            "A named tool_choice with stream: true calls exactly that function",
            [
                rq.chat(
                    rq.WEATHER_PROMPT,
                    tools=[_TIMEZONE_TOOL, rq.WEATHER_TOOL],
                    tool_choice=rq.named("get_weather"),
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_weather"),
        ),
    ),
)

_FINISH_REASON = Item(
    id=ids.FINISH_REASON_TOOL_CALLS,
    version="0.3.15",
    title='Answers with tool calls set finish_reason "tool_calls" (streamed and not)',
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.FINISH_REASON_TOOL_CALLS,
            "non-streamed",
            'A non-streamed tool call ends with finish_reason "tool_calls" (lmstudio #821)',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", **_WEATHER)],
            succeeded(),
            at_least_calls(0, 1),
            exercised=ex.called(0),
        ),
        make_check(
            ids.FINISH_REASON_TOOL_CALLS,
            "streamed",
            'A streamed tool call\'s last choice chunk has finish_reason "tool_calls"',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice="required", stream=True, **_WEATHER)],
            succeeded(),
            at_least_calls(0, 1),
            exercised=ex.called(0),
        ),
        make_check(
            ids.FINISH_REASON_TOOL_CALLS,
            "cut-call-finish-length",
            'A tool call cut short by max_tokens ends with "length"; "tool_calls" only when its arguments are complete',
            [rq.chat(rq.WEATHER_PROMPT, tools=[rq.WEATHER_TOOL], tool_choice="required", max_tokens=20)],
            succeeded(),
            finish(0, "length", "tool_calls"),
            exercised=ex.cut_call(0),
        ),
        make_check(
            ids.FINISH_REASON_TOOL_CALLS,
            "named-streamed",
            'A named tool_choice, streamed, ends with "stop" or "tool_calls": either is accepted, as OpenAI returns '
            '"stop" (vllm PRs #9209, #25054)',
            [rq.chat(rq.WEATHER_PROMPT, tool_choice=rq.named("get_weather"), stream=True, **_WEATHER)],
            succeeded(),
            at_least_calls(0, 1),
            exercised=ex.called(0),
        ),
    ),
)

_NO_EMPTY_NAME = Item(
    id=ids.NO_EMPTY_FUNCTION_NAME,
    version="0.3.16",
    title="Streamed tool calls send the function name once, never an empty name in later packets",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.NO_EMPTY_FUNCTION_NAME,
            "name-once-streamed",
            'A streamed call with two arguments names the function in its first delta only (no later "")',
            [
                rq.chat(
                    "What's the weather in Paris, in celsius?",
                    tools=[rq.WEATHER_UNITS_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_weather"),
            exercised=ex.called(0),
        ),
        make_check(
            ids.NO_EMPTY_FUNCTION_NAME,
            "name-once-parallel",
            "With parallel streamed calls, each call's name is sent once, in its own first delta",
            [rq.chat(stream=True, **_PARALLEL)],
            succeeded(),
            called(0, "get_weather"),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
    ),
)

_STREAMED_ARGUMENTS = Item(
    id=ids.STREAMED_TOOL_ARGUMENTS,
    version="0.3.17",
    title="Tool-call argument tokens are streamed as they are generated",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.STREAMED_TOOL_ARGUMENTS,
            "arguments-in-fragments",
            "A call's arguments arrive over several deltas and concatenate to JSON valid against the schema",
            [
                rq.chat(
                    "What's the weather in Paris, in celsius?",
                    tools=[rq.WEATHER_UNITS_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_weather"),
            fragmented_arguments(0),
            exercised=ex.called(0),
        ),
        make_check(
            ids.STREAMED_TOOL_ARGUMENTS,
            "nested-arguments-streamed",
            "Streamed arguments of a tool with nested objects concatenate to JSON valid against the schema",
            [
                rq.chat(
                    "What's the forecast for Paris, France?",
                    tools=[rq.NESTED_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_forecast"),
            exercised=ex.called(0),
        ),
    ),
)

_NO_PARAMETERS = Item(
    id=ids.TOOLS_WITHOUT_PARAMETERS,
    version="0.3.17",
    title="Tools that omit `parameters` work, and their calls carry '{}' arguments",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.TOOLS_WITHOUT_PARAMETERS,
            "no-parameters-call",
            "A tool without `parameters` is accepted and called with a JSON-object arguments string",
            [rq.chat("What time is it?", tools=[rq.TIME_TOOL], tool_choice="required", max_tokens=_TOOL_TOKENS)],
            succeeded(),
            called(0, "get_time"),
            exercised=ex.called(0),
        ),
        make_check(
            ids.TOOLS_WITHOUT_PARAMETERS,
            "no-parameters-streamed",
            "Streamed, its arguments are not dropped: they concatenate to '{}' (vllm #28806)",
            [
                rq.chat(
                    "What time is it?",
                    tools=[rq.TIME_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_time"),
            exercised=ex.called(0),
        ),
    ),
)

_PARALLEL_CHUNKED = Item(
    id=ids.PARALLEL_TOOL_CALLS_CHUNKED,
    version="0.3.18",
    title="Parallel tool calls split across several chunks are not dropped",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.PARALLEL_TOOL_CALLS_CHUNKED,
            "parallel-calls-streamed",
            "Asked about two cities, the stream carries two or more get_weather calls with distinct ids",
            [rq.chat(stream=True, **_PARALLEL)],
            succeeded(),
            at_least_calls(0, 2, name="get_weather"),
            distinct_call_ids(0),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
        make_check(
            ids.PARALLEL_TOOL_CALLS_CHUNKED,
            "parallel-streamed-equals-non-streamed",
            "The streamed parallel calls (as openai-python rebuilds them) equal the non-streamed ones",
            [rq.chat(**_PARALLEL), rq.chat(stream=True, **_PARALLEL)],
            succeeded(),
            at_least_calls(0, 2),
            same_answer(0, 1),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
        make_check(
            ids.PARALLEL_TOOL_CALLS_CHUNKED,
            "parallel-tool-calls-true",
            "parallel_tool_calls: true is accepted and the stream carries two or more calls with distinct ids",
            [rq.chat(stream=True, parallel_tool_calls=True, **_PARALLEL)],
            succeeded(),
            distinct_call_ids(0),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
        make_check(
            ids.PARALLEL_TOOL_CALLS_CHUNKED,
            "parallel-tool-calls-false",
            "parallel_tool_calls: false, asked about two cities: at most one tool call",
            [rq.chat(parallel_tool_calls=False, **_PARALLEL)],
            succeeded(),
            exercised=ex.called(0),
        ),
        make_check(
            ids.PARALLEL_TOOL_CALLS_CHUNKED,
            "parallel-tool-calls-false-streamed",
            "parallel_tool_calls: false with stream: true: at most one tool call in the stream",
            [rq.chat(stream=True, parallel_tool_calls=False, **_PARALLEL)],
            succeeded(),
            exercised=ex.called(0),
        ),
    ),
)

_SCHEMA_DEFS = Item(
    id=ids.TOOL_SCHEMA_DEFS,
    version="0.3.18",
    title="Root-level $defs in tool definitions are kept and followed",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.TOOL_SCHEMA_DEFS,
            "defs-followed",
            "A tool whose parameters $ref a root-level $defs entry gets arguments valid against the resolved schema",
            [
                rq.chat(
                    "What's the forecast for Paris, France?",
                    tools=[rq.DEFS_TOOL],
                    tool_choice="required",
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_forecast"),
            exercised=ex.called(0),
        ),
        make_check(
            ids.TOOL_SCHEMA_DEFS,
            "defs-followed-streamed",
            "The same tool streamed: concatenated arguments valid against the resolved schema",
            [
                rq.chat(
                    "What's the forecast for Paris, France?",
                    tools=[rq.DEFS_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get_forecast"),
            exercised=ex.called(0),
        ),
    ),
)

_PARALLEL_STREAM = Item(
    id=ids.PARALLEL_TOOL_CALLS_STREAM,
    version="0.3.19",
    title="Parallel tool calls through the streaming API",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.PARALLEL_TOOL_CALLS_STREAM,
            "parallel-indices-sequential",
            "Parallel streamed calls use indexes 0, 1... in order, each starting with its id and name",
            [rq.chat(stream=True, **_PARALLEL)],
            succeeded(),
            at_least_calls(0, 2, name="get_weather"),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
        make_check(
            ids.PARALLEL_TOOL_CALLS_STREAM,
            "parallel-with-usage",
            "Parallel streamed calls with include_usage: every call, one finish_reason, then the usage chunk",
            [rq.chat(stream=True, include_usage=True, **_PARALLEL)],
            succeeded(),
            at_least_calls(0, 2, name="get_weather"),
            exercised=ex.called(0, 2, see=_PARALLEL_SEE),
        ),
    ),
)

_NAME_NORMALIZATION = Item(
    id=ids.TOOL_NAME_NORMALIZATION,
    version="0.3.23",
    title="Tool names normalised for the model come back exactly as the client defined them",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.TOOL_NAME_NORMALIZATION,
            "camel-case-name",
            'A tool named "getCurrentWeather" is called by exactly that name, not "get_current_weather"',
            [
                rq.chat(
                    rq.WEATHER_PROMPT,
                    tools=[
                        rq.tool(
                            "getCurrentWeather",
                            "Get the current weather in a city",
                            rq.WEATHER_TOOL["function"]["parameters"],
                        )
                    ],
                    tool_choice="required",
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "getCurrentWeather"),
            exercised=ex.called(0),
        ),
        make_check(
            ids.TOOL_NAME_NORMALIZATION,
            "kebab-case-name-streamed",
            'A tool named "get-weather", streamed, is called by exactly that name',
            [
                rq.chat(
                    rq.WEATHER_PROMPT,
                    tools=[
                        rq.tool(
                            "get-weather",
                            "Get the current weather in a city",
                            rq.WEATHER_TOOL["function"]["parameters"],
                        )
                    ],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
            called(0, "get-weather"),
            exercised=ex.called(0),
        ),
    ),
)

_ROBUSTNESS = Item(
    id=ids.TOOLS_REQUEST_ROBUSTNESS,
    version="0.3.23",
    title="Unusual tool definitions (no properties, empty parameters, nested objects) never error",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.TOOLS_REQUEST_ROBUSTNESS,
            "parameters-without-properties",
            'A tool with parameters {"type": "object"} and no properties is accepted and called',
            [
                rq.chat(
                    _REFRESH,
                    tools=[rq.NO_PROPERTIES_TOOL],
                    tool_choice="required",
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
        ),
        make_check(
            ids.TOOLS_REQUEST_ROBUSTNESS,
            "empty-parameters",
            "A tool with parameters {} is accepted and called",
            [
                rq.chat(
                    _REFRESH,
                    tools=[rq.EMPTY_PARAMETERS_TOOL],
                    tool_choice="required",
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
        ),
        make_check(
            ids.TOOLS_REQUEST_ROBUSTNESS,
            "nested-parameters",
            "A tool with nested object and array parameters is accepted; arguments match the schema",
            [
                rq.chat(
                    "What's the forecast for Paris, France?",
                    tools=[rq.NESTED_TOOL],
                    tool_choice="required",
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
        ),
        make_check(
            ids.TOOLS_REQUEST_ROBUSTNESS,
            "without-properties-streamed",
            'A tool with parameters {"type": "object"}, streamed, is accepted and called',
            [
                rq.chat(
                    _REFRESH,
                    tools=[rq.NO_PROPERTIES_TOOL],
                    tool_choice="required",
                    stream=True,
                    max_tokens=_TOOL_TOKENS,
                )
            ],
            succeeded(),
        ),
    ),
)


def model_specific_items() -> tuple[Item, ...]:
    """Items for one model family's tool calling: the core tool-calling checks, run only on matching models."""
    specs = (
        ("0.3.18/mistral-v13-tool-calling", "0.3.18", "Tool calling for Mistral v13 tokenizer models", ("mistral",)),
        ("0.3.19/mistral-tool-parsing", "0.3.19", "Correct tool calls parsed for certain Mistral models", ("mistral",)),
        (
            "0.3.24/seed-oss-tool-calling",
            "0.3.24",
            "ByteDance Seed-OSS tool calling and template fixes (with the tool-call parsing fixes for some templates)",
            ("seed-oss",),
        ),
        ("0.3.25/nemotron-tool-calling", "0.3.25", "NVIDIA Nemotron-Nano-v2 tool calling", ("nemotron",)),
    )
    return tuple(
        Item(
            id=item_id,
            version=version,
            title=title,
            kind=Kind.MODEL_SPECIFIC,
            endpoints=(rq.CHAT,),
            checks=tool_calling_checks(item_id),
            model_families=families,
        )
        for item_id, version, title, families in specs
    )


TOOL_ITEMS: dict[str, Item] = {
    item.id: item
    for item in (
        _TOOL_CALLING,
        _TOOL_CHOICE,
        _FINISH_REASON,
        _NO_EMPTY_NAME,
        _STREAMED_ARGUMENTS,
        _NO_PARAMETERS,
        _PARALLEL_CHUNKED,
        _SCHEMA_DEFS,
        _PARALLEL_STREAM,
        _NAME_NORMALIZATION,
        _ROBUSTNESS,
        *model_specific_items(),
    )
}
