"""Rules on chat and text completion answers: role, finish_reason, reasoning fields, leaked markup."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from conformance.verdicts import items
from conformance.verdicts.answer import answer
from conformance.verdicts.context import Context, Endpoint, Issue, as_dict
from conformance.verdicts.rule import CHAT_LIKE, Rule, rule

__all__ = ["HARMONY_MARKERS", "RULES", "THINK_MARKERS"]

THINK_MARKERS = ("<think>", "</think>")
HARMONY_MARKERS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>", "<|call|>", "<|constrain|>")
_CHAT = frozenset({Endpoint.CHAT})


@rule("first-delta-role", items.BASE_STREAMING, _CHAT)
def first_delta_role(ctx: Context) -> Iterator[Issue]:
    """The first delta of each choice says `role: "assistant"`; later deltas do not repeat it."""
    if ctx.stream is None:
        return
    seen: set[Any] = set()
    for i, position, choice in ctx.stream.choice_chunks():
        index = choice.get("index")
        delta = as_dict(choice.get("delta"))
        role = delta.get("role")
        pointer = f"/choices/{position}/delta/role"
        if index not in seen:
            seen.add(index)
            if role != "assistant":
                yield Issue(
                    f'the first delta of choice {index} has no `role: "assistant"`; clients take the message\'s '
                    "role from the first delta",
                    chunk=i,
                    pointer=pointer,
                    expected="assistant",
                    seen=role,
                )
        elif role is not None:
            yield Issue(
                "`role` repeated in a later delta; openai-python concatenates string fields of deltas, so the "
                "rebuilt message's role becomes 'assistantassistant'",
                chunk=i,
                pointer=pointer,
                expected="no role after the first delta",
                seen=role,
            )


@rule("finish-reason-once", items.BASE_STREAMING, CHAT_LIKE)
def finish_reason_once(ctx: Context) -> Iterator[Issue]:
    """Each choice gets exactly one `finish_reason`, on its last chunk; nothing for that choice follows it."""
    stream = ctx.stream
    if stream is None or stream.errors:
        return
    item = items.BASE_COMPLETIONS if ctx.endpoint is Endpoint.COMPLETIONS else items.BASE_STREAMING
    finished: dict[Any, int] = {}
    seen: set[Any] = set()
    for i, position, choice in stream.choice_chunks():
        index = choice.get("index")
        seen.add(index)
        reason = choice.get("finish_reason")
        if index in finished:
            yield Issue(
                f"choice {index} continues after its finish_reason (chunk #{finished[index]}); clients treat the "
                "finish_reason as the end of the message",
                chunk=i,
                item=item,
                pointer=f"/choices/{position}",
                expected="no chunk for this choice after its finish_reason",
                seen=choice,
            )
            continue
        if reason is not None:
            finished[index] = i
    if not stream.done and not stream.chunks:
        return
    for index in sorted(seen - finished.keys(), key=str):
        yield Issue(
            f"no chunk of choice {index} carries a finish_reason; clients cannot tell why the answer ended",
            chunk=stream.chunks[-1][0] if stream.chunks else None,
            item=item,
            expected="a final chunk with finish_reason",
            seen=None,
        )


@rule("no-think-markup", items.REASONING_CONTENT, _CHAT)
def no_think_markup(ctx: Context) -> Iterator[Issue]:
    """Content has no `<think>` reasoning markup: reasoning goes in a separate field."""
    yield from _markup(ctx, THINK_MARKERS, "reasoning markup", "reasoning_content")


@rule("no-harmony-markup", items.REASONING_FIELD, _CHAT)
def no_harmony_markup(ctx: Context) -> Iterator[Issue]:
    """Content has no gpt-oss harmony markup (`<|channel|>`, `<|message|>`...): reasoning goes in `reasoning`."""
    yield from _markup(ctx, HARMONY_MARKERS, "harmony channel markup", "reasoning")


@rule("reasoning-content-field", items.REASONING_CONTENT, _CHAT)
def reasoning_content_field(ctx: Context) -> Iterator[Issue]:
    """`reasoning_content`, when present, is a string inside `message` (or `delta` when streaming), free of tags."""
    yield from _reasoning_field(ctx, "reasoning_content", THINK_MARKERS)


@rule("reasoning-field", items.REASONING_FIELD, _CHAT)
def reasoning_field(ctx: Context) -> Iterator[Issue]:
    """`reasoning`, when present, is a string inside `message` (or `delta` when streaming), free of harmony markup."""
    yield from _reasoning_field(ctx, "reasoning", HARMONY_MARKERS)


def _markup(ctx: Context, markers: tuple[str, ...], what: str, field: str) -> Iterator[Issue]:
    found = answer(ctx)
    if found is None or not found.content:
        return
    hits = [m for m in markers if m in found.content]
    if not hits:
        return
    chunk, pointer = None, "/choices/0/message/content"
    if ctx.endpoint is Endpoint.COMPLETIONS:
        pointer = "/choices/0/text"
    if found.streamed:
        chunk, pointer = _chunk_completing(ctx, hits[0]), "/choices/0/delta/content"
    yield Issue(
        f"the content contains {what} {', '.join(hits)}; clients show it to the user. The server should move it "
        f"to `{field}` (or drop it)",
        chunk=chunk,
        pointer=pointer,
        expected=f"no {' '.join(markers)} in content",
        seen=found.content[:200],
    )


def _chunk_completing(ctx: Context, marker: str) -> int | None:
    """The event where the accumulated content of choice 0 first contains `marker`."""
    assert ctx.stream is not None
    text = ""
    for i, _, choice in ctx.stream.choice_chunks():
        delta = as_dict(choice.get("delta"))
        piece = choice.get("text") if ctx.endpoint is Endpoint.COMPLETIONS else delta.get("content")
        if choice.get("index", 0) == 0 and isinstance(piece, str):
            text += piece
            if marker in text:
                return i
    return None


def _reasoning_field(ctx: Context, field: str, markers: tuple[str, ...]) -> Iterator[Issue]:
    if not ctx.ok:
        return
    places: list[tuple[int | None, dict[str, Any]]]
    if ctx.stream is not None:
        places = [(i, chunk) for i, chunk in ctx.stream.chunks]
        home = "delta"
    elif isinstance(ctx.body, dict):
        places = [(None, ctx.body)]
        home = "message"
    else:
        return
    pieces: dict[tuple[int | None, Any], list[str]] = defaultdict(list)
    for i, doc in places:
        if field in doc:
            yield _misplaced(field, home, i, f"/{field}")
        choices = doc.get("choices")
        for position, choice in enumerate(choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict):
                continue
            if field in choice:
                yield _misplaced(field, home, i, f"/choices/{position}/{field}")
            wrong_home = "message" if home == "delta" else "delta"
            part = choice.get(wrong_home)
            if isinstance(part, dict) and field in part:
                yield _misplaced(field, home, i, f"/choices/{position}/{wrong_home}/{field}")
            part = choice.get(home)
            if not isinstance(part, dict) or field not in part:
                continue
            value = part[field]
            if value is not None and not isinstance(value, str):
                yield Issue(
                    f"`{field}` is a {type(value).__name__}, not a string; clients append it as text",
                    chunk=i,
                    pointer=f"/choices/{position}/{home}/{field}",
                    expected="a string or null",
                    seen=value,
                )
            elif isinstance(value, str):
                pieces[(choice.get("index"), None)].append(value)
    for (index, _), texts in pieces.items():
        text = "".join(texts)
        hits = [m for m in markers if m in text]
        if hits:
            yield Issue(
                f"`{field}` of choice {index} still contains the markup {', '.join(hits)}; the server should strip "
                "the delimiters it parsed the reasoning out of",
                pointer=f"/choices/{index}/{home}/{field}",
                expected=f"no {' '.join(markers)}",
                seen=text[:200],
                raw=text[:600],
            )


def _misplaced(field: str, home: str, chunk: int | None, pointer: str) -> Issue:
    return Issue(
        f"`{field}` found at {pointer}; clients read it only from `choices[].{home}.{field}`",
        chunk=chunk,
        pointer=pointer,
        expected=f"/choices/N/{home}/{field}",
        seen=pointer,
    )


RULES: tuple[Rule, ...] = (
    first_delta_role,
    finish_reason_once,
    no_think_markup,
    no_harmony_markup,
    reasoning_content_field,
    reasoning_field,
)
