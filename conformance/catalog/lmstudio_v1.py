"""The 0.4.0 items of LM Studio's native REST API v1: models (list, load, unload), chat (stateful, streamed) and MCP.

Each check is a request plan plus expectations; every exchange is also judged by the v1 rules
(`conformance.verdicts.lmstudio_v1`: envelopes, strict schemas, event order, the stream against chat.end's
result). Check ids are a public contract.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from functools import partial
from typing import Any

from conformance.catalog.expect import Expectation, chained_check, succeeded
from conformance.check import LMSTUDIO, Check, Exercised, Item, Kind, Plan, RequestSpec, Target, send_all
from conformance.exchange import Exchange
from conformance.mcp_server import DICE_LABEL, DICE_OUTPUT, DICE_TOOL, loopback_mcp
from conformance.shape import collapse, structure
from conformance.verdicts import items as ids
from conformance.verdicts.context import Context, Issue, as_dict
from conformance.verdicts.lmstudio_v1 import V1View, refusal_of_loopback, view

__all__ = ["CHAT", "LMSTUDIO_V1_ITEMS", "LOAD", "MODELS", "TEMPLATE_MARGIN", "UNLOAD", "chat_body"]

MODELS = "/api/v1/models"
LOAD = "/api/v1/models/load"
UNLOAD = "/api/v1/models/unload"
CHAT = "/api/v1/chat"
V0_MODELS = "/api/v0/models"
LOAD_CONTEXT = 2048
"""The context_length a load asks for (small: the check loads a model the user did not load, and unloads it)."""
TEMPLATE_MARGIN = 4
"""Tokens a chat template may lose when it renders an earlier turn again (see `chain_counts_earlier_turn`)."""
FIRST_TURN = "My name is Ada, and I live in Paris. Please remember both and greet me."
SECOND_TURN = "What is my name?"


def chat_body(target: Target, **fields: Any) -> dict[str, Any]:
    """An /api/v1/chat body for the target's model: temperature 0, a short answer unless told otherwise.

    No `seed`: LM Studio validates its request bodies strictly and does not document one; temperature 0 is
    greedy decoding, the same answer on every call."""
    return {"model": target.model, "temperature": 0, "max_output_tokens": 24, **fields}


def _chat(target: Target, **fields: Any) -> RequestSpec:
    return RequestSpec("POST", CHAT, body=chat_body(target, **fields))


def _fixed(*bodies: dict[str, Any]) -> Plan:
    return send_all(*(partial(_chat, **body) for body in bodies))


def _view(exchange: Exchange | Context) -> V1View | None:
    return view(exchange if isinstance(exchange, Context) else Context(exchange))


# ---- models ---------------------------------------------------------------------------------------


def _models(exchange: Exchange | None) -> list[dict[str, Any]]:
    if exchange is None or exchange.response is None or not exchange.ok:
        return []
    found = as_dict(exchange.response.body).get("models")
    return [as_dict(m) for m in found] if isinstance(found, list) else []


def _instances(model: dict[str, Any]) -> list[str]:
    found = model.get("loaded_instances")
    return [str(as_dict(i).get("id")) for i in found] if isinstance(found, list) else []


def _unloaded(models: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The smallest model that no instance of is loaded (an LLM when there is one): the one the check may load
    and unload again without touching what the user loaded."""
    candidates = [m for m in models if isinstance(m.get("key"), str) and not _instances(m)]
    candidates.sort(key=lambda m: (m.get("type") != "llm", m.get("size_bytes") or 0))
    return candidates[0] if candidates else None


def _list_both(target: Target) -> Generator[RequestSpec, Exchange, None]:
    yield RequestSpec("GET", MODELS)
    yield RequestSpec("GET", V0_MODELS)


def _load_unload(target: Target) -> Generator[RequestSpec, Exchange, None]:
    listed = yield RequestSpec("GET", MODELS)
    model = _unloaded(_models(listed))
    if model is None:
        return  # every model is loaded: only the list is checked (see _load_exercised)
    context = min(LOAD_CONTEXT, int(model.get("max_context_length") or LOAD_CONTEXT))
    loaded = yield RequestSpec(
        "POST", LOAD, body={"model": model["key"], "context_length": context, "echo_load_config": True}
    )
    instance = as_dict(loaded.response.body if loaded.response is not None else None).get("instance_id")
    yield RequestSpec("GET", MODELS)
    if isinstance(instance, str):
        yield RequestSpec("POST", UNLOAD, body={"instance_id": instance})
        yield RequestSpec("GET", MODELS)


