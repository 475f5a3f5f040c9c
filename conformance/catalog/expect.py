"""Plan-specific expectations over a check's exchanges, and `make_check`, which adds them to the rules."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import openai

from conformance.catalog.exercised import answered
from conformance.catalog.requests import Capital, RequestFactory
from conformance.check import Check, Exercised, Plan, send_all
from conformance.exchange import Exchange
from conformance.findings import ERROR, Finding
from conformance.verdicts import Context, Issue, answer, replay, validate_contexts
from conformance.verdicts.answer import Answer
from conformance.verdicts.embeddings import decode_vector
from conformance.verdicts.usage import usage_numbers

__all__ = [
    "Expectation",
    "at_least_calls",
    "called",
    "chained_check",
    "distinct_call_ids",
    "error_status",
    "finish",
    "fragmented_arguments",
    "has_content",
    "lists_models",
    "make_check",
    "prompt_tokens_grow",
    "same_answer",
    "same_usage",
    "same_vectors",
    "sdk_parses",
    "stream_error_reported",
    "succeeded",
    "tools_reach_model",
]

Expectation = Callable[[Sequence[Context]], Iterable[Issue]]
"""Judges the contexts of all exchanges a plan produced; issues name the exchange they concern."""


def make_check(
    item: str,
    check_id: str,
    title: str,
    requests: Sequence[RequestFactory],
    *expectations: Expectation,
    exercised: Exercised | None = None,
) -> Check:
    """A check sending `requests` in order, judged by every rule on each exchange plus `expectations`.

    `exercised` says what the exchanges must show for the check's feature to count as tried (default: a
    successful answer of the kind asked for, see `answered`). When it is missing, the plan-specific
    expectations are not judged (they presuppose the feature) and the check is `skip`; the rules still are.
    """
    return chained_check(item, check_id, title, send_all(*requests), len(requests), *expectations, exercised=exercised)


def chained_check(
    item: str,
    check_id: str,
    title: str,
    plan: Plan,
    count: int,
    *expectations: Expectation,
    exercised: Exercised | None = None,
    shape: Callable[[Sequence[Exchange]], Any] | None = None,
) -> Check:
    """A check whose plan may use earlier answers (a stored id, a listed model), judged as make_check's are.

    `count` is the fewest requests the plan sends (fewer exchanges is a finding; a plan that may stop early
    says why through `exercised`); `shape` replaces the default fingerprint.
    """
    shown = exercised or answered()

    def verdict(exchanges: Sequence[Exchange]) -> list[Finding]:
        contexts = [Context(e) for e in exchanges]
        many = len(exchanges) > 1
        findings = validate_contexts(contexts)
        if len(contexts) < count:
            findings.append(
                Finding(
                    item=item,
                    check=check_id,
                    message=f"the plan sends {count} requests but only {len(contexts)} exchange(s) were judged",
                    expected=count,
                    seen=len(contexts),
                )
            )
            return findings
        if shown(exchanges) is not None:
            return findings
        for expectation in expectations:
            for issue in expectation(contexts):
                ctx = contexts[issue.exchange or 0]
                finding = issue.finding(
                    item=item, check=check_id, endpoint=ctx.exchange.endpoint, raw=ctx.raw_of(issue)
                )
                findings.append(finding if many else replace(finding, exchange=None))
        return findings

    return Check(id=check_id, item=item, title=title, plan=plan, verdict=verdict, shape=shape, exercised=shown)


def succeeded(*indexes: int) -> Expectation:
    """The exchanges (all when none given) got a 2xx answer, and a stream carried no error event."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes or range(len(contexts)):
            ctx = contexts[i]
            if ctx.response is None:
                continue  # the response-received rule reports it
            if not ctx.ok:
                yield Issue(
                    f"the server rejected the request with {ctx.status}: {_error_message(ctx.body)}",
                    exchange=i,
                    expected="2xx",
                    seen=ctx.status,
                )
            elif ctx.stream is not None and ctx.stream.errors:
                j, payload = ctx.stream.errors[0]
                yield Issue(
                    f"the stream reported an error: {_error_message(payload)}",
                    exchange=i,
                    chunk=j,
                    expected="an answer",
                    seen=payload,
                )

    return judge


