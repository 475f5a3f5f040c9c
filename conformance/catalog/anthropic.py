"""Item 0.4.1/anthropic-messages: Anthropic's Messages API as Claude Code and the `anthropic` SDK use it.

Every check sends `/v1/messages` requests (plans below) and is judged by the Anthropic rules on each
exchange (`conformance.verdicts.anthropic`: envelope, schemas, `event:` lines, block order, usage,
stop_reason, tool_use, thinking, the SDK's own accumulator) plus its expectations here. The check ids are
a public contract.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from conformance.catalog.expect import Expectation, chained_check, error_status, make_check, succeeded
from conformance.check import Check, Item, Kind, RequestSpec, Target
from conformance.exchange import Exchange
from conformance.shape import collapse, exchange_shape
from conformance.verdicts import items as ids
from conformance.verdicts.anthropic import MessagesView, sdk_replay, view
from conformance.verdicts.context import Context, Issue

__all__ = [
    "ANTHROPIC_ITEMS",
    "COUNT_TOKENS",
    "MESSAGES",
    "WEATHER_TOOL",
    "count_tokens",
    "message",
]

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
ITEM = ids.ANTHROPIC_MESSAGES
VERSION_HEADER = {"anthropic-version": "2023-06-01"}
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
        "required": ["city"],
    },
}
TIME_TOOL: dict[str, Any] = {
    "name": "get_time",
    "description": "Get the current local time in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_PROMPT = "What's the weather in Paris?"
SYSTEM = "You are a terse assistant. Answer in one short sentence."
_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Hi, my name is Ada."},
    {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada! How can I help you?"}]},
    {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
]

RequestFactory = Callable[[Target], RequestSpec]


def _headers(target: Target) -> dict[str, str]:
    """Anthropic clients send the key as x-api-key (the runner adds it as a Bearer token too)."""
    return {**VERSION_HEADER, **({"x-api-key": target.api_key} if target.api_key else {})}


def message(
    user: str = "Say hello.",
    *,
    max_tokens: int = 16,
    stream: bool = False,
    messages: list[dict[str, Any]] | None = None,
    path: str = MESSAGES,
    **extra: Any,
) -> RequestFactory:
    """A /v1/messages request for the target's model at temperature 0; `extra` fields go in as given."""

    def build(target: Target) -> RequestSpec:
        body: dict[str, Any] = {
            "model": target.model,
            "max_tokens": max_tokens,
            "messages": copy.deepcopy(messages) if messages is not None else [{"role": "user", "content": user}],
            "temperature": 0,
        }
        if stream:
            body["stream"] = True
        body.update(copy.deepcopy(extra))
        return RequestSpec("POST", path, body=body, headers=_headers(target))

    return build


def count_tokens(user: str = WEATHER_PROMPT, *, path: str = COUNT_TOKENS, **extra: Any) -> RequestFactory:
    def build(target: Target) -> RequestSpec:
        body = {"model": target.model, "messages": [{"role": "user", "content": user}], **copy.deepcopy(extra)}
        return RequestSpec("POST", path, body=body, headers=_headers(target))

    return build


def _raw(path: str, body: bytes) -> RequestFactory:
    def build(target: Target) -> RequestSpec:
        return RequestSpec("POST", path, body=body, headers={**_headers(target), "content-type": "application/json"})

    return build


# ---- what the exchanges show ------------------------------------------------------------------------


def _view(ctx: Context) -> MessagesView:
    found = view(ctx)
    assert found is not None, f"not an Anthropic exchange: {ctx.exchange.endpoint}"
    return found


def _content(exchange: Exchange) -> list[dict[str, Any]]:
    found = view(Context(exchange))
    return [] if found is None else found.content()


def _text(blocks: Sequence[dict[str, Any]]) -> str:
    return "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")


Exercised = Callable[[Sequence[Exchange]], str | None]


