"""0.4.0/auth-tokens: with the server's token given to the suite (`--api-key`), every surface refuses a missing or
wrong token with 401 in its own error format and accepts the right one."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.applicability import route_absent
from conformance.catalog import requests as rq
from conformance.check import Check, Item, Kind, RequestSpec, Target
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import Context, validate_contexts
from conformance.verdicts import items as ids
from conformance.verdicts.auth import WRONG_TOKEN, Token, auth_findings, token_of

__all__ = ["AUTH_ITEMS", "SURFACES"]

_CHECK = "tokens-on-every-surface"


@dataclass(frozen=True)
class _Surface:
    method: str
    path: str
    body: Any = None
    header: str = "authorization"
    """Where its clients send the token: `authorization` (Bearer) or Anthropic's `x-api-key`."""

    def spec(self, target: Target, token: str | None) -> RequestSpec:
        body = {"model": target.model, **self.body} if self.body is not None else None
        headers = {} if token is None else {self.header: token if self.header == "x-api-key" else f"Bearer {token}"}
        return RequestSpec(self.method, self.path, body=body, headers=headers, auth=False)


_HELLO = [{"role": "user", "content": "Say hello."}]
SURFACES = (
    _Surface("GET", rq.MODELS),
    _Surface("POST", rq.CHAT, {"messages": _HELLO, "temperature": 0, "seed": rq.SEED, "max_tokens": 4}),
    _Surface("POST", "/v1/messages", {"messages": _HELLO, "temperature": 0, "max_tokens": 4}, header="x-api-key"),
    _Surface("POST", "/v1/responses", {"input": "Say hello.", "temperature": 0, "max_output_tokens": 16}),
    _Surface("GET", rq.LMSTUDIO_MODELS),
    _Surface("GET", "/api/v1/models"),
)
"""One route per surface: OpenAI (a GET and a POST), Anthropic, Responses, LM Studio's REST v0 and v1."""


def _plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
    """Per surface: the right token (a surface that answers it as absent is left out), none, a wrong one."""
    if target.api_key is None:
        return
    for surface in SURFACES:
        right = yield surface.spec(target, target.api_key)
        if route_absent(right):
            continue
        yield surface.spec(target, None)
        yield surface.spec(target, WRONG_TOKEN)


def _verdict(exchanges: Sequence[Exchange]) -> list[Finding]:
    """The rules of each exchange's endpoint (findings of their own items), then the token verdict."""
    rules = validate_contexts([Context(e) for e in exchanges])
    return rules + auth_findings(exchanges, check=_CHECK)


def _exercised(exchanges: Sequence[Exchange]) -> str | None:
    if not exchanges:
        return "no --api-key given (pass the server's token to probe its authentication)"
    if all(token_of(e) is Token.RIGHT for e in exchanges):
        return "every surface answered the right token as a route it does not have (404, 405, 501)"
    return None


_AUTH_TOKENS = Item(
    id=ids.AUTH_TOKENS,
    version="0.4.0",
    title="Authentication configuration with API tokens",
    kind=Kind.API,
    endpoints=tuple(dict.fromkeys(s.path for s in SURFACES)),
    checks=(
        Check(
            id=_CHECK,
            item=ids.AUTH_TOKENS,
            title="On every surface the server has (OpenAI, Anthropic, Responses, LM Studio v0 and v1), a missing "
            "or wrong token gets 401 in that surface's error format and the right token is accepted",
            plan=_plan,
            verdict=_verdict,
            exercised=_exercised,
        ),
    ),
)

AUTH_ITEMS: dict[str, Item] = {_AUTH_TOKENS.id: _AUTH_TOKENS}
