"""Fuzzing every POST route of a reference server in a subprocess: no 5xx, OpenAI error objects, no crash.

Bounded for CI on two busy cores: a fixed number of examples per route (derandomized, so every run sends the
same requests), at most MAX_TOKENS generated per request (the server's own ceiling), no example database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_server.embedded import ServerProcess, serve_subprocess

MAX_TOKENS = 2
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _mostly[T](valid: st.SearchStrategy[T]) -> st.SearchStrategy[T | Any]:
    """Valid values three times in four, any JSON value otherwise: most requests reach generation."""
    return st.one_of(valid, valid, valid, JSON)


TEXT = st.text(max_size=24) | st.sampled_from(["", "a\ud800b", "\x00", "<|im_end|>", "{", "\ud83d\ude00"])
SCHEMA: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from([True, False, {}, {"type": "string"}, {"type": "integer"}, {"type": "nul"}])
    | st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={
            "maxLength": st.integers(-2, 200_000),
            "minLength": st.integers(-2, 3_000),
            "pattern": st.sampled_from(["^a{0,30000}$", "^(a|b)*$", "abc", "^[", "^" + "(" * 600 + ")" * 600 + "$"]),
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {"type": st.sampled_from(["object", "array", 5])},
        optional={
            "properties": _mostly(st.dictionaries(st.text(max_size=4), inner, max_size=3)),
            "items": inner,
            "required": _mostly(st.lists(st.text(max_size=4), max_size=2)),
            "anyOf": st.lists(inner, max_size=2),
            "maxItems": st.integers(-1, 30_000),
            "$defs": st.dictionaries(st.sampled_from(["n", "a_b"]), inner, max_size=2),
            "$ref": st.sampled_from(["#", "#/$defs/n", "#/$defs/a_b", "#/nowhere", "http://x/"]),
        },
    ),
    max_leaves=6,
)
PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "text", "image_url"]), "text": _mostly(TEXT)})
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "user", "assistant", "tool", "wizard"]),
        "content": _mostly(TEXT | st.lists(PART, max_size=2)),
    },
    optional={
        "tool_calls": _mostly(
            st.lists(
                st.fixed_dictionaries(
                    {"id": TEXT, "type": st.just("function"), "function": st.fixed_dictionaries({"name": TEXT})},
                    optional={"arguments": TEXT},
                ),
                max_size=2,
            )
        ),
    },
)
SAMPLING = {
    "model": _mostly(st.sampled_from(["smollm2-135m-instruct", "nope"])),
    "max_tokens": _mostly(st.integers(-1, MAX_TOKENS + 1)),
    "temperature": _mostly(st.floats(-1, 3)),
    "top_p": _mostly(st.floats(-1, 2)),
    "seed": _mostly(st.integers()),
    "stop": _mostly(TEXT | st.lists(TEXT, max_size=3)),
    "stream": _mostly(st.booleans()),
    "stream_options": _mostly(st.fixed_dictionaries({"include_usage": st.booleans()})),
    "n": _mostly(st.integers(-1, 3)),
    "frequency_penalty": _mostly(st.floats(-3, 3)),
}
TOOL = st.fixed_dictionaries(
    {"type": st.just("function"), "function": st.fixed_dictionaries({"name": TEXT}, optional={"parameters": SCHEMA})}
)
CHAT = st.fixed_dictionaries(
    {"messages": _mostly(st.lists(MESSAGE, min_size=1, max_size=3))},
    optional={
        **SAMPLING,
        "max_completion_tokens": _mostly(st.integers(-1, MAX_TOKENS + 1)),
        "tools": _mostly(st.lists(TOOL, max_size=2)),
        "tool_choice": _mostly(
            st.sampled_from(["none", "auto", "required", {"type": "function", "function": {"name": "f"}}])
        ),
        "parallel_tool_calls": _mostly(st.booleans()),
        "response_format": _mostly(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
                optional={"json_schema": st.fixed_dictionaries({"name": st.just("x")}, optional={"schema": SCHEMA})},
            )
        ),
    },
)
COMPLETION = st.fixed_dictionaries({"prompt": _mostly(TEXT | st.lists(TEXT, max_size=2))}, optional=SAMPLING)
EMBEDDING = st.fixed_dictionaries(
    {"input": _mostly(TEXT | st.lists(TEXT, max_size=3))},
    optional={"model": SAMPLING["model"], "encoding_format": _mostly(st.sampled_from(["float", "base64", "hex"]))},
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with serve_subprocess(log, "--threads", "1", "--max-output-tokens", str(MAX_TOKENS)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def _send(http: httpx.Client, server: ServerProcess, path: str, body: bytes) -> None:
    """POST body; assert the answer is a 2xx (a stream without error events) or a 4xx OpenAI error object."""
    try:
        response = http.post(path, content=body, headers={"content-type": "application/json"})
    except httpx.TransportError as exc:
        raise AssertionError(server.why_dead() if not server.alive() else f"connection failed: {exc}") from exc
    sent = body[:300]
    assert response.status_code < 500, f"{response.status_code} for {sent!r}: {response.text[:300]}"
    if response.status_code < 300:
        if response.headers["content-type"].startswith("text/event-stream"):
            assert '"server_error"' not in response.text, f"error event for {sent!r}: {response.text[-300:]}"
        return
    error = response.json()
    assert set(error) == {"error"}, f"not an OpenAI error object for {sent!r}: {error}"
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert isinstance(error["error"]["message"], str)
    assert error["error"]["message"]


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")  # keep lone surrogates as the \\ud800 escapes


@settings(FUZZ, max_examples=80)
@given(body=CHAT, path=st.sampled_from(["/v1/chat/completions", "/api/v0/chat/completions"]))
def test_chat_completions(http: httpx.Client, server: ServerProcess, body: Any, path: str) -> None:
    _send(http, server, path, _encode(body))


@FUZZ
@given(body=COMPLETION, path=st.sampled_from(["/v1/completions", "/api/v0/completions"]))
def test_completions(http: httpx.Client, server: ServerProcess, body: Any, path: str) -> None:
    _send(http, server, path, _encode(body))


@FUZZ
@given(body=EMBEDDING, path=st.sampled_from(["/v1/embeddings", "/api/v0/embeddings"]))
def test_embeddings(http: httpx.Client, server: ServerProcess, body: Any, path: str) -> None:
    _send(http, server, path, _encode(body))


@FUZZ
@given(
    body=st.binary(max_size=64) | JSON.map(_encode),
    path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/v0/completions"]),
)
def test_any_bytes(http: httpx.Client, server: ServerProcess, body: bytes, path: str) -> None:
    _send(http, server, path, body)


def test_the_server_survived(http: httpx.Client, server: ServerProcess) -> None:
    assert server.alive(), server.why_dead()
    assert http.get("/v1/models").status_code == 200
