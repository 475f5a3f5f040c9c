"""Tests for validate_exchange: endpoint routing, every rule registered with a catalog item, cassette lines."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.catalog import ITEMS
from conformance.exchange import Exchange
from conformance.verdicts import RULES, Context, Endpoint, endpoint_of, validate_contexts, validate_exchange


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/chat/completions", Endpoint.CHAT),
        ("POST", "/api/v0/chat/completions", Endpoint.CHAT),
        ("POST", "/chat/completions?x=1", Endpoint.CHAT),
        ("POST", "/v1/completions", Endpoint.COMPLETIONS),
        ("POST", "/v1/embeddings/", Endpoint.EMBEDDINGS),
        ("GET", "/v1/models", Endpoint.MODELS),
        ("GET", "/v1/models/smollm2", Endpoint.MODEL),
        ("GET", "/api/v0/models", Endpoint.LMSTUDIO_MODELS),
        ("POST", "/v1/messages", None),
        ("POST", "/v1/responses", Endpoint.RESPONSES),
        ("GET", "/v1/responses/resp_1", Endpoint.RESPONSE),
        ("DELETE", "/v1/responses/resp_1", None),
        ("GET", "/v1/chat/completions", None),
        ("DELETE", "/v1/models/x", None),
    ],
)
def test_endpoint_of(method: str, path: str, endpoint: Endpoint | None) -> None:
    assert endpoint_of(method, path) is endpoint


def test_unknown_endpoints_get_no_findings(wire: Any) -> None:
    exchange = wire.plain({"model": "m"}, {"detail": "whatever"}, status=422, path="/v1/rerank")
    assert validate_exchange(exchange) == []


def test_every_rule_enforces_a_catalog_item_and_has_a_description() -> None:
    catalog = {item.id for item in ITEMS}
    for rule in RULES:
        assert rule.item in catalog, rule.id
        assert rule.doc, rule.id
        assert rule.endpoints, rule.id
    assert len({r.id for r in RULES}) == len(RULES)


def test_findings_survive_a_cassette_round_trip(wire: Any) -> None:
    chunks = [*wire.text_stream(), wire.chunk(choices=[], usage=wire.usage())]
    exchange = wire.stream(wire.chat_request(stream=True), chunks)
    replayed = Exchange.from_dict(exchange.to_dict())
    assert validate_exchange(replayed) == validate_exchange(exchange)
    assert [f.check for f in validate_exchange(replayed)] == ["stream-usage-unasked"]


def test_rules_never_crash_on_garbage(wire: Any) -> None:
    garbage: list[Any] = [None, 3, "x", [], {"choices": "no"}, {"choices": [None, {"delta": 5}]}]
    for body in garbage:
        for request in (wire.chat_request(), wire.chat_request(stream=True, tools="x", tool_choice=[])):
            validate_exchange(wire.plain(request, body))
            validate_exchange(wire.plain(request, body, status=500))
            validate_exchange(wire.plain(request, body, path="/v1/embeddings"))
            validate_exchange(wire.plain(None, body, path="/v1/models", method="GET"))
        events = [body if isinstance(body, dict) else str(body)]
        validate_exchange(wire.stream(wire.chat_request(stream=True, tools=[{"function": None}]), events))
        validate_exchange(wire.stream({"stream": True}, events, path="/v1/completions"))


def test_validate_contexts_numbers_findings_by_exchange_when_there_are_several(wire: Any) -> None:
    broken = wire.plain({"model": "m"}, {"detail": "whatever"}, status=422, path="/v1/chat/completions")
    alone = validate_contexts([Context(broken)])
    assert alone
    assert {f.exchange for f in alone} == {None}
    both = validate_contexts([Context(broken), Context(broken)])
    assert [f.exchange for f in both] == [0] * len(alone) + [1] * len(alone)
    assert [f.message for f in both] == [f.message for f in alone] * 2
