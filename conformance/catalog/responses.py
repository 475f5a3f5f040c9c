"""The 0.3.29 OpenAI Responses API items (`/v1/responses`): request plans, expectations and what exercises them."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from conformance.catalog.expect import Expectation, chained_check, succeeded
from conformance.check import Check, Exercised, Item, Kind, Plan, RequestSpec, Target, send_all
from conformance.exchange import Exchange
from conformance.mcp_server import DICE_LABEL, DICE_OUTPUT, DICE_TOOL, loopback_mcp
from conformance.shape import shape
from conformance.verdicts import items as ids
from conformance.verdicts.context import Context, Issue, as_dict
from conformance.verdicts.responses import view

__all__ = ["RESPONSES", "RESPONSES_ITEMS", "responses_body"]

RESPONSES = "/v1/responses"
EXTENSION = "responses"
UNKNOWN_RESPONSE = "resp_llmconformance_does_not_exist"
WEATHER_PROMPT = "What's the weather in Paris?"
STORY_PROMPT = "Write a long story about a dragon who learns to fly."
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}
TIME_TOOL: dict[str, Any] = {"type": "function", "name": "get_time", "description": "Get the current time"}
EMPTY_PARAMETERS_TOOL: dict[str, Any] = {**TIME_TOOL, "parameters": {}}


def responses_body(target: Target, **fields: Any) -> dict[str, Any]:
    """A /v1/responses body for the target's model, temperature 0, short answers unless told otherwise."""
    return {"model": target.model, "temperature": 0, "max_output_tokens": 32, **fields}


def _post(target: Target, **fields: Any) -> RequestSpec:
    return RequestSpec("POST", RESPONSES, body=responses_body(target, **fields))


def _id_of(exchange: Exchange | None) -> str:
    """The response id of an exchange (a stream's from its first event), or a placeholder when it has none."""
    if exchange is None:  # the plan is iterated without answers (a dry run)
        return UNKNOWN_RESPONSE
    final = view(Context(exchange)).final
    if final is None:
        events = view(Context(exchange)).events
        final = as_dict(events[0][1].get("response")) if events else {}
    found = final.get("id")
    return found if isinstance(found, str) else UNKNOWN_RESPONSE


def _call_id_of(exchange: Exchange | None) -> str:
    if exchange is None:
        return "call_missing"
    calls = view(Context(exchange)).function_calls
    found = calls[0][1].get("call_id") if calls else None
    return found if isinstance(found, str) else "call_missing"


# ---- expectations ------------------------------------------------------------------------------


def _where(ctx: Context) -> int | None:
    terminal = view(ctx).terminal
    return terminal[0] if terminal else None


def has_message(*indexes: int) -> Expectation:
    """The response has a message item with text."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes:
            v = view(contexts[i])
            if v.final is not None and not v.text.strip() and not v.function_calls:
                yield Issue(
                    "the response has no message text",
                    exchange=i,
                    chunk=_where(contexts[i]),
                    pointer="/output",
                    expected="a message item with output_text",
                    seen=v.output,
                )

    return judge


def status_is(index: int, status: str, reason: str | None = None) -> Expectation:
    """The final response has this status (and incomplete reason)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        final = view(contexts[index]).final
        if final is None:
            return
        seen = (final.get("status"), as_dict(final.get("incomplete_details")).get("reason"))
        if seen != (status, reason):
            yield Issue(
                f"status {seen[0]!r} (incomplete_details.reason {seen[1]!r}); expected {status!r}"
                + (f" with reason {reason!r}" if reason else ""),
                exchange=index,
                chunk=_where(contexts[index]),
                pointer="/status",
                expected={"status": status, "incomplete_details.reason": reason},
                seen={"status": seen[0], "incomplete_details.reason": seen[1]},
            )

    return judge


