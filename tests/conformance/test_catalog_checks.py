"""Every catalog check passes against a correct (fake) server and fails, naming its item, against a broken one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.catalog import ITEMS
from conformance.check import Check, Item, Kind
from conformance.verdicts import items as ids

SELF = "self"
"""Expected item: the check's own item (a plan-specific expectation names it)."""

# (item, check) -> (fake-server bug, the item the finding must name). Tool-calling checks are shared by the
# model-specific items, so their table is keyed by check id only.
TOOL_CALLING_BUGS: dict[str, tuple[str, str]] = {
    "required-call": ("calls_in_content", SELF),
    "streamed-call": ("no_index", ids.TOOL_CALLING),
    "streamed-equals-non-streamed": ("stream_args_differ", SELF),
    "tool-result-turn": ("reject_tool_messages", SELF),
    "auto-choice-streamed": ("auto_stream_crash", SELF),
}
BUGS: dict[tuple[str, str], tuple[str, str]] = {
    (ids.BASE_CHAT, "basic-reply"): ("schema_body", SELF),
    (ids.BASE_CHAT, "max-tokens-length"): ("ignore_max_tokens", SELF),
    (ids.BASE_CHAT, "conversation-history"): ("reject_history", SELF),
    (ids.BASE_CHAT, "seeded-repeatable"): ("nondeterministic", SELF),
    (ids.BASE_STREAMING, "stream-basic"): ("role_missing", SELF),
    (ids.BASE_STREAMING, "streamed-equals-non-streamed"): ("stream_differs", SELF),
    (ids.BASE_STREAMING, "stream-length-finish"): ("stream_finish_stop_on_length", SELF),
    (ids.BASE_COMPLETIONS, "basic-completion"): ("schema_body", SELF),
    (ids.BASE_COMPLETIONS, "stream-completion"): ("no_done", SELF),
    (ids.BASE_COMPLETIONS, "streamed-equals-non-streamed"): ("stream_differs", SELF),
    (ids.BASE_MODELS, "list-models"): ("models_schema", SELF),
    (ids.BASE_ERRORS, "malformed-json"): ("fastapi_422", SELF),
    (ids.BASE_ERRORS, "missing-messages"): ("fastapi_422", SELF),
    (ids.BASE_ERRORS, "messages-wrong-type"): ("fastapi_422", SELF),
    (ids.BASE_ERRORS, "unknown-model"): ("unknown_model_ok", SELF),
    (ids.TTL, "ttl-accepted"): ("reject_ttl", SELF),
    (ids.REASONING_CONTENT, "no-think-markup"): ("think_leak", SELF),
    (ids.SPECULATIVE_DECODING, "draft-model-stats"): ("no_stats", SELF),
    (ids.TOOL_CHOICE, "none-no-calls"): ("ignore_tool_choice_none", SELF),
    (ids.TOOL_CHOICE, "auto-accepted"): ("reject_auto", SELF),
    (ids.TOOL_CHOICE, "required-calls"): ("calls_in_content", SELF),
    (ids.TOOL_CHOICE, "required-calls-streamed"): ("calls_in_content", SELF),
    (ids.TOOL_CHOICE, "named-function"): ("ignore_named_choice", SELF),
    (ids.TOOL_CHOICE, "named-function-streamed"): ("ignore_named_choice", SELF),
    (ids.FINISH_REASON_TOOL_CALLS, "non-streamed"): ("finish_stop_with_tools", SELF),
    (ids.FINISH_REASON_TOOL_CALLS, "streamed"): ("finish_stop_with_tools", SELF),
    (ids.FINISH_REASON_TOOL_CALLS, "named-streamed"): ("finish_function_call_with_tools", SELF),
    (ids.FINISH_REASON_TOOL_CALLS, "cut-call-finish-length"): ("finish_tool_calls_when_cut", SELF),
    (ids.MODEL_CAPABILITIES, "capabilities-array"): ("no_capabilities", SELF),
    (ids.NO_EMPTY_FUNCTION_NAME, "name-once-streamed"): ("empty_name_later", SELF),
    (ids.NO_EMPTY_FUNCTION_NAME, "name-once-parallel"): ("repeat_name", SELF),
    (ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS, "system-prompt-counted"): ("system_not_counted", SELF),
    (ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS, "tools-counted"): ("tools_not_counted", SELF),
    (ids.STREAMED_TOOL_ARGUMENTS, "arguments-in-fragments"): ("args_one_chunk", SELF),
    (ids.STREAMED_TOOL_ARGUMENTS, "nested-arguments-streamed"): ("args_truncated", SELF),
    (ids.TOOLS_WITHOUT_PARAMETERS, "no-parameters-call"): ("empty_args", SELF),
    (ids.TOOLS_WITHOUT_PARAMETERS, "no-parameters-streamed"): ("empty_args", SELF),
    (ids.STREAM_INCLUDE_USAGE, "usage-chunk-when-asked"): ("no_usage_chunk", SELF),
    (ids.STREAM_INCLUDE_USAGE, "no-usage-chunk-unasked"): ("usage_unasked", SELF),
    (ids.STREAM_INCLUDE_USAGE, "no-usage-chunk-when-false"): ("usage_unasked", SELF),
    (ids.STREAM_INCLUDE_USAGE, "completions-usage-chunk"): ("no_usage_chunk", SELF),
    (ids.STREAM_ERRORS, "unknown-model-streamed"): ("stream_error_field", SELF),
    (ids.STREAM_ERRORS, "context-overflow-streamed"): ("stream_error_unterminated", SELF),
    (ids.RESPONSE_FORMAT_TEXT, "text-accepted"): ("reject_response_format_text", SELF),
    (ids.RESPONSE_FORMAT_TEXT, "text-accepted-streamed"): ("reject_response_format_text", SELF),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-calls-streamed"): ("drop_second_call", SELF),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-streamed-equals-non-streamed"): ("drop_second_call", SELF),
    (ids.TOOL_SCHEMA_DEFS, "defs-followed"): ("strip_defs", SELF),
    (ids.TOOL_SCHEMA_DEFS, "defs-followed-streamed"): ("strip_defs", SELF),
    (ids.STREAM_USAGE_CORRECT, "streamed-usage-equals-non-streamed"): ("stream_usage_wrong", SELF),
    (ids.STREAM_USAGE_CORRECT, "tool-call-usage-equals-non-streamed"): ("stream_usage_wrong", SELF),
    (ids.PARALLEL_TOOL_CALLS_STREAM, "parallel-indices-sequential"): ("interleave_calls", SELF),
    (ids.PARALLEL_TOOL_CALLS_STREAM, "parallel-with-usage"): ("index_gap", SELF),
    (ids.REASONING_FIELD, "no-harmony-markup"): ("harmony_leak", SELF),
    (ids.TOOL_NAME_NORMALIZATION, "camel-case-name"): ("normalise_names", SELF),
    (ids.TOOL_NAME_NORMALIZATION, "kebab-case-name-streamed"): ("normalise_names", SELF),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "parameters-without-properties"): ("reject_no_properties", SELF),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "empty-parameters"): ("reject_no_properties", SELF),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "nested-parameters"): ("reject_nested", SELF),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "without-properties-streamed"): ("reject_no_properties", SELF),
    (ids.EMBEDDINGS, "single-input"): ("embedding_zero", SELF),
    (ids.EMBEDDINGS, "batch-input"): ("embeddings_missing_one", SELF),
    (ids.EMBEDDINGS, "base64-matches-float"): ("base64_float64", SELF),
}

