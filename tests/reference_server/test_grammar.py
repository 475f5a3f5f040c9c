"""Tool-call grammars: $defs/$ref resolved by hoisting (never stripped), tools without parameters."""

from __future__ import annotations

from typing import Any

import pytest

from reference_server.grammar import (
    SchemaError,
    arguments_schema,
    gbnf_for_schema,
    hoist_definitions,
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
    body, definitions = hoist_definitions(ADDRESS_TOOL.parameters or {}, "tool0_")
    assert body["properties"]["home"] == {"$ref": "#/$defs/tool0_Address"}
    assert body["properties"]["work"] == {"$ref": "#/$defs/tool0_definitions_Address"}
    assert "$defs" not in body
    assert "definitions" not in body
    assert set(definitions) == {"tool0_Address", "tool0_definitions_Address"}


def test_recursive_root_reference_is_hoisted() -> None:
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    body, definitions = hoist_definitions(tree, "t_")
    assert body["properties"]["children"]["items"] == {"$ref": "#/$defs/t_root"}
    assert definitions["t_root"]["properties"]["children"]["items"] == {"$ref": "#/$defs/t_root"}
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
    assert {"tool0_Address", "tool1_Address"} <= set(schema["$defs"])
    assert schema["$defs"]["tool1_Address"] == {"type": "integer"}


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
