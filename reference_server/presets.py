"""LM Studio presets: named prediction settings read from `*.preset.json` files and layered under a request's own.

A preset file is LM Studio's layout (`~/.lmstudio/config-presets/NAME.preset.json`): `identifier` (e.g.
`@local:terse`), `name`, and `operation.fields`, a list of `{"key": "llm.prediction.…", "value": …}`; numeric
settings LM Studio shows with a checkbox are `{"checked": bool, "value": …}` (unchecked: not set). `load.fields`
(load-time settings such as the context length) are read past. A request names a preset in its `preset` field
by identifier, name or file name (without `.preset.json`); the preset's settings fill only the fields the
request did not set, so the layering is server defaults < preset < request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reference_server.errors import ApiError

__all__ = [
    "CONFORMANCE_PRESET",
    "PRESET_SUFFIX",
    "Preset",
    "PresetError",
    "Presets",
    "Settings",
    "write_conformance_preset",
]

PRESET_SUFFIX = ".preset.json"
CONFORMANCE_PRESET = "conformance-test"


class PresetError(ValueError):
    """A preset file the server cannot use; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Settings:
    """The prediction settings of a preset, in the pipeline's terms (None: the preset leaves it alone)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    system_prompt: str | None = None
    json_schema: dict[str, Any] | None = None
    """`llm.prediction.structured` of type json: answers must follow this JSON Schema."""


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number")
    return float(value)


def _integer(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a list of strings")
    return tuple(value)


def _schema(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("type", "none"), str):
        raise TypeError('an object {"type": "none"} or {"type": "json", "jsonSchema": {...}}')
    if value.get("type") != "json":
        return None
    schema = value.get("jsonSchema")
    if not isinstance(schema, dict):
        raise TypeError('an object with "jsonSchema", a JSON Schema object, when its type is "json"')
    return schema


_KEYS: Mapping[str, tuple[str, Any]] = {
    "llm.prediction.temperature": ("temperature", _number),
    "llm.prediction.topPSampling": ("top_p", _number),
    "llm.prediction.topKSampling": ("top_k", _integer),
    "llm.prediction.minPSampling": ("min_p", _number),
    "llm.prediction.repeatPenalty": ("repeat_penalty", _number),
    "llm.prediction.maxPredictedTokens": ("max_tokens", _integer),
    "llm.prediction.stopStrings": ("stop", _texts),
    "llm.prediction.systemPrompt": ("system_prompt", _text),
    "llm.prediction.structured": ("json_schema", _schema),
}
"""The LM Studio keys the server applies: setting name and value parser. Other keys are read past."""


def _settings(fields: Any, where: str) -> Settings:
    if not isinstance(fields, list):
        raise PresetError(f"{where}: operation.fields must be a list of {{key, value}} objects")
    values: dict[str, Any] = {}
    for i, entry in enumerate(fields):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or "value" not in entry:
            raise PresetError(f"{where}: operation.fields[{i}] must be an object with a string `key` and a `value`")
        known = _KEYS.get(entry["key"])
        if known is None:
            continue
        name, parse = known
        value = entry["value"]
        if isinstance(value, dict) and "checked" in value and name != "json_schema":
            if value.get("checked") is not True:
                continue  # an unchecked box: LM Studio leaves the setting at its default
            value = value.get("value")
        try:
            values[name] = parse(value)
        except TypeError as exc:
            raise PresetError(f"{where}: {entry['key']} must be {exc}, not {json.dumps(value)[:80]}") from None
    if values.get("max_tokens") is not None and values["max_tokens"] < 1:
        values["max_tokens"] = None  # -1: no limit, LM Studio's "unlimited"
    if values.get("stop") == ():
        values["stop"] = None
    return Settings(**values)


@dataclass(frozen=True)
class Preset:
    """One preset file: how requests may name it and the settings it applies."""

    identifier: str
    name: str
    path: Path
    settings: Settings

    @property
    def names(self) -> tuple[str, ...]:
        """What a request's `preset` may say: the identifier, the name, the file name without its suffix."""
        return tuple(dict.fromkeys((self.identifier, self.name, self.path.name.removesuffix(PRESET_SUFFIX))))

    @classmethod
    def read(cls, path: Path) -> Preset:
        """Parse one preset file; PresetError names the file and the problem."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PresetError(f"{path}: cannot read the preset file ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PresetError(f"{path}: not a JSON preset file ({exc})") from None
        if not isinstance(data, dict):
            raise PresetError(f"{path}: a preset file must hold a JSON object")
        stem = path.name.removesuffix(PRESET_SUFFIX)
        name = data.get("name", stem)
        identifier = data.get("identifier", f"@local:{stem}")
        if not isinstance(name, str) or not name or not isinstance(identifier, str) or not identifier:
            raise PresetError(f"{path}: `name` and `identifier` must be non-empty strings")
        operation = data.get("operation", {})
        if not isinstance(operation, dict):
            raise PresetError(f"{path}: `operation` must be an object with a `fields` list")
        return cls(identifier, name, path, _settings(operation.get("fields", []), str(path)))

    def apply[M: BaseModel](self, body: M) -> M:
        """The request with this preset's settings in every field it did not set (`model_fields_set`).

        Fields are matched by name, so every surface's request model gets the settings it has: `temperature`,
        `top_p`, `top_k`, `min_p`, `repeat_penalty`, the output limit (`max_tokens`, `max_output_tokens`),
        stop strings (`stop`, `stop_sequences`), the system prompt (`system_prompt`, `instructions`, Anthropic's
        `system`, or a system message first in chat `messages`) and a JSON Schema (`response_format`, Responses'
        `text`). A value the surface refuses (Anthropic's temperature above 1, say) is a 400 naming the preset.
        """
        updates = _updates(self.settings, body)
        if not updates:
            return body
        data = {**body.model_dump(by_alias=True, exclude_unset=True), **updates}
        try:
            return type(body).model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ApiError.bad_request(
                f"preset {self.identifier!r} ({self.path.name}) sets {where}, which this endpoint refuses: "
                f"{error['msg']}; fix the preset file or set {where} in the request",
                param="preset",
            ) from None


_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")
_OUTPUT_LIMITS = ("max_tokens", "max_output_tokens", "max_completion_tokens")
_STOPS = ("stop", "stop_sequences")
_SYSTEM_ROLES = ("system", "developer")
_FirstFree = Callable[[Iterable[str]], str | None]
"""The first of these fields the body's model declares, when the request set none of them; else None."""


def _updates(settings: Settings, body: BaseModel) -> dict[str, Any]:
    """The body fields (by alias) the settings fill, leaving every field the request set."""
    fields = type(body).model_fields
    given = body.model_fields_set

    def first_free(names: Iterable[str]) -> str | None:
        declared = [n for n in names if n in fields]
        return declared[0] if declared and not any(n in given for n in declared) else None

    updates: dict[str, Any] = {}
    for name in _SAMPLING:
        if getattr(settings, name) is not None and first_free((name,)):
            updates[name] = getattr(settings, name)
    if settings.max_tokens is not None and (field := first_free(_OUTPUT_LIMITS)):
        updates[field] = settings.max_tokens
    if settings.stop is not None and (field := first_free(_STOPS)):
        updates[field] = list(settings.stop)
    if settings.system_prompt is not None:
        updates.update(_system(settings.system_prompt, body, first_free))
    if settings.json_schema is not None:
        updates.update(_structured(settings.json_schema, first_free))
    return updates


def _system(prompt: str, body: BaseModel, first_free: _FirstFree) -> dict[str, Any]:
    """The system prompt where the surface takes one, unless the request has a system prompt of its own."""
    messages = getattr(body, "messages", None)
    roles = {getattr(m, "role", None) for m in messages} if isinstance(messages, list) else set()
    if field := first_free(("system_prompt", "instructions")):
        return {field: prompt}
    if first_free(("system",)) and not roles & set(_SYSTEM_ROLES):
        return {"system": prompt}  # Anthropic: `system`, unless system entries came in `messages`
    if "system" not in type(body).model_fields and isinstance(messages, list) and not roles & set(_SYSTEM_ROLES):
        dumped = body.model_dump(by_alias=True, exclude_unset=True)["messages"]
        return {"messages": [{"role": "system", "content": prompt}, *dumped]}
    return {}


def _structured(schema: dict[str, Any], first_free: _FirstFree) -> dict[str, Any]:
    if first_free(("response_format",)):
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "preset", "schema": schema}}}
    if first_free(("text",)):
        return {"text": {"format": {"type": "json_schema", "name": "preset", "schema": schema}}}
    return {}