def _answered(*indexes: int) -> Exercised:
    """Each of these exchanges got a 2xx answer with at least one content block."""

    def exercised(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            if i >= len(exchanges) or exchanges[i].response is None:
                return f"request #{i} got no response"
            found = view(Context(exchanges[i]))
            if found is None or not found.ok:
                return f"request #{i} was not answered"
            if not found.content():
                return f"the answer to request #{i} has no content block (stop_reason {_stop(found)!r})"
        return None

    return exercised


def _stop(found: MessagesView) -> Any:
    return (found.message or {}).get("stop_reason")


def _has_block(index: int, kind: str) -> Exercised:
    def exercised(exchanges: Sequence[Exchange]) -> str | None:
        missing = _answered(index)(exchanges)
        if missing is not None:
            return missing
        if not any(b.get("type") == kind for b in _content(exchanges[index])):
            return f"the answer to request #{index} has no {kind} block"
        return None

    return exercised


def _responded(exchanges: Sequence[Exchange]) -> str | None:
    for i, exchange in enumerate(exchanges):
        if exchange.response is None:
            return f"request #{i} got no response ({exchange.error or 'transport failure'})"
    return None


def _thinking_exercised(exchanges: Sequence[Exchange]) -> str | None:
    for i, exchange in enumerate(exchanges):
        found = view(Context(exchange))
        if found is not None and found.status == 400:
            return f"the server refused thinking (request #{i}): {_error_message(found.body)}"
    return _has_block(0, "thinking")(exchanges)


def _error_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:160]


# ---- expectations --------------------------------------------------------------------------------


def _answered_or_refused() -> Expectation:
    """Each request is answered (2xx) or refused as unsupported (400); anything else fails."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i, ctx in enumerate(contexts):
            if ctx.response is not None and not ctx.ok and ctx.status != 400:
                yield Issue(
                    f"the server answered {ctx.status}: {_error_message(ctx.body)}",
                    exchange=i,
                    expected="2xx, or 400 when thinking is not supported",
                    seen=ctx.status,
                )

    return judge


def _called(index: int, name: str | None = None) -> Expectation:
    """The answer has a tool_use block (naming `name`), unless max_tokens cut it first."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = _view(contexts[index])
        if found.message is None or _stop(found) == "max_tokens":
            return
        uses = found.blocks_of("tool_use")
        if not uses:
            yield Issue(
                "the tool_choice forces a tool call but the answer has no tool_use block; text: "
                f"{_text(found.content())[:120]!r}",
                exchange=index,
                pointer="/content",
                expected="a tool_use block" + (f" for {name}" if name else ""),
                seen=[b.get("type") for b in found.content()],
            )

    return judge


def _same_input_tokens(left: int, right: int, what: str) -> Expectation:
    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        a, b = _input_tokens(_view(contexts[left])), _input_tokens(_view(contexts[right]))
        if a is not None and b is not None and a != b:
            frame = _view(contexts[right]).first("message_start")
            yield Issue(
                f"input_tokens is {b} here and {a} for {what}",
                exchange=right,
                chunk=None if frame is None else frame.chunk,
                pointer="/message/usage/input_tokens" if frame is not None else "/usage/input_tokens",
                expected=a,
                seen=b,
            )

    return judge


