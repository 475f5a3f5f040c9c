"""Every route of the app, with every method it has, refuses a missing or wrong token with 401 in the error format
of its surface, and lets the right token through."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from reference_server.app import create_app
from reference_server.auth import ApiKeys
from reference_server.embedded import engine_for
from tests.conftest import TEST_THREADS

TOKEN = "sk-lm-routes:right-token"
WRONG = {
    "missing": {},
    "wrong bearer": {"Authorization": "Bearer sk-lm-routes:wrong"},
    "wrong x-api-key": {"x-api-key": "no"},
}


def _app() -> FastAPI:
    # the session's engine (loaded once); no request here generates: the right token meets empty bodies
    return create_app(engine_for(threads=TEST_THREADS), api_keys=ApiKeys([TOKEN]))


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, path parameters filled with a placeholder. FastAPI keeps included
    routers as such in `app.routes`; `iter_route_contexts` walks them (as FastAPI's own OpenAPI generator does)."""
    found = set()
    for context in iter_route_contexts(_app().routes):
        route = context.original_route
        assert isinstance(route, APIRoute), f"not an API route: {route!r}"  # a mount would need its own probe
        assert context.path is not None
        found.update((method, re.sub(r"\{[^}]+\}", "some-id", context.path)) for method in route.methods)
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


ROUTES = _routes()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _envelope_problem(path: str, body: Any) -> str | None:
    """What is wrong with a 401 body for the surface `path` belongs to (None when it is right)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not error["message"]:
        return "no error.message"
    if path.startswith("/v1/messages"):  # Anthropic's envelope
        if body.get("type") != "error" or error.get("type") != "authentication_error":
            return 'not {"type": "error", "error": {"type": "authentication_error", ...}}'
        return None
    if error.get("code") != "invalid_api_key" or not isinstance(error.get("type"), str):
        return 'not {"error": {"type": ..., "code": "invalid_api_key", ...}}'
    if path.startswith("/api/v1/") and error["type"].endswith("_error"):
        return f"LM Studio's native type (e.g. invalid_request), not OpenAI's {error['type']!r}"
    return None


def test_the_app_has_every_surface() -> None:
    paths = {path for _, path in ROUTES}
    for expected in ("/v1/models", "/v1/chat/completions", "/v1/messages", "/v1/responses", "/api/v0/models"):
        assert expected in paths


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_a_missing_or_wrong_token(client: TestClient, method: str, path: str) -> None:
    for case, headers in WRONG.items():
        refused = client.request(method, path, headers=headers)
        assert refused.status_code == 401, (case, refused.status_code, refused.text)
        assert _envelope_problem(path, refused.json()) is None, (case, refused.json())
        assert TOKEN not in refused.text


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_lets_the_right_token_through(client: TestClient, method: str, path: str) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"x-api-key": TOKEN}):
        answered = client.request(method, path, headers=headers, content=b"{}" if method == "POST" else None)
        assert answered.status_code not in (401, 403), (headers, answered.text)


def test_the_envelope_check_tells_the_surfaces_apart() -> None:
    openai = {"error": {"message": "no", "type": "invalid_request_error", "code": "invalid_api_key"}}
    anthropic = {"type": "error", "error": {"type": "authentication_error", "message": "no"}}
    native = {"error": {"message": "no", "type": "invalid_request", "code": "invalid_api_key"}}
    assert _envelope_problem("/v1/models", openai) is None
    assert _envelope_problem("/v1/messages", anthropic) is None
    assert _envelope_problem("/api/v1/models", native) is None
    assert _envelope_problem("/v1/messages", openai) is not None
    assert _envelope_problem("/api/v1/models", openai) is not None
    assert _envelope_problem("/v1/models", {"detail": "Unauthorized"}) is not None
