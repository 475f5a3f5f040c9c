"""GBNF grammars for constrained generation: tool calls from tool schemas ($ref resolved) and response formats."""

from __future__ import annotations

import copy
import json
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from reference_server.tools import ToolMode, ToolPlan, ToolSpec

__all__ = [
    "SchemaError",
    "arguments_schema",
    "gbnf_for_schema",
    "hoist_definitions",
    "tool_output_schema",
]

_DEF_KEYS = ("$defs", "definitions")
EMPTY_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


class SchemaError(ValueError):
    """A client JSON Schema the server cannot turn into a grammar."""


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _rewrite_ref(value, prefix)
        else:
            out[key] = _rewrite_refs(value, prefix)
    return out


def _rewrite_ref(ref: str, prefix: str) -> str:
    if ref == "#":
        return f"#/$defs/{prefix}root"
    for key in _DEF_KEYS:
        head = f"#/{key}/"
        if ref.startswith(head):
            return f"#/$defs/{_hoisted_name(prefix, key, ref.removeprefix(head))}"
    raise SchemaError(f"unsupported $ref {ref!r}: only local references to #/$defs/... or #/definitions/... work")


def _hoisted_name(prefix: str, key: str, name: str) -> str:
    """$defs/X -> <prefix>X and definitions/X -> <prefix>definitions_X, so both kinds can coexist."""
    return f"{prefix}{name}" if key == "$defs" else f"{prefix}definitions_{name}"


def _refers_to_root(node: Any) -> bool:
    if isinstance(node, list):
        return any(_refers_to_root(item) for item in node)
    if isinstance(node, dict):
        return node.get("$ref") == "#" or any(_refers_to_root(value) for value in node.values())
    return False


def hoist_definitions(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a schema into (body, definitions) with every local $ref renamed under prefix, never dropped."""
    body = copy.deepcopy(schema)
    definitions: dict[str, Any] = {}
    for key in _DEF_KEYS:
        found = body.pop(key, None)
        if found is None:
            continue
        if not isinstance(found, dict):
            raise SchemaError(f"{key} must be an object of schemas")
        for name, definition in found.items():
            definitions[_hoisted_name(prefix, key, name)] = _rewrite_refs(definition, prefix)
    if _refers_to_root(body) or any(_refers_to_root(item) for item in definitions.values()):
        definitions[f"{prefix}root"] = _rewrite_refs(body, prefix)
    return _rewrite_refs(body, prefix), definitions


def arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's parameters, or an object with no properties when the tool omits them (arguments "{}")."""
    parameters = tool.parameters
    if not parameters or parameters == {"type": "object"}:
        return dict(EMPTY_ARGUMENTS)
    return parameters


def tool_output_schema(plan: ToolPlan) -> dict[str, Any]:
    """JSON Schema of what the model must write: a list of calls, or for auto a choice of calls or a reply."""
    definitions: dict[str, Any] = {}
    alternatives = []
    for index, tool in enumerate(plan.callable_tools):
        body, hoisted = hoist_definitions(arguments_schema(tool), f"tool{index}_")
        definitions.update(hoisted)
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": body},
                "required": ["name", "arguments"],
            }
        )
    if not alternatives:
        raise SchemaError("no tool can be called")
    item = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    calls: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if not plan.parallel:
        calls["maxItems"] = 1
    schema: dict[str, Any]
    if plan.mode is ToolMode.AUTO:
        schema = {
            "anyOf": [
                {"type": "object", "properties": {"tool_calls": calls}, "required": ["tool_calls"]},
                {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]},
            ]
        }
    else:
        schema = calls
    if definitions:
        schema["$defs"] = definitions
    return schema


def gbnf_for_schema(schema: dict[str, Any]) -> str:
    """GBNF text for a JSON Schema; SchemaError if the converter cannot handle it."""
    try:
        grammar: str = json_schema_to_gbnf(json.dumps(schema))
    except (AssertionError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise SchemaError(f"cannot build a grammar from this JSON Schema: {exc}") from exc
    return grammar
