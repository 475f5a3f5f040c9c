"""`conformance run`: pick the target and the checks, run them, write the reports, print a summary."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.metadata
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.check import Check, Item, Status, Target
from conformance.errors import UsageError
from conformance.progress import console_observer, print_summary
from conformance.report import write_reports
from conformance.results import CheckResult, ItemResult, RunContext, RunReport, TargetInfo
from conformance.runner import Observer, default_client, run_catalog

__all__ = ["ServerGone", "catalog", "command_line", "main", "parse_only", "resolve_target", "select", "suite_version"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ServerGone(Exception):
    """The server stopped answering in the middle of a run: the run ends, with the report of what ran."""


def main(args: argparse.Namespace) -> int:
    only = parse_only(args.only)
    items = select(catalog(), only or ())
    directory = Path(args.report_dir) if args.report_dir else default_report_dir(args.base_url)
    context = RunContext("run", suite_version(), only, command_line(getattr(args, "argv", None), args.api_key))
    with default_client() as client, _server(args) as base_url:
        target = resolve_target(client, base_url, model=args.model, api_key=args.api_key)
        target = replace(target, expect=frozenset(args.expect), preset=getattr(args, "preset", None))
        _make_dir(directory)
        watch = _Watch(client, target)
        try:
            with console_observer() as progress:
                report = run_catalog(
                    target, items, client=client, progress=_Observers(progress, watch), timeout=args.exchange_timeout
                )
        except (KeyboardInterrupt, ServerGone) as stop:
            partial = watch.partial_report(context)
            paths = write_reports(partial, directory)
            print_summary(partial, paths)
            if isinstance(stop, ServerGone):
                print(f"conformance run: {stop}; partial report in {directory}", file=sys.stderr)
                return EXIT_USAGE
            print(f"conformance run: interrupted; partial report in {directory}", file=sys.stderr)
            return EXIT_INTERRUPTED
    report = replace(report, context=context)
    paths = write_reports(report, directory)
    print_summary(report, paths)
    return EXIT_OK if _succeeded(report) else EXIT_FAILED


def suite_version() -> str:
    """The installed llm-conformance version (`unknown` when run from a bare checkout)."""
    try:
        return importlib.metadata.version("llm-conformance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def command_line(argv: Sequence[str] | None, api_key: str | None) -> str:
    """`conformance ...` as typed, shell-quoted, with the API key replaced by [REDACTED]."""
    words = ["conformance", *(sys.argv[1:] if argv is None else argv)]
    if api_key:
        words = [w.replace(api_key, "[REDACTED]") for w in words]
    return shlex.join(words)


class _Observers:
    """Passes each event to several observers in turn."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def started(self, items: Sequence[Item]) -> None:
        for observer in self._observers:
            observer.started(items)

    def check_started(self, item: Item, check: Check) -> None:
        for observer in self._observers:
            observer.check_started(item, check)

    def check_done(self, item: Item, result: CheckResult) -> None:
        for observer in self._observers:
            observer.check_done(item, result)

    def item_done(self, result: ItemResult) -> None:
        for observer in self._observers:
            observer.item_done(result)


