"""Tests for conformance/applicability.py: when a server's answers show that it lacks a surface."""

from __future__ import annotations

from conformance.applicability import unimplemented
from conformance.catalog import by_id
from conformance.exchange import Exchange, Request, Response

ANTHROPIC = by_id("0.4.1/anthropic-messages")


def _post(path: str, status: int, body: object = None) -> Exchange:
    return Exchange(Request("POST", f"http://h{path}", path, body={"model": "m"}), Response(status, body=body))


def test_a_route_that_only_answers_404_is_not_implemented() -> None:
    sign = unimplemented(ANTHROPIC, [_post("/v1/messages", 404, {"detail": "Not Found"})])
    assert sign is not None
    reason, evidence = sign
    assert reason == "POST /v1/messages answered 404"
    assert evidence["status"] == 404


def test_a_404_to_a_deliberate_probe_on_an_implemented_surface_is_an_answer() -> None:
    """The error-envelope check sends an unknown model and an unknown path after two bad requests: the 400s show
    the route exists, so the 404s are judged, not read as an absent surface (a false skip on the reference server)."""
    error = {"type": "error", "error": {"type": "not_found_error", "message": "no model x"}}
    exchanges = [
        _post("/v1/messages", 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}}),
        _post("/v1/messages", 404, error),
        _post("/v1/messages/no-such-endpoint", 404, error),
    ]
    assert unimplemented(ANTHROPIC, exchanges) is None
    assert unimplemented(ANTHROPIC, exchanges[1:]) is not None, "only 404s: nothing shows the surface exists"


def test_lm_studio_unexpected_endpoint_counts_as_absent() -> None:
    body = {"error": "Unexpected endpoint or method. (POST /v1/messages)"}
    sign = unimplemented(ANTHROPIC, [_post("/v1/messages", 200, body)])
    assert sign is not None
    assert "Unexpected endpoint" in sign[0]


def test_embeddings_answered_501_is_a_surface_the_server_lacks() -> None:
    """llama-server without --embeddings: 501 "This server does not support embeddings" is not a failure of it."""
    body = {
        "error": {"code": 501, "message": "This server does not support embeddings.", "type": "not_supported_error"}
    }
    exchange = Exchange(
        Request("POST", "http://h/v1/embeddings", "/v1/embeddings", body={"input": "x"}), Response(501, body=body)
    )
    sign = unimplemented(by_id("0.3.25/embeddings"), [exchange])
    assert sign is not None
    assert sign[0] == "POST /v1/embeddings answered 501"
