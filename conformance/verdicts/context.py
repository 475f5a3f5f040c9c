"""What a rule sees of one exchange: the endpoint, the request's options and the parsed stream."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from conformance.exchange import Exchange, SSEEvent
from conformance.findings import ERROR, Finding
from conformance.verdicts import items

__all__ = [
    "DONE",
    "LMSTUDIO_V1_PATH",
    "Context",
    "Endpoint",
    "Issue",
    "StreamView",
    "as_dict",
    "endpoint_of",
    "excerpt",
]

DONE = "[DONE]"
LMSTUDIO_V1_PATH = re.compile(r"(?:^|/)api/v1/(chat|models(?:/.*)?)$")
"""LM Studio's native v1 paths (`/api/v1/chat`, `/api/v1/models...`); `/api/v1/chat/completions` is OpenAI's."""


class Endpoint(StrEnum):
    """The endpoints the rules know, whatever the prefix (`/v1`, `/api/v0`, or none behind a proxy)."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MODELS = "models"
    MODEL = "models/{id}"
    LMSTUDIO_MODELS = "api/v0/models"
    RESPONSES = "responses"
    RESPONSE = "responses/{id}"


def endpoint_of(method: str, path: str) -> Endpoint | None:
    """Which known endpoint a request went to, or None (the rules then have nothing to say)."""
    p = path.split("?", 1)[0].rstrip("/")
    method = method.upper()
    if LMSTUDIO_V1_PATH.search(p):
        return None  # LM Studio's native v1 routes: conformance.verdicts.lmstudio_v1 judges them
    if method == "POST":
        if p.endswith("/chat/completions") or p == "chat/completions":
            return Endpoint.CHAT
        if p.endswith("/completions"):
            return Endpoint.COMPLETIONS
        if p.endswith("/embeddings"):
            return Endpoint.EMBEDDINGS
        if p.endswith("/responses") or p == "responses":
            return Endpoint.RESPONSES
        return None
    if method != "GET":
        return None
    if "/responses/" in f"/{p}" and not p.endswith("/input_items"):
        return Endpoint.RESPONSE
    if p.endswith("/api/v0/models"):
        return Endpoint.LMSTUDIO_MODELS
    if p.endswith("/models"):
        return Endpoint.MODELS
    head, sep, tail = p.rpartition("/models/")
    if sep and tail and "/api/v0" not in head:
        return Endpoint.MODEL
    return None


@dataclass(frozen=True)
class Issue:
    """What a rule or an expectation found, before it is tagged with its item and check."""

    message: str
    chunk: int | None = None
    pointer: str | None = None
    expected: Any = None
    seen: Any = None
    raw: str | None = None
    item: str | None = None
    """Overrides the rule's item when the same rule enforces several items (e.g. streamed vs not)."""
    exchange: int | None = None
    """For expectations over several exchanges: which one."""
    severity: str = ERROR
    """`error` (fails the item) or `warning` (reported, never fails)."""

    def finding(self, *, item: str, check: str, endpoint: str, raw: str | None) -> Finding:
        """This issue as a finding of `check`: of its own item when it names one, else of `item`."""
        return Finding(
            item=self.item or item,
            check=check,
            message=self.message,
            endpoint=endpoint,
            exchange=self.exchange,
            chunk=self.chunk,
            raw=raw,
            pointer=self.pointer,
            expected=self.expected,
            seen=self.seen,
            severity=self.severity,
        )


