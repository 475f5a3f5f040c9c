"""Redaction of secrets from recorded exchanges: header, query and JSON field names, then their values anywhere."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import jiter

from conformance.exchange import Exchange, Request, Response, SSEEvent

__all__ = ["DEFAULT_NAMES", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

DEFAULT_NAMES = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"})
"""Names redacted exactly (case-insensitive), on top of the substring rule of `Redactor.is_secret`."""

_SECRET_PARTS = ("key", "secret", "organization", "password", "credential")
_MIN_SCRUB = 6
"""Secret values shorter than this are not searched for in other text (too many false hits)."""
_SCHEME = re.compile(r"^(bearer|basic|token)\s+", re.IGNORECASE)
_MEASURE_PREFIXES = ("time_to_", "t_", "n_", "num_")
_MEASURE_SUFFIXES = ("_ms", "_us", "_ns", "_sec", "_seconds", "_count", "_id", "_ids", "_index")
"""A `token` name with one of these (in snake_case) is a timing, count or index, e.g. llama-server's
`predicted_per_token_ms` or LM Studio's `time_to_first_token`: not a secret."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets by `[REDACTED]` so that they never reach a cassette or a HAR file.

    A name is secret when it is one of `DEFAULT_NAMES` or `extra` (exact, case-insensitive), or when
    it contains `key`, `secret`, `organization`, `password` or `credential`, or when it contains
    `token` but not `tokens` (`max_tokens`, `prompt_tokens` and `*_tokens_details` are usage counts), unless
    it names a timing, count or index: `*per_token*`, or in snake_case a name starting with `time_to_`, `t_`,
    `n_` or `num_`, or ending in `_ms`, `_us`, `_ns`, `_sec`, `_seconds`, `_count`, `_id`, `_ids` or `_index`
    (`predicted_per_token_ms`, `time_to_first_token`). Request bodies and plain response bodies have their
    secret JSON fields redacted when the value is a scalar (a tool schema property named `api_key` stays a
    schema); the `token` of a logprobs entry is generated text and the `key` of a model row of LM Studio's
    `/api/v1/models` (an object with `display_name` or `loaded_instances`) is the model's name: both are kept.
    Then every secret value taken out of the request is also replaced wherever else it appears: a server that
    echoes a key in an error message.
    """

    extra: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def with_names(cls, names: Iterable[str]) -> Redactor:
        return cls(frozenset(n.strip().lower() for n in names if n.strip()))

    def is_secret(self, name: str) -> bool:
        n = name.lower()
        if n in DEFAULT_NAMES or n in self.extra:
            return True
        if any(part in n for part in _SECRET_PARTS):
            return True
        return "token" in n and "tokens" not in n and not _measure(name)

    def exchange(self, exchange: Exchange) -> Exchange:
        """The exchange with every secret replaced (pure: the argument is left as it was)."""
        try:
            return self._exchange(exchange)
        except RecursionError:  # a body nested too deeply to walk: it is not kept, so no secret in it can leak
            return self._exchange(_without_bodies(exchange))

    def _exchange(self, exchange: Exchange) -> Exchange:
        secrets: set[str] = set()
        request = exchange.request
        request = replace(
            request,
            url=self._url(request.url, secrets),
            path=self._url(request.path, secrets),
            headers=self._headers(request.headers, secrets),
            body=self._body(request.body, request.headers, secrets),
        )
        response = exchange.response
        if response is not None:
            events = response.events
            if events is not None:
                events = _redact_fragments(tuple(self._event(e, secrets) for e in events), self, secrets)
            response = replace(
                response,
                headers=self._headers(response.headers, secrets),
                body=self._body(response.body, response.headers, secrets),
                events=events,
            )
        scrub = _Scrubber(secrets)
        return replace(
            exchange,
            request=scrub.request(request),
            response=None if response is None else scrub.response(response),
            error=None if exchange.error is None else scrub.text(exchange.error),
        )

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return self._headers(headers, set())

    def url(self, url: str) -> str:
        return self._url(url, set())

    def json(self, value: Any) -> Any:
        return self._json(value, set())

    def _headers(self, headers: Mapping[str, str], secrets: set[str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            if self.is_secret(name) and value != REDACTED:
                _remember(value, secrets)
                value = REDACTED
            elif "?" in value and "=" in value:
                value = self._url(value, secrets)  # a Location or Referer with a token in its query
            out[name] = value
        return out

    def _url(self, url: str, secrets: set[str]) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        query = self._form(parts.query, secrets)
        return url if query is None else urlunsplit(parts._replace(query=query))

    def _form(self, text: str, secrets: set[str]) -> str | None:
        """A query string or form-encoded body with its secret values redacted; None when it has none."""
        pairs = parse_qsl(text, keep_blank_values=True)
        if not any(self.is_secret(k) for k, _ in pairs):
            return None
        redacted = []
        for name, value in pairs:
            if self.is_secret(name) and value != REDACTED:
                _remember(value, secrets)
                value = REDACTED
            redacted.append((name, value))
        return urlencode(redacted, safe="[]")

    def _body(self, body: Any, headers: Mapping[str, str], secrets: set[str]) -> Any:
        if isinstance(body, str) and _media_type(headers) == "application/x-www-form-urlencoded":
            form = self._form(body, secrets)
            return body if form is None else form
        return self._json(body, secrets)

    def _json(self, value: Any, secrets: set[str]) -> Any:
        if isinstance(value, dict):
            logprob_entry = "logprob" in value
            model_row = "loaded_instances" in value or "display_name" in value
            out: dict[str, Any] = {}
            for name, item in value.items():
                kept = (logprob_entry and name == "token") or (model_row and name == "key")
                if kept or not self.is_secret(name):
                    out[name] = self._json(item, secrets)
                else:
                    out[name] = self._secret(item, secrets)
            return out
        if isinstance(value, list):
            return [self._json(item, secrets) for item in value]
        if isinstance(value, str):
            return self._string(value, secrets)
        return value

    def _secret(self, value: Any, secrets: set[str]) -> Any:
        """The value of a field with a secret name: scalars redacted, also inside lists; objects walked."""
        if _scalar(value) and value != REDACTED:
            _remember(str(value), secrets)
            return REDACTED
        if isinstance(value, list):
            return [self._secret(item, secrets) for item in value]
        return self._json(value, secrets)

    def _string(self, text: str, secrets: set[str]) -> str:
        """A string that holds JSON (tool-call `arguments`, NDJSON) or a URL with a query, redacted inside."""
        stripped = text.strip()
        if stripped.startswith(("{", "[")):
            return self._json_text(text, secrets)
        if stripped.startswith(("http://", "https://")) and "?" in stripped:
            return self._url(text, secrets)
        return text

    def _json_text(self, text: str, secrets: set[str]) -> str:
        value = _loads(text)
        if value is not _NOT_JSON:
            redacted = self._json(value, secrets)
            return text if redacted == value else _dumps_like(redacted, text)
        lines = text.splitlines(keepends=True)
        if len(lines) < 2:
            return text
        out = []
        for line in lines:  # NDJSON: each line on its own
            body, end = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")) :]
            out.append((self._json_text(body, secrets) if body.strip() else body) + end)
        return "".join(out)

    def _event(self, event: SSEEvent, secrets: set[str]) -> SSEEvent:
        if event.data is None or not event.data.lstrip().startswith(("{", "[")):
            return event
        value = _loads(event.data)
        if value is _NOT_JSON:
            return event
        redacted = self._json(value, secrets)
        return event if redacted == value else _with_data(event, _dumps_like(redacted, event.data))


_TOO_DEEP = "[not recorded: nested too deeply to redact]"


def _without_bodies(exchange: Exchange) -> Exchange:
    request = replace(exchange.request, body=_TOO_DEEP if exchange.request.body is not None else None)
    response = exchange.response
    if response is not None:
        events = response.events
        if events is not None:
            events = tuple(replace(e, data=None if e.data is None else _TOO_DEEP, raw=_TOO_DEEP) for e in events)
        response = replace(response, body=None if response.body is None else _TOO_DEEP, events=events, tail="")
    return replace(exchange, request=request, response=response)


def _measure(name: str) -> bool:
    """Whether a name is a timing, count or index (`predicted_per_token_ms`, `timeToFirstTokenSec`)."""
    snake = _CAMEL.sub("_", name).lower().replace("-", "_")
    return "per_token" in snake or snake.startswith(_MEASURE_PREFIXES) or snake.endswith(_MEASURE_SUFFIXES)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _remember(value: str, secrets: set[str]) -> None:
    """Keep a secret value (and its part after `Bearer `) to scrub it from the rest of the exchange."""
    secrets.add(value)
    secrets.add(_SCHEME.sub("", value))


def _media_type(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.split(";")[0].strip().lower()
    return ""


class _NotJson:
    pass


_NOT_JSON = _NotJson()


def _loads(text: str) -> Any:
    """The JSON value of `text`, `_NOT_JSON` when it is not JSON; RecursionError when it is nested too deeply to
    read, so that `Redactor.exchange` drops the body rather than keep text it could not look into."""
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _dumps_like(value: Any, original: str) -> str:
    """`value` as JSON in the layout of `original` (compact or with spaces), so a redacted chunk stays alike."""
    compact = _loads(original)
    if compact is not _NOT_JSON and json.dumps(compact, ensure_ascii=False, separators=(",", ":")) == original:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(value, ensure_ascii=False)


def _with_data(event: SSEEvent, data: str) -> SSEEvent:
    """The event with new `data`, its raw text changed to match (other fields and comments kept)."""
    old = event.data or ""
    if old and event.raw.count(old) == 1:
        return replace(event, data=data, raw=event.raw.replace(old, data))
    lines: list[str] = []
    for line in event.raw.splitlines():
        if line.partition(":")[0] != "data":
            lines.append(line)
        elif not any(existing.startswith("data:") for existing in lines):
            lines.append("data: " + data)
    return replace(event, data=data, raw="\n".join(lines))


Path_ = tuple[str | int, ...]


def _fragments(chunk: dict[str, Any]) -> Iterator[tuple[str, Path_]]:
    """(channel, path) of every text fragment in one stream chunk that a client joins with the same channel's
    fragments of other chunks: content and tool-call `arguments` deltas of OpenAI chat and completions streams,
    Anthropic `text`/`partial_json`/`thinking` deltas, Responses API `*.delta` events."""
    choices = chunk.get("choices")
    for n, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        index = repr(choice.get("index", n))
        if isinstance(choice.get("text"), str):
            yield f"text {index}", ("choices", n, "text")
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for name in ("content", "reasoning_content", "reasoning", "refusal"):
            if isinstance(delta.get(name), str):
                yield f"{name} {index}", ("choices", n, "delta", name)
        calls = delta.get("tool_calls")
        for m, call in enumerate(calls if isinstance(calls, list) else ()):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                where = ("choices", n, "delta", "tool_calls", m, "function", "arguments")
                yield f"arguments {index} {call.get('index', m)!r}", where
        function_call = delta.get("function_call")
        if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
            yield f"function_call {index}", ("choices", n, "delta", "function_call", "arguments")
    delta = chunk.get("delta")
    kind = chunk.get("type")
    if kind == "content_block_delta" and isinstance(delta, dict):
        for name in ("text", "partial_json", "thinking"):
            if isinstance(delta.get(name), str):
                yield f"block {chunk.get('index')!r} {name}", ("delta", name)
    elif isinstance(kind, str) and kind.endswith(".delta") and isinstance(delta, str):
        place = (chunk.get("item_id"), chunk.get("output_index"), chunk.get("content_index"))
        yield f"{kind} {place!r}", ("delta",)


def _get(value: Any, path: Path_) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(value: Any, path: Path_, new: Any) -> None:
    for step in path[:-1]:
        value = value[step]
    value[path[-1]] = new


def _redact_fragments(events: tuple[SSEEvent, ...], redactor: Redactor, secrets: set[str]) -> tuple[SSEEvent, ...]:
    """Secrets split across stream deltas: each channel's fragments are joined as a client would join them,
    secrets are looked for in the whole (by name when it is JSON, such as streamed tool-call arguments, and
    every secret value known so far), and each one found is cut out of the fragments that hold its pieces:
    the first holds `[REDACTED]`, so that the joined text reads as if the secret had been redacted in it."""
    chunks: dict[int, dict[str, Any]] = {}
    channels: dict[str, list[tuple[int, Path_]]] = defaultdict(list)
    for i, event in enumerate(events):
        if event.data is None or not event.data.lstrip().startswith("{"):
            continue
        chunk = _loads(event.data)
        if not isinstance(chunk, dict):
            continue
        for channel, path in _fragments(chunk):
            chunks[i] = chunk
            channels[channel].append((i, path))
    changed: set[int] = set()
    for places in channels.values():
        texts = [_get(chunks[i], path) for i, path in places]
        spans = _secret_spans("".join(texts), redactor, secrets)
        if not spans:
            continue
        offset = 0
        for (i, path), text in zip(places, texts, strict=True):
            new = _cut(text, offset, spans)
            offset += len(text)
            if new != text:
                _set(chunks[i], path, new)
                changed.add(i)
    if not changed:
        return events
    out = list(events)
    for i in changed:
        out[i] = _with_data(events[i], _dumps_like(chunks[i], events[i].data or ""))
    return tuple(out)


def _secret_spans(whole: str, redactor: Redactor, secrets: set[str]) -> list[tuple[int, int]]:
    """Where secrets are in the joined text of one channel, as merged (start, end) spans."""
    spans: list[tuple[int, int]] = []
    if whole.lstrip().startswith(("{", "[")):
        try:
            value = jiter.from_json(whole.encode(), partial_mode="trailing-strings")
        except ValueError:
            value = None
        found: set[str] = set()
        redactor._json(value, found)  # the same name rules, on the joined arguments
        secrets |= found
        for secret in found:  # a value under a secret name, short or not: where it stands as a JSON string
            token = '"' + _escaped(secret)
            for start in _find_all(whole, token):
                end = start + len(token)
                if whole.startswith('"', end) or end == len(whole):
                    spans.append((start + 1, end))
    spans += [(start, start + len(n)) for n in _needles(secrets) for start in _find_all(whole, n)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _find_all(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start
        start = text.find(needle, start + 1)


def _cut(text: str, offset: int, spans: list[tuple[int, int]]) -> str:
    """One fragment (at `offset` in the joined text) with the parts of `spans` in it taken out; the fragment where
    a span starts gets `[REDACTED]` in its place."""
    out: list[str] = []
    position = 0
    for start, end in spans:
        start, end = start - offset, end - offset
        if end <= 0 or start >= len(text):
            continue
        out.append(text[position : max(start, 0)])
        if start >= 0:
            out.append(REDACTED)
        position = min(end, len(text))
    out.append(text[position:])
    return "".join(out)


def _escaped(secret: str) -> str:
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def _needles(secrets: Iterable[str]) -> set[str]:
    """Every form a secret value long enough to search for takes in text: as is, JSON-escaped, percent-encoded."""
    needles: set[str] = set()
    for secret in secrets:
        if len(secret) < _MIN_SCRUB or secret == REDACTED:
            continue
        needles.update((secret, _escaped(secret), json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)))
    return needles


@dataclass(frozen=True)
class _Scrubber:
    """Replaces known secret values inside every string of an exchange."""

    secrets: set[str]
    _needles: list[str] = field(init=False)

    def __post_init__(self) -> None:
        # longest first, so a value and its `Bearer `-less part are both caught
        object.__setattr__(self, "_needles", sorted(_needles(self.secrets), key=len, reverse=True))

    def text(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if not self._needles:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def request(self, request: Request) -> Request:
        if not self._needles:
            return request
        return replace(
            request,
            url=self.text(request.url),
            path=self.text(request.path),
            headers=self.value(dict(request.headers)),
            body=self.value(request.body),
        )

    def response(self, response: Response) -> Response:
        if not self._needles:
            return response
        events = response.events
        if events is not None:
            events = tuple(self._event(e) for e in events)
        return replace(
            response,
            headers=self.value(dict(response.headers)),
            body=self.value(response.body),
            events=events,
            tail=self.text(response.tail),
        )

    def _event(self, event: SSEEvent) -> SSEEvent:
        return replace(event, raw=self.text(event.raw), data=None if event.data is None else self.text(event.data))
