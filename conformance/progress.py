"""What `conformance run` shows: live progress on stderr (rich, plain lines off a TTY), a summary at the end."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.check import Check, Item, Status
from conformance.report._text import clip
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["LiveProgress", "PlainProgress", "console_observer", "print_summary"]

STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "yellow",
    Status.NOT_COVERED: "dim",
}

_SUMMARY_ORDER = (Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR, Status.NOT_COVERED)
"""The statuses behind RunReport.summary's keys (passed, failed, skipped, errors, not_covered), in order."""


def console_observer() -> LiveProgress | PlainProgress:
    """A live bar on a terminal, one line per check otherwise (CI logs)."""
    console = Console(file=sys.stderr)
    return LiveProgress(console) if console.is_terminal else PlainProgress(Console(file=sys.stderr, soft_wrap=True))


class LiveProgress:
    """A progress bar over items; failures and errors printed above it as they happen."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._progress.stop()

    def started(self, items: Sequence[Item]) -> None:
        self._progress.update(self._task, total=len(items), completed=0)

    def check_started(self, item: Item, check: Check) -> None:
        self._progress.update(self._task, description=escape(f"{item.id}::{check.id}"))

    def check_done(self, item: Item, result: CheckResult) -> None:
        if result.status in (Status.FAIL, Status.ERROR):
            self._progress.console.print(
                _line(f"{item.id}::{result.id}", result.status, result.message), highlight=False
            )

    def item_done(self, result: ItemResult) -> None:
        self._progress.advance(self._task)


class PlainProgress:
    """One line per check (or per item that did not run), for logs."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def started(self, items: Sequence[Item]) -> None:
        self._console.print(f"running {len(items)} items", highlight=False)

    def check_started(self, item: Item, check: Check) -> None:
        return None

    def check_done(self, item: Item, result: CheckResult) -> None:
        detail = result.message if result.status != Status.PASS else f"{result.duration_s:.2f} s"
        self._console.print(_line(f"{item.id}::{result.id}", result.status, detail), highlight=False)

    def item_done(self, result: ItemResult) -> None:
        if result.status in (Status.SKIP, Status.NOT_COVERED):
            self._console.print(_line(result.id, result.status, result.reason), highlight=False)


def print_summary(report: RunReport, paths: Mapping[str, Path]) -> None:
    """Counts per status, the failing checks with their first message, timings and report paths.

    On a terminal, as tables; otherwise (CI logs, `> file`) as one unwrapped line per fact, so that ids stay
    whole and lines can be grepped.
    """
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        _print_lines(report, paths, Console(file=sys.stdout, highlight=False, soft_wrap=True))
        return
    target = report.target
    console.print(
        f"target: {escape(target.base_url)}  model: {escape(target.model)}  server: {escape(target.server or '?')}"
    )
    counts = Table(title="Items by status")
    counts.add_column("status")
    counts.add_column("items", justify="right")
    for (label, count), status in zip(report.summary.items(), _SUMMARY_ORDER, strict=True):
        counts.add_row(f"[{STYLE[status]}]{label}[/]", str(count))
    console.print(counts)
    bad = [(i, c) for i in report.items for c in i.checks if c.status in (Status.FAIL, Status.ERROR)]
    if bad:
        table = Table(title="Failed checks")
        table.add_column("check", overflow="fold")
        table.add_column("status")
        table.add_column("message")
        for item, check in bad:
            table.add_row(
                escape(f"{item.id}::{check.id}"),
                f"[{STYLE[check.status]}]{check.status}[/]",
                escape(clip(check.message)),
            )
        console.print(table)
    warned = [
        (i, c) for i in report.items for c in i.checks if c.warnings and c.status not in (Status.FAIL, Status.ERROR)
    ]
    if warned:
        table = Table(title="Warnings (they never fail a check)")
        table.add_column("check", overflow="fold")
        table.add_column("warning")
        for item, check in warned:
            table.add_row(escape(f"{item.id}::{check.id}"), escape(clip(str(check.warnings[0].get("message", "")))))
        console.print(table)
    wall = float(report.meta.get("wall_s", report.duration_s))
    server = float(report.meta.get("server_s", 0.0))
    console.print(f"{wall:.1f} s in all, {server:.1f} s waiting on the server")
    for name, path in paths.items():
        console.print(f"{name}: {escape(str(path))}")


def _print_lines(report: RunReport, paths: Mapping[str, Path], console: Console) -> None:
    target = report.target
    console.print(
        f"target: {escape(target.base_url)}  model: {escape(target.model)}  server: {escape(target.server or '?')}"
    )
    console.print("items: " + ", ".join(f"{count} {label}" for label, count in report.summary.items()))
    for item in report.items:
        for check in item.checks:
            if check.status in (Status.FAIL, Status.ERROR):
                console.print(_line(f"{item.id}::{check.id}", check.status, check.message))
            elif check.warnings:
                console.print(
                    _line(
                        f"{item.id}::{check.id}",
                        check.status,
                        f"{len(check.warnings)} warnings: {check.warnings[0].get('message', '')}",
                    )
                )
    wall = float(report.meta.get("wall_s", report.duration_s))
    server = float(report.meta.get("server_s", 0.0))
    console.print(f"{wall:.1f} s in all, {server:.1f} s waiting on the server")
    for name, path in paths.items():
        console.print(f"{name}: {escape(str(path))}")


def _line(name: str, status: Status, detail: str) -> str:
    return f"[{STYLE[status]}]{str(status).upper():<11}[/] {escape(name)}  {escape(clip(detail))}"
