"""Requests that once crashed the reference server or made it answer 500, against a server in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reference_server.embedded import ServerProcess, serve_subprocess

HELLO: Any = [{"role": "user", "content": "hi"}]
MAX_TOKENS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve_subprocess(log, "--threads", "1", "--max-output-tokens", str(MAX_TOKENS)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=300) as client:
        yield client


def _post(http: httpx.Client, server: ServerProcess, path: str, body: dict[str, Any] | bytes) -> httpx.Response:
    try:
        if isinstance(body, bytes):
            return http.post(path, content=body, headers={"content-type": "application/json"})
        return http.post(path, json=body)
    except httpx.TransportError:
        pytest.fail(server.why_dead() if not server.alive() else "the connection broke")


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _tool(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def test_empty_prompt_as_the_first_generation_starts_from_bos(http: httpx.Client, server: ServerProcess) -> None:
    # the first test of the module: the first generation of a fresh server (it used to abort the process)
    for prompt in ("", [""]):
        response = _post(http, server, "/v1/completions", {"prompt": prompt, "max_tokens": 2, "temperature": 0})
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["prompt_tokens"] == 1
    assert server.alive(), server.why_dead()


TREE: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
        }
    },
}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"s": {"type": "string", "maxLength": 20_000}}, "required": ["s"]},
        {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}, "maxItems": 20_000}}},
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a{0,30000}$"}}, "required": ["s"]},
        {"type": "object", "properties": {"a": False, "b": True, "c": {"type": "integer"}}},
        TREE,
    ],
    ids=["maxLength-20000", "maxItems-20000", "pattern-30000", "boolean-subschemas", "recursive-defs"],
)
def test_large_bounds_booleans_and_recursion_work_in_tools_and_response_format(
    http: httpx.Client, server: ServerProcess, schema: dict[str, Any]
) -> None:
    common = {"messages": HELLO, "max_tokens": MAX_TOKENS, "temperature": 0}
    as_tool = _post(http, server, "/v1/chat/completions", {**common, "tools": _tool(schema), "tool_choice": "required"})
    assert as_tool.status_code == 200, as_tool.text
    as_format = _post(http, server, "/v1/chat/completions", {**common, "response_format": _schema_format(schema)})
    assert as_format.status_code == 200, as_format.text
    assert as_format.json()["choices"][0]["message"]["content"].startswith("{")
    assert server.alive(), server.why_dead()


NESTED_GROUPS = {"type": "string", "pattern": "^" + "(" * 3000 + "a" + ")" * 3000 + "$"}
DEEP: dict[str, Any] = {"type": "string"}
for _ in range(300):
    DEEP = {"type": "object", "properties": {"a": DEEP}}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "maxLength": 1_000_000}, "at most 100000"),
        (NESTED_GROUPS, "nests too deeply"),
        (DEEP, "nests 601 levels deep"),
        ({"type": "object", "properties": [1, 2]}, "not a valid JSON Schema at properties"),
        ({"type": "string", "pattern": "abc"}, 'Pattern must start with "^"'),
    ],
    ids=["bound-1e6", "3000-nested-groups", "300-deep", "malformed", "unanchored-pattern"],
)
def test_schemas_no_grammar_can_serve_are_400_blaming_the_field_they_came_from(
    http: httpx.Client, server: ServerProcess, schema: dict[str, Any], message: str
) -> None:
    common = {"messages": HELLO, "max_tokens": MAX_TOKENS}
    body = {**common, "tools": _tool(schema), "tool_choice": "required"}
    error = _error(_post(http, server, "/v1/chat/completions", body))
    assert error["param"] == "tools"
    assert message in error["message"]
    assert "tools[0].function.parameters" in error["message"]
    error = _error(_post(http, server, "/v1/chat/completions", {**common, "response_format": _schema_format(schema)}))
    assert error["param"] == "response_format"
    assert message in error["message"]
    assert server.alive(), server.why_dead()


def test_a_grammar_llama_cpp_refuses_is_400_blaming_the_field_it_came_from(
    http: httpx.Client, server: ServerProcess
) -> None:
    # valid, but llama.cpp counts the rules of the optional group against its repetition limit
    schema = {"type": "string", "pattern": "^[a-z]{1,9}(x{0,3000})?$"}
    common = {"messages": HELLO, "max_tokens": MAX_TOKENS}
    body = {**common, "tools": _tool(schema), "tool_choice": "required"}
    error = _error(_post(http, server, "/v1/chat/completions", body))
    assert (error["param"], error["message"][:37]) == ("tools", "llama.cpp could not parse the grammar")
    error = _error(_post(http, server, "/v1/chat/completions", {**common, "response_format": _schema_format(schema)}))
    assert (error["param"], error["message"][:37]) == ("response_format", "llama.cpp could not parse the grammar")
    assert server.alive(), server.why_dead()


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        ("/v1/chat/completions", rb'{"messages": [{"role": "user", "content": "a\ud800b"}]}', "messages.0.content"),
        ("/v1/completions", rb'{"prompt": "a\udfffb"}', "prompt"),
        ("/v1/embeddings", rb'{"input": ["ok", "a\ud800b"]}', "input.1"),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(
    http: httpx.Client, server: ServerProcess, path: str, raw: bytes, param: str
) -> None:
    error = _error(_post(http, server, path, raw))
    assert error["param"] == param
    assert "lone UTF-16 surrogate" in error["message"]
    paired = raw.replace(rb"\ud800", rb"\ud83d\ude00").replace(rb"\udfff", rb"\ud83d\ude00")
    assert _post(http, server, path, paired).status_code == 200


def test_a_text_part_whose_text_is_not_a_string_says_so(http: httpx.Client, server: ServerProcess) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}
    error = _error(_post(http, server, "/v1/chat/completions", body))
    assert error["message"] == "messages[0].content[0].text must be a string, not a number"
    assert error["param"] == "messages.0.content.0.text"
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert "text only" in _error(_post(http, server, "/v1/chat/completions", image))["message"]


def test_the_server_is_still_the_same_process(http: httpx.Client, server: ServerProcess) -> None:
    assert server.alive(), server.why_dead()
    assert http.get("/v1/models").status_code == 200