def lists_models(index: int) -> Expectation:
    """GET /api/v1/models lists at least one model."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.ok and isinstance(ctx.body, dict) and ctx.body.get("models") == []:
            yield Issue("the model list is empty", exchange=index, pointer="/models", expected="at least one model")

    return judge


def states_agree(v1: int, v0: int) -> Expectation:
    """A model with a loaded instance in /api/v1/models is `loaded` in /api/v0/models, one without `not-loaded`
    (where both list it: v0 rows by id, v1 rows by key)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        if not contexts[v0].ok:
            return  # a server without v0: only the v1 list is checked
        rows = as_dict(contexts[v0].body).get("data")
        states = {
            r.get("id"): (k, r.get("state"))
            for k, r in enumerate(rows if isinstance(rows, list) else [])
            if isinstance(r, dict)
        }
        for model in _models(contexts[v1].exchange):
            key = model.get("key")
            if key not in states:
                continue
            k, state = states[key]
            expected = "loaded" if _instances(model) else "not-loaded"
            if state != expected:
                yield Issue(
                    f"model {key!r} has {len(_instances(model))} loaded instance(s) in /api/v1/models but state "
                    f"{state!r} in /api/v0/models",
                    exchange=v0,
                    pointer=f"/data/{k}/state",
                    expected=expected,
                    seen=state,
                )

    return judge


def _list_exercised(exchanges: Sequence[Exchange]) -> str | None:
    if not exchanges or exchanges[0].response is None:
        return "GET /api/v1/models got no response"
    if not _models(exchanges[0]):
        return f"GET /api/v1/models listed no model (status {exchanges[0].response.status})"
    return None


def _load_exercised(exchanges: Sequence[Exchange]) -> str | None:
    listed = _list_exercised(exchanges)
    if listed is not None:
        return listed
    if len(exchanges) == 1:
        return (
            "every listed model is loaded; the check loads and unloads only a model nobody had loaded, so it "
            "checked the list only"
        )
    return None


def load_shows(listed: int, load: int, after: int) -> Expectation:
    """The load succeeds, and the loaded instance then appears in its model's loaded_instances."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[load]
        key = as_dict(ctx.request).get("model")
        instance = as_dict(ctx.body).get("instance_id")
        if not ctx.ok or not isinstance(instance, str) or len(contexts) <= after:
            return
        rows = _models(contexts[after].exchange)
        row = next((k for k, m in enumerate(rows) if m.get("key") == key), None)
        if row is None or instance not in _instances(rows[row]):
            yield Issue(
                f"after loading {key!r} as instance {instance!r}, GET /api/v1/models does not list that instance "
                "in the model's loaded_instances",
                exchange=after,
                pointer=f"/models/{row}/loaded_instances" if row is not None else "/models",
                expected=instance,
                seen=_instances(rows[row]) if row is not None else [m.get("key") for m in rows],
            )

    return judge


def unload_shows(unload: int, after: int) -> Expectation:
    """After the unload, no model lists the instance any more."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        if len(contexts) <= after or not contexts[unload].ok:
            return
        instance = as_dict(contexts[unload].request).get("instance_id")
        for k, model in enumerate(_models(contexts[after].exchange)):
            if instance in _instances(model):
                yield Issue(
                    f"instance {instance!r} was unloaded but GET /api/v1/models still lists it",
                    exchange=after,
                    pointer=f"/models/{k}/loaded_instances",
                    expected=f"no {instance!r}",
                    seen=_instances(model),
                )

    return judge