def same_text(plain: int, streamed: int) -> Expectation:
    """The stream, as openai-python folds it, says what the non-streamed answer says (temperature 0)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = view(contexts[plain]), view(contexts[streamed])
        if left.final is None or right.final is None:
            return
        if left.text != right.text:
            yield Issue(
                "the streamed answer's text differs from the non-streamed answer to the same temperature-0 request",
                exchange=streamed,
                chunk=_where(contexts[streamed]),
                pointer="/response/output",
                expected=left.text,
                seen=right.text,
            )
        left_calls = [(c.get("name"), c.get("arguments")) for _, c in left.function_calls]
        right_calls = [(c.get("name"), c.get("arguments")) for _, c in right.function_calls]
        if left_calls != right_calls:
            yield Issue(
                "the streamed answer's function calls differ from the non-streamed answer's",
                exchange=streamed,
                chunk=_where(contexts[streamed]),
                pointer="/response/output",
                expected=left_calls,
                seen=right_calls,
            )

    return judge


def chain_counts_earlier_turn(first: int, second: int) -> Expectation:
    """The continuing turn's input_tokens include the earlier turn's input and output (its own numbers prove it)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        one, two = view(contexts[first]).usage, view(contexts[second]).usage
        numbers: list[Any] = [one.get("input_tokens"), one.get("output_tokens"), two.get("input_tokens")]
        if not all(isinstance(n, int) for n in numbers):
            return
        earlier = numbers[0] + numbers[1]
        if numbers[2] <= earlier:
            yield Issue(
                f"the continuing turn counts {numbers[2]} input tokens, not more than the earlier turn's input and "
                f"output ({numbers[0]} + {numbers[1]}): previous_response_id was ignored (ollama PR #15404, "
                "mlx-vlm #1264)",
                exchange=second,
                chunk=_where(contexts[second]),
                pointer="/usage/input_tokens",
                expected=f"> {earlier}",
                seen=numbers[2],
            )

    return judge


def refused(index: int, *, statuses: tuple[int, ...], code: str | None = None) -> Expectation:
    """The request is refused with one of these statuses (and this error code)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.response is None:
            return
        error = as_dict(as_dict(ctx.body).get("error"))
        if ctx.status not in statuses:
            yield Issue(
                f"answered {ctx.status}; expected {' or '.join(map(str, statuses))}"
                + (" (a success: the server acted as if it knew the id)" if ctx.ok else ""),
                exchange=index,
                pointer="",
                expected=list(statuses),
                seen=ctx.status,
            )
        elif code is not None and error.get("code") != code:
            yield Issue(
                f"error code {error.get('code')!r}; OpenAI answers {code!r}, which clients (Codex) test for",
                exchange=index,
                pointer="/error/code",
                expected=code,
                seen=error.get("code"),
            )

    return judge


def fetched_matches(created: int, fetched: int) -> Expectation:
    """GET /v1/responses/{id} returns the stored response: same id and output."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        original, again = view(contexts[created]).final, contexts[fetched].body
        if original is None or not contexts[fetched].ok or not isinstance(again, dict):
            return
        for key in ("id", "output", "status"):
            if again.get(key) != original.get(key):
                yield Issue(
                    f"the fetched response's {key} differs from the created one's",
                    exchange=fetched,
                    pointer=f"/{key}",
                    expected=original.get(key),
                    seen=again.get(key),
                )

    return judge


# ---- exercised: what the exchanges must show for the check to count ----------------------------


