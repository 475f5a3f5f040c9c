"""Tool-call grammars: $defs/$ref resolved by hoisting (never stripped), tools without parameters."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import llama_cpp
import pytest

from reference_server.engine import Engine
from reference_server.grammar import (
    SchemaError,
    _build_repetition,
    arguments_schema,
    check_gbnf,
    check_schema,
    gbnf_for_schema,
    hoist_definitions,
    response_format_schema,
    tool_output_schema,
)
from reference_server.tools import ToolMode, ToolPlan, ToolSpec

ADDRESS_TOOL = ToolSpec(
    name="save_address",
    parameters={
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Address"}, "work": {"$ref": "#/definitions/Address"}},
        "required": ["home"],
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "definitions": {"Address": {"type": "object", "properties": {"zip": {"type": "string"}}}},
    },
)


def test_hoisting_renames_definitions_and_references() -> None:
    body, definitions = hoist_definitions(ADDRESS_TOOL.parameters or {}, "tool0-")
    assert body["properties"]["home"] == {"$ref": "#/$defs/tool0-Address"}
    assert body["properties"]["work"] == {"$ref": "#/$defs/tool0-definitions-Address"}
    assert "$defs" not in body
    assert "definitions" not in body
    assert set(definitions) == {"tool0-Address", "tool0-definitions-Address"}


def test_recursive_root_reference_is_hoisted() -> None:
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    body, definitions = hoist_definitions(tree, "t-")
    assert body["properties"]["children"]["items"] == {"$ref": "#/$defs/t-root"}
    assert definitions["t-root"]["properties"]["children"]["items"] == {"$ref": "#/$defs/t-root"}
    assert "root ::=" in gbnf_for_schema({**body, "$defs": definitions})


def test_remote_references_are_refused() -> None:
    with pytest.raises(SchemaError, match="unsupported"):
        hoist_definitions({"$ref": "https://example.com/schema.json"}, "p_")


def test_tool_output_grammar_keeps_the_referenced_properties() -> None:
    schema = tool_output_schema(ToolPlan((ADDRESS_TOOL,), ToolMode.REQUIRED))
    grammar = gbnf_for_schema(schema)
    assert '\\"city\\"' in grammar
    assert '\\"zip\\"' in grammar
    assert '\\"home\\"' in grammar
    assert '\\"save_address\\"' in grammar


def test_two_tools_with_the_same_definition_name_do_not_clash() -> None:
    other: dict[str, Any] = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/Address"}},
        "$defs": {"Address": {"type": "integer"}},
    }
    schema = tool_output_schema(ToolPlan((ADDRESS_TOOL, ToolSpec("other", parameters=other)), ToolMode.AUTO))
    assert {"tool0-Address", "tool1-Address"} <= set(schema["$defs"])
    assert schema["$defs"]["tool1-Address"] == {"type": "integer"}


@pytest.mark.parametrize("parameters", [None, {}, {"type": "object"}])
def test_tools_without_parameters_take_an_empty_object(parameters: dict[str, Any] | None) -> None:
    assert arguments_schema(ToolSpec("ping", parameters=parameters)) == {"type": "object", "properties": {}}


def test_parallel_false_allows_one_call_and_named_choice_only_that_tool() -> None:
    tools = (ToolSpec("a"), ToolSpec("b"))
    single = tool_output_schema(ToolPlan(tools, ToolMode.REQUIRED, parallel=False))
    assert single["maxItems"] == 1
    named = tool_output_schema(ToolPlan(tools, ToolMode.NAMED, named="b"))
    assert named["items"]["properties"]["name"] == {"const": "b"}


def test_auto_offers_a_reply_instead_of_calls() -> None:
    schema = tool_output_schema(ToolPlan((ToolSpec("a"),), ToolMode.AUTO))
    keys = [next(iter(option["properties"])) for option in schema["anyOf"]]
    assert keys == ["tool_calls", "response"]


# ---- what llama.cpp's grammar parser can take (every grammar here is also parsed by llama.cpp itself) ------------


@pytest.fixture(scope="module")
def parses(reference_engine: Engine) -> Callable[[str], bool]:
    """Whether llama.cpp's own parser accepts a grammar, with the session model's vocabulary."""
    vocab = reference_engine.llama._model.vocab

    def parse(grammar: str) -> bool:
        check_gbnf(grammar)  # what the server does first: never hand llama.cpp a grammar that could crash it
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        return bool(sampler)

    return parse


TREE: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/tree_node"}}},
    "required": ["value"],
    "$defs": {
        "tree_node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/tree_node"}},
            },
            "required": ["value"],
        }
    },
}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 20_000},
        {"type": "string", "minLength": 5_000, "maxLength": 20_000},
        {"type": "array", "items": {"type": "integer"}, "maxItems": 20_000},
        {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 2_000},
        {"type": "string", "pattern": "^a{0,30000}$"},
        {"type": "string", "pattern": "^[a-z]{1,64}@[a-z]{1,64}$"},
    ],
)
def test_large_bounded_repetitions_are_flat_and_llama_cpp_parses_them(
    schema: dict[str, Any], parses: Callable[[str], bool]
) -> None:
    grammar = gbnf_for_schema(schema)
    assert "{" in grammar, "bounded repetitions are written as GBNF x{m,n}"
    assert max(len(line) - len(line.lstrip("(")) for line in grammar.split()) < 50
    assert parses(grammar)


def test_repetition_bounds_keep_their_language() -> None:
    assert _build_repetition("x", 0, 3) == "x{0,3}"
    assert _build_repetition("x", 2, None) == "x{2,}"
    assert _build_repetition("x", 0, 1) == "x?"
    assert _build_repetition("x", 4001, 4001) == "(x{2000} ((x{2000} (x{1}))))"
    assert _build_repetition("x", 0, 4000) == "(x{2000} (x{0,2000}) | x{0,1999})"
    assert _build_repetition("x", 1, 3, separator_rule='","') == 'x ("," x){0,2}'
    assert _build_repetition("x", 0, 3, separator_rule='","') == '(x ("," x){0,2} | )'


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "maxLength": 1_000_000}, "at most 100000"),
        ({"type": "array", "maxItems": 5, "minItems": 9, "items": {"type": "integer"}}, "below its minimum"),
        ({"type": "string", "pattern": "^" + "(" * 600 + "a" + ")" * 600 + "$"}, "nests 6"),
    ],
)
def test_grammars_llama_cpp_cannot_take_are_refused_with_the_reason(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        gbnf_for_schema(schema)


def test_recursive_definitions_parse_in_tools_and_response_format(parses: Callable[[str], bool]) -> None:
    tools = tool_output_schema(ToolPlan((ToolSpec("grow", parameters=TREE),), ToolMode.REQUIRED))
    assert parses(gbnf_for_schema(tools))
    assert parses(gbnf_for_schema(response_format_schema(TREE)))


def test_definition_names_that_gbnf_cannot_spell_are_renamed_consistently(parses: Callable[[str], bool]) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/a.b"}, "b": {"$ref": "#/$defs/a_b"}},
        "$defs": {"a.b": {"type": "integer"}, "a_b": {"type": "array", "items": {"$ref": "#/$defs/a_b"}}},
    }
    body, definitions = hoist_definitions(schema, "p-")
    assert set(definitions) == {"p-a-b", "p-a-b-1"}
    assert {body["properties"]["a"]["$ref"], body["properties"]["b"]["$ref"]} == {"#/$defs/p-a-b", "#/$defs/p-a-b-1"}
    assert parses(gbnf_for_schema(response_format_schema(schema)))


def test_boolean_subschemas_are_supported() -> None:
    schema = {
        "type": "object",
        "properties": {"gone": False, "anything": True, "n": {"type": "integer"}},
        "required": ["n"],
    }
    grammar = gbnf_for_schema(response_format_schema(schema))
    assert '\\"n\\"' in grammar
    assert "gone" not in grammar
    assert '\\"anything\\"' in grammar
    assert "maxItems" not in json.dumps(response_format_schema({"type": "array", "items": True}))
    assert response_format_schema({"type": "array", "items": False})["maxItems"] == 0
    with pytest.raises(SchemaError, match="required but its schema is false"):
        response_format_schema({"type": "object", "properties": {"a": False}, "required": ["a"]})


def _nested_arrays(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": [1, 2]}, "not a valid JSON Schema at properties"),
        ({"type": 5}, "not a valid JSON Schema"),
        (_nested_arrays(300), "nests 3"),
        ({"type": "string", "pattern": "^" + "(" * 5000 + "a" + ")" * 5000 + "$"}, "nests too deeply"),
    ],
)
def test_malformed_and_deep_schemas_are_schema_errors(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        check_schema(schema)
