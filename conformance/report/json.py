"""report.json: write it, and read one back checked against report.schema.json."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance.errors import UsageError
from conformance.results import RunReport

__all__ = ["load", "schema", "write"]

_MAX_MESSAGE = 160


def write(report: RunReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema report.json follows (shipped next to this module)."""
    text = resources.files("conformance.report").joinpath("report.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load(path: Path) -> dict[str, Any]:
    """A report.json as a dict, valid against the schema; anything else is a one-line UsageError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    error = best_match(Draft202012Validator(schema()).iter_errors(data))
    if error is not None:
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        message = error.message if len(error.message) <= _MAX_MESSAGE else error.message[:_MAX_MESSAGE] + "..."
        raise UsageError(f"{path} is not a conformance report.json (at {where}: {message})")
    return dict(data)