class _Watch:
    """Keeps the finished items (for a partial report) and stops the run when the server is gone.

    A check that errored (no response, a timeout) may be the check's own doing (a probe the server drops):
    the watch then asks GET /v1/models once; if that gets no response either, the server is gone.
    """

    def __init__(self, client: httpx.Client, target: Target) -> None:
        self._client = client
        self._target = target
        self._items: list[ItemResult] = []
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._start = time.perf_counter()
        self._checks = 0

    def started(self, items: Sequence[Item]) -> None:
        return None

    def check_started(self, item: Item, check: Check) -> None:
        return None

    def check_done(self, item: Item, result: CheckResult) -> None:
        self._checks += 1
        if result.status == Status.ERROR and not self._answers():
            raise ServerGone(
                f"the server at {self._target.base_url} stopped answering after {self._checks} checks "
                f"(last: {item.id}::{result.id}: {result.message})"
            )

    def item_done(self, result: ItemResult) -> None:
        self._items.append(result)

    def partial_report(self, context: RunContext) -> RunReport:
        target = self._target
        return RunReport(
            target=TargetInfo(target.base_url, target.model, target.server),
            started_at=self._started_at,
            duration_s=time.perf_counter() - self._start,
            items=tuple(self._items),
            context=context,
            interrupted=True,
        )

    def _answers(self) -> bool:
        headers = {"authorization": f"Bearer {self._target.api_key}"} if self._target.api_key else {}
        try:
            self._client.get(self._target.base_url + "/v1/models", headers=headers, timeout=30.0)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return False  # nothing listens any more; a slow or busy server (read timeout, reset) is still there
        except httpx.TransportError:
            return True
        return True


def catalog() -> tuple[Item, ...]:
    """The whole catalog, imported on first use."""
    items: tuple[Item, ...] = importlib.import_module("conformance.catalog").ITEMS
    return items


def select(items: Sequence[Item], only: Sequence[str], *, option: str = "--only") -> tuple[Item, ...]:
    """The items (and, for `item::check` selectors, only those checks) that `only` names.

    A selector matches an id it equals or starts, except in the middle of a number: `0.3.1` does not
    select `0.3.18/...`. A selector that matches nothing is a usage error.
    """
    if not only:
        return tuple(items)
    chosen: dict[str, set[str]] = {}
    for selector in only:
        matched = _match(items, selector)
        if not matched:
            raise UsageError(_no_match(items, selector, option))
        for item_id, check_ids in matched.items():
            chosen.setdefault(item_id, set()).update(check_ids)
    return tuple(
        replace(item, checks=tuple(c for c in item.checks if c.id in chosen[item.id]))
        for item in items
        if item.id in chosen
    )


def resolve_target(
    client: httpx.Client,
    base_url: str,
    *,
    model: str | None = None,
    api_key: str | None = None,
    option: str = "--base-url",
) -> Target:
    """Ask the server's /v1/models for the model (when not given) and the server name."""
    base = _server_root(base_url, option)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        reply = client.get(base + "/v1/models", headers=headers, timeout=30.0)
    except httpx.TransportError as exc:
        raise UsageError(
            f"cannot reach {base}: {_reason(exc)}; is the server running? "
            f"pass {option} with the server root, e.g. http://localhost:1234"
        ) from None
    models = _models(reply)
    flags = option.removesuffix("base-url")
    if reply.status_code in (401, 403):
        if api_key:
            raise UsageError(
                f"the server refused the API key: GET {base}/v1/models answered {reply.status_code}; "
                f"check {flags}api-key"
            )
        raise UsageError(
            f"GET {base}/v1/models answered {reply.status_code}: the server wants a key, pass {flags}api-key KEY"
        )
    if model is None:
        model = _first_model(reply, models, base, flags)
    else:
        _known_model(model, models, base, flags)
    owner = next((m.get("owned_by") for m in models if m.get("id") == model), None)
    server = reply.headers.get("server") or (owner if isinstance(owner, str) else None)
    return Target(base_url=base, model=model, server=server, api_key=api_key)


def default_report_dir(base_url: str | None, now: datetime | None = None) -> Path:
    """reports/<host_port>-<UTC time>/, or reports/embedded-<time>/ for the embedded server."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    name = "embedded"
    if base_url:
        parts = urlsplit(base_url)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", parts.netloc.replace(":", "_")) or "target"
    return Path("reports") / f"{name}-{stamp}"


@contextlib.contextmanager
def _server(args: argparse.Namespace) -> Iterator[str]:
    """The target's root URL: --base-url, or the reference server started in this process for the run
    (`reference_server.embedded.serve_for_suite`: every item can run on it). Its token and preset become the
    run's own --api-key and --preset unless the user gave them."""
    if args.base_url:
        yield args.base_url
        return
    embedded = importlib.import_module("reference_server.embedded")
    with embedded.serve_for_suite(api_key=args.api_key) as server:
        args.api_key = server.api_key
        if getattr(args, "preset", None) is None:
            args.preset = server.preset
        yield server.url


