"""Runs catalog checks against a server: each check becomes a CheckResult, never an exception.

An item's status comes from its own findings, wherever they were seen: a rule of one item that fires in
another item's exchange is reported under its own item (`conformance run` gathers them across the run), never
under the check that happened to send the request. A check whose exchanges did not show its feature is
`skip` "not exercised: ...", and an item of a surface the server does not implement is `skip` "not
implemented by this server" unless the run expects that surface.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from conformance.applicability import unimplemented
from conformance.check import Check, Item, Status, Target
from conformance.client import DEFAULT_EXCHANGE_TIMEOUT, send
from conformance.exchange import Exchange
from conformance.findings import ERROR, ConformanceFailure, Finding, clip
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo, item_status, with_requests

__all__ = [
    "CheckRun",
    "Observer",
    "applicable",
    "default_client",
    "item_skip_reason",
    "judge_check",
    "run_catalog",
    "run_check",
    "run_item",
]

_MAX_TRACEBACK = 4000
NOT_EXERCISED = "not exercised: "
NOT_IMPLEMENTED = "not implemented by this server"


class Observer(Protocol):
    """What a progress display hears from a run."""

    def started(self, items: Sequence[Item]) -> None: ...

    def check_started(self, item: Item, check: Check) -> None: ...

    def check_done(self, item: Item, result: CheckResult) -> None: ...

    def item_done(self, result: ItemResult) -> None: ...


@dataclass(frozen=True)
class CheckRun:
    """One check's result, plus the findings it saw that belong to other items, and its exchanges."""

    result: CheckResult
    foreign: tuple[Finding, ...] = ()
    """Findings of rules of other items, seen in this check's exchanges: they count for those items."""
    exchanges: tuple[Exchange, ...] = ()


class _NoResponse(Exception):
    """An exchange got no response (transport error); the check errors with this message."""


def default_client() -> httpx.Client:
    """The HTTP client a run uses: a generous read timeout, since a slow model is not a broken server."""
    return httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0))


def run_check(
    client: httpx.Client,
    target: Target,
    check: Check,
    *,
    timeout: float = DEFAULT_EXCHANGE_TIMEOUT,
    item: Item | None = None,
) -> CheckResult:
    """Drive the check's plan over HTTP and judge what came back; errors become `error` results.

    With `item`, an extension the server does not implement turns the result into `skip`.
    """
    run = _execute(client, target, check, timeout)
    return applicable(item, target, run).result if item is not None else run.result


def judge_check(check: Check, exchanges: Sequence[Exchange]) -> CheckRun:
    """The verdict on a check's exchanges (pure: usable on recorded or synthetic exchanges).

    The check fails on its own item's error findings; else it is `skip` when its exchanges did not exercise
    its feature; else it passes (warnings shown, never failing). Findings of other items are returned apart.
    """
    start = time.perf_counter()
    try:
        findings: list[Finding] = list(check.verdict(exchanges))
    except ConformanceFailure as failure:
        findings = list(failure.findings)
    except Exception as exc:
        return CheckRun(_crash(check, "verdict", exc, start, exchanges), (), tuple(exchanges))
    own = [f for f in findings if f.item == check.item]
    foreign = tuple(f for f in findings if f.item != check.item)
    errors = [f for f in own if f.severity == ERROR]
    try:
        reason = None if errors or check.exercised is None else check.exercised(exchanges)
    except Exception as exc:
        return CheckRun(_crash(check, "exercised", exc, start, exchanges), foreign, tuple(exchanges))
    if errors:
        status, message = Status.FAIL, errors[0].message
    elif reason is not None:
        status, message = Status.SKIP, NOT_EXERCISED + reason
    else:
        status, message = Status.PASS, (f"warning: {own[0].message}" if own else "")
    result = CheckResult(
        id=check.id,
        status=status,
        message=clip(message),
        evidence=tuple(f.to_dict() for f in errors + [f for f in own if f.severity != ERROR]),
        shape=_shape(check, exchanges),
        server_s=_server_s(exchanges),
    )
    return CheckRun(result, foreign, tuple(exchanges))


