"""Cassette files: JSONL, one recorded exchange per line, appended and flushed as each exchange completes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from conformance.errors import UsageError
from conformance.exchange import Exchange
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

    Raises UsageError only when the file itself cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such cassette (record one with `conformance record --out {path}`)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the cassette ({exc.strerror or exc})") from None
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
    return Cassette(path, tuple(entries), tuple(bad))


def _parse_line(line: str, number: int) -> Entry | str:
    try:
        d = json.loads(line)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(d, dict):
        return f"not a cassette line (a JSON {type(d).__name__}, expected an object)"
    try:
        return Entry.from_dict(d, number)
    except ValueError as exc:
        return str(exc)
    except (KeyError, TypeError) as exc:
        return f"not a cassette line ({type(exc).__name__}: {exc})"


def problems(cassettes: Sequence[Cassette]) -> list[str]:
    """The bad lines of several cassettes, as the lines the CLI prints to stderr."""
    return [str(b) for c in cassettes for b in c.bad_lines]