class StreamView:
    """The events of a streamed response, sorted into JSON chunks, error events, [DONE] and the rest."""

    def __init__(self, events: tuple[SSEEvent, ...], tail: str) -> None:
        self.events = events
        self.tail = tail
        self.done: list[int] = []
        """Indexes of `data: [DONE]` events."""
        self.chunks: list[tuple[int, dict[str, Any]]] = []
        """(event index, payload) of every JSON object event that is not an error."""
        self.errors: list[tuple[int, Any]] = []
        """(event index, payload) of every event whose payload has a truthy `error`, as openai-python tests it."""
        self.invalid: list[tuple[int, str]] = []
        """(event index, reason) of data events that are not JSON objects."""
        for i, event in enumerate(events):
            if event.data is None:
                continue
            if event.data == DONE:
                self.done.append(i)
                continue
            try:
                payload = json.loads(event.data)
            except ValueError as exc:
                self.invalid.append((i, f"not JSON ({exc})"))
                continue
            if not isinstance(payload, dict):
                self.invalid.append((i, f"a JSON {type(payload).__name__}, not an object"))
            elif payload.get("error"):  # openai-python raises only on a truthy `error` (`"error": null` is a chunk)
                self.errors.append((i, payload))
            else:
                self.chunks.append((i, payload))

    def choice_chunks(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(event index, position in `choices`, choice) for every choice of every chunk."""
        out: list[tuple[int, int, dict[str, Any]]] = []
        for i, chunk in self.chunks:
            choices = chunk.get("choices")
            if isinstance(choices, list):
                out.extend((i, k, c) for k, c in enumerate(choices) if isinstance(c, dict))
        return out


class Context:
    """One exchange as the rules read it; derived views are computed once and shared by all rules."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.endpoint = endpoint_of(exchange.request.method, exchange.endpoint)
        self.request: dict[str, Any] = exchange.request.json
        self.response = exchange.response
        self.memo: dict[str, Any] = {}
        """Views other modules derive once per exchange (the accumulated answer, the SDK replay)."""

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status

    @property
    def ok(self) -> bool:
        """A 2xx response arrived."""
        return self.exchange.ok

    @property
    def body(self) -> Any:
        return None if self.response is None else self.response.body

    @property
    def asked_stream(self) -> bool:
        return self.request.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.request.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @cached_property
    def stream(self) -> StreamView | None:
        """The parsed stream of a 2xx event-stream response, else None."""
        if self.response is None or self.response.events is None or not self.ok:
            return None
        return StreamView(self.response.events, self.response.tail)

    @property
    def base_item(self) -> str:
        """The fundamental item an endpoint's generic rules enforce."""
        if self.endpoint is Endpoint.COMPLETIONS:
            return items.BASE_COMPLETIONS
        if self.endpoint is Endpoint.EMBEDDINGS:
            return items.EMBEDDINGS
        if self.endpoint is Endpoint.LMSTUDIO_MODELS:
            return items.MODEL_CAPABILITIES
        if self.endpoint in (Endpoint.MODELS, Endpoint.MODEL):
            return items.BASE_MODELS
        if self.endpoint is Endpoint.RESPONSES:
            return items.RESPONSES_STREAMING if self.asked_stream else items.RESPONSES
        if self.endpoint is Endpoint.RESPONSE:
            return items.RESPONSES_STATEFUL
        return items.BASE_STREAMING if self.asked_stream else items.BASE_CHAT

    @cached_property
    def tools(self) -> dict[str, Any]:
        """The request's function tools: name -> parameters schema (None when the tool has none)."""
        out: dict[str, Any] = {}
        tools = self.request.get("tools")
        if not isinstance(tools, list):
            return out
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                out[function["name"]] = function.get("parameters")
        return out

    @property
    def tool_choice(self) -> Any:
        return self.request.get("tool_choice")

    @property
    def named_tool(self) -> str | None:
        """The function a `tool_choice` object forces, if any."""
        choice = self.tool_choice
        if isinstance(choice, dict):
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                return str(function["name"])
        return None

    def raw_of(self, issue: Issue) -> str | None:
        """The evidence text for an issue: its own, the chunk's raw event, or an excerpt of the body."""
        if issue.raw is not None:
            return issue.raw
        if issue.chunk is not None and self.response is not None and self.response.events is not None:
            if 0 <= issue.chunk < len(self.response.events):
                return self.response.events[issue.chunk].raw
            return None
        return excerpt(self.body)


def excerpt(body: Any) -> str | None:
    """A compact one-line rendering of a body for evidence (Finding clips it)."""
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (rules read broken bodies without crashing)."""
    return value if isinstance(value, dict) else {}
