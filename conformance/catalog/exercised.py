"""What a check's exchanges must show for its feature to count as tried (`Check.exercised` predicates).

Each returns None when the feature was exercised, else why not, naming the item whose failure explains it
("no tool call was returned; see 0.3.15/tool-choice"). An error answer counts as exercised: the check's
own expectations then judge it (a 500 for a `$defs` tool fails the `$defs` item).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.check import Exercised
from conformance.exchange import Exchange
from conformance.verdicts import Context, Endpoint, answer
from conformance.verdicts import items as ids
from conformance.verdicts.usage import usage_numbers

__all__ = [
    "all_of",
    "answered",
    "called",
    "called_or_usage",
    "complete",
    "cut",
    "cut_call",
    "errored",
    "reasoned",
    "usage_reported",
]

_REASONING_MARKUP = ("<think>", "</think>", "<|channel|>")


def answered(*indexes: int) -> Exercised:
    """Every exchange (or those given) got a successful answer of the kind asked for (a stream when asked)."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            reason = _missing_answer(Context(exchanges[i]))
            if reason is not None:
                return _numbered(reason, i, exchanges)
        return None

    return judge


def called(index: int, count: int = 1, *, see: str = ids.TOOL_CHOICE) -> Exercised:
    """The answer carries at least `count` tool calls; else the reason names `see`."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        ctx = Context(exchanges[index])
        reason = _missing_answer(ctx)
        if reason is not None or not ctx.ok:
            return reason
        found = answer(ctx)
        n = 0 if found is None else len(found.tool_calls)
        if n >= count:
            return None
        finish = "" if found is None else f" (finish_reason {found.finish_reason!r})"
        if n == 0:
            return _numbered(f"no tool call was returned{finish}; see {see}", index, exchanges)
        return _numbered(f"the answer has {n} tool call, not {count}{finish}; see {see}", index, exchanges)

    return judge


def cut(index: int) -> Exercised:
    """max_tokens cut the answer: finish_reason "length", or usage.completion_tokens reached max_tokens."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        ctx = Context(exchanges[index])
        reason = _missing_answer(ctx)
        if reason is not None or not ctx.ok:
            return reason
        found = answer(ctx)
        if found is None or found.finish_reason == "length" or _reached_limit(ctx):
            return None
        return (
            f"the answer ended (finish_reason {found.finish_reason!r}) before max_tokens "
            f"{_limit(ctx)} could cut it; the model decides where its answer ends"
        )

    return judge


def complete(index: int) -> Exercised:
    """The answer was not cut by max_tokens (a cut JSON answer shows nothing about its validity)."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        ctx = Context(exchanges[index])
        found = answer(ctx) if ctx.ok else None
        if found is None or found.finish_reason != "length":
            return None
        return f"max_tokens {_limit(ctx)} cut the answer before it ended"

    return judge


def called_or_usage(without: int, with_tools: int) -> Exercised:
    """The request with tools got a tool call, or both answers report usage (to compare prompt_tokens)."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        if called(with_tools)(exchanges) is None:
            return None
        return usage_reported(without, with_tools)(exchanges)

    return judge


def cut_call(index: int) -> Exercised:
    """A tool call was under way when max_tokens cut the answer."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        ctx = Context(exchanges[index])
        reason = called(index)(exchanges)
        if reason is not None or not ctx.ok:
            return reason
        found = answer(ctx)
        if found is None or found.finish_reason == "length" or _reached_limit(ctx):
            return None
        return (
            f"the tool call was complete within max_tokens {_limit(ctx)} "
            f"(finish_reason {found.finish_reason!r}): nothing was cut"
        )

    return judge


def usage_reported(*indexes: int) -> Exercised:
    """The answers report usage (prompt, completion and total tokens)."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            ctx = Context(exchanges[i])
            reason = _missing_answer(ctx)
            if reason is not None or not ctx.ok:
                if reason is not None:
                    return _numbered(reason, i, exchanges)
                continue
            found = answer(ctx)
            if found is None or usage_numbers(found.usage) is None:
                see = ids.STREAM_INCLUDE_USAGE if ctx.asked_stream else ctx.base_item
                return _numbered(f"the answer reports no usage; see {see}", i, exchanges)
        return None

    return judge


def errored(index: int) -> Exercised:
    """The request failed: an error status, or an error event in its stream."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        ctx = Context(exchanges[index])
        if ctx.response is None or not ctx.ok or (ctx.stream is not None and ctx.stream.errors):
            return None
        return "the server answered without an error (it truncates the prompt, or its context is larger)"

    return judge


def reasoned(*indexes: int) -> Exercised:
    """An answer carries reasoning: a reasoning field, or reasoning markup left in the content."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            ctx = Context(exchanges[i])
            found = answer(ctx) if ctx.ok else None
            if not ctx.ok or found is None:
                return None  # an error or no answer: the other rules and expectations judge it
            if found.reasoning or any(m in (found.content or "") for m in _REASONING_MARKUP):
                return None
        return "the model produced no reasoning (only a reasoning model exercises this item)"

    return judge


def all_of(*predicates: Exercised) -> Exercised:
    """Exercised when every predicate is; else the first reason."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        return next((r for r in (p(exchanges) for p in predicates) if r is not None), None)

    return judge


def _missing_answer(ctx: Context) -> str | None:
    """Why a successful response is not an answer of the kind asked for; None for an answer or an error."""
    if ctx.response is None:
        return f"no response ({ctx.exchange.error})"
    if not ctx.ok:
        return None
    body = ctx.body
    if ctx.endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
        if ctx.asked_stream:
            if ctx.stream is None:
                return f"a stream was asked for but the answer is not an event stream; see {ids.BASE_STREAMING}"
            if not ctx.stream.errors and not ctx.stream.choice_chunks():
                return f"the stream carried no choice; see {ids.BASE_STREAMING}"
            return None
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
            return f"the answer has no choices; see {ctx.base_item}"
        return None
    listing = ctx.endpoint in (Endpoint.MODELS, Endpoint.LMSTUDIO_MODELS, Endpoint.EMBEDDINGS)
    if listing and (not isinstance(body, dict) or not isinstance(body.get("data"), list)):
        return f"the answer has no `data` list; see {ctx.base_item}"
    return None


def _limit(ctx: Context) -> int | None:
    limit = ctx.request.get("max_completion_tokens", ctx.request.get("max_tokens"))
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _reached_limit(ctx: Context) -> bool:
    """usage.completion_tokens reached max_tokens; without usage, a stream sent at least max_tokens content
    deltas (servers send at most one token's text per delta)."""
    found = answer(ctx)
    limit = _limit(ctx)
    if found is None or limit is None:
        return False
    numbers = usage_numbers(found.usage)
    if numbers is not None:
        return numbers[1] >= limit
    if ctx.stream is None:
        return False
    deltas = [c for _, _, c in ctx.stream.choice_chunks() if _has_text(c)]
    return len(deltas) >= limit


def _has_text(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
    text = delta.get("content") if delta else choice.get("text")
    return isinstance(text, str) and text != ""


def _numbered(reason: str, index: int, exchanges: Sequence[Exchange]) -> str:
    return reason if len(exchanges) == 1 else f"request #{index}: {reason}"