class Presets:
    """The presets of a server (`--presets-dir`); none when it has no directory."""

    def __init__(self, presets: Iterable[Preset] = ()) -> None:
        self._all = tuple(presets)
        self._by_identifier: dict[str, Preset] = {}
        self._by_name: dict[str, list[Preset]] = {}
        for preset in self._all:
            other = self._by_identifier.setdefault(preset.identifier, preset)
            if other is not preset:
                raise PresetError(
                    f"{preset.path}: its identifier {preset.identifier!r} is also that of {other.path}; give each "
                    "preset its own identifier"
                )
            for name in preset.names[1:]:
                self._by_name.setdefault(name, []).append(preset)

    @classmethod
    def load(cls, directory: Path | None) -> Presets:
        """Every `*.preset.json` under `directory` (subdirectories too, as LM Studio Hub downloads nest them).

        None: no presets. PresetError for a directory that is missing or a file that cannot be used.
        """
        if directory is None:
            return cls()
        if not directory.is_dir():
            raise PresetError(f"{directory}: the presets directory does not exist or is not a directory")
        return cls(Preset.read(path) for path in sorted(directory.rglob("*" + PRESET_SUFFIX)))

    def __iter__(self) -> Iterator[Preset]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def resolve(self, name: str) -> Preset:
        """The preset a request names (identifier first); an unknown or ambiguous name is a 400 (param `preset`)."""
        preset = self._by_identifier.get(name)
        if preset is not None:
            return preset
        found = self._by_name.get(name, [])
        if len(found) == 1:
            return found[0]
        if found:
            raise ApiError.bad_request(
                f"preset {name!r} is ambiguous: it names {', '.join(p.identifier for p in found)}; name one by its "
                "identifier",
                param="preset",
            )
        if not self._all:
            known = "this server has no presets (start it with --presets-dir DIR holding *.preset.json files)"
        else:
            known = "known presets: " + ", ".join(
                f"{p.identifier} ({p.name})" if p.name != p.identifier else p.identifier for p in self._all
            )
        raise ApiError.bad_request(f"no preset named {name!r}; {known}", param="preset", code="preset_not_found")

    def apply_named[M: BaseModel](self, body: M) -> M:
        """The body with the preset its `preset` field names applied; the body itself when it names none."""
        name = getattr(body, "preset", None)  # a declared field, or an extra one of a lenient model
        if name is None:
            return body
        if not isinstance(name, str):
            raise ApiError.bad_request("preset must be a string: a preset's identifier or name", param="preset")
        return self.resolve(name).apply(body)


def write_conformance_preset(directory: Path) -> str:
    """Write the preset `conformance run` names with --preset on its embedded server; returns its name.

    Its effect shows on any chat request: a system prompt (prompt_tokens grow) and at most 3 output tokens.
    """
    directory.mkdir(parents=True, exist_ok=True)
    preset = {
        "identifier": f"@local:{CONFORMANCE_PRESET}",
        "name": CONFORMANCE_PRESET,
        "operation": {
            "fields": [
                {"key": "llm.prediction.systemPrompt", "value": "You are a terse assistant. Answer in one word."},
                {"key": "llm.prediction.maxPredictedTokens", "value": {"checked": True, "value": 3}},
            ]
        },
        "load": {"fields": []},
    }
    (directory / f"{CONFORMANCE_PRESET}{PRESET_SUFFIX}").write_text(json.dumps(preset, indent=2) + "\n")
    return CONFORMANCE_PRESET