def _input_tokens(found: MessagesView) -> int | None:
    if not found.ok:
        return None
    if isinstance(found.body, dict) and isinstance(found.body.get("input_tokens"), int):
        return int(found.body["input_tokens"])  # count_tokens
    usage = (found.message or {}).get("usage")
    value = usage.get("input_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


def _stream_equals_plain(plain: int, streamed: int) -> Expectation:
    """The SDK's accumulated stream equals the plain answer to the same temperature-0 request."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = _view(contexts[plain]), _view(contexts[streamed])
        replay = sdk_replay(right)
        if left.message is None or replay is None or replay.message is None:
            return
        for key in ("content", "stop_reason", "stop_sequence"):
            a, b = _comparable(left.message.get(key)), _comparable(replay.message.get(key))
            if a != b:
                yield Issue(
                    f"the stream, as anthropic-python accumulates it, has another {key} than the plain answer",
                    exchange=streamed,
                    pointer=f"/{key}",
                    expected=a,
                    seen=b,
                )
        a_out = (left.message.get("usage") or {}).get("output_tokens")
        b_out = (replay.message.get("usage") or {}).get("output_tokens")
        if a_out != b_out:
            yield Issue(
                "the stream's cumulative output_tokens differs from the plain answer's",
                exchange=streamed,
                pointer="/usage/output_tokens",
                expected=a_out,
                seen=b_out,
            )

    return judge


def _comparable(value: Any) -> Any:
    """Blocks without ids and signatures (they differ per answer by design)."""
    if isinstance(value, list):
        return [{k: v for k, v in b.items() if k not in ("id", "signature")} for b in value if isinstance(b, dict)]
    return value


def _stop_reason(index: int, *reasons: str) -> Expectation:
    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = _view(contexts[index])
        if found.message is not None and _stop(found) not in reasons:
            frame = found.last("message_delta")
            yield Issue(
                f"stop_reason is {_stop(found)!r}, expected {' or '.join(map(repr, reasons))}",
                exchange=index,
                chunk=None if frame is None else frame.chunk,
                pointer="/delta/stop_reason" if found.streamed else "/stop_reason",
                expected=list(reasons),
                seen=_stop(found),
            )

    return judge


def _stopped_on_word(contexts: Sequence[Context]) -> Iterator[Issue]:
    """The second request stops on the first answer's second word: stop_reason stop_sequence, that sequence."""
    first, second = _view(contexts[0]), _view(contexts[1])
    words = _text(first.content()).split()
    if second.message is None or len(words) < 2:
        return
    reason, sequence = _stop(second), second.message.get("stop_sequence")
    if reason != "stop_sequence" or sequence != words[1]:
        yield Issue(
            f"the answer reached the stop sequence {words[1]!r} but says stop_reason {reason!r}, "
            f"stop_sequence {sequence!r}",
            exchange=1,
            pointer="/stop_reason",
            expected={"stop_reason": "stop_sequence", "stop_sequence": words[1]},
            seen={"stop_reason": reason, "stop_sequence": sequence},
        )
    text = _text(second.content())
    if words[1] in text:
        yield Issue(
            "the text goes on past the stop sequence",
            exchange=1,
            pointer="/content",
            expected=f"text cut before {words[1]!r}",
            seen=text,
        )


def _has_text(index: int) -> Expectation:
    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = _view(contexts[index])
        if found.message is not None and found.content() and not found.blocks_of("text"):
            yield Issue(
                "the answer has no text block",
                exchange=index,
                pointer="/content",
                expected="a text block",
                seen=[b.get("type") for b in found.content()],
            )

    return judge


def _streamed_input(index: int) -> Expectation:
    """Streamed tool_use blocks start with an empty input and get it from input_json_delta fragments."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        found = _view(contexts[index])
        for block in found.blocks:
            if block.type != "tool_use":
                continue
            if not block.text:
                yield Issue(
                    f"tool_use block {block.index} got no input_json_delta: its input did not stream",
                    exchange=index,
                    chunk=block.start,
                    pointer="/content_block/input",
                    expected="input_json_delta fragments",
                    seen=block.block.get("input"),
                )

    return judge


# ---- checks --------------------------------------------------------------------------------------


def shape(exchanges: Sequence[Exchange]) -> list[dict[str, Any]]:
    """The default fingerprint, with a stream as its events: `event-name:type`, block and delta kinds, stop reason."""
    out = []
    for exchange in exchanges:
        fingerprint = exchange_shape(exchange)
        found = view(Context(exchange))
        if "stream" in fingerprint and found is not None:
            # pings are sent while a slow prompt is read: a matter of timing, not of shape
            frames = (f for f in found.frames if f.type != "ping")
            fingerprint["stream"] = collapse(_frame_kind(f.name, f.payload or {}) for f in frames)
        out.append(fingerprint)
    return out


def _frame_kind(name: str | None, payload: dict[str, Any]) -> str:
    kind = str(payload.get("type"))
    head = kind if name == kind else f"{name or 'no-event'}:{kind}"
    block = payload.get("content_block")
    delta = payload.get("delta")
    if isinstance(block, dict):
        return f"{head}[{payload.get('index')}]:{block.get('type')}"
    if isinstance(delta, dict) and kind == "content_block_delta":
        return f"{head}[{payload.get('index')}]:{delta.get('type')}"
    if isinstance(delta, dict):
        return f"{head}:{delta.get('stop_reason')}"
    if kind == "content_block_stop":
        return f"{head}[{payload.get('index')}]"
    return head


def _check(
    check_id: str,
    title: str,
    requests: Sequence[RequestFactory],
    *expectations: Expectation,
    exercised: Exercised,
) -> Check:
    check = make_check(ITEM, check_id, title, requests, *expectations)
    return dataclasses.replace(check, exercised=exercised, shape=shape)


def _chained(
    check_id: str,
    title: str,
    plan: Callable[[Target], Generator[RequestSpec, Exchange, None]],
    count: int,
    *expectations: Expectation,
    exercised: Exercised,
) -> Check:
    """A check whose later requests depend on earlier answers (`count` requests in all)."""
    check = chained_check(ITEM, check_id, title, plan, count, *expectations, shape=shape)
    return dataclasses.replace(check, exercised=exercised)


def _round_trip(target: Target) -> Generator[RequestSpec, Exchange, None]:
    tools = [WEATHER_TOOL]
    first = yield message(WEATHER_PROMPT, max_tokens=60, tools=tools, tool_choice={"type": "any"})(target)
    uses = [b for b in _content(first) if b.get("type") == "tool_use"]
    results = [
        {"type": "tool_result", "tool_use_id": str(b.get("id")), "content": "18 degrees C and sunny"} for b in uses
    ] or [{"type": "text", "text": "The weather tool is unavailable."}]
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": WEATHER_PROMPT},
        {"role": "assistant", "content": uses or [{"type": "text", "text": "Let me check."}]},
        {"role": "user", "content": [*results, {"type": "text", "text": "Answer in one sentence."}]},
    ]
    yield message(max_tokens=40, messages=turns, tools=tools)(target)


def _stop_plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
    prompt = "List five fruits, separated by spaces."
    first = yield message(prompt, max_tokens=16)(target)
    words = _text(_content(first)).split()
    stops = [words[1]] if len(words) >= 2 else ["\u2603"]
    yield message(prompt, max_tokens=16, stop_sequences=stops)(target)


def _stop_exercised(exchanges: Sequence[Exchange]) -> str | None:
    missing = _answered(0)(exchanges)
    if missing is not None:
        return missing
    if len(_text(_content(exchanges[0])).split()) < 2:
        return "the first answer has fewer than two words, so there is no stop sequence to try"
    return _responded(exchanges)


_TOOLS = [WEATHER_TOOL, TIME_TOOL]
_THINKING = {"type": "enabled", "budget_tokens": 32}
"""Below Anthropic's 1024 minimum, to keep the check fast; a server that insists gets `skip`, not `fail`."""

CHECKS: tuple[Check, ...] = (
    _check(
        "basic-message",
        "A one-line prompt gets a schema-valid message: msg id, text block, stop_reason, usage",
        [message()],
        succeeded(),
        _has_text(0),
        exercised=_answered(0),
    ),
    _check(
        "beta-query",
        "POST /v1/messages?beta=true (as Claude Code sends it) is answered like /v1/messages",
        [message(path=f"{MESSAGES}?beta=true")],
        succeeded(),
        exercised=_answered(0),
    ),
    _check(
        "system-string-and-blocks",
        "`system` as a string and as text blocks is accepted, and counts the same input tokens",
        [message(system=SYSTEM), message(system=[{"type": "text", "text": SYSTEM}])],
        succeeded(),
        _same_input_tokens(0, 1, "the same system prompt as a string"),
        exercised=_answered(),
    ),
    _check(
        "system-role-in-messages",
        "A `system`-role entry inside `messages` (Claude Code >= 2.1.154) is accepted, not a 400",
        [message(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}])],
        succeeded(),
        exercised=_answered(0),
    ),
    _check(
        "multi-turn",
        "Earlier user and assistant turns, as strings and text blocks, are accepted",
        [message(messages=_HISTORY)],
        succeeded(),
        _has_text(0),
        exercised=_answered(0),
    ),
    _check(
        "stream-framing",
        "A stream has `event:` lines equal to each type, message_start first, blocks 0, 1... closed in order, "
        "message_delta with usage, message_stop last",
        [message(stream=True)],
        succeeded(),
        _has_text(0),
        exercised=_answered(0),
    ),
    _check(
        "streamed-equals-non-streamed",
        "The stream, accumulated by anthropic-python, equals the plain answer to the same temperature-0 request",
        [message("Name three fruits."), message("Name three fruits.", stream=True)],
        succeeded(),
        _stream_equals_plain(0, 1),
        exercised=_answered(),
    ),
    _check(
        "max-tokens",
        'max_tokens cuts the answer with stop_reason "max_tokens" and output_tokens <= max_tokens, streamed too',
        [message("Count from 1 to 50.", max_tokens=3), message("Count from 1 to 50.", max_tokens=3, stream=True)],
        succeeded(),
        _stop_reason(0, "max_tokens"),
        _stop_reason(1, "max_tokens"),
        exercised=_answered(),
    ),
    _chained(
        "stop-sequences",
        'stop_sequences cut the text: stop_reason "stop_sequence" and the matched sequence in stop_sequence',
        _stop_plan,
        2,
        succeeded(),
        _stopped_on_word,
        exercised=_stop_exercised,
    ),
    _check(
        "tool-choice-any",
        'tool_choice {"type": "any"}: tool_use blocks (toolu ids, schema-valid input), stop_reason "tool_use"',
        [message(WEATHER_PROMPT, max_tokens=60, tools=_TOOLS, tool_choice={"type": "any"})],
        succeeded(),
        _called(0),
        exercised=_has_block(0, "tool_use"),
    ),
    _check(
        "tool-choice-tool",
        'tool_choice {"type": "tool", "name": ...} calls exactly that tool, once with disable_parallel_tool_use',
        [
            message(
                WEATHER_PROMPT,
                max_tokens=60,
                tools=_TOOLS,
                tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            )
        ],
        succeeded(),
        _called(0, "get_weather"),
        exercised=_has_block(0, "tool_use"),
    ),
    _check(
        "tool-choice-none",
        'tool_choice {"type": "none"} with tools: a text answer, no tool_use block',
        [message(WEATHER_PROMPT, max_tokens=16, tools=_TOOLS, tool_choice={"type": "none"})],
        succeeded(),
        exercised=_answered(0),
    ),
    _check(
        "tool-choice-auto",
        'tool_choice {"type": "auto"}: accepted; text or valid tool_use blocks with a matching stop_reason',
        [message(WEATHER_PROMPT, max_tokens=60, tools=_TOOLS, tool_choice={"type": "auto"})],
        succeeded(),
        exercised=_answered(0),
    ),
    _check(
        "streamed-tool-input",
        "A streamed tool_use starts with an empty input; input_json_delta fragments join into schema-valid JSON",
        [message(WEATHER_PROMPT, max_tokens=60, stream=True, tools=_TOOLS, tool_choice={"type": "any"})],
        succeeded(),
        _called(0),
        _streamed_input(0),
        exercised=_has_block(0, "tool_use"),
    ),
    _chained(
        "tool-result-round-trip",
        "The tool_use blocks sent back with tool_result blocks in the next user turn get an answer",
        _round_trip,
        2,
        succeeded(),
        exercised=_has_block(0, "tool_use"),
    ),
    _check(
        "count-tokens",
        "POST /v1/messages/count_tokens?beta=true answers {input_tokens} equal to message_start's for the same "
        "request (system and tools included)",
        [
            count_tokens(path=f"{COUNT_TOKENS}?beta=true", system=SYSTEM, tools=_TOOLS),
            message(WEATHER_PROMPT, max_tokens=1, stream=True, system=SYSTEM, tools=_TOOLS),
        ],
        succeeded(),
        _same_input_tokens(0, 1, "the same request in count_tokens"),
        exercised=_responded,
    ),
    _check(
        "thinking",
        "With thinking enabled, thinking blocks (if any) come first, signed, closed before the next block",
        [
            message("What is 2 + 3?", max_tokens=64, thinking=_THINKING),
            message("What is 2 + 3?", max_tokens=64, stream=True, thinking=_THINKING),
        ],
        _answered_or_refused(),
        exercised=_thinking_exercised,
    ),
    _check(
        "error-envelope",
        'Errors carry {"type": "error", "error": {"type", "message"}} with the status: malformed JSON and a '
        "wrong type 400, an unknown model 404 (or 400), an unknown path under /v1/messages 404",
        [
            _raw(MESSAGES, b'{"model": "x", "max_tokens": 8, "messages": ['),
            message(messages="hello"),  # type: ignore[arg-type]  # a wrong type on purpose
            message(model="no-such-model-llm-conformance"),
            message(path=f"{MESSAGES}/no-such-endpoint"),
        ],
        error_status(0, 400),
        error_status(1, 400),
        error_status(2, 404, 400),
        error_status(3, 404),
        exercised=_responded,
    ),
)

ANTHROPIC = Item(
    id=ITEM,
    version="0.4.1",
    title="Anthropic-compatible POST /v1/messages (and count_tokens), as Claude Code and the anthropic SDK use it",
    kind=Kind.API,
    endpoints=(MESSAGES, COUNT_TOKENS),
    checks=CHECKS,
    extension="anthropic",
)

ANTHROPIC_ITEMS: dict[str, Item] = {ANTHROPIC.id: ANTHROPIC}
