"""report.md: summary table, every item's status, then each failure or error with its evidence."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from conformance.check import Status
from conformance.report._text import clip, evidence_text, requests_text
from conformance.report.reproduce import API_KEY_VARIABLE
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["render", "write"]


def write(report: RunReport, path: Path) -> None:
    path.write_text(render(report), encoding="utf-8")


def render(report: RunReport) -> str:
    return "\n".join(_lines(report)) + "\n"


def _lines(report: RunReport) -> Iterator[str]:
    target = report.target
    yield "# Conformance report"
    yield ""
    yield f"- base URL: `{_code(target.base_url)}`"
    yield f"- model: `{_code(target.model)}`"
    yield f"- server: `{_code(target.server or 'unknown')}`"
    yield f"- started: {_cell(report.started_at)}, {report.duration_s:.1f} s"
    yield ""
    yield "| " + " | ".join(report.summary) + " |"
    yield "|" + " ---: |" * len(report.summary)
    yield "| " + " | ".join(str(n) for n in report.summary.values()) + " |"
    yield ""
    yield "## Items"
    yield ""
    yield "| item | version | status | title | reason |"
    yield "| --- | --- | --- | --- | --- |"
    for item in report.items:
        status = str(item.status) + (" (warnings)" if any(c.warnings for c in item.checks) else "")
        yield (
            f"| `{_code(item.id)}` | {_cell(item.version)} | {status} | {_title(item.title)} | {_cell(_reason(item))} |"
        )
    bad = [(i, c) for i in report.items for c in i.checks if c.status in (Status.FAIL, Status.ERROR)]
    if bad:
        yield ""
        yield "## Failures and errors"
        for item, check in bad:
            yield from _check(item, check, str(check.status))
    warned = [
        (i, c) for i in report.items for c in i.checks if c.warnings and c.status not in (Status.FAIL, Status.ERROR)
    ]
    if warned:
        yield ""
        yield "## Warnings"
        yield ""
        yield "Deviations where the API's documentation leaves room: they never fail a check."
        for item, check in warned:
            yield from _check(item, check, f"{check.status}, {len(check.warnings)} warnings")


def _check(item: ItemResult, check: CheckResult, label: str) -> Iterator[str]:
    yield ""
    yield f"### `{_code(item.id)}::{_code(check.id)}` ({label})"
    yield ""
    yield _cell(clip(check.message))
    if check.evidence:
        yield ""
        yield from _fenced(evidence_text(check.evidence))
    for number, request in enumerate(check.requests, 1):
        yield ""
        label = f"Request {number} of {len(check.requests)}" if len(check.requests) > 1 else "Request"
        yield f"{label}: `{_code(request['method'])} {_code(request['url'])}`"
        yield ""
        if request.get("curl"):
            yield f"Reproduce it (when the key was redacted, set `${API_KEY_VARIABLE}` first):"
            yield ""
            yield from _fenced(request["curl"], "sh")
        else:
            yield from _fenced(requests_text([request]))
    if check.shape is not None:
        yield ""
        yield from _fenced(json.dumps(check.shape, indent=2, ensure_ascii=False, default=str), "json")


def _reason(item: ItemResult) -> str:
    """Why the item is not a plain pass: its own reason, else its first failing check's message."""
    if item.reason:
        return item.reason
    if item.status in (Status.FAIL, Status.ERROR, Status.SKIP):
        check = next((c for c in item.checks if c.status == item.status), None)
        return f"{check.id}: {clip(check.message, 200)}" if check is not None and check.message else ""
    return ""


def _fenced(text: str, language: str = "text") -> Iterator[str]:
    """A code block whose fence is longer than any backtick run inside (server text is untrusted)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    yield fence + language
    yield text
    yield fence


def _cell(text: str) -> str:
    """Text safe inside a table cell or paragraph: one line, pipes and markup escaped."""
    flat = " ".join(text.split())
    return re.sub(r"([\\`*_{}\[\]<>|#!])", r"\\\1", flat)


def _title(text: str) -> str:
    """A catalog title (our own Markdown, code spans kept) made safe for one table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Text safe inside an inline code span in a table: one line, no backticks, pipes escaped."""
    return " ".join(text.split()).replace("`", "'").replace("|", "\\|")
