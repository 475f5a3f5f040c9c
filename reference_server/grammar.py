"""GBNF grammars for constrained generation: tool calls from tool schemas ($ref resolved) and response formats."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
from llama_cpp import llama_grammar
from llama_cpp.llama_grammar import json_schema_to_gbnf

from reference_server.tools import ToolMode, ToolPlan, ToolSpec

__all__ = [
    "SchemaError",
    "arguments_schema",
    "check_gbnf",
    "check_schema",
    "gbnf_for_schema",
    "hoist_definitions",
    "response_format_schema",
    "tool_output_schema",
]

_DEF_KEYS = ("$defs", "definitions")
EMPTY_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}
_RULE_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9-]+")  # GBNF rule names: letters, digits and dashes only
_RULE_WORD = re.compile(r"[a-zA-Z0-9-]+")

# llama.cpp's grammar parser takes a bounded repetition x{m,n} up to this count (MAX_REPETITION_THRESHOLD in
# llama-grammar.cpp: a larger upper bound silently becomes unbounded, a larger lower bound is refused). Larger
# bounds are split into nested groups of at most this many; MAX_BOUND caps the whole (a grammar of that many rules).
REPETITION_STEP = 2000
MAX_BOUND = 100_000
# Past these the grammar is refused before llama.cpp sees it: its parser recurses once per nested group, and a
# deep enough nesting overflows the worker thread's stack (a crash, not an error).
MAX_GRAMMAR_NESTING = 500
MAX_GRAMMAR_BYTES = 4_000_000
MAX_SCHEMA_DEPTH = 64


class SchemaError(ValueError):
    """A client JSON Schema the server cannot turn into a grammar."""


def schema_depth(node: Any) -> int:
    """How deeply objects and arrays nest in a JSON value (iterative: safe on any depth)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in value)
    return deepest


def check_schema(schema: Any) -> None:
    """SchemaError unless schema is a JSON Schema (2020-12 meta-schema) of a depth the converter can walk."""
    depth = schema_depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"the JSON Schema nests {depth} levels deep; at most {MAX_SCHEMA_DEPTH} are supported")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except RecursionError as exc:  # a regular expression nested too deeply for Python's re to compile
        raise SchemaError("the JSON Schema (or a pattern in it) nests too deeply") from exc
    except jsonschema.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise SchemaError(f"not a valid JSON Schema at {where}: {exc.message}") from exc


def _without_booleans(node: Any, where: str) -> Any:
    """The schema with boolean subschemas rewritten into forms the converter knows: true is {}, false is removed
    where it only forbids something (a property, array items, an alternative), else SchemaError."""
    if node is True:
        return {}
    if node is False:
        raise SchemaError(f"the schema at {where} is false: no value can satisfy it")
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            required = node.get("required", [])
            for name, sub in value.items():
                if sub is False and isinstance(required, list) and name in required:
                    raise SchemaError(f"property {name!r} at {where} is required but its schema is false")
            out[key] = {n: _without_booleans(s, f"{where}/properties/{n}") for n, s in value.items() if s is not False}
        elif key in ("$defs", "definitions", "patternProperties", "dependentSchemas") and isinstance(value, dict):
            out[key] = {n: _without_booleans(s, f"{where}/{key}/{n}") for n, s in value.items() if s is not False}
        elif key == "items" and value is False:
            continue
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            kept = [_without_booleans(s, f"{where}/{key}/{i}") for i, s in enumerate(value) if s is not False]
            if not kept:
                raise SchemaError(f"every alternative of {key} at {where} is false")
            out[key] = kept
        elif key in ("allOf", "prefixItems") and isinstance(value, list):
            out[key] = [_without_booleans(s, f"{where}/{key}/{i}") for i, s in enumerate(value)]
        elif key in ("items", "not", "contains", "propertyNames", "if", "then", "else", "unevaluatedItems"):
            out[key] = _without_booleans(value, f"{where}/{key}") if isinstance(value, dict | bool) else value
        elif key in ("additionalProperties", "unevaluatedProperties") and isinstance(value, dict):
            out[key] = _without_booleans(value, f"{where}/{key}")
        else:
            out[key] = value
    if node.get("items") is False:  # no item is valid: the array must be empty
        out["maxItems"] = 0
    return out


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            if value not in names:
                raise SchemaError(
                    f"unsupported $ref {value!r}: only local references to #, #/$defs/... or #/definitions/... work"
                )
            out[key] = f"#/$defs/{names[value]}"
        else:
            out[key] = _rewrite_refs(value, names)
    return out


def _refers_to_root(node: Any) -> bool:
    if isinstance(node, list):
        return any(_refers_to_root(item) for item in node)
    if isinstance(node, dict):
        return node.get("$ref") == "#" or any(_refers_to_root(value) for value in node.values())
    return False


