"""Every catalog check passes against a correct (fake) server, fails, naming its item, against a broken one, and
never passes against a server whose answers do not exercise its feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.catalog import ITEMS
from conformance.check import Check, Item, Kind, Status
from conformance.runner import CheckRun, applicable, judge_check
from conformance.verdicts import items as ids
from tests.conformance.conftest import TARGET

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
    "tools-without-tool-choice": ("tools_not_counted", SELF),
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
    (ids.REASONING_CONTENT, "no-think-markup"): ("think_leak", SELF),
    (ids.SPECULATIVE_DECODING, "draft-model-stats"): ("no_stats", SELF),
    (ids.PRESETS, "unknown-preset-refused"): ("ignore_presets", SELF),
    (ids.PRESETS, "named-preset-applies"): ("ignore_presets", SELF),
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
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-calls-streamed"): ("shared_call_id", SELF),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-true"): ("shared_call_id", SELF),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-false"): ("ignore_parallel_false", SELF),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-false-streamed"): ("ignore_parallel_false", SELF),
    (ids.STRUCTURED_OUTPUT, "json-object"): ("json_invalid", SELF),
    (ids.STRUCTURED_OUTPUT, "json-schema-strict"): ("json_invalid", SELF),
    (ids.STRUCTURED_OUTPUT, "json-schema-not-strict"): ("json_schema_500", SELF),
    (ids.STRUCTURED_OUTPUT, "json-schema-streamed"): ("json_invalid", SELF),
    (ids.STRUCTURED_OUTPUT, "sdk-parse"): ("json_schema_500", SELF),
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

# The Anthropic checks have their own fake server (test_catalog_anthropic.py); the Responses items are judged on
# exchanges recorded from the reference server, broken one way per check (test_catalog_responses.py): this fake
# server speaks chat completions only.
# The TTL and auth-token checks need a server with model state or tokens: their fakes are in
# test_catalog_lifecycle.py.
OWN_FAKES = frozenset({ids.TTL, ids.AUTH_TOKENS})
CHECKS: list[tuple[Item, Check]] = [
    (item, check)
    for item in ITEMS
    for check in item.checks
    if item.extension not in ("anthropic", "responses")
    and item.id not in OWN_FAKES
    and not item.id.startswith("0.4.0/rest-v1-")
]
"""The checks of OpenAI's surface and LM Studio's v0 extras; the others have their own fake servers (the v1 items:
tests/conformance/test_catalog_lmstudio_v1.py)."""


def _bug_for(item: Item, check: Check) -> tuple[str, str]:
    if (item.id, check.id) in BUGS:
        bug, expected = BUGS[(item.id, check.id)]
    else:
        bug, expected = TOOL_CALLING_BUGS[check.id]
    if expected == ids.TOOL_CALLING and item.kind is Kind.MODEL_SPECIFIC:
        expected = SELF  # a model-specific item owns 0.3.6's findings on its model family
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


NOT_EXERCISED = "not exercised: "
NOT_IMPLEMENTED = "not implemented by this server"

# (item, check) -> (a server whose answers lack the check's feature, what the check must say). A check whose
# feature is the answer itself (accepted, refused with the right error) cannot be unexercised by a 2xx answer:
# its row is the answer that lacks the feature, and the check fails on it.
TOOL_CALLING_LACKS: dict[str, tuple[str, str]] = {
    "required-call": ("ignore_tool_choice", NOT_EXERCISED + "no tool call was returned"),
    "streamed-call": ("ignore_tool_choice", NOT_EXERCISED + "no tool call was returned"),
    "streamed-equals-non-streamed": ("ignore_tool_choice", NOT_EXERCISED + "request #0: no tool call"),
    "tool-result-turn": ("reject_tool_messages", "fail"),
    "auto-choice-streamed": ("auto_stream_crash", "fail"),
    "tools-without-tool-choice": ("no_usage", NOT_EXERCISED + "request #0: the answer reports no usage"),
}
LACKS: dict[tuple[str, str], tuple[str, str]] = {
    (ids.BASE_CHAT, "basic-reply"): ("schema_body", "fail"),
    (ids.BASE_CHAT, "max-tokens-length"): ("short_answers", NOT_EXERCISED + "the answer ended"),
    (ids.BASE_CHAT, "conversation-history"): ("reject_history", "fail"),
    (ids.BASE_CHAT, "seeded-repeatable"): ("reject_history", "pass"),  # see test_seed_determinism_only_warns
    (ids.BASE_STREAMING, "stream-basic"): ("no_done", "fail"),
    (ids.BASE_STREAMING, "streamed-equals-non-streamed"): ("stream_differs", "fail"),
    (ids.BASE_STREAMING, "stream-length-finish"): ("short_answers", NOT_EXERCISED + "the answer ended"),
    (ids.BASE_COMPLETIONS, "basic-completion"): ("schema_body", "fail"),
    (ids.BASE_COMPLETIONS, "stream-completion"): ("no_done", "fail"),
    (ids.BASE_COMPLETIONS, "streamed-equals-non-streamed"): ("stream_differs", "fail"),
    (ids.BASE_MODELS, "list-models"): ("models_schema", "fail"),
    (ids.BASE_ERRORS, "malformed-json"): ("fastapi_422", "fail"),
    (ids.BASE_ERRORS, "missing-messages"): ("fastapi_422", "fail"),
    (ids.BASE_ERRORS, "messages-wrong-type"): ("fastapi_422", "fail"),
    (ids.BASE_ERRORS, "unknown-model"): ("unknown_model_ok", "fail"),
    (ids.STRUCTURED_OUTPUT, "json-object"): ("json_invalid", "fail"),
    (ids.STRUCTURED_OUTPUT, "json-schema-strict"): ("json_schema_500", "fail"),
    (ids.STRUCTURED_OUTPUT, "json-schema-not-strict"): ("json_schema_500", "fail"),
    (ids.STRUCTURED_OUTPUT, "json-schema-streamed"): ("json_schema_500", "fail"),
    (ids.STRUCTURED_OUTPUT, "sdk-parse"): ("json_schema_500", "fail"),
    (ids.REASONING_CONTENT, "no-think-markup"): ("no_reasoning", NOT_EXERCISED + "the model produced no reasoning"),
    (ids.SPECULATIVE_DECODING, "draft-model-stats"): ("no_lmstudio_api", NOT_IMPLEMENTED),
    (ids.PRESETS, "unknown-preset-refused"): ("ignore_presets", NOT_IMPLEMENTED),
    (ids.PRESETS, "named-preset-applies"): ("nondeterministic", NOT_EXERCISED + "the same seeded temperature-0"),
    (ids.TOOL_CHOICE, "none-no-calls"): ("ignore_tool_choice_none", "fail"),
    (ids.TOOL_CHOICE, "auto-accepted"): ("reject_auto", "fail"),
    (ids.TOOL_CHOICE, "required-calls"): ("ignore_tool_choice", "fail"),
    (ids.TOOL_CHOICE, "required-calls-streamed"): ("ignore_tool_choice", "fail"),
    (ids.TOOL_CHOICE, "named-function"): ("ignore_tool_choice", "fail"),
    (ids.TOOL_CHOICE, "named-function-streamed"): ("ignore_tool_choice", "fail"),
    (ids.FINISH_REASON_TOOL_CALLS, "non-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.FINISH_REASON_TOOL_CALLS, "streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.FINISH_REASON_TOOL_CALLS, "named-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.FINISH_REASON_TOOL_CALLS, "cut-call-finish-length"): ("short_calls", NOT_EXERCISED + "the tool call was"),
    (ids.MODEL_CAPABILITIES, "capabilities-array"): ("no_lmstudio_api", NOT_IMPLEMENTED),
    (ids.NO_EMPTY_FUNCTION_NAME, "name-once-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.NO_EMPTY_FUNCTION_NAME, "name-once-parallel"): ("single_call", NOT_EXERCISED + "the answer has 1 tool"),
    (ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS, "system-prompt-counted"): ("no_usage", NOT_EXERCISED + "request #0"),
    (ids.USAGE_INCLUDES_SYSTEM_AND_TOOLS, "tools-counted"): ("no_usage", NOT_EXERCISED + "request #0"),
    (ids.STREAMED_TOOL_ARGUMENTS, "arguments-in-fragments"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.STREAMED_TOOL_ARGUMENTS, "nested-arguments-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.TOOLS_WITHOUT_PARAMETERS, "no-parameters-call"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.TOOLS_WITHOUT_PARAMETERS, "no-parameters-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.STREAM_INCLUDE_USAGE, "usage-chunk-when-asked"): ("no_usage_chunk", "fail"),
    (ids.STREAM_INCLUDE_USAGE, "no-usage-chunk-unasked"): ("usage_unasked", "fail"),
    (ids.STREAM_INCLUDE_USAGE, "no-usage-chunk-when-false"): ("usage_unasked", "fail"),
    (ids.STREAM_INCLUDE_USAGE, "completions-usage-chunk"): ("no_usage_chunk", "fail"),
    (ids.STREAM_ERRORS, "unknown-model-streamed"): ("unknown_model_ok", "fail"),
    (ids.STREAM_ERRORS, "context-overflow-streamed"): (
        "truncate_long_prompts",
        NOT_EXERCISED + "the server answered without an error",
    ),
    (ids.RESPONSE_FORMAT_TEXT, "text-accepted"): ("reject_response_format_text", "fail"),
    (ids.RESPONSE_FORMAT_TEXT, "text-accepted-streamed"): ("reject_response_format_text", "fail"),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-calls-streamed"): ("single_call", NOT_EXERCISED + "the answer has 1"),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-streamed-equals-non-streamed"): (
        "single_call",
        NOT_EXERCISED + "request #0: the answer has 1 tool call, not 2",
    ),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-true"): ("single_call", NOT_EXERCISED + "the answer has 1"),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-false"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.PARALLEL_TOOL_CALLS_CHUNKED, "parallel-tool-calls-false-streamed"): (
        "ignore_tool_choice",
        NOT_EXERCISED + "no tool call",
    ),
    (ids.TOOL_SCHEMA_DEFS, "defs-followed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call was returned"),
    (ids.TOOL_SCHEMA_DEFS, "defs-followed-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.STREAM_USAGE_CORRECT, "streamed-usage-equals-non-streamed"): ("no_usage", NOT_EXERCISED + "request #0"),
    (ids.STREAM_USAGE_CORRECT, "tool-call-usage-equals-non-streamed"): ("no_usage", NOT_EXERCISED + "request #0"),
    (ids.PARALLEL_TOOL_CALLS_STREAM, "parallel-indices-sequential"): ("single_call", NOT_EXERCISED + "the answer"),
    (ids.PARALLEL_TOOL_CALLS_STREAM, "parallel-with-usage"): ("single_call", NOT_EXERCISED + "the answer has 1"),
    (ids.REASONING_FIELD, "no-harmony-markup"): ("no_reasoning", NOT_EXERCISED + "the model produced no reasoning"),
    (ids.TOOL_NAME_NORMALIZATION, "camel-case-name"): ("ignore_tool_choice", NOT_EXERCISED + "no tool call"),
    (ids.TOOL_NAME_NORMALIZATION, "kebab-case-name-streamed"): ("ignore_tool_choice", NOT_EXERCISED + "no tool"),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "parameters-without-properties"): ("reject_no_properties", "fail"),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "empty-parameters"): ("reject_no_properties", "fail"),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "nested-parameters"): ("reject_nested", "fail"),
    (ids.TOOLS_REQUEST_ROBUSTNESS, "without-properties-streamed"): ("reject_no_properties", "fail"),
    (ids.EMBEDDINGS, "single-input"): ("embedding_zero", "fail"),
    (ids.EMBEDDINGS, "batch-input"): ("embeddings_missing_one", "fail"),
    (ids.EMBEDDINGS, "base64-matches-float"): ("base64_float64", "fail"),
}


def _judged(item: Item, check: Check, server: Any, plan_runner: Callable[..., Any]) -> CheckRun:
    return applicable(item, TARGET, judge_check(check, plan_runner(check, server)))


def _lack_for(item: Item, check: Check) -> tuple[str, str]:
    return LACKS.get((item.id, check.id)) or TOOL_CALLING_LACKS[check.id]


def test_every_check_has_an_answer_lacking_its_feature() -> None:
    missing = [
        f"{item.id}:{check.id}"
        for item, check in CHECKS
        if (item.id, check.id) not in LACKS and check.id not in TOOL_CALLING_LACKS
    ]
    assert missing == []
    assert all(check.exercised is not None for _, check in CHECKS)


@pytest.mark.parametrize("pair", CHECKS, ids=_ids)
def test_check_passes_only_when_exercised_on_a_correct_server(
    pair: tuple[Item, Check], fake_server: Callable[..., Any], plan_runner: Callable[..., Any]
) -> None:
    item, check = pair
    run = _judged(item, check, fake_server(), plan_runner)
    assert (run.result.status, run.result.message, run.foreign) == (Status.PASS, "", ())


@pytest.mark.parametrize("pair", CHECKS, ids=_ids)
def test_check_never_passes_when_its_feature_is_missing(
    pair: tuple[Item, Check], fake_server: Callable[..., Any], plan_runner: Callable[..., Any]
) -> None:
    item, check = pair
    bug, expected = _lack_for(item, check)
    result = _judged(item, check, fake_server(bug), plan_runner).result
    if expected == "pass":
        return  # nothing in an answer can leave this check's feature out
    if expected == "fail":
        assert result.status == Status.FAIL, (bug, result)
        assert all(e["item"] == item.id for e in result.evidence)
        return
    assert result.status == Status.SKIP, (bug, result)
    assert result.message.startswith(expected), result.message
    assert result.evidence == () or expected == NOT_IMPLEMENTED


def test_a_skip_names_the_item_whose_failure_explains_it(
    fake_server: Callable[..., Any], plan_runner: Callable[..., Any]
) -> None:
    item = next(i for i in ITEMS if i.id == ids.TOOL_SCHEMA_DEFS)
    run = _judged(item, item.checks[0], fake_server("ignore_tool_choice"), plan_runner)
    assert run.result.message == (
        "not exercised: no tool call was returned (finish_reason 'stop'); see 0.3.15/tool-choice"
    )
    assert {f.item for f in run.foreign} == {ids.TOOL_CHOICE}  # the rule that explains it, for 0.3.15


def test_required_calls_fail_with_zero_calls_at_max_tokens(
    fake_server: Callable[..., Any], plan_runner: Callable[..., Any], wire: Any
) -> None:
    """llama.cpp #27217: `required` not enforced, the prose runs to max_tokens, finish_reason "length"."""
    item = next(i for i in ITEMS if i.id == ids.TOOL_CHOICE)
    check = next(c for c in item.checks if c.id == "required-calls")
    prose = wire.completion("I cannot check the weather, but Paris is often", finish="length")
    prose["usage"] = wire.usage(40, 64)

    def server(spec: Any) -> Any:
        return wire.plain(spec.body, prose)

    result = _judged(item, check, server, plan_runner).result
    assert result.status == Status.FAIL
    assert result.message.startswith("the answer has 0 tool call(s), expected at least 1")


def test_seed_determinism_only_warns(fake_server: Callable[..., Any], plan_runner: Callable[..., Any]) -> None:
    item = next(i for i in ITEMS if i.id == ids.BASE_CHAT)
    check = next(c for c in item.checks if c.id == "seeded-repeatable")
    result = _judged(item, check, fake_server("nondeterministic"), plan_runner).result
    assert result.status == Status.PASS
    assert result.message.startswith("warning: answer #1's text differs")
    assert [e["severity"] for e in result.evidence] == ["warning"]


def test_named_choice_checks_offer_a_second_tool_with_parameters() -> None:
    """The parameter-less tool of 0.3.17 must not be what a 0.3.15 named-choice check depends on."""
    from conformance.check import Target

    item = next(i for i in ITEMS if i.id == ids.TOOL_CHOICE)
    for check in item.checks:
        for spec in check.plan(Target("http://x.invalid", "m")):
            for tool in spec.body.get("tools", []):
                assert "parameters" in tool["function"], check.id
