"""Request limits: body size, message count, output tokens and embedding batch, each refused with a clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conformance.cli import main
from reference_server.app import create_app
from reference_server.embedded import run_app
from reference_server.engine import Engine
from reference_server.limits import Limits

LIMITS = Limits(max_body_bytes=4096, max_messages=3, max_output_tokens=8, max_embedding_inputs=2)
HELLO: Any = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def client(reference_engine: Engine) -> Iterator[httpx.Client]:
    with run_app(create_app(reference_engine, limits=LIMITS)) as url, httpx.Client(base_url=url, timeout=120) as http:
        yield http


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_a_body_over_the_limit_is_413_with_or_without_a_content_length(client: httpx.Client) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    error = _error(client.post("/v1/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large"
    assert "--max-body-bytes" in error["message"]
    chunked = client.post("/v1/embeddings", content=iter([b'{"input": "', b"x" * 5000, b'"}']))
    assert "content-length" not in chunked.request.headers
    assert _error(chunked, 413)["code"] == "request_too_large"


def test_too_many_messages_is_400(client: httpx.Client) -> None:
    error = _error(client.post("/v1/chat/completions", json={"messages": HELLO * 4, "max_tokens": 1}))
    assert (error["code"], error["param"]) == ("too_many_messages", "messages")
    assert "at most 3" in error["message"]


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/v1/chat/completions", "max_tokens", {"messages": HELLO}),
        ("/v1/chat/completions", "max_completion_tokens", {"messages": HELLO}),
        ("/v1/completions", "max_tokens", {"prompt": "Hello"}),
    ],
)
def test_max_tokens_over_the_ceiling_is_400_and_the_ceiling_bounds_requests_without_one(
    client: httpx.Client, path: str, field: str, body: dict[str, Any]
) -> None:
    error = _error(client.post(path, json={**body, field: 9}))
    assert (error["code"], error["param"]) == ("max_tokens_too_large", field)
    assert "--max-output-tokens" in error["message"]
    unbounded = client.post(path, json={**body, "temperature": 0})
    assert unbounded.status_code == 200, unbounded.text
    assert unbounded.json()["usage"]["completion_tokens"] <= LIMITS.max_output_tokens


def test_an_embedding_batch_over_the_limit_is_400(client: httpx.Client) -> None:
    error = _error(client.post("/v1/embeddings", json={"input": ["a", "b", "c"]}))
    assert (error["code"], error["param"]) == ("too_many_inputs", "input")
    assert client.post("/v1/embeddings", json={"input": ["a", "b"]}).status_code == 200


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_messages must be at least 1"):
        Limits(max_messages=0)


def test_serve_refuses_a_limit_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-output-tokens", "0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--max-output-tokens must be at least 1" in err
    assert "Traceback" not in err