def item_skip_reason(item: Item, model: str) -> str | None:
    """Why an item does not run against `model`: its own skip reason, or a model family mismatch."""
    if item.skip_reason:
        return item.skip_reason
    if item.model_families and not any(f.lower() in model.lower() for f in item.model_families):
        return f"model-specific: runs only for {', '.join(item.model_families)} models"
    return None


def run_item(
    client: httpx.Client,
    target: Target,
    item: Item,
    observer: Observer | None = None,
    *,
    timeout: float = DEFAULT_EXCHANGE_TIMEOUT,
) -> ItemResult:
    """Every check of the item, or the reason none ran (findings of other items are left out)."""
    result, _ = _run_item(client, target, item, observer, timeout)
    if observer is not None:
        observer.item_done(result)
    return result


def run_catalog(
    target: Target,
    items: Sequence[Item],
    *,
    client: httpx.Client | None = None,
    progress: Observer | None = None,
    timeout: float = DEFAULT_EXCHANGE_TIMEOUT,
) -> RunReport:
    """Run `items` in order against `target`; the report's meta holds wall and server-wait seconds.

    Findings a check saw for another item of the run are added to that item, as one check result per
    check that saw them (`seen-in <item>::<check>`); the progress display hears each item with those seen
    so far, the report has them all.
    """
    own_client = client is None
    http = default_client() if client is None else client
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    if progress is not None:
        progress.started(items)
    results: list[ItemResult] = []
    foreign: dict[str, list[CheckResult]] = defaultdict(list)
    try:
        for item in items:
            result, seen = _run_item(http, target, item, progress, timeout)
            results.append(result)
            for item_id, check_result in seen:
                foreign[item_id].append(check_result)
            if progress is not None:
                progress.item_done(_with_foreign(result, foreign.get(item.id, [])))
    finally:
        if own_client:
            http.close()
    run_ids = {item.id for item in items}
    results = [_with_foreign(r, foreign.get(r.id, [])) for r in results]
    wall = time.perf_counter() - start
    checks = [c for r in results for c in r.checks]
    server = sum(c.server_s for c in checks)
    outside = sum(len(c.evidence) for item_id, found in foreign.items() if item_id not in run_ids for c in found)
    return RunReport(
        target=TargetInfo(target.base_url, target.model, target.server),
        started_at=started_at,
        duration_s=wall,
        items=tuple(results),
        meta={
            "wall_s": wall,
            "server_s": server,
            "checks_run": sum(c.status != Status.SKIP for c in checks),
            "findings_outside_run": outside,
        },
    )


def _run_item(
    client: httpx.Client,
    target: Target,
    item: Item,
    observer: Observer | None,
    timeout: float,
) -> tuple[ItemResult, list[tuple[str, CheckResult]]]:
    """The item's result (without other checks' findings) and, per other item, the findings its checks saw."""
    reason = item_skip_reason(item, target.model)
    if reason is not None:
        checks = tuple(CheckResult(id=c.id, status=Status.SKIP, message=reason) for c in item.checks)
        return _item_result(item, Status.SKIP, checks, reason), []
    if not item.checks:
        return _item_result(item, Status.NOT_COVERED, (), "no checks yet"), []
    runs = []
    for check in item.checks:
        if observer is not None:
            observer.check_started(item, check)
        run = applicable(item, target, _execute(client, target, check, timeout))
        runs.append(run)
        if observer is not None:
            observer.check_done(item, run.result)
    results = tuple(r.result for r in runs)
    status = item_status(results)
    why = results[0].message if status == Status.SKIP else ""
    seen = [(item_id, _seen_in(item, run, found)) for run in runs for item_id, found in _by_item(run.foreign).items()]
    return _item_result(item, status, results, why), seen