# The Responses items are judged on exchanges recorded from the reference server, broken one way per check, in
# test_catalog_responses.py: this fake server speaks chat completions only.
CHECKS: list[tuple[Item, Check]] = [
    (item, check) for item in ITEMS for check in item.checks if item.extension != "responses"
]


def _bug_for(item: Item, check: Check) -> tuple[str, str]:
    if (item.id, check.id) in BUGS:
        bug, expected = BUGS[(item.id, check.id)]
    else:
        bug, expected = TOOL_CALLING_BUGS[check.id]
    return bug, item.id if expected == SELF else expected


def _ids(pair: tuple[Item, Check]) -> str:
    return f"{pair[0].id}:{pair[1].id}"


def test_every_check_has_a_breaking_bug() -> None:
    missing = []
    for item, check in CHECKS:
        shared = item.id == ids.TOOL_CALLING or item.kind is Kind.MODEL_SPECIFIC
        if (item.id, check.id) not in BUGS and not (shared and check.id in TOOL_CALLING_BUGS):
            missing.append(f"{item.id}:{check.id}")
    assert missing == []


@pytest.mark.parametrize("pair", CHECKS, ids=_ids)
def test_check_passes_on_a_correct_server(
    pair: tuple[Item, Check], fake_server: Callable[..., Any], check_runner: Callable[..., Any]
) -> None:
    _, check = pair
    findings = check_runner(check, fake_server())
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("pair", CHECKS, ids=_ids)
def test_check_fails_on_its_bug(
    pair: tuple[Item, Check], fake_server: Callable[..., Any], check_runner: Callable[..., Any]
) -> None:
    item, check = pair
    bug, expected_item = _bug_for(item, check)
    findings = check_runner(check, fake_server(bug))
    assert findings, f"{item.id}:{check.id} passed against a server with bug {bug!r}"
    named = [f for f in findings if f.item == expected_item]
    assert named, f"no finding names {expected_item}; got {[(f.item, f.check) for f in findings]}"
    finding = named[0]
    assert finding.message
    assert str(finding).startswith(f"[{expected_item}] ")
    # the evidence: the offending chunk, field or body is shown
    assert finding.raw or finding.pointer is not None or finding.chunk is not None
