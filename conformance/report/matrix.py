"""`conformance matrix REPORT.json...`: several reports side by side, items by version down, targets across.

Writes matrix.html (one self-contained page: each status cell opens that target's evidence for the item) and
matrix.md (the table, then one line per cell that is not a plain pass). A report may be given as
`LABEL=path/report.json` to name its column; otherwise the column is named after the server and model.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from conformance.check import Kind, Status
from conformance.errors import UsageError
from conformance.report import json as json_report
from conformance.report._text import check_text
from conformance.report.html import STYLE, badge, inline_markdown
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["Column", "load_columns", "main", "render_html", "render_markdown", "write"]

_BROKEN = (Status.FAIL, Status.ERROR)
_MAX_NOTE = 400
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_MATRIX_CSS = """
table.matrix { border-collapse: collapse; } table.matrix th, table.matrix td { border: 1px solid #d0d7de;
  padding: .2rem .4rem; vertical-align: top; } table.matrix th.version { background: #f6f8fa; text-align: left; }
table.matrix th[scope="row"] { text-align: left; }
table.matrix td.cell { max-width: 28rem; } table.matrix td details[open] { min-width: 22rem; }
.warned { color: #9a6700; font-weight: 600; }
"""


@dataclass(frozen=True)
class Column:
    label: str
    report: RunReport


def main(args: argparse.Namespace) -> int:
    columns = load_columns(args.reports)
    out = Path(args.out) if args.out else Path("reports") / f"matrix-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    paths = write(columns, out)
    print(render_markdown(columns), end="")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def load_columns(arguments: Sequence[str]) -> list[Column]:
    """Each `[LABEL=]path/report.json` read and checked; labels made unique."""
    if not arguments:
        raise UsageError("give one or more report.json files (each optionally as LABEL=path/report.json)")
    columns: list[Column] = []
    for argument in arguments:
        label, sep, path = argument.partition("=")
        if not sep or not label or Path(argument).exists():
            label, path = "", argument
        report = RunReport.from_dict(json_report.load(Path(path)))
        columns.append(Column(label or _label(report), report))
    seen: dict[str, int] = {}
    unique = []
    for column in columns:
        seen[column.label] = seen.get(column.label, 0) + 1
        label = column.label if seen[column.label] == 1 else f"{column.label} ({seen[column.label]})"
        unique.append(Column(label, column.report))
    return unique


def write(columns: Sequence[Column], directory: Path) -> dict[str, Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror or exc}; pass --out DIR") from None
    paths = {"html": directory / "matrix.html", "markdown": directory / "matrix.md"}
    paths["html"].write_text(render_html(columns), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(columns), encoding="utf-8")
    return paths


def render_markdown(columns: Sequence[Column]) -> str:
    return "\n".join(_markdown_lines(columns)) + "\n"


def render_html(columns: Sequence[Column]) -> str:
    head = "".join(f'<th scope="col">{escape(c.label)}</th>' for c in columns)
    rows = []
    for version, item_ids in _rows(columns):
        rows.append(f'<tr><th class="version" colspan="{len(columns) + 1}">{escape(version)}</th></tr>')
        for item_id in item_ids:
            cells = "".join(_html_cell(column.label, _find(column, item_id)) for column in columns)
            rows.append(f'<tr><th scope="row"><code>{escape(item_id)}</code></th>{cells}</tr>')
    targets = "".join(
        f"<li><b>{escape(c.label)}</b>: {escape(c.report.target.model)} at {escape(c.report.target.base_url)} "
        f"({escape(c.report.target.server or 'unknown server')}), {escape(c.report.started_at)}"
        + (" (interrupted: partial)" if c.report.interrupted else "")
        + "</li>"
        for c in columns
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Conformance matrix</title><style>{STYLE}{_MATRIX_CSS}</style></head><body>",
            "<h1>Conformance matrix</h1>",
            f"<ul>{targets}</ul>",
            "<p>Each cell is the item's status on that target; open it for the checks, their evidence and the "
            'requests to reproduce them. <span class="warned">!</span> marks warnings (never a failure).</p>',
            f'<table class="matrix"><thead><tr><th>item</th>{head}</tr></thead><tbody>',
            *rows,
            "</tbody></table></body></html>",
            "",
        ]
    )


def _label(report: RunReport) -> str:
    server = report.target.server or report.target.base_url
    return f"{server} / {report.target.model}"


def _rows(columns: Sequence[Column]) -> Iterator[tuple[str, list[str]]]:
    """Versions in order of first appearance, each with its item ids (union over the reports)."""
    versions: dict[str, dict[str, None]] = {}
    for column in columns:
        for item in column.report.items:
            versions.setdefault(item.version, {})[item.id] = None
    for version, ids in versions.items():
        yield version, list(ids)


def _find(column: Column, item_id: str) -> ItemResult | None:
    return next((i for i in column.report.items if i.id == item_id), None)


def _warned(item: ItemResult) -> int:
    return sum(len(c.warnings) for c in item.checks)


def _html_cell(label: str, item: ItemResult | None) -> str:
    if item is None:
        return '<td class="cell">not run</td>'
    warned = _warned(item)
    mark = f' <span class="warned" title="{warned} warnings">!</span>' if warned else ""
    detail = "".join(_html_check(check) for check in item.checks)
    if item.reason:
        detail = f'<p class="reason">{inline_markdown(item.reason)}</p>' + detail
    if not detail:
        return f'<td class="cell">{badge(str(item.status))}{mark}</td>'
    title = f"{label}: {item.id}"
    return (
        f'<td class="cell"><details><summary title="{escape(title)}">{badge(str(item.status))}{mark}</summary>'
        f"{detail}</details></td>"
    )


def _html_check(check: CheckResult) -> str:
    parts = [f"<p>{badge(str(check.status))} <code>{escape(check.id)}</code>"]
    if check.message:
        parts.append(f' <span class="message">{inline_markdown(check.message)}</span>')
    parts.append("</p>")
    text = check_text(check.evidence, check.requests)
    if text:
        parts.append(f"<pre>{escape(text)}</pre>")
    return "".join(parts)


def _markdown_lines(columns: Sequence[Column]) -> Iterator[str]:
    yield "| item | " + " | ".join(_md(c.label) for c in columns) + " |"
    yield "| --- |" + " --- |" * len(columns)
    for version, item_ids in _rows(columns):
        yield f"| **{_md(version)}** |" + " |" * len(columns)
        for item_id in item_ids:
            cells = []
            for column in columns:
                item = _find(column, item_id)
                if item is None:
                    cells.append("not run")
                    continue
                text = f"**{item.status}**" if item.status in _BROKEN else str(item.status)
                cells.append(text + (" (!)" if _warned(item) else ""))
            yield f"| `{item_id}` | " + " | ".join(cells) + " |"
    notes = list(_notes(columns))
    if notes:
        yield ""
        yield "Cells other than a clean pass ((!) marks warnings, which never fail an item):"
        yield ""
        yield from notes


def _notes(columns: Sequence[Column]) -> Iterator[str]:
    for column in columns:
        for item in column.report.items:
            warned = _warned(item)
            if item.status == Status.PASS and not warned:
                continue
            if not warned and (
                item.status == Status.NOT_COVERED or (item.status == Status.SKIP and item.kind != Kind.API)
            ):
                continue  # items without checks, CLI and model-specific skips: the same on every target
            why = item.reason or "; ".join(
                f"{c.id}: {c.message or c.status}" for c in item.checks if c.status != Status.PASS or c.warnings
            )
            if warned and item.status == Status.PASS:
                why = "; ".join(f"{c.id}: {w.get('message', '')}" for c in item.checks for w in c.warnings)
            status = f"{item.status}{' with warnings' if warned else ''}"
            yield f"- {_md(column.label)} / `{item.id}`: {status}: {_md(_cut(why))}"


def _cut(text: str) -> str:
    """A note stays one readable line; matrix.html and the reports hold the whole evidence."""
    return text if len(text) <= _MAX_NOTE else text[: _MAX_NOTE - 3].rsplit(" ", 1)[0] + "..."


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