def _execute(client: httpx.Client, target: Target, check: Check, timeout: float) -> CheckRun:
    """Run the check; a result that did not pass cleanly carries the requests it sent (to reproduce it)."""
    exchanges: list[Exchange] = []
    run = _drive_and_judge(client, target, check, timeout, exchanges)
    return replace(run, result=with_requests(run.result, exchanges, api_key=target.api_key))


def _drive_and_judge(
    client: httpx.Client, target: Target, check: Check, timeout: float, exchanges: list[Exchange]
) -> CheckRun:
    start = time.perf_counter()
    try:
        _drive(check, client, target, exchanges, timeout)
    except _NoResponse as exc:
        return CheckRun(_error(check, str(exc), [{"error": str(exc)}], start, exchanges), (), tuple(exchanges))
    except Exception as exc:
        return CheckRun(_crash(check, "plan", exc, start, exchanges), (), tuple(exchanges))
    run = judge_check(check, exchanges)
    return replace(run, result=replace(run.result, duration_s=time.perf_counter() - start))


def applicable(item: Item | None, target: Target, run: CheckRun) -> CheckRun:
    """The run as is, or `skip` "not implemented by this server" when its exchanges show that the server lacks
    the item's extension and the run does not expect that extension (`--expect`, or LM Studio's own)."""
    if item is None or item.extension is None or target.expects(item.extension):
        return run
    if run.result.status == Status.ERROR and not run.exchanges:
        return run
    sign = unimplemented(item, run.exchanges)
    if sign is None:
        return run
    reason, evidence = sign
    message = f"{NOT_IMPLEMENTED}: {reason} (pass --expect {item.extension} to count this as a failure)"
    result = replace(run.result, status=Status.SKIP, message=message, evidence=(evidence,))
    return CheckRun(result, (), run.exchanges)


def _by_item(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        grouped[finding.item].append(finding)
    return grouped


def _seen_in(item: Item, run: CheckRun, findings: list[Finding]) -> CheckResult:
    """The findings one check saw for another item, as a check result of that item."""
    errors = [f for f in findings if f.severity == ERROR]
    source = f"{item.id}::{run.result.id}"
    if errors:
        status, message = Status.FAIL, f"seen in {source}: {errors[0].message}"
    else:
        status, message = Status.SKIP, f"warnings seen in {source}: {findings[0].message}"
    ordered = errors + [f for f in findings if f.severity != ERROR]
    return CheckResult(
        id=f"seen-in {source}", status=status, message=clip(message), evidence=tuple(f.to_dict() for f in ordered)
    )


def _with_foreign(result: ItemResult, seen: list[CheckResult]) -> ItemResult:
    """The item's result with the findings other checks saw for it; only error findings change its status."""
    if not seen:
        return result
    checks = (*result.checks, *seen)
    if not any(c.status == Status.FAIL for c in seen):
        return replace(result, checks=checks)
    return replace(result, checks=checks, status=Status.FAIL, reason="")


def _drive(check: Check, client: httpx.Client, target: Target, exchanges: list[Exchange], timeout: float) -> None:
    """Feed each exchange back into the plan until it stops asking."""
    plan = check.plan(target)
    try:
        spec = next(plan)
        while True:
            if spec.wait > 0:
                time.sleep(spec.wait)
            try:
                exchange = send(client, target, spec, timeout=timeout)
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


def _crash(check: Check, stage: str, exc: Exception, start: float, exchanges: Sequence[Exchange]) -> CheckResult:
    text = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))[-_MAX_TRACEBACK:]
    return _error(check, f"{stage} raised {text}", [{"error": text, "traceback": trace}], start, exchanges)


def _error(
    check: Check, message: str, evidence: list[dict[str, Any]], start: float, exchanges: Sequence[Exchange]
) -> CheckResult:
    return CheckResult(
        id=check.id,
        status=Status.ERROR,
        message=clip(message),
        evidence=tuple({k: clip(v) if isinstance(v, str) else v for k, v in e.items()} for e in evidence),
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
