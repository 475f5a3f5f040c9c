"""Whether a server implements an item's surface (LM Studio's own API, Anthropic, Responses) at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.check import Item
from conformance.exchange import Exchange
from conformance.findings import clip
from conformance.verdicts import items as ids
from conformance.verdicts.presets import names_unknown_preset

__all__ = ["ABSENT_STATUSES", "route_absent", "unimplemented"]

ABSENT_STATUSES = frozenset({404, 405, 501})
"""Statuses that say a route does not exist (or not for this method)."""
_UNEXPECTED = "unexpected endpoint"
"""LM Studio answers an unknown route with 200 {"error": "Unexpected endpoint or method. (POST /x)"}."""
_BODY_EXCERPT = 300


def unimplemented(item: Item, exchanges: Sequence[Exchange]) -> tuple[str, dict[str, Any]] | None:
    """Why the exchanges show that the server lacks the item's extension, with the evidence; None when they do not.

    A route the server does not have answers 404, 405 or 501, or LM Studio's "Unexpected endpoint" 200; an
    extension field the server ignores leaves its answer out (no `stats` for `draft_model`). A 404 counts only
    when no exchange got any other answer: a server that answered one request of the surface implements it,
    and its 404 to an unknown model or path is then an answer to judge, not an absence.
    """
    if item.extension is None:
        return None
    absent: tuple[str, dict[str, Any]] | None = None
    for index, exchange in enumerate(exchanges):
        response = exchange.response
        if response is None:
            continue
        request = f"{exchange.request.method} {exchange.request.path}"
        evidence = {"request": request, "exchange": index, "status": response.status, "body": _excerpt(response.body)}
        if item.id == ids.SPECULATIVE_DECODING and _ignores_draft_model(exchange):
            return f"the answer to {request} with `draft_model` has no `stats`: the server ignores it", evidence
        if item.id == ids.PRESETS and _ignores_preset(exchange):
            return f"{request} naming a preset that cannot exist was answered: the server ignores `preset`", evidence
        if response.status in ABSENT_STATUSES:
            absent = absent or (f"{request} answered {response.status}", evidence)
        elif exchange.ok and _unexpected_endpoint(response.body):
            absent = absent or (f'{request} answered {response.status} "Unexpected endpoint or method"', evidence)
        else:
            return None  # the surface answered: it is there
    return absent


def route_absent(exchange: Exchange) -> bool:
    """The answer says the route does not exist: 404, 405, 501, or LM Studio's "Unexpected endpoint" 200."""
    response = exchange.response
    if response is None:
        return False
    return response.status in ABSENT_STATUSES or (exchange.ok and _unexpected_endpoint(response.body))


def _unexpected_endpoint(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else body
    return isinstance(error, str) and _UNEXPECTED in error.lower()


def _ignores_draft_model(exchange: Exchange) -> bool:
    response = exchange.response
    asked = isinstance(exchange.request.json.get("draft_model"), str)
    if not asked or response is None or response.is_stream or not exchange.ok:
        return False
    return isinstance(response.body, dict) and "stats" not in response.body


def _ignores_preset(exchange: Exchange) -> bool:
    response = exchange.response
    if response is None or not names_unknown_preset(exchange.request.json) or not exchange.ok:
        return False
    return not _unexpected_endpoint(response.body)


def _excerpt(body: Any) -> Any:
    if body is None or (isinstance(body, dict | list) and len(str(body)) <= _BODY_EXCERPT):
        return body
    return clip(body if isinstance(body, str) else str(body), _BODY_EXCERPT)
