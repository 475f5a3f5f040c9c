"""Cassette files: JSONL, one recorded exchange per line, appended and flushed as each exchange completes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance.errors import UsageError
from conformance.exchange import CASSETTE_VERSION, Exchange
from conformance.findings import Finding

__all__ = ["BadLine", "Cassette", "CassetteWriter", "Entry", "read_cassette"]

_FINDING_FIELDS = frozenset(f.name for f in dataclasses.fields(Finding))


@dataclass(frozen=True)
class Entry:
    """One cassette line: the exchange, the findings of the live verdicts, and a validator crash if any."""

    exchange: Exchange
    findings: tuple[Finding, ...] = ()
    validator_error: str | None = None
    line: int = 0
    """1-based line number in the file it was read from (0 for an entry not read from a file)."""
    verdicts_not_run: str | None = None
    """Why the live verdicts did not run on this exchange (the recorder was stopping); `check` runs them."""

    def to_dict(self) -> dict[str, Any]:
        d = self.exchange.to_dict()
        d["findings"] = [f.to_dict() for f in self.findings]
        if self.validator_error is not None:
            d["validator_error"] = self.validator_error
        if self.verdicts_not_run is not None:
            d["verdicts_not_run"] = self.verdicts_not_run
        return d

    def to_line(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], line: int = 0) -> Entry:
        findings = tuple(
            Finding(**{k: v for k, v in f.items() if k in _FINDING_FIELDS}) for f in d.get("findings") or ()
        )
        return cls(Exchange.from_dict(d), findings, d.get("validator_error"), line, d.get("verdicts_not_run"))


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read; it is skipped and reported as `PATH:LINE: message`."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}; line skipped"


@dataclass(frozen=True)
class Cassette:
    path: Path
    entries: tuple[Entry, ...]
    bad_lines: tuple[BadLine, ...] = ()

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        return tuple(e.exchange for e in self.entries)


class CassetteWriter:
    """Appends entries to a cassette, one line each, flushed at once: a crash loses at most the line in flight.

    The file is opened (created when missing) by the first write, so a session that records nothing leaves no
    empty cassette behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._closed = False

    def write(self, entry: Entry) -> None:
        if self._closed:
            raise ValueError(f"cassette {self.path} is closed")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(entry.to_line())
        self._file.flush()

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._closed


def read_cassette(path: Path) -> Cassette:
    """Every readable line of `path`; bad lines are kept aside with their numbers, never raised.

    Raises UsageError only when the file itself cannot be read, or is not a cassette at all (a HAR file, one
    JSON document spread over several lines).
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such cassette (record one with `conformance record --out {path}`)") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a cassette (give a .jsonl file)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the cassette ({exc.strerror or exc})") from None
    text = text.removeprefix("\ufeff")  # a byte order mark some editors write
    entries: list[Entry] = []
    bad: list[BadLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry_or_problem = _parse_line(line, number)
        if isinstance(entry_or_problem, Entry):
            entries.append(entry_or_problem)
        else:
            bad.append(BadLine(path, number, entry_or_problem))
    if not entries and bad:
        _refuse_other_documents(path, text)
    return Cassette(path, tuple(entries), tuple(bad))


_MAX_DEPTH = 128
"""Deepest nesting a line may have: the readers, the redaction and the diff walk values recursively."""

_STRING = {"type": "string"}
_OPTIONAL_STRING = {"type": ["string", "null"]}
_HEADERS = {"type": ["object", "null"], "additionalProperties": _STRING}
_LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["request"],
    "properties": {
        "id": _OPTIONAL_STRING,
        "started_at": _OPTIONAL_STRING,
        "duration_ms": {"type": "number"},
        "request": {
            "type": "object",
            "required": ["method", "path"],
            "properties": {
                "method": {"type": "string", "minLength": 1},
                "url": _STRING,
                "path": _STRING,
                "headers": _HEADERS,
            },
        },
        "response": {
            "type": ["object", "null"],
            "required": ["status"],
            "properties": {
                "status": {"type": "integer"},
                "headers": _HEADERS,
                "events": {
                    "type": ["array", "null"],
                    "items": {
                        "type": "object",
                        "required": ["t_ms"],
                        "properties": {
                            "t_ms": {"type": "number"},
                            "event": _OPTIONAL_STRING,
                            "data": _OPTIONAL_STRING,
                            "raw": _STRING,
                        },
                    },
                },
                "tail": _STRING,
            },
        },
        "error": _OPTIONAL_STRING,
        "findings": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["item", "check", "message"],
                "properties": {
                    "item": _STRING,
                    "check": _STRING,
                    "message": _STRING,
                    "endpoint": _OPTIONAL_STRING,
                    "exchange": {"type": ["integer", "null"]},
                    "chunk": {"type": ["integer", "null"]},
                    "raw": _OPTIONAL_STRING,
                    "pointer": _OPTIONAL_STRING,
                    "severity": _STRING,
                },
            },
        },
        "validator_error": _OPTIONAL_STRING,
        "verdicts_not_run": _OPTIONAL_STRING,
    },
}
_LINE_VALIDATOR = Draft202012Validator(_LINE_SCHEMA)


def _parse_line(line: str, number: int) -> Entry | str:
    try:
        d = json.loads(line)
    except RecursionError:
        return f"nested too deeply to read (more than {_MAX_DEPTH} levels)"
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(d, dict):
        return f"not a cassette line (a JSON {_json_type(d)}, expected an object)"
    if _depth(d) > _MAX_DEPTH:
        return f"nested too deeply to read (more than {_MAX_DEPTH} levels)"
    if d.get("version") != CASSETTE_VERSION:
        return f"unknown cassette version {_clip(repr(d.get('version')))} (this build reads {CASSETTE_VERSION})"
    error = best_match(_LINE_VALIDATOR.iter_errors(d))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "the line"
        return f"not a cassette line ({where}: {_clip(error.message)})"
    try:
        return Entry.from_dict(d, number)
    except (ValueError, KeyError, TypeError) as exc:  # what the schema does not catch
        return f"not a cassette line ({type(exc).__name__}: {_clip(str(exc))})"


def _depth(value: Any) -> int:
    """How deeply a JSON value nests, counted without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > _MAX_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    names[type(None)] = "null"
    return names.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_other_documents(path: Path, text: str) -> None:
    """A file with no cassette line that is another kind of JSON: said once, not line by line."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return
    try:
        document = json.loads(stripped)
    except (ValueError, RecursionError):
        return
    if isinstance(document, dict) and isinstance(document.get("log"), dict) and "entries" in document["log"]:
        raise UsageError(
            f"{path}: this is a HAR file, not a cassette; convert it with "
            f"`python -m proxy.har {path} {path.with_suffix('.jsonl')}`, or record a cassette with "
            "`conformance record --out FILE.jsonl`"
        )
    lines = len(stripped.splitlines())
    if lines > 1:
        raise UsageError(
            f"{path}: one JSON {_json_type(document)} spread over {lines} lines, not a cassette (a cassette is JSON "
            "Lines: one recorded exchange per line, as `conformance record` writes)"
        )


def problems(cassettes: Sequence[Cassette]) -> list[str]:
    """The bad lines of several cassettes, as the lines the CLI prints to stderr."""
    return [str(b) for c in cassettes for b in c.bad_lines]
