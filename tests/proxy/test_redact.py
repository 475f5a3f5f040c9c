"""Tests for proxy/redact.py: which names are secret, and that secret values leave no trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.exchange import Exchange, Request, Response, SSEEvent
from proxy.redact import REDACTED, Redactor


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "X-API-Key",
        "api-key",
        "Cookie",
        "set-cookie",
        "OpenAI-Organization",
        "x-goog-api-key",
        "client_secret",
        "access_token",
        "X-Auth-Token",
        "token",
        "refresh-token",
        "password",
        "apiKey",
        "api_key",
        "refresh_token",
        "id_token",
        "session_token",
        "x-session-token",
        "csrf_token",
        "hf_token",
        "accessToken",
        "token_secret",
    ],
)
def test_secret_names(name: str) -> None:
    assert Redactor().is_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "content-type",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "input_tokens",
        "cached_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "model",
        "messages",
        "keep-alive",
        "x-request-id",
        "prompt_per_token_ms",
        "predicted_per_token_ms",
        "time_to_first_token",
        "timeToFirstTokenSec",
        "time-to-first-token",
        "t_token_generation",
        "n_token_types",
        "first_token_ms",
        "token_count",
        "token_id",
        "prompt_token_ids",
        "token_index",
    ],
)
def test_not_secret_names(name: str) -> None:
    assert not Redactor().is_secret(name)


def test_extra_names_are_exact_and_case_insensitive() -> None:
    redactor = Redactor.with_names(["X-Session"])
    assert redactor.is_secret("x-session")
    assert not redactor.is_secret("x-session-id")
    assert not Redactor().is_secret("x-session")


def test_headers() -> None:
    headers = {"authorization": "Bearer sk-abc123456", "content-type": "application/json", "x-my-token": "t0k3n-value"}
    assert Redactor().headers(headers) == {
        "authorization": REDACTED,
        "content-type": "application/json",
        "x-my-token": REDACTED,
    }


def test_query_parameters() -> None:
    url = "http://h:1/v1/models?api-key=sekrit123&limit=5&access_token=zzzzzz"
    redacted = Redactor().url(url)
    assert "sekrit123" not in redacted
    assert "zzzzzz" not in redacted
    assert "limit=5" in redacted
    assert "api-key=[REDACTED]" in redacted
    assert Redactor().url("/v1/models?limit=5") == "/v1/models?limit=5"


def test_json_fields_at_any_depth_keep_usage_counts_and_schemas() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "metadata": {"nested": [{"api_key": "k-123456"}], "session_token": "s-1234567"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "tools": [{"function": {"parameters": {"properties": {"api_key": {"type": "string"}}}}}],
    }
    out = Redactor().json(body)
    assert out["max_tokens"] == 16
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert out["metadata"]["nested"][0]["api_key"] == REDACTED
    assert out["metadata"]["session_token"] == REDACTED
    assert out["tools"] == body["tools"], "a schema object named like a secret is not a secret"
    assert body["metadata"]["nested"][0]["api_key"] == "k-123456", "the input is left unchanged"


def test_logprob_token_is_generated_text() -> None:
    body = {"logprobs": {"content": [{"token": "Hello", "logprob": -0.1, "bytes": [72]}]}}
    assert Redactor().json(body) == body


def _exchange(secret: str) -> Exchange:
    return Exchange(
        request=Request(
            method="POST",
            url=f"http://upstream:1234/v1/chat/completions?key={secret}",
            path=f"/v1/chat/completions?key={secret}",
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            body={"model": "m", "messages": [{"role": "user", "content": "hi"}], "user_api_key": secret},
        ),
        response=Response(
            status=401,
            headers={"set-cookie": "session=abcdef123", "content-type": "text/event-stream"},
            events=(
                SSEEvent(
                    t_ms=1.0,
                    event=None,
                    data=f'{{"error": "bad key {secret}"}}',
                    raw=f'data: {{"error": "bad key {secret}"}}',
                ),
            ),
            tail=f"data: {secret}",
        ),
        error=f"upstream said {secret}",
    )


def test_exchange_secret_values_are_scrubbed_everywhere() -> None:
    secret = "sk-test-0123456789"
    redacted = Redactor().exchange(_exchange(secret))
    text = json.dumps(redacted.to_dict())
    assert secret not in text
    assert "abcdef123" not in text
    assert redacted.request.headers["authorization"] == REDACTED
    assert redacted.request.body["messages"] == [{"role": "user", "content": "hi"}]
    assert redacted.response is not None
    assert redacted.response.events is not None
    event = redacted.response.events[0]
    assert event.raw == f"data: {event.data}", "raw and data are scrubbed alike"
    assert event.t_ms == 1.0


def test_short_values_are_not_scrubbed_from_other_text() -> None:
    exchange = Exchange(
        request=Request("GET", "http://h/v1/models", "/v1/models", headers={"x-api-key": "abc"}),
        response=Response(200, body={"data": [{"id": "abc-model"}]}),
    )
    redacted = Redactor().exchange(exchange)
    assert redacted.request.headers["x-api-key"] == REDACTED
    assert redacted.response is not None
    assert redacted.response.body == {"data": [{"id": "abc-model"}]}


def test_server_timings_are_kept_and_secrets_beside_them_are_not() -> None:
    """llama-server's `timings` and LM Studio's `stats` are numbers about tokens, not tokens."""
    body: dict[str, Any] = {
        "timings": {"prompt_n": 4, "prompt_ms": 12.5, "prompt_per_token_ms": 3.1, "predicted_per_token_ms": 8.25},
        "stats": {"tokens_per_second": 40.2, "time_to_first_token": 0.042, "generation_time": 0.2},
        "access_token": "at-1234567",
        "token": "tk-1234567",
    }
    out = Redactor().json(body)
    assert out["timings"] == body["timings"]
    assert out["stats"] == body["stats"]
    assert out["access_token"] == REDACTED
    assert out["token"] == REDACTED