def _answered_if_sent(*indexes: int) -> Expectation:
    """These requests, when the plan sent them, got a 2xx answer."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        present = [i for i in indexes if i < len(contexts)]
        if present:
            yield from (issue for issue in succeeded(*present)(contexts))

    return judge


# ---- chat -----------------------------------------------------------------------------------------


def _response_id(exchange: Exchange | None) -> str:
    found = None if exchange is None else _view(exchange)
    value = None if found is None or found.result is None else found.result.get("response_id")
    return value if isinstance(value, str) else "resp_llmconformance_missing"


def _chain(target: Target) -> Generator[RequestSpec, Exchange, None]:
    first = yield _chat(target, input=FIRST_TURN, max_output_tokens=16)
    yield _chat(target, input=SECOND_TURN, previous_response_id=_response_id(first), max_output_tokens=16)
    yield _chat(target, input=SECOND_TURN, store=False, max_output_tokens=8)


def chain_counts_earlier_turn(first: int, second: int) -> Expectation:
    """The continuing turn's `stats.input_tokens` count the earlier turn's prompt and answer.

    Turn 2's prompt renders turn 1's prompt again (input_tokens of turn 1, template included), turn 1's answer
    (total_output_tokens, less reasoning_output_tokens: templates drop earlier reasoning) and turn 2's new
    message with its template tokens (several more). Rendering a turn again can merge a few tokens at its
    boundaries (an end-of-turn token counted in the output and written back once, trimmed whitespace), so
    `TEMPLATE_MARGIN` tokens are allowed; turn 2's own message and template outweigh them. A server that
    ignored previous_response_id counts only turn 2's short message, which is less than turn 1's longer
    prompt alone: it fails.
    """

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        one, two = _view(contexts[first]), _view(contexts[second])
        if one is None or two is None:
            return
        numbers = [
            one.stats.get("input_tokens"),
            one.stats.get("total_output_tokens"),
            one.stats.get("reasoning_output_tokens", 0),
            two.stats.get("input_tokens"),
        ]
        if not all(isinstance(n, int) for n in numbers):
            return
        before, answered, reasoning, seen = numbers
        floor = before + answered - reasoning - TEMPLATE_MARGIN
        if seen <= floor:
            yield Issue(
                f"the continuing turn counts {seen} input tokens, not more than the earlier turn's prompt and answer "
                f"({before} + {answered} - {reasoning} reasoning - {TEMPLATE_MARGIN} template margin): "
                "previous_response_id was ignored",
                exchange=second,
                pointer="/stats/input_tokens",
                expected=f"> {floor}",
                seen=seen,
            )

    return judge


def same_result(plain: int, streamed: int) -> Expectation:
    """chat.end's result is the non-streamed answer to the same temperature-0 request: the same model instance,
    output (messages, reasoning, tool calls) and token counts; only timings (and the response id) may differ."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        left, right = _view(contexts[plain]), _view(contexts[streamed])
        if left is None or right is None or left.result is None or right.result is None:
            return
        checks: list[tuple[str, str, Any, Any]] = [
            ("output", "/result/output", _comparable(left.output), _comparable(right.output)),
            (
                "model_instance_id",
                "/result/model_instance_id",
                left.result.get("model_instance_id"),
                right.result.get("model_instance_id"),
            ),
        ]
        for key in ("input_tokens", "total_output_tokens", "reasoning_output_tokens"):
            checks.append((f"stats.{key}", f"/result/stats/{key}", left.stats.get(key), right.stats.get(key)))
        for what, pointer, expected, seen in checks:
            if expected != seen:
                yield Issue(
                    f"chat.end's result has another {what} than the non-streamed answer to the same temperature-0 "
                    "request",
                    exchange=streamed,
                    chunk=right.result_chunk,
                    pointer=pointer,
                    expected=expected,
                    seen=seen,
                )

    return judge


def _comparable(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in output]


def has_message(*indexes: int) -> Expectation:
    """The answer has a message item with text."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes:
            found = _view(contexts[i])
            if found is not None and found.result is not None and not found.text.strip():
                yield Issue(
                    "the answer has no message item with text",
                    exchange=i,
                    chunk=found.result_chunk,
                    pointer=f"{found.result_pointer}/output",
                    expected='an item {"type": "message", "content": "..."}',
                    seen=found.output,
                )

    return judge


def _chat_answered(*indexes: int, streamed: bool = False) -> Exercised:
    def exercised(exchanges: Sequence[Exchange]) -> str | None:
        for i in indexes or range(len(exchanges)):
            if i >= len(exchanges):
                return f"request #{i} was not sent"
            found = _view(exchanges[i])
            if found is None or found.ctx.response is None:
                return f"request #{i} got no response"
            if found.result is None and found.ctx.ok:
                return f"request #{i} got no chat result" + (" (no chat.end event)" if found.streamed else "")
            if streamed and found.ctx.ok and not found.streamed:
                return f"request #{i} was not answered with a stream"
        return None

    return exercised


# ---- MCP ------------------------------------------------------------------------------------------

DICE_PROMPT = "Use the roll_dice tool to roll a 20-sided die."


def _dice(url: str) -> dict[str, Any]:
    return {"type": "ephemeral_mcp", "server_label": DICE_LABEL, "server_url": url, "allowed_tools": [DICE_TOOL]}


def _real_calls(found: V1View) -> list[dict[str, Any]]:
    """The tool_call items of roll_dice from the `dice` server whose output is the MCP tool's own (its text
    comes from nowhere but the suite's MCP server)."""
    return [
        c
        for c in found.tool_calls
        if c.get("tool") == DICE_TOOL
        and as_dict(c.get("provider_info")).get("server_label") == DICE_LABEL
        and DICE_OUTPUT in str(c.get("output"))
    ]


