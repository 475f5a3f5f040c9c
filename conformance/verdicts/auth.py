"""Verdict of 0.4.0/auth-tokens: a missing or wrong token gets 401 in the error format of the surface called; the
right token is accepted.

Pure over exchanges: which token a request carried is read from its headers (no token, the suite's made-up
`WRONG_TOKEN`, or any other token: the right one), the surface from its path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any

from conformance import schemas
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.schemas import Schema
from conformance.verdicts import items
from conformance.verdicts.context import excerpt

__all__ = ["WRONG_TOKEN", "Envelope", "Token", "auth_findings", "envelope_of", "token_of"]

WRONG_TOKEN = "sk-lm-conformance:wrong-token"
"""The token the suite sends as a wrong one (shaped like LM Studio's `sk-lm-XXXXXXXX:YYYY...`)."""
_REFUSED = 401


class Token(StrEnum):
    MISSING = "missing"
    WRONG = "wrong"
    RIGHT = "right"


class Envelope(StrEnum):
    """The error format of a surface: how its clients read an error body."""

    OPENAI = 'OpenAI {"error": {"message": ...}}'
    ANTHROPIC = 'Anthropic {"type": "error", "error": {"type": ..., "message": ...}}'
    NATIVE = 'LM Studio {"error": {"type": ..., "message": ...}}'


def envelope_of(path: str) -> Envelope:
    """`/v1/messages*` Anthropic's, `/api/v1/*` LM Studio's native one, every other route OpenAI's."""
    if path.startswith("/v1/messages"):
        return Envelope.ANTHROPIC
    if path.startswith("/api/v1/"):
        return Envelope.NATIVE
    return Envelope.OPENAI


def token_of(exchange: Exchange) -> Token:
    """Which token the request carried (`Authorization: Bearer` or `x-api-key`)."""
    headers = {k.lower(): v for k, v in exchange.request.headers.items()}
    sent = [v for k, v in headers.items() if k in ("authorization", "x-api-key")]
    if not sent:
        return Token.MISSING
    return Token.WRONG if any(WRONG_TOKEN in value for value in sent) else Token.RIGHT


def auth_findings(exchanges: Sequence[Exchange], *, check: str) -> list[Finding]:
    """Every exchange judged by the token it carried."""
    return [f for i, e in enumerate(exchanges) for f in _judge(i, e, check)]


def _judge(index: int, exchange: Exchange, check: str) -> Iterator[Finding]:
    response = exchange.response
    if response is None:
        return
    request = f"{exchange.request.method} {exchange.endpoint}"
    token = token_of(exchange)

    def finding(message: str, **fields: Any) -> Finding:
        return Finding(
            item=items.AUTH_TOKENS,
            check=check,
            message=message,
            endpoint=exchange.endpoint,
            exchange=index,
            raw=excerpt(response.body),
            **fields,
        )

    if token is Token.RIGHT:
        if response.status in (_REFUSED, 403):
            yield finding(
                f"{request} refused the right token with {response.status}",
                expected="not 401 or 403",
                seen=response.status,
            )
        return
    what = "without a token" if token is Token.MISSING else "with a wrong token"
    if response.status != _REFUSED:
        accepted = "accepted the request" if response.status < 400 else "did not answer 401"
        yield finding(
            f"{request} {what} {accepted} ({response.status}): a server that requires a token refuses it with 401",
            expected=_REFUSED,
            seen=response.status,
        )
        return
    envelope = envelope_of(exchange.endpoint)
    problem = _envelope_problem(envelope, response.body)
    if problem is not None:
        pointer, detail = problem
        yield finding(
            f"the 401 of {request} {what} is not in the error format its clients read ({envelope.value}): {detail}",
            pointer=pointer,
            expected=envelope.value,
            seen=response.body,
        )


def _envelope_problem(envelope: Envelope, body: Any) -> tuple[str, str] | None:
    """Where and how an error body breaks the surface's format (None when it fits)."""
    schema = Schema.ANTHROPIC_ERROR if envelope is Envelope.ANTHROPIC else Schema.ERROR
    found = schemas.errors(schema, body)
    if found:
        return found[0].pointer, found[0].message
    if envelope is Envelope.OPENAI and isinstance(body, dict) and body.get("type") == "error":
        return "/type", "an Anthropic envelope on an OpenAI route"
    if envelope is Envelope.NATIVE and not isinstance(body["error"].get("type"), str):
        return "/error/type", "`error.type` is not a string"
    return None
