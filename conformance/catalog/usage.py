"""Items on token usage and stream options: 0.3.17 counting, 0.3.18 include_usage and stream errors, 0.3.19."""

from __future__ import annotations

from conformance.catalog import exercised as ex
from conformance.catalog import requests as rq
from conformance.catalog.expect import (
    make_check,
    prompt_tokens_grow,
    same_usage,
    stream_error_reported,
    succeeded,
)
from conformance.check import Item, Kind
from conformance.verdicts import items as ids

__all__ = ["USAGE_ITEMS"]

_QUESTION = "What is the capital of France?"
_SYSTEM = (
    "You are a concise geography assistant working for a travel company. You answer questions about countries, "
    "capitals, rivers and mountains. Always answer in one word, without punctuation, without greetings and "
    "without any explanation, even when the question seems to ask for more detail than that."
)
"""Longer than the default system prompt some chat templates add when none is given (SmolLM2's does)."""
_OVERFLOW_PROMPT = "Repeat this. " + "lorem ipsum dolor sit amet " * 8000
"""About 40,000 tokens: longer than the context of any default local setup."""

_USAGE_COUNTS = Item(
    id=ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS,
    version="0.3.17",
    title="Token counts include the system prompt and tool definitions",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS,
            "system-prompt-counted",
            "Adding a system prompt to the same question raises usage.prompt_tokens",
            [rq.chat(_QUESTION, max_tokens=8), rq.chat(_QUESTION, system=_SYSTEM, max_tokens=8)],
            succeeded(),
            prompt_tokens_grow(0, 1, "system prompt"),
            exercised=ex.usage_reported(),
        ),
        make_check(
            ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS,
            "tools-counted",
            "Adding a tool definition to the same question raises usage.prompt_tokens",
            [rq.chat(_QUESTION, max_tokens=8), rq.chat(_QUESTION, tools=[rq.WEATHER_TOOL], max_tokens=8)],
            succeeded(),
            prompt_tokens_grow(0, 1, "tool definition"),
            exercised=ex.usage_reported(),
        ),
    ),
)

_INCLUDE_USAGE = Item(
    id=ids.STREAM_INCLUDE_USAGE,
    version="0.3.18",
    title="stream_options.include_usage: a final usage chunk when asked, and only then",
    kind=Kind.API,
    endpoints=(rq.CHAT, rq.COMPLETIONS),
    checks=(
        make_check(
            ids.STREAM_INCLUDE_USAGE,
            "usage-chunk-when-asked",
            "include_usage true: exactly one last chunk with choices [] and usage, before [DONE] (lmstudio #676)",
            [rq.chat("Say hello.", stream=True, include_usage=True)],
            succeeded(),
        ),
        make_check(
            ids.STREAM_INCLUDE_USAGE,
            "no-usage-chunk-unasked",
            "Without stream_options, no chunk carries usage (llama.cpp #12102)",
            [rq.chat("Say hello.", stream=True)],
            succeeded(),
        ),
        make_check(
            ids.STREAM_INCLUDE_USAGE,
            "no-usage-chunk-when-false",
            "include_usage false: no chunk carries usage",
            [rq.chat("Say hello.", stream=True, include_usage=False)],
            succeeded(),
        ),
        make_check(
            ids.STREAM_INCLUDE_USAGE,
            "completions-usage-chunk",
            "include_usage on POST /v1/completions also ends with one usage chunk",
            [rq.completion(stream=True, include_usage=True)],
            succeeded(),
        ),
    ),
)

_STREAM_ERRORS = Item(
    id=ids.STREAM_ERRORS,
    version="0.3.18",
    title="Errors of streaming requests arrive in the format OpenAI clients expect",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.STREAM_ERRORS,
            "unknown-model-streamed",
            'A streamed request for an unknown model fails as a JSON error status or a `data: {"error": ...}` '
            "event, never an `error:` field or a cut stream",
            [rq.chat("Say hello.", stream=True, model=rq.UNKNOWN_MODEL)],
            stream_error_reported(0, required=True),
        ),
        make_check(
            ids.STREAM_ERRORS,
            "context-overflow-streamed",
            "A streamed prompt far longer than the context fails in that format (a server that truncates instead "
            "passes if its stream is well-formed)",
            [rq.chat(_OVERFLOW_PROMPT, stream=True, max_tokens=8)],
            stream_error_reported(0, required=False),
            exercised=ex.errored(0),
        ),
    ),
)

_STREAM_USAGE_CORRECT = Item(
    id=ids.STREAM_USAGE_CORRECT,
    version="0.3.19",
    title="Correct usage statistics in streamed responses",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    checks=(
        make_check(
            ids.STREAM_USAGE_CORRECT,
            "streamed-usage-equals-non-streamed",
            "The usage chunk of a stream equals the usage of the same seeded non-streamed request",
            [rq.chat("Name three fruits."), rq.chat("Name three fruits.", stream=True, include_usage=True)],
            succeeded(),
            same_usage(0, 1),
            exercised=ex.usage_reported(),
        ),
        make_check(
            ids.STREAM_USAGE_CORRECT,
            "tool-call-usage-equals-non-streamed",
            "The same for a tool call: streamed usage equals non-streamed usage",
            [
                rq.chat(rq.WEATHER_PROMPT, tools=[rq.WEATHER_TOOL], tool_choice="required", max_tokens=64),
                rq.chat(
                    rq.WEATHER_PROMPT,
                    tools=[rq.WEATHER_TOOL],
                    tool_choice="required",
                    max_tokens=64,
                    stream=True,
                    include_usage=True,
                ),
            ],
            succeeded(),
            same_usage(0, 1),
            exercised=ex.all_of(ex.called(0), ex.called(1), ex.usage_reported()),
        ),
    ),
)

USAGE_ITEMS: dict[str, Item] = {i.id: i for i in (_USAGE_COUNTS, _INCLUDE_USAGE, _STREAM_ERRORS, _STREAM_USAGE_CORRECT)}
