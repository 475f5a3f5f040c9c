"""Rules on error answers: an OpenAI error object with a JSON body, never FastAPI's 422 `detail` shape."""

from __future__ import annotations

from collections.abc import Iterator

from conformance import schemas
from conformance.findings import WARNING
from conformance.verdicts import items
from conformance.verdicts.context import Context, Issue
from conformance.verdicts.rule import ALL_ENDPOINTS, Rule, rule

__all__ = ["RULES"]


@rule("response-received", items.BASE_CHAT, ALL_ENDPOINTS)
def response_received(ctx: Context) -> Iterator[Issue]:
    """A response arrived (no connection error, timeout or reset)."""
    if ctx.response is None:
        yield Issue(
            f"no response: {ctx.exchange.error or 'the connection closed without an answer'}",
            item=ctx.base_item,
            expected="an HTTP response",
            seen=ctx.exchange.error,
        )


@rule("error-body", items.BASE_ERRORS, ALL_ENDPOINTS)
def error_body(ctx: Context) -> Iterator[Issue]:
    """An error status carries a JSON body `{"error": {"message": ...}}`, whether or not a stream was asked for."""
    response = ctx.response
    if response is None or response.status < 400:
        return
    item = items.STREAM_ERRORS if ctx.asked_stream else items.BASE_ERRORS
    if response.is_stream:
        yield Issue(
            f"error status {response.status} sent with a `text/event-stream` body; clients read the body of an "
            "error status as one JSON error object",
            item=item,
            raw="\n\n".join(e.raw for e in response.events or ()) or response.tail,
            expected='application/json {"error": {"message": ...}}',
            seen=response.headers.get("content-type"),
        )
        return
    body = response.body
    if isinstance(body, dict) and "detail" in body and "error" not in body:
        yield Issue(
            f'error status {response.status} with FastAPI\'s validation body {{"detail": ...}} instead of an OpenAI '
            "error object; OpenAI clients find no `error.message` to show",
            item=item,
            pointer="",
            expected='{"error": {"message": "...", "type": "invalid_request_error"}}',
            seen=body,
        )
        return
    if not isinstance(body, dict):
        yield Issue(
            f"error status {response.status} whose body is not a JSON object; OpenAI clients find no "
            "`error.message` to show",
            item=item,
            pointer="",
            expected='{"error": {"message": "..."}}',
            seen=body,
        )
        return
    if "error" not in body and isinstance(body.get("message"), str):
        yield Issue(
            f'error status {response.status} with a top-level {{"message": ...}} body (old vLLM\'s '
            '{"object": "error", ...}) instead of {"error": {...}}: openai-python still shows the message, as it '
            'reads body.get("error", body), but the shape is non-standard and other OpenAI clients find no '
            "`error.message`",
            item=item,
            pointer="",
            expected='{"error": {"message": "..."}}',
            seen=body,
        )
        return
    for error in schemas.errors(schemas.Schema.ERROR, body):
        yield Issue(
            f"error body is not an OpenAI error object: {error.message}",
            item=item,
            pointer=error.pointer,
            expected='{"error": {"message": "..."}}',
        )


@rule("keep-alive-closed", items.BASE_CHAT, ALL_ENDPOINTS)
def keep_alive_closed(ctx: Context) -> Iterator[Issue]:
    """A kept-alive connection is not closed under the client without `Connection: close` (the request then
    fails before any response byte and must be sent again)."""
    if ctx.exchange.retried is not None:
        yield Issue(
            "the server closed a keep-alive connection without sending `Connection: close`: this request failed "
            f"on the reused connection ({ctx.exchange.retried}) before any response byte, and was sent again on a "
            "fresh one; clients that do not retry report an error",
            item=ctx.base_item,
            expected="`Connection: close` on the response before closing, or the connection kept open",
            seen=ctx.exchange.retried,
            severity=WARNING,
        )


RULES: tuple[Rule, ...] = (response_received, error_body, keep_alive_closed)