def _unanswered_call(exchange: Exchange | None) -> bool:
    """A 2xx answer without a real roll_dice call (the model chose to answer instead)."""
    found = None if exchange is None else _view(exchange)
    return found is not None and found.result is not None and not _real_calls(found)


def _ephemeral_mcp(target: Target) -> Generator[RequestSpec, Exchange, None]:
    # Starts the MCP server the target is asked to use, for the plan's duration (as the Responses MCP check does).
    with loopback_mcp() as url:
        answers = []
        for stream in (False, True):
            answers.append(
                (yield _chat(target, input=DICE_PROMPT, integrations=[_dice(url)], max_output_tokens=64, stream=stream))
            )
    if any(_unanswered_call(a) for a in answers):
        # the same request without the integration: did the MCP server's tools reach the model's prompt?
        yield _chat(target, input=DICE_PROMPT, max_output_tokens=64)


def mcp_called(*indexes: int) -> Expectation:
    """The answer has a tool_call item of roll_dice from the `dice` ephemeral MCP server with the MCP tool's output."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        for i in indexes:
            found = _view(contexts[i])
            if found is None or found.result is None or _real_calls(found):
                continue
            yield Issue(
                "no tool_call item carries the output of the MCP server's roll_dice: the tool was not called"
                + _reached(contexts, i),
                item=ids.REST_V1_MCP,
                exchange=i,
                chunk=found.result_chunk,
                pointer=f"{found.result_pointer}/output",
                expected=f"a tool_call of {DICE_TOOL!r} (provider_info.server_label {DICE_LABEL!r}) whose output "
                f"has {DICE_OUTPUT!r}",
                seen=found.tool_calls or found.output,
            )

    return judge


def _prompt_grew(exchanges: Sequence[Exchange], index: int) -> tuple[int, int] | None:
    """(input_tokens with the integration, without) when the request without it (the last) was sent."""
    if len(exchanges) < 3:
        return None
    with_it, without = _view(exchanges[index]), _view(exchanges[-1])
    first = None if with_it is None else with_it.stats.get("input_tokens")
    second = None if without is None else without.stats.get("input_tokens")
    return (first, second) if isinstance(first, int) and isinstance(second, int) else None


def _reached(contexts: Sequence[Context], index: int) -> str:
    counts = _prompt_grew([c.exchange for c in contexts], index)
    if counts is None or counts[0] > counts[1]:
        return ""
    return (
        f", and its tools did not reach the model: input_tokens is {counts[0]} with the integration and "
        f"{counts[1]} without it"
    )


def _mcp_exercised(exchanges: Sequence[Exchange]) -> str | None:
    """Skipped when the server refuses the suite's loopback MCP URL (LM Studio >= 0.4.15: "URL resolves to a
    non-public address"), or when the model answered without calling roll_dice although the server put the
    tool in its prompt (input_tokens grow with the integration); any other failure is judged (and fails)."""
    if len(exchanges) < 2:
        return "the requests were not sent"
    for i, exchange in enumerate(exchanges):
        if exchange.response is None:
            return f"request #{i} got no response"
        refusal = refusal_of_loopback(Context(exchange))
        if refusal is not None:
            return f"the server refuses MCP servers on loopback addresses, as LM Studio >= 0.4.15 does: {refusal}"
    for i in (0, 1):
        counts = _prompt_grew(exchanges, i)
        if _unanswered_call(exchanges[i]) and counts is not None and counts[0] > counts[1]:
            return (
                f"the model answered request #{i} without calling roll_dice, though the server put the tool in its "
                f"prompt (input_tokens {counts[0]} with the integration, {counts[1]} without)"
            )
    return None


# ---- checks ---------------------------------------------------------------------------------------


def _shape(exchanges: Sequence[Exchange]) -> list[dict[str, Any]]:
    """Per exchange: the request line, status, and the body's structure or the stream's event types in order."""
    out: list[dict[str, Any]] = []
    for exchange in exchanges:
        entry: dict[str, Any] = {"request": f"{exchange.request.method} {exchange.endpoint}"}
        response = exchange.response
        if response is not None:
            entry["status"] = response.status
            found = _view(exchange)
            if response.events is not None and found is not None:
                entry["stream"] = collapse(frame.type or "untyped" for frame in found.frames)
            else:
                entry["body"] = structure(response.body)
        out.append(entry)
    return out


def _check(
    item: str,
    check_id: str,
    title: str,
    plan: Plan,
    count: int,
    exercised: Exercised,
    *expectations: Expectation,
) -> Check:
    """A check whose plan may use earlier answers; `exercised` also decides whether `expectations` are judged."""
    return chained_check(item, check_id, title, plan, count, *expectations, exercised=exercised, shape=_shape)


_MODELS = Item(
    id=ids.REST_V1_MODELS,
    version="0.4.0",
    title="Native REST API v1: models, with download and load endpoints",
    kind=Kind.API,
    endpoints=(MODELS, LOAD, UNLOAD),
    extension=LMSTUDIO,
    checks=(
        _check(
            ids.REST_V1_MODELS,
            "list-models",
            "GET /api/v1/models lists models in the documented shape (embedding rows without architecture or "
            "capabilities), each model's loaded_instances agreeing with its /api/v0/models state",
            _list_both,
            2,
            _list_exercised,
            succeeded(0),
            lists_models(0),
            states_agree(0, 1),
        ),
        _check(
            ids.REST_V1_MODELS,
            "load-unload",
            "POST /api/v1/models/load (echo_load_config) of a model nobody had loaded: load_config echoed, the "
            "instance listed in loaded_instances; POST /api/v1/models/unload: it is gone (a server whose models are "
            "all loaded is only listed)",
            _load_unload,
            1,
            _load_exercised,
            _answered_if_sent(0, 1, 2, 3, 4),
            load_shows(0, 1, 2),
            unload_shows(3, 4),
        ),
    ),
)

_CHAT = Item(
    id=ids.REST_V1_CHAT,
    version="0.4.0",
    title="Native REST API v1: chat with stateful chats",
    kind=Kind.API,
    endpoints=(CHAT,),
    extension=LMSTUDIO,
    checks=(
        _check(
            ids.REST_V1_CHAT,
            "chat",
            "POST /api/v1/chat with a string input and with text input items: model_instance_id, output items, "
            "stats and a resp_ response_id",
            _fixed(
                {"input": "Say hello in three words."},
                {"input": [{"type": "text", "content": "Say hello in three words."}]},
            ),
            2,
            _chat_answered(0, 1),
            succeeded(),
            has_message(0, 1),
        ),
        _check(
            ids.REST_V1_CHAT,
            "stateful-chain",
            "A second turn with previous_response_id counts the first turn's prompt and answer in its "
            "stats.input_tokens; store: false answers without a response_id",
            _chain,
            3,
            _chat_answered(0, 1, 2),
            succeeded(),
            chain_counts_earlier_turn(0, 1),
        ),
        _check(
            ids.REST_V1_CHAT,
            "stream-events",
            "A streamed chat: every event named by `event:` as its type and valid, chat.start first, chat.end "
            "last, message/reasoning blocks and prompt_processing/model_load phases in order, chat.end's result "
            "what the deltas said",
            _fixed({"input": "Say hello in three words.", "stream": True}),
            1,
            _chat_answered(0, streamed=True),
            succeeded(),
            has_message(0),
        ),
        _check(
            ids.REST_V1_CHAT,
            "stream-result-equals-answer",
            "chat.end's result equals the non-streamed answer to the same temperature-0 request (timings aside)",
            _fixed({"input": "Name three colors."}, {"input": "Name three colors.", "stream": True}),
            2,
            _chat_answered(0, 1),
            succeeded(),
            same_result(0, 1),
        ),
    ),
)

_MCP = Item(
    id=ids.REST_V1_MCP,
    version="0.4.0",
    title="Native REST API v1: MCP via API",
    kind=Kind.API,
    endpoints=(CHAT,),
    extension=LMSTUDIO,
    checks=(
        _check(
            ids.REST_V1_MCP,
            "ephemeral-mcp-call",
            "An ephemeral_mcp integration naming the suite's loopback MCP server: roll_dice is called and its real "
            "output returned in a tool_call item, plain and streamed; a server that refuses loopback MCP URLs "
            "(LM Studio >= 0.4.15) is skipped",
            _ephemeral_mcp,
            2,
            _mcp_exercised,
            succeeded(),
            mcp_called(0, 1),
        ),
    ),
)

LMSTUDIO_V1_ITEMS: dict[str, Item] = {i.id: i for i in (_MODELS, _CHAT, _MCP)}