def _make_dir(directory: Path) -> None:
    """Create the report directory before the run, so a bad --report-dir fails at once."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create report directory {directory}: {exc.strerror or exc}; pass --report-dir DIR"
        ) from None


def _succeeded(report: RunReport) -> bool:
    return not any(c.status in (Status.FAIL, Status.ERROR) for i in report.items for c in i.checks)


def parse_only(only: str | None, *, option: str = "--only") -> tuple[str, ...] | None:
    """The --only selectors, None when the option was not given; naming nothing is a usage error."""
    if only is None:
        return None
    selectors = tuple(s.strip() for s in only.split(",") if s.strip())
    if not selectors:
        raise UsageError(
            f"{option} {only!r} names no item; pass item or check ids (e.g. {option} 0.3.18,base/models), "
            f"or leave {option} out to run the whole catalog"
        )
    return selectors


def _match(items: Sequence[Item], selector: str) -> dict[str, set[str]]:
    item_part, sep, check_part = selector.partition("::")
    matched: dict[str, set[str]] = {}
    for item in items:
        if not sep:
            if _starts(item.id, item_part):
                matched[item.id] = {c.id for c in item.checks}
        elif item.id == item_part:
            checks = {c.id for c in item.checks if _starts(c.id, check_part)}
            if checks:
                matched[item.id] = checks
    return matched


def _starts(identifier: str, prefix: str) -> bool:
    if not identifier.startswith(prefix):
        return False
    rest = identifier[len(prefix) :]
    return not (rest and prefix and rest[0].isdigit() and prefix[-1].isdigit())


def _no_match(items: Sequence[Item], selector: str, option: str) -> str:
    ids = [i.id for i in items] + [f"{i.id}::{c.id}" for i in items for c in i.checks]
    close = difflib.get_close_matches(selector, ids, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    versions = ", ".join(dict.fromkeys(i.version for i in items))
    return (
        f"{option} {selector!r} matches no item or check; {hint}ids look like VERSION/NAME or "
        f"VERSION/NAME::CHECK (versions: {versions}); report.md of a run lists every id"
    )


def _server_root(base_url: str, option: str) -> str:
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"{option} {base_url!r} is not an http(s) URL; pass the server root, e.g. http://localhost:1234"
        )
    if parts.path.endswith("/v1"):
        raise UsageError(f"{option} is the server root without /v1 (the suite appends /v1/...): try {base[:-3]}")
    return base


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text


def _models(reply: httpx.Response) -> list[dict[str, Any]]:
    try:
        data = reply.json().get("data") if reply.status_code == 200 else None
    except (ValueError, AttributeError):
        return []
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _known_model(model: str, models: list[dict[str, Any]], base: str, flags: str) -> None:
    """Stop before running when the server lists its models and `model` is not one of them."""
    ids = [m["id"] for m in models if isinstance(m.get("id"), str)]
    if ids and model not in ids:
        raise UsageError(
            f"{flags}model {model!r} is not among the models GET {base}/v1/models lists: {', '.join(ids)}; "
            f"pass one of them (or load {model!r} in the server)"
        )


def _first_model(reply: httpx.Response, models: list[dict[str, Any]], base: str, flags: str) -> str:
    """The first listed model id; `flags` is the option prefix (`--` or `--conformance-`)."""
    if reply.status_code != 200:
        raise UsageError(f"GET {base}/v1/models answered {reply.status_code}: pass {flags}model ID")
    ids: list[str] = [m["id"] for m in models if isinstance(m.get("id"), str)]
    if not ids:
        raise UsageError(f"GET {base}/v1/models lists no model: load one in the server or pass {flags}model ID")
    return ids[0]