def hoist_definitions(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a schema into (body, definitions) with every local $ref renamed under prefix, never dropped.

    The new names are valid GBNF rule names (llama-cpp-python's converter names a referenced rule after the
    last segment of its $ref, then escapes it: a name it would change breaks recursive references).
    """
    body = _without_booleans(copy.deepcopy(schema), "#")
    found: dict[str, Any] = {}
    names: dict[str, str] = {"#": f"{prefix}root"}
    for key in _DEF_KEYS:
        group = body.pop(key, None)
        if group is None:
            continue
        if not isinstance(group, dict):
            raise SchemaError(f"{key} must be an object of schemas")
        for name, definition in group.items():
            base = f"{prefix}{'' if key == '$defs' else 'definitions-'}{_RULE_NAME_UNSAFE.sub('-', name)}"
            unique, count = base, 1
            while unique in found or unique == names["#"]:
                unique, count = f"{base}-{count}", count + 1
            names[f"#/{key}/{name.replace('~', '~0').replace('/', '~1')}"] = unique
            found[unique] = definition
    definitions = {name: _rewrite_refs(definition, names) for name, definition in found.items()}
    if _refers_to_root(body) or any(_refers_to_root(item) for item in found.values()):
        definitions[names["#"]] = _rewrite_refs(body, names)
    return _rewrite_refs(body, names), definitions


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
        body, hoisted = hoist_definitions(arguments_schema(tool), f"tool{index}-")
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


def response_format_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A response_format schema with its definitions hoisted and renamed as tool schemas' are."""
    body, definitions = hoist_definitions(schema, "defs-")
    if definitions:
        body["$defs"] = definitions
    return body


def gbnf_for_schema(schema: dict[str, Any]) -> str:
    """GBNF text for a JSON Schema; SchemaError if the converter cannot handle it or llama.cpp could not take it."""
    try:
        grammar: str = json_schema_to_gbnf(json.dumps(schema))
    except SchemaError:
        raise
    except RecursionError as exc:
        raise SchemaError("cannot build a grammar from this JSON Schema: it nests too deeply") from exc
    except Exception as exc:  # the converter fails on unsupported input with whatever its code hits first
        raise SchemaError(f"cannot build a grammar from this JSON Schema: {type(exc).__name__}: {exc}") from exc
    check_gbnf(grammar)
    return grammar


def check_gbnf(grammar: str) -> None:
    """SchemaError if llama.cpp's grammar parser could crash on this text (too large, or groups nested too deeply)."""
    if len(grammar) > MAX_GRAMMAR_BYTES:
        raise SchemaError(
            f"the grammar for this JSON Schema is {len(grammar)} bytes; at most {MAX_GRAMMAR_BYTES} are supported "
            "(lower maxLength/maxItems or simplify the schema)"
        )
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in grammar:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in '"[':
            quote = '"' if char == '"' else "]"
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_GRAMMAR_NESTING:
        raise SchemaError(
            f"the grammar for this JSON Schema nests {deepest} groups deep; at most {MAX_GRAMMAR_NESTING} are "
            "supported (a regular expression pattern with many nested groups, or a very long constant)"
        )


def _repeat(unit: str, low: int, high: int | None) -> str:
    """GBNF for unit repeated low..high times (high None: unbounded), every count within llama.cpp's limit.

    llama.cpp refuses x{m,n} when n (or m) times the rules x itself makes exceeds its limit: a name or literal
    makes one, a group one plus each rule and name first seen inside it (counted high here, to be safe).
    Longer runs nest: x{0,N} becomes (x{S} (x{0,N-S}) | x{0,S-1}) with S the largest count allowed.
    """
    rules = 1 + len(_RULE_WORD.findall(unit)) + unit.count("(") if unit.startswith("(") else 1
    step = max(1, REPETITION_STEP // rules)
    if high is None:
        if low > step:
            return f"{unit}{{{step}}} ({_repeat(unit, low - step, None)})"
        return {0: f"{unit}*", 1: f"{unit}+"}.get(low, f"{unit}{{{low},}}")
    if high <= step:
        if high == 0:
            return ""
        if (low, high) == (0, 1):
            return f"{unit}?"
        return f"{unit}{{{low}}}" if low == high else f"{unit}{{{low},{high}}}"
    rest = _repeat(unit, max(low - step, 0), high - step)
    first = f"{unit}{{{step}}} ({rest})" if rest else f"{unit}{{{step}}}"
    return f"({first})" if low >= step else f"({first} | {_repeat(unit, low, step - 1)})"


def _build_repetition(
    item_rule: str,
    min_items: int,
    max_items: int | None,
    separator_rule: str | None = None,
    item_rule_is_literal: bool = False,
) -> str:
    """llama-cpp-python's _build_repetition with GBNF's own x{m,n} instead of n nested optional groups.

    Its converter (0.3.x) writes a bound of n as n nested groups: llama.cpp's parser recurses once per group and
    a bound of some thousands overflows the stack (a segfault). Same signature, same language, flat output.
    An optional run is written (run | ) rather than (run)?: llama.cpp also counts the rules inside a group
    against the limit of a ? applied to it.
    """
    for name, value in (("minimum", min_items), ("maximum", max_items)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise SchemaError(f"a {name} length or item count must be a non-negative integer, not {value!r}")
    if max_items is not None and max_items < min_items:
        raise SchemaError(f"a maximum length or item count ({max_items}) is below its minimum ({min_items})")
    largest = max(min_items, max_items or 0)
    if largest > MAX_BOUND:
        raise SchemaError(
            f"a length or item count bound of {largest} is too large for a grammar; at most {MAX_BOUND} is supported"
        )
    unit = item_rule if item_rule_is_literal or " " not in item_rule else f"({item_rule})"
    if not separator_rule:
        return _repeat(unit, min_items, max_items)
    if max_items == 0:
        return ""
    rest = _repeat(f"({separator_rule} {unit})", max(min_items - 1, 0), None if max_items is None else max_items - 1)
    return f"{unit} {rest}" if min_items > 0 else f"({unit} {rest} | )"


llama_grammar._build_repetition = _build_repetition  # see _build_repetition's docstring
