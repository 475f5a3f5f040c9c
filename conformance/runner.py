"""Runs catalog checks against a server: each check becomes a CheckResult, never an exception."""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from conformance.check import Check, Item, Status, Target
from conformance.client import send
from conformance.exchange import Exchange
from conformance.findings import ConformanceFailure, Finding
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo, item_status, with_requests

__all__ = ["Observer", "default_client", "item_skip_reason", "run_catalog", "run_check", "run_item"]

_MAX_TRACEBACK = 4000


class Observer(Protocol):
    """What a progress display hears from a run."""

    def started(self, items: Sequence[Item]) -> None: ...

    def check_started(self, item: Item, check: Check) -> None: ...

    def check_done(self, item: Item, result: CheckResult) -> None: ...

    def item_done(self, result: ItemResult) -> None: ...


class _NoResponse(Exception):
    """An exchange got no response (transport error); the check errors with this message."""


def default_client() -> httpx.Client:
    """The HTTP client a run uses: a generous read timeout, since a slow model is not a broken server."""
    return httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0))


def run_check(client: httpx.Client, target: Target, check: Check) -> CheckResult:
    """Drive the check's plan over HTTP and judge what came back; errors become `error` results."""
    exchanges: list[Exchange] = []
    return with_requests(_judge(client, target, check, exchanges), exchanges, api_key=target.api_key)


def _judge(client: httpx.Client, target: Target, check: Check, exchanges: list[Exchange]) -> CheckResult:
    start = time.perf_counter()
    try:
        _drive(check, client, target, exchanges)
    except _NoResponse as exc:
        return _error(check, str(exc), [{"error": str(exc)}], start, exchanges)
    except Exception as exc:
        return _crash(check, "plan", exc, start, exchanges)
    try:
        findings: list[Finding] = list(check.verdict(exchanges))
    except ConformanceFailure as failure:
        findings = list(failure.findings)
    except Exception as exc:
        return _crash(check, "verdict", exc, start, exchanges)
    return CheckResult(
        id=check.id,
        status=Status.FAIL if findings else Status.PASS,
        message=findings[0].message if findings else "",
        evidence=tuple(f.to_dict() for f in findings),
        shape=_shape(check, exchanges),
        duration_s=time.perf_counter() - start,
        server_s=_server_s(exchanges),
    )


def item_skip_reason(item: Item, model: str) -> str | None:
    """Why an item does not run against `model`: its own skip reason, or a model family mismatch."""
    if item.skip_reason:
        return item.skip_reason
    if item.model_families and not any(f.lower() in model.lower() for f in item.model_families):
        return f"model-specific: runs only for {', '.join(item.model_families)} models"
    return None


def run_item(client: httpx.Client, target: Target, item: Item, observer: Observer | None = None) -> ItemResult:
    """Every check of the item, or the reason none ran."""
    reason = item_skip_reason(item, target.model)
    if reason is not None:
        checks = tuple(CheckResult(id=c.id, status=Status.SKIP, message=reason) for c in item.checks)
        return _item_result(item, Status.SKIP, checks, reason)
    if not item.checks:
        return _item_result(item, Status.NOT_COVERED, (), "no checks yet")
    results = []
    for check in item.checks:
        if observer is not None:
            observer.check_started(item, check)
        result = run_check(client, target, check)
        results.append(result)
        if observer is not None:
            observer.check_done(item, result)
    return _item_result(item, item_status(results), tuple(results), "")


def run_catalog(
    target: Target,
    items: Sequence[Item],
    *,
    client: httpx.Client | None = None,
    progress: Observer | None = None,
) -> RunReport:
    """Run `items` in order against `target`; the report's meta holds wall and server-wait seconds."""
    own_client = client is None
    http = default_client() if client is None else client
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    if progress is not None:
        progress.started(items)
    results = []
    try:
        for item in items:
            result = run_item(http, target, item, progress)
            results.append(result)
            if progress is not None:
                progress.item_done(result)
    finally:
        if own_client:
            http.close()
    wall = time.perf_counter() - start
    checks = [c for r in results for c in r.checks]
    server = sum(c.server_s for c in checks)
    return RunReport(
        target=TargetInfo(target.base_url, target.model, target.server),
        started_at=started_at,
        duration_s=wall,
        items=tuple(results),
        meta={"wall_s": wall, "server_s": server, "checks_run": sum(c.status != Status.SKIP for c in checks)},
    )


def _drive(check: Check, client: httpx.Client, target: Target, exchanges: list[Exchange]) -> None:
    """Feed each exchange back into the plan until it stops asking."""
    plan = check.plan(target)
    try:
        spec = next(plan)
        while True:
            try:
                exchange = send(client, target, spec)
            except httpx.HTTPError as exc:
                raise _NoResponse(f"no response to {spec.method} {spec.path}: {type(exc).__name__}: {exc}") from exc
            exchanges.append(exchange)
            if exchange.response is None:
                raise _NoResponse(f"no response to {spec.method} {spec.path}: {exchange.error}")
            spec = plan.send(exchange)
    except StopIteration:
        return
    finally:
        plan.close()


def _item_result(item: Item, status: Status, checks: tuple[CheckResult, ...], reason: str) -> ItemResult:
    return ItemResult(
        id=item.id,
        version=item.version,
        title=item.title,
        kind=item.kind,
        status=status,
        checks=checks,
        reason=reason,
    )


def _crash(check: Check, stage: str, exc: Exception, start: float, exchanges: list[Exchange]) -> CheckResult:
    text = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))[-_MAX_TRACEBACK:]
    return _error(check, f"{stage} raised {text}", [{"error": text, "traceback": trace}], start, exchanges)


def _error(
    check: Check, message: str, evidence: list[dict[str, Any]], start: float, exchanges: list[Exchange]
) -> CheckResult:
    return CheckResult(
        id=check.id,
        status=Status.ERROR,
        message=message,
        evidence=tuple(evidence),
        duration_s=time.perf_counter() - start,
        server_s=_server_s(exchanges),
    )


def _server_s(exchanges: Sequence[Exchange]) -> float:
    return sum(e.duration_ms for e in exchanges) / 1000


def _shape(check: Check, exchanges: Sequence[Exchange]) -> Any:
    """The check's own fingerprint, else the default one (None while conformance.shape is absent)."""
    fingerprint = check.shape or _default_shape()
    if fingerprint is None:
        return None
    try:
        return fingerprint(exchanges)
    except Exception as exc:
        return {"shape_error": f"{type(exc).__name__}: {exc}"}


def _default_shape() -> Callable[[Sequence[Exchange]], Any] | None:
    try:
        module = importlib.import_module("conformance.shape")
    except ModuleNotFoundError:
        return None
    shape: Callable[[Sequence[Exchange]], Any] | None = getattr(module, "shape", None)
    return shape
