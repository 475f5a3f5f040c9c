"""Redaction of secrets from recorded exchanges: header, query and JSON field names, then their values anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    schema); the `token` of a logprobs entry is generated text and is kept. Then every secret value taken out
    of the request is also replaced wherever else it appears: a server that echoes a key in an error message.
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
        secrets: set[str] = set()
        request = exchange.request
        request = replace(
            request,
            url=self._url(request.url, secrets),
            path=self._url(request.path, secrets),
            headers=self._headers(request.headers, secrets),
            body=self._json(request.body, secrets),
        )
        response = exchange.response
        if response is not None:
            response = replace(
                response,
                headers=self._headers(response.headers, secrets),
                body=self._json(response.body, secrets),
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
            out[name] = value
        return out

    def _url(self, url: str, secrets: set[str]) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if not any(self.is_secret(k) for k, _ in pairs):
            return url
        redacted = []
        for name, value in pairs:
            if self.is_secret(name) and value != REDACTED:
                _remember(value, secrets)
                value = REDACTED
            redacted.append((name, value))
        return urlunsplit(parts._replace(query=urlencode(redacted, safe="[]")))

    def _json(self, value: Any, secrets: set[str]) -> Any:
        if isinstance(value, dict):
            logprob_entry = "logprob" in value
            out: dict[str, Any] = {}
            for name, item in value.items():
                keep = logprob_entry and name == "token"
                if not keep and self.is_secret(name) and _scalar(item) and item != REDACTED:
                    _remember(str(item), secrets)
                    out[name] = REDACTED
                else:
                    out[name] = self._json(item, secrets)
            return out
        if isinstance(value, list):
            return [self._json(item, secrets) for item in value]
        return value


def _measure(name: str) -> bool:
    """Whether a name is a timing, count or index (`predicted_per_token_ms`, `timeToFirstTokenSec`)."""
    snake = _CAMEL.sub("_", name).lower().replace("-", "_")
    return "per_token" in snake or snake.startswith(_MEASURE_PREFIXES) or snake.endswith(_MEASURE_SUFFIXES)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _remember(value: str, secrets: set[str]) -> None:
    for candidate in (value, _SCHEME.sub("", value)):
        if len(candidate) >= _MIN_SCRUB:
            secrets.add(candidate)


@dataclass(frozen=True)
class _Scrubber:
    """Replaces known secret values inside every string of an exchange."""

    secrets: set[str]

    def text(self, text: str) -> str:
        # longest first, so a value and its `Bearer `-less part are both caught
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def request(self, request: Request) -> Request:
        if not self.secrets:
            return request
        return replace(
            request,
            url=self.text(request.url),
            path=self.text(request.path),
            headers=self.value(dict(request.headers)),
            body=self.value(request.body),
        )

    def response(self, response: Response) -> Response:
        if not self.secrets:
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
