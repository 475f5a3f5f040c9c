"""Rules on requests a server must accept: an error that blames a supported option is a finding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conformance.verdicts import items
from conformance.verdicts.context import Context, Endpoint, Issue
from conformance.verdicts.rule import Rule, rule

__all__ = ["RULES"]

_CHAT = frozenset({Endpoint.CHAT})


def _error_text(ctx: Context) -> str:
    body: Any = ctx.body
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)
    return str(body or "")


def _rejected(ctx: Context) -> bool:
    return ctx.response is not None and ctx.response.status >= 400


@rule("response-format-text-accepted", items.RESPONSE_FORMAT_TEXT, _CHAT)
def response_format_text_accepted(ctx: Context) -> Iterator[Issue]:
    """`response_format: {"type": "text"}` is never the reason a request is refused."""
    fmt = ctx.request.get("response_format")
    if _rejected(ctx) and isinstance(fmt, dict) and fmt.get("type") == "text" and "response_format" in _error_text(ctx):
        yield Issue(
            f'the request was refused ({ctx.status}) over response_format {{"type": "text"}}, which OpenAI accepts '
            "as the default format (lmstudio #307, #189)",
            expected="2xx",
            seen=_error_text(ctx)[:200],
        )


@rule("ttl-accepted", items.TTL, _CHAT)
def ttl_accepted(ctx: Context) -> Iterator[Issue]:
    """A `ttl` field is never the reason a request is refused."""
    if _rejected(ctx) and "ttl" in ctx.request and "ttl" in _error_text(ctx).lower():
        yield Issue(
            f"the request was refused ({ctx.status}) over its `ttl` field",
            expected="2xx",
            seen=_error_text(ctx)[:200],
        )


@rule("tools-no-server-error", items.TOOLS_REQUEST_ROBUSTNESS, _CHAT)
def tools_no_server_error(ctx: Context) -> Iterator[Issue]:
    """A request with tools never ends in a 5xx server error (e.g. "reading 'properties'")."""
    if ctx.response is not None and ctx.response.status >= 500 and ctx.request.get("tools"):
        yield Issue(
            f"a request with tools failed with server error {ctx.status}; a tool definition the server cannot "
            "handle must be a 400 naming it, and a valid one must work",
            expected="2xx (or 400 naming the bad tool)",
            seen=_error_text(ctx)[:200],
        )


RULES: tuple[Rule, ...] = (response_format_text_accepted, ttl_accepted, tools_no_server_error)