def has_content(*indexes: int) -> Expectation:
    """The answer has non-empty text."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes or range(len(contexts)):
            found = answer(contexts[i])
            if found is not None and found.error is None and not (found.content or "").strip():
                yield Issue(
                    "the answer has no text content",
                    exchange=i,
                    chunk=found.finish_chunk,
                    pointer="/choices/0",
                    expected="non-empty content",
                    seen=found.content,
                )

    return judge


def finish(index: int, *reasons: str) -> Expectation:
    """The answer's finish_reason is one of `reasons`."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = answer(contexts[index])
        if found is not None and found.error is None and found.finish_reason not in reasons:
            yield Issue(
                f"finish_reason is {found.finish_reason!r}, expected {' or '.join(map(repr, reasons))}",
                exchange=index,
                chunk=found.finish_chunk,
                pointer="/choices/0/finish_reason",
                expected=list(reasons),
                seen=found.finish_reason,
            )

    return judge


def at_least_calls(index: int, count: int, *, name: str | None = None) -> Expectation:
    """The answer has at least `count` tool calls (each named `name`, when given)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = answer(contexts[index])
        if found is None or found.error is not None:
            return
        calls = found.tool_calls
        if len(calls) < count:
            yield Issue(
                f"the answer has {len(calls)} tool call(s), expected at least {count}"
                + (f"; content: {found.content[:120]!r}" if found.content else ""),
                exchange=index,
                chunk=found.finish_chunk,
                pointer=_calls_pointer(found),
                expected=f">= {count} tool calls",
                seen=[c.name for c in calls],
            )
        for call in calls:
            if name is not None and call.name != name:
                yield Issue(
                    f"tool call {call.index} names {call.name!r}, expected exactly {name!r}",
                    exchange=index,
                    chunk=call.chunk,
                    pointer=call.pointer + "/function/name",
                    expected=name,
                    seen=call.name,
                )

    return judge


def tools_reach_model(without: int, with_tools: int) -> Expectation:
    """Tools sent without `tool_choice` (OpenAI's default is "auto") reach the model: the answer calls one, or
    usage.prompt_tokens grows over the same request without tools."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = answer(contexts[without]), answer(contexts[with_tools])
        if left is None or right is None or left.error is not None or right.error is not None or right.tool_calls:
            return
        a, b = usage_numbers(left.usage), usage_numbers(right.usage)
        if a is None or b is None or b[0] > a[0]:
            return
        yield Issue(
            f"tools sent without tool_choice did not reach the model: no tool call, and prompt_tokens is {b[0]} "
            f'with the tools and {a[0]} without (OpenAI\'s default tool_choice is "auto"; the server or its chat '
            "template dropped the tool definitions)",
            exchange=with_tools,
            pointer="/usage/prompt_tokens",
            expected=f"a tool call, or prompt_tokens > {a[0]}",
            seen=b[0],
        )

    return judge


def called(index: int, name: str) -> Expectation:
    """At least one tool call, every one naming `name` exactly."""
    return at_least_calls(index, 1, name=name)


def distinct_call_ids(index: int) -> Expectation:
    """Every tool call has its own id."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = answer(contexts[index])
        if found is None:
            return
        ids = [c.id for c in found.tool_calls]
        if len(set(ids)) != len(ids):
            yield Issue(
                "tool calls share an id; clients send each result back by id",
                exchange=index,
                pointer=_calls_pointer(found),
                expected="distinct ids",
                seen=ids,
            )

    return judge


def fragmented_arguments(index: int) -> Expectation:
    """Some tool call's arguments arrive in more than one delta (streamed as generated)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = answer(contexts[index])
        if found is None or not found.streamed or not found.tool_calls:
            return
        if max(c.fragments for c in found.tool_calls) < 2:
            call = found.tool_calls[0]
            yield Issue(
                "each tool call's arguments arrive in a single delta: they are not streamed as they are generated",
                exchange=index,
                chunk=call.chunk,
                pointer=call.pointer + "/function/arguments",
                expected="arguments split over several deltas",
                seen=[c.fragments for c in found.tool_calls],
            )

    return judge


def same_answer(plain: int, streamed: int, *, severity: str = ERROR) -> Expectation:
    """The second answer (a stream: as openai-python rebuilds it) says what the first says (temperature 0, seed).

    `severity` WARNING for a repeat of the same request: OpenAI calls `seed` determinism best effort.
    """

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left = answer(contexts[plain])
        right_ctx = contexts[streamed]
        right = answer(right_ctx)
        if left is None or right is None or left.error is not None or right.error is not None:
            return
        what = "the streamed answer" if right.streamed else f"answer #{streamed}"
        than = "the non-streamed answer" if right.streamed and not left.streamed else f"answer #{plain}"
        rebuilt = replay(right_ctx)
        content: str | None
        if rebuilt is not None and rebuilt.message is not None:
            message = rebuilt.message
            content = message.get("content") if isinstance(message.get("content"), str) else None
            calls = [
                (c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
                for c in message.get("tool_calls") or []
            ]
        else:
            content, calls = right.content, [(c.name, c.arguments) for c in right.tool_calls]
        if (left.content or "") != (content or ""):
            yield Issue(
                f"{what}'s text differs from {than} to the same seeded temperature-0 request",
                exchange=streamed,
                chunk=right.finish_chunk,
                expected=left.content,
                seen=content,
                severity=severity,
            )
        plain_calls = [(c.name, _parsed(c.arguments)) for c in left.tool_calls]
        stream_calls = [(n, _parsed(a or "")) for n, a in calls]
        if plain_calls != stream_calls:
            yield Issue(
                f"the tool calls of {what}"
                + (" (as openai-python rebuilds them)" if right.streamed else "")
                + f" differ from those of {than}",
                exchange=streamed,
                chunk=right.finish_chunk,
                expected=[[n, a] for n, a in plain_calls],
                seen=[[n, a] for n, a in stream_calls],
                severity=severity,
            )
        if left.finish_reason != right.finish_reason:
            yield Issue(
                f"the finish_reason of {what} differs from that of {than}",
                exchange=streamed,
                chunk=right.finish_chunk,
                expected=left.finish_reason,
                seen=right.finish_reason,
                severity=severity,
            )

    return judge


def same_usage(plain: int, streamed: int) -> Expectation:
    """The stream's usage chunk reports the same counts as the non-streamed answer."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = answer(contexts[plain]), answer(contexts[streamed])
        if left is None or right is None or left.error is not None or right.error is not None:
            return
        a, b = usage_numbers(left.usage), usage_numbers(right.usage)
        if a is None or b is None:
            return  # the usage rules report missing usage
        if a != b:
            yield Issue(
                "streamed usage differs from the non-streamed usage of the same seeded request",
                exchange=streamed,
                chunk=right.usage_chunk,
                pointer="/usage",
                expected=dict(zip(("prompt_tokens", "completion_tokens", "total_tokens"), a, strict=True)),
                seen=dict(zip(("prompt_tokens", "completion_tokens", "total_tokens"), b, strict=True)),
            )

    return judge


def prompt_tokens_grow(smaller: int, larger: int, what: str) -> Expectation:
    """usage.prompt_tokens of `larger` exceeds that of `smaller` (the request added `what`)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = answer(contexts[smaller]), answer(contexts[larger])
        a = usage_numbers(left.usage) if left else None
        b = usage_numbers(right.usage) if right else None
        if a is None or b is None:
            return
        if b[0] <= a[0]:
            yield Issue(
                f"prompt_tokens is {b[0]} with {what} and {a[0]} without: the {what} is not counted",
                exchange=larger,
                pointer="/usage/prompt_tokens",
                expected=f"> {a[0]}",
                seen=b[0],
            )

    return judge


def error_status(index: int, *statuses: int) -> Expectation:
    """The request is refused with one of `statuses` (the error-body rule judges the body)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.response is not None and ctx.status not in statuses:
            yield Issue(
                f"status {ctx.status}, expected {' or '.join(map(str, statuses))} with an OpenAI error object",
                exchange=index,
                expected=list(statuses),
                seen=ctx.status,
            )

    return judge


def stream_error_reported(index: int, *, required: bool) -> Expectation:
    """A streamed request that fails says so: an error status with a JSON error, or an error event."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.response is None:
            return
        reported = not ctx.ok or (ctx.stream is not None and bool(ctx.stream.errors))
        if required and not reported:
            yield Issue(
                "the request cannot succeed but the server reported no error (neither an error status nor a "
                '`data: {"error": ...}` event)',
                exchange=index,
                expected="an error",
                seen=ctx.status,
            )

    return judge


def lists_models(index: int) -> Expectation:
    """The model list is not empty."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.ok and isinstance(ctx.body, dict) and ctx.body.get("data") == []:
            yield Issue("the model list is empty", exchange=index, pointer="/data", expected="at least one model")

    return judge


def same_vectors(first: int, second: int) -> Expectation:
    """Both embedding answers decode to the same vectors (float32 precision)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        a, b = _vectors(contexts[first]), _vectors(contexts[second])
        if a is None or b is None:
            return
        for k, (x, y) in enumerate(zip(a, b, strict=False)):
            if len(x) != len(y) or any(
                not math.isclose(p, q, rel_tol=1e-5, abs_tol=1e-6) for p, q in zip(x, y, strict=True)
            ):
                yield Issue(
                    f"embedding {k} decodes to different numbers than the float answer for the same input",
                    exchange=second,
                    pointer=f"/data/{k}/embedding",
                    expected=x[:4],
                    seen=y[:4],
                )
                return

    return judge


def sdk_parses(index: int) -> Expectation:
    """openai-python's `chat.completions.parse(response_format=Capital)`, fed the recorded answer, returns a parsed
    `Capital` without raising (no network: the answer is replayed through a mock transport)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        response = ctx.response
        if response is None or response.is_stream:
            return
        recorded = httpx.Response(response.status, headers={"content-type": "application/json"}, json=response.body)
        client = openai.OpenAI(
            api_key="recorded",
            base_url="http://recorded.invalid/v1",
            # openai 3 types its client as httpx2's and still accepts an httpx one (openai/_httpx2.py)
            http_client=httpx.Client(transport=httpx.MockTransport(lambda _: recorded)),  # type: ignore[arg-type]
            max_retries=0,
        )
        try:
            with client:
                parsed = (
                    client.chat.completions.parse(
                        model=str(ctx.request.get("model", "")),
                        messages=ctx.request.get("messages") or [],
                        response_format=Capital,
                    )
                    .choices[0]
                    .message.parsed
                )
        except Exception as exc:  # whatever the SDK raises is what a client sees
            yield Issue(
                f"openai-python's chat.completions.parse() raised {type(exc).__name__}: {exc}",
                exchange=index,
                expected="a ParsedChatCompletion whose message.parsed is a Capital",
                seen=f"{type(exc).__name__}: {exc}",
            )
            return
        if not isinstance(parsed, Capital):
            yield Issue(
                f"openai-python's chat.completions.parse() returned no parsed object (message.parsed is {parsed!r})",
                exchange=index,
                pointer="/choices/0/message/content",
                expected="message.parsed, a Capital",
                seen=parsed,
            )

    return judge


def _vectors(ctx: Context) -> list[list[float]] | None:
    if not ctx.ok or not isinstance(ctx.body, dict) or not isinstance(ctx.body.get("data"), list):
        return None
    vectors = [decode_vector(d.get("embedding")) if isinstance(d, dict) else None for d in ctx.body["data"]]
    return None if any(v is None for v in vectors) else [v for v in vectors if v is not None]


def _calls_pointer(found: Answer) -> str:
    return "/choices/0/delta/tool_calls" if found.streamed else "/choices/0/message/tool_calls"


def _parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _error_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return repr(body["error"].get("message"))
    if isinstance(body, dict) and "error" in body:
        return repr(body["error"])
    text = json.dumps(body) if not isinstance(body, str) else body
    return text[:200]
