"""Rules on token usage: present, arithmetic, and in streams only when `stream_options.include_usage` asks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from conformance.verdicts import items
from conformance.verdicts.answer import answer
from conformance.verdicts.context import Context, Issue
from conformance.verdicts.rule import CHAT_LIKE, Rule, rule

__all__ = ["RULES", "usage_numbers"]


def usage_numbers(usage: Mapping[str, Any] | None) -> tuple[int, int, int] | None:
    """(prompt, completion, total) when all three are integers, else None."""
    if not isinstance(usage, Mapping):
        return None
    values = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values[0], values[1], values[2]  # type: ignore[return-value]  # narrowed by the check above
    return None


@rule("usage-present", items.BASE_CHAT, CHAT_LIKE)
def usage_present(ctx: Context) -> Iterator[Issue]:
    """A successful non-streamed answer reports `usage`."""
    if not ctx.ok or ctx.stream is not None or not isinstance(ctx.body, dict) or ctx.asked_stream:
        return
    if not isinstance(ctx.body.get("usage"), dict):
        yield Issue(
            "the answer has no `usage` object; clients count tokens (and bill) from it",
            item=ctx.base_item,
            pointer="/usage",
            expected="{prompt_tokens, completion_tokens, total_tokens}",
            seen=ctx.body.get("usage"),
        )


@rule("usage-arithmetic", items.BASE_CHAT, CHAT_LIKE)
def usage_arithmetic(ctx: Context) -> Iterator[Issue]:
    """total = prompt + completion; prompt > 0; completion > 0 when something was generated and <= max_tokens."""
    found = answer(ctx)
    if found is None or found.usage is None:
        return
    item = items.STREAM_USAGE_CORRECT if found.streamed else ctx.base_item
    numbers = usage_numbers(found.usage)
    if numbers is None:
        return
    prompt, completion, total = numbers
    chunk = found.usage_chunk
    if total != prompt + completion:
        yield Issue(
            f"usage.total_tokens is {total} but prompt_tokens + completion_tokens is {prompt + completion}",
            chunk=chunk,
            item=item,
            pointer="/usage/total_tokens",
            expected=prompt + completion,
            seen=total,
        )
    if prompt <= 0:
        yield Issue(
            "usage.prompt_tokens is 0 although the request had a prompt",
            chunk=chunk,
            item=item,
            pointer="/usage/prompt_tokens",
            expected="> 0",
            seen=prompt,
        )
    generated = bool(found.content) or bool(found.tool_calls) or bool(found.reasoning)
    if generated and completion <= 0:
        yield Issue(
            "usage.completion_tokens is 0 although the answer has content or tool calls",
            chunk=chunk,
            item=item,
            pointer="/usage/completion_tokens",
            expected="> 0",
            seen=completion,
        )
    limit = ctx.request.get("max_completion_tokens", ctx.request.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and completion > limit:
        yield Issue(
            f"usage.completion_tokens is {completion}, more than the request's max_tokens {limit}",
            chunk=chunk,
            item=item,
            pointer="/usage/completion_tokens",
            expected=f"<= {limit}",
            seen=completion,
        )


@rule("stream-usage-when-asked", items.STREAM_INCLUDE_USAGE, CHAT_LIKE)
def stream_usage_when_asked(ctx: Context) -> Iterator[Issue]:
    """With include_usage, one extra last chunk has `choices: []` and `usage`; no other chunk has usage (unless
    vLLM's `stream_options.continuous_usage_stats` asked for it on every chunk)."""
    stream = ctx.stream
    if stream is None or not ctx.include_usage or stream.errors:
        return
    with_usage = [(i, c) for i, c in stream.chunks if c.get("usage") is not None]
    if not with_usage:
        yield Issue(
            "stream_options.include_usage is true but no chunk carries `usage` (lmstudio #676/#713, "
            "llama-cpp-python #1640)",
            chunk=stream.done[0] if stream.done else None,
            expected='a last chunk {"choices": [], "usage": {...}} before [DONE]',
            seen=None,
        )
        return
    for i, chunk in [] if _continuous_usage(ctx) else with_usage[:-1]:
        yield Issue(
            "usage is sent on more than one chunk; with include_usage only the extra last chunk carries it",
            chunk=i,
            pointer="/usage",
            expected="usage null on every chunk but the last",
            seen=chunk.get("usage"),
        )
    last_index, last = with_usage[-1]
    if last.get("choices") != []:
        yield Issue(
            "the usage chunk has choices; OpenAI sends usage on an extra chunk with `choices: []`, and clients "
            "that read choices[0] of every chunk expect that shape",
            chunk=last_index,
            pointer="/choices",
            expected=[],
            seen=last.get("choices"),
        )
    if stream.chunks[-1][0] != last_index:
        yield Issue(
            "chunks follow the usage chunk; it must be the last chunk before [DONE]",
            chunk=stream.chunks[-1][0],
            expected="the usage chunk last",
        )


@rule("stream-usage-unasked", items.STREAM_INCLUDE_USAGE, CHAT_LIKE)
def stream_usage_unasked(ctx: Context) -> Iterator[Issue]:
    """Without include_usage, no chunk carries `usage` (llama.cpp #12102)."""
    stream = ctx.stream
    if stream is None or ctx.include_usage:
        return
    for i, chunk in stream.chunks:
        if chunk.get("usage") is not None:
            yield Issue(
                "a chunk carries `usage` although the request did not set stream_options.include_usage; clients "
                "that did not ask for it do not expect it (llama.cpp #12102)",
                chunk=i,
                pointer="/usage",
                expected="no usage (or null)",
                seen=chunk.get("usage"),
            )
            return


def _continuous_usage(ctx: Context) -> bool:
    """vLLM's `stream_options.continuous_usage_stats: true` asks for usage on every chunk, not only the last."""
    options = ctx.request.get("stream_options")
    return isinstance(options, dict) and options.get("continuous_usage_stats") is True


RULES: tuple[Rule, ...] = (usage_present, usage_arithmetic, stream_usage_when_asked, stream_usage_unasked)