def _answered(*indexes: int, streamed: bool = False, calls: bool = False, status: str | None = None) -> Exercised:
    def exercised(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            if i >= len(exchanges):
                return f"request #{i} was not sent"
            v = view(Context(exchanges[i]))
            if v.final is None:
                return f"request #{i} got no response object (status {Context(exchanges[i]).status})"
            if streamed and not v.streamed:
                return f"request #{i} was not answered with a stream"
            if calls and not v.function_calls:
                return f"request #{i} got no function_call item"
            if status is not None and v.final.get("status") != status and _limit_not_reached(v):
                return f"the answer to request #{i} ended before max_output_tokens"
        return None

    return exercised


def _limit_not_reached(v: Any) -> bool:
    limit = v.ctx.request.get("max_output_tokens")
    used = v.usage.get("output_tokens")
    return isinstance(limit, int) and isinstance(used, int) and used < limit


def _check(
    item: str,
    check_id: str,
    title: str,
    plan: Plan,
    count: int,
    exercised: Exercised,
    *expectations: Expectation,
) -> Check:
    """A check with a plan whose later requests use earlier answers (ids). `exercised` decides only whether it
    is `skip`: the expectations judge any answer (an error status fails them)."""
    check = chained_check(item, check_id, title, plan, count, *expectations, shape=_shape)
    return replace(check, exercised=exercised)


def _shape(exchanges: Sequence[Exchange]) -> list[dict[str, Any]]:
    """The default fingerprint, with response ids in request paths (GET /v1/responses/{id}) made generic."""
    shapes = shape(exchanges)
    for entry in shapes:
        if isinstance(entry.get("request"), str):
            entry["request"] = re.sub(r"/responses/[^/\s]+", "/responses/{id}", entry["request"])
    return shapes


def _fixed(*bodies: dict[str, Any]) -> Plan:
    return send_all(*(partial(_post, **body) for body in bodies))


# ---- plans that chain ---------------------------------------------------------------------------


def _chain(target: Target) -> Generator[RequestSpec, Exchange, None]:
    first = yield _post(target, input="My name is Ada. Say hello to me.", max_output_tokens=16)
    yield _post(target, input="What is my name?", previous_response_id=_id_of(first), max_output_tokens=16)


def _stream_chain(target: Target) -> Generator[RequestSpec, Exchange, None]:
    first = yield _post(target, input="My name is Ada. Say hello to me.", max_output_tokens=16)
    yield _post(target, input="What is my name?", previous_response_id=_id_of(first), max_output_tokens=16, stream=True)


def _fetch(target: Target) -> Generator[RequestSpec, Exchange, None]:
    created = yield _post(target, input="Say hello.", max_output_tokens=16)
    yield RequestSpec("GET", f"{RESPONSES}/{_id_of(created)}")


def _store_false(target: Target) -> Generator[RequestSpec, Exchange, None]:
    created = yield _post(target, input="Say hello.", max_output_tokens=8, store=False)
    yield RequestSpec("GET", f"{RESPONSES}/{_id_of(created)}")
    yield _post(target, input="Say it again.", previous_response_id=_id_of(created), max_output_tokens=8)


def _round_trip(target: Target) -> Generator[RequestSpec, Exchange, None]:
    first = yield _post(target, input=WEATHER_PROMPT, tools=[WEATHER_TOOL], tool_choice="required")
    output = {"type": "function_call_output", "call_id": _call_id_of(first), "output": "Sunny, 21 degrees C"}
    yield _post(target, input=[output], previous_response_id=_id_of(first))


def _stateless_round_trip(target: Target) -> Generator[RequestSpec, Exchange, None]:
    yield _post(
        target,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": WEATHER_PROMPT}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 degrees C"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        store=False,
    )


# ---- remote MCP: the suite's loopback MCP server (conformance.mcp_server) -------------------------


def _dice_tool(url: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": DICE_LABEL, "server_url": url, "require_approval": "never"}


def _remote_mcp(target: Target) -> Generator[RequestSpec, Exchange, None]:
    # The one plan that starts something: the MCP server the target is asked to use, for the plan's duration.
    with loopback_mcp() as url:
        for stream in (False, True):
            yield _post(
                target,
                input="Roll a 20-sided die with the dice tool.",
                tools=[_dice_tool(url)],
                tool_choice="required",
                parallel_tool_calls=False,
                max_output_tokens=64,
                stream=stream,
            )


def mcp_called(*indexes: int) -> Expectation:
    """The response lists the MCP server's tools and carries an mcp_call of roll_dice with the tool's output."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes:
            v = view(contexts[i])
            if v.final is None:
                continue
            listed = [
                as_dict(tool).get("name")
                for item in v.output
                if item.get("type") == "mcp_list_tools"
                for tool in item.get("tools") or []
            ]
            calls = [item for item in v.output if item.get("type") == "mcp_call"]
            if DICE_TOOL not in listed:
                yield Issue(
                    "no mcp_list_tools item lists the MCP server's roll_dice tool",
                    exchange=i,
                    chunk=_where(contexts[i]),
                    pointer="/output",
                    expected="an mcp_list_tools item with roll_dice",
                    seen=[item.get("type") for item in v.output],
                )
            if not any(DICE_OUTPUT in str(call.get("output")) for call in calls):
                yield Issue(
                    "no mcp_call item carries the output of the MCP server's roll_dice: the tool was not called",
                    exchange=i,
                    chunk=_where(contexts[i]),
                    pointer="/output",
                    expected=f"an mcp_call whose output has {DICE_OUTPUT!r}",
                    seen=calls if calls else [item.get("type") for item in v.output],
                )

    return judge


def _mcp_exercised(exchanges: Sequence[Exchange]) -> str | None:
    """Not exercised when the server refuses MCP tools or loopback MCP URLs (LM Studio >= 0.4.15)."""
    if len(exchanges) < 2:
        return "the requests were not sent"
    for i, exchange in enumerate(exchanges):
        ctx = Context(exchange)
        if ctx.response is None:
            return f"request #{i} got no response"
        if not ctx.ok:
            message = as_dict(as_dict(ctx.body).get("error")).get("message") or ctx.body
            return f"the server refused the suite's loopback MCP server ({ctx.status}: {message})"
    return None


# ---- the items ---------------------------------------------------------------------------------

_ITEMS_INPUT = [
    {"role": "developer", "content": "Answer in one short sentence."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi, I am Ada."}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada!"}]},
    {"role": "user", "content": "Name a color."},
]

_CODEX_REASONING_INPUT = [
    {"role": "user", "content": [{"type": "input_text", "text": "What is 2 + 3?"}]},
    {"type": "reasoning", "id": "rs_llmconformance", "summary": [], "encrypted_content": None},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "5"}]},
    {"role": "user", "content": [{"type": "input_text", "text": "And 3 + 4?"}]},
]

_RESPONSES = Item(
    id=ids.RESPONSES,
    version="0.3.29",
    title="OpenAI-compatible POST /v1/responses",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES,
            "create-text",
            "A string input gets a response object with every required field, a message and exact usage",
            _fixed({"input": "Say hello in three words."}),
            1,
            _answered(0),
            succeeded(),
            has_message(0),
        ),
        _check(
            ids.RESPONSES,
            "create-items",
            "Input items (developer, input_text parts, a replayed assistant message) with instructions are answered",
            _fixed({"input": _ITEMS_INPUT, "instructions": "You are terse."}),
            1,
            _answered(0),
            succeeded(),
            has_message(0),
        ),
        _check(
            ids.RESPONSES,
            "replayed-reasoning-item",
            "A replayed reasoning item as Codex sends it (summary only, no content) is accepted (llama.cpp PR #27751)",
            _fixed({"input": _CODEX_REASONING_INPUT}),
            1,
            _answered(0),
            succeeded(),
            has_message(0),
        ),
        _check(
            ids.RESPONSES,
            "max-output-tokens-incomplete",
            'max_output_tokens cuts the answer: status "incomplete", incomplete_details.reason "max_output_tokens"',
            _fixed({"input": STORY_PROMPT, "max_output_tokens": 16}),
            1,
            _answered(0, status="incomplete"),
            succeeded(),
            status_is(0, "incomplete", "max_output_tokens"),
        ),
    ),
)

_STREAMING = Item(
    id=ids.RESPONSES_STREAMING,
    version="0.3.29",
    title="/v1/responses streaming via SSE",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES_STREAMING,
            "stream-text",
            "Every event is valid and numbered, items and ids agree with the final response, and openai-python's "
            "responses.stream() rebuilds the non-streamed answer",
            _fixed({"input": "Say hello in three words."}, {"input": "Say hello in three words.", "stream": True}),
            2,
            _answered(1, streamed=True),
            succeeded(),
            has_message(1),
            same_text(0, 1),
        ),
        _check(
            ids.RESPONSES_STREAMING,
            "stream-incomplete",
            "A stream cut by max_output_tokens ends with response.incomplete",
            _fixed({"input": STORY_PROMPT, "max_output_tokens": 16, "stream": True}),
            1,
            _answered(0, streamed=True, status="incomplete"),
            succeeded(),
            status_is(0, "incomplete", "max_output_tokens"),
        ),
    ),
)

_STATEFUL = Item(
    id=ids.RESPONSES_STATEFUL,
    version="0.3.29",
    title="Stateful /v1/responses via previous_response_id",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES_STATEFUL,
            "two-turn-chain",
            "A second turn with previous_response_id counts the first turn's input and output in its input_tokens",
            _chain,
            2,
            _answered(0, 1),
            succeeded(),
            chain_counts_earlier_turn(0, 1),
        ),
        _check(
            ids.RESPONSES_STATEFUL,
            "streamed-chain",
            "A streamed turn continues a stored response (lmstudio #1188)",
            _stream_chain,
            2,
            _answered(0, 1),
            succeeded(),
            chain_counts_earlier_turn(0, 1),
        ),
        _check(
            ids.RESPONSES_STATEFUL,
            "fetch-by-id",
            "GET /v1/responses/{id} returns the stored response",
            _fetch,
            2,
            _answered(0),
            succeeded(),
            fetched_matches(0, 1),
        ),
        _check(
            ids.RESPONSES_STATEFUL,
            "unknown-previous-refused",
            "An unknown previous_response_id gets 400 previous_response_not_found, not a silent fresh start",
            _fixed({"input": "Hello again.", "previous_response_id": UNKNOWN_RESPONSE}),
            1,
            lambda exchanges: None if exchanges and exchanges[0].response is not None else "no response",
            refused(0, statuses=(400, 404), code="previous_response_not_found"),
        ),
        _check(
            ids.RESPONSES_STATEFUL,
            "store-false-refused",
            "A store: false response can be neither fetched (404) nor continued",
            _store_false,
            3,
            _answered(0),
            succeeded(0),
            refused(1, statuses=(404,)),
            refused(2, statuses=(400, 404), code="previous_response_not_found"),
        ),
    ),
)

_FUNCTION_TOOLS = Item(
    id=ids.RESPONSES_FUNCTION_TOOLS,
    version="0.3.29",
    title="Custom function tools in /v1/responses",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "required-call",
            'tool_choice "required" with a flat function tool gives a function_call item with id and call_id',
            _fixed({"input": WEATHER_PROMPT, "tools": [WEATHER_TOOL], "tool_choice": "required"}),
            1,
            _answered(0),
            succeeded(),
        ),
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "named-call",
            "A named tool_choice calls that function",
            _fixed(
                {
                    "input": WEATHER_PROMPT,
                    "tools": [TIME_TOOL, WEATHER_TOOL],
                    "tool_choice": {"type": "function", "name": "get_weather"},
                }
            ),
            1,
            _answered(0),
            succeeded(),
        ),
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "empty-parameters",
            "Function tools with parameters omitted or {} are accepted and called with {} (lmstudio #2254)",
            _fixed(
                {"input": "What time is it?", "tools": [EMPTY_PARAMETERS_TOOL], "tool_choice": "required"},
                {"input": "What time is it?", "tools": [TIME_TOOL], "tool_choice": "required"},
            ),
            2,
            _answered(0, 1),
            succeeded(),
        ),
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "streamed-call",
            "A streamed function call: item added, argument deltas, arguments.done, item done, ids as in the final "
            "response",
            _fixed({"input": WEATHER_PROMPT, "tools": [WEATHER_TOOL], "tool_choice": "required", "stream": True}),
            1,
            _answered(0, streamed=True, calls=True),
            succeeded(),
        ),
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "function-call-output-round-trip",
            "The call's result sent back as function_call_output (by call_id, with previous_response_id) is answered",
            _round_trip,
            2,
            _answered(0, calls=True),
            succeeded(),
            has_message(1),
        ),
        _check(
            ids.RESPONSES_FUNCTION_TOOLS,
            "replayed-call-items",
            "function_call and function_call_output items replayed without previous_response_id are answered",
            _stateless_round_trip,
            1,
            _answered(0),
            succeeded(),
            has_message(0),
        ),
    ),
)

_REASONING_EFFORT = Item(
    id=ids.RESPONSES_REASONING_EFFORT,
    version="0.3.29",
    title="reasoning.effort in /v1/responses (openai/gpt-oss-20b)",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES_REASONING_EFFORT,
            "effort-accepted",
            'reasoning.effort "low", "medium" and "high" are accepted and echoed; reasoning items, when present, are '
            "well-formed",
            _fixed(*({"input": "What is 2 + 3?", "reasoning": {"effort": e}} for e in ("low", "medium", "high"))),
            3,
            _answered(0, 1, 2),
            succeeded(),
        ),
    ),
)

_REMOTE_MCP = Item(
    id=ids.RESPONSES_REMOTE_MCP,
    version="0.3.29",
    title="Remote MCP tools in /v1/responses (opt-in)",
    kind=Kind.API,
    endpoints=(RESPONSES,),
    extension=EXTENSION,
    checks=(
        _check(
            ids.RESPONSES_REMOTE_MCP,
            "mcp-call",
            "An mcp tool naming the suite's loopback MCP server: its tools are listed (mcp_list_tools), roll_dice "
            "is called (mcp_call with the tool's output), plain and streamed; a server that refuses MCP or "
            "loopback URLs is skipped",
            _remote_mcp,
            2,
            _mcp_exercised,
            mcp_called(0, 1),
        ),
    ),
)

RESPONSES_ITEMS: dict[str, Item] = {
    i.id: i for i in (_RESPONSES, _STATEFUL, _STREAMING, _FUNCTION_TOOLS, _REMOTE_MCP, _REASONING_EFFORT)
}
