"""Tests for proxy/pairing.py: the request key ignores volatile fields and key order, nothing else."""

from __future__ import annotations

from conformance.exchange import Exchange, Request
from proxy.pairing import pair, request_key, without_volatile


def _req(body: object, path: str = "/v1/chat/completions", method: str = "POST") -> Request:
    return Request(method, "http://h" + path, path, {}, body)


def test_key_ignores_key_order_and_volatile_fields() -> None:
    a = {"model": "m", "messages": [{"role": "tool", "tool_call_id": "call_1", "content": "x"}], "user": "u"}
    b = {"user": "u", "messages": [{"content": "x", "tool_call_id": "call_9", "role": "tool"}], "model": "m"}
    assert request_key(_req(a)) == request_key(_req(b))
    assert request_key(_req({"previous_response_id": "r1", "input": "hi"})) == request_key(_req({"input": "hi"}))


def test_key_keeps_what_matters() -> None:
    base = request_key(_req({"model": "m", "max_tokens": 8}))
    assert request_key(_req({"model": "m", "max_tokens": 9})) != base
    assert request_key(_req({"model": "m", "max_tokens": 8}, path="/v1/completions")) != base
    assert request_key(_req({"model": "m", "max_tokens": 8}, method="PUT")) != base
    assert request_key(_req(None, method="GET", path="/v1/models")) == "GET /v1/models"


def test_without_volatile() -> None:
    assert without_volatile({"id": 1, "created": 2, "a": [{"call_id": 3, "b": 4}], "system_fingerprint": "x"}) == {
        "a": [{"b": 4}]
    }


def test_pair_in_order_and_unpaired() -> None:
    old = [Exchange(_req({"n": n}), None) for n in (1, 2, 1, 3)]
    new = [Exchange(_req({"n": n}), None) for n in (1, 1, 2, 4)]
    result = pair(old, new)
    assert result.pairs == ((0, 0), (1, 2), (2, 1))
    assert result.only_old == (3,)
    assert result.only_new == (3,)
