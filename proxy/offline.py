"""The verdicts run offline over a cassette, summed up per changelog item as the RunReport `conformance run` writes."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from conformance.catalog.coverage import exercises, recorded_status
from conformance.check import Item, Kind, Status
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.results import CheckResult, ItemResult, RunReport, TargetInfo, item_status, with_requests
from proxy.cassette import Cassette, Entry

__all__ = ["RECORDED_CHECK", "Validate", "judge"]

Validate = Callable[[Exchange], Iterable[Finding]]

RECORDED_CHECK = "recorded-traffic"
"""Check id of the result an item gets when its endpoints were exercised and no rule found anything."""


def judge(cassette: Cassette, items: Sequence[Item], validate: Validate) -> RunReport:
    """Run `validate` on every recorded exchange, then one ItemResult per catalog item.

    An item fails with its findings; it passes when the cassette holds a request that exercises it (an
    `include_usage` stream for 0.3.18/stream-include-usage, say) and no rule found anything; a CLI item is
    skipped; any other item is not covered. A finding's `exchange` is its cassette line number.
    """
    start = datetime.now(UTC)
    findings: dict[str, list[Finding]] = defaultdict(list)
    crashes: dict[str, list[dict[str, object]]] = defaultdict(list)
    models: set[str] = set()
    for entry in cassette.entries:
        exchange = entry.exchange
        if _body_not_recorded(entry):
            continue
        if isinstance(exchange.request.json.get("model"), str):
            models.add(exchange.request.json["model"])
        try:
            for finding in validate(exchange):
                findings[finding.item].append(dataclasses.replace(finding, exchange=entry.line))
        except Exception as exc:
            crashes[exchange.endpoint].append(
                {"line": entry.line, "error": f"{type(exc).__name__}: {exc}", "endpoint": exchange.endpoint}
            )
    exchanges = [entry.exchange for entry in cassette.entries if not _body_not_recorded(entry)]
    by_line = {entry.line: entry.exchange for entry in cassette.entries}
    results = [_item_result(item, findings.pop(item.id, []), exchanges, crashes, by_line) for item in items]
    for item_id, orphans in sorted(findings.items()):  # findings for items the catalog does not list
        failed = _failed(RECORDED_CHECK, orphans, by_line)
        results.append(ItemResult(item_id, "", "(not in the catalog)", Kind.API, Status.FAIL, (failed,)))
    return RunReport(
        target=_target(cassette, models),
        started_at=start.isoformat(),
        duration_s=(datetime.now(UTC) - start).total_seconds(),
        items=tuple(results),
        meta={"cassette": str(cassette.path), "exchanges": len(cassette.entries)},
    )


def _body_not_recorded(entry: Entry) -> bool:
    """A response the recorder passed through without recording it (an encoding it could not decode): judging
    its missing body would only find what is missing from the cassette, not from the wire."""
    response = entry.exchange.response
    return bool(entry.verdicts_not_run) and response is not None and response.body is None and response.events is None


def _endpoint(text: str) -> str:
    """Catalog endpoints may be written `POST /v1/chat/completions` or `/v1/chat/completions`."""
    return text.split()[-1] if text.strip() else text


def _item_result(
    item: Item,
    findings: list[Finding],
    exchanges: Sequence[Exchange],
    crashes: dict[str, list[dict[str, object]]],
    by_line: dict[int, Exchange],
) -> ItemResult:
    def result(status: Status, checks: Sequence[CheckResult] = (), reason: str = "") -> ItemResult:
        return ItemResult(item.id, item.version, item.title, item.kind, status, checks, reason)

    if item.kind is Kind.CLI:
        return result(Status.SKIP, reason=item.skip_reason or "a CLI feature: no HTTP traffic")
    paths = {_endpoint(e) for e in item.endpoints}
    verdict = recorded_status(item, exchanges, findings)
    if verdict is None:
        reason = "the cassette has no request to " + (", ".join(sorted(paths)) or "its endpoints")
        reason += " that exercises this item"
        if item.model_families:
            reason += f" with a {' or '.join(item.model_families)} model"
        return result(Status.NOT_COVERED, reason=reason)
    status, why = verdict
    if status is Status.SKIP:
        return result(Status.SKIP, (CheckResult(RECORDED_CHECK, Status.SKIP, why),), why)
    if status is Status.FAIL:
        return result(Status.FAIL, (_failed(RECORDED_CHECK, findings, by_line),))
    seen = Counter(
        e.endpoint
        for e in exchanges
        if e.endpoint in paths and exercises(item.id, e, model_families=item.model_families)
    )
    errors = [c for e in seen for c in crashes.get(e, [])]
    checks: list[CheckResult] = []
    if errors:
        checks.append(
            CheckResult(
                "verdicts",
                Status.ERROR,
                f"the verdicts crashed on {len(errors)} exchange{'' if len(errors) == 1 else 's'}",
                tuple(errors),
            )
        )
    summary = ", ".join(f"{n} x {e}" for e, n in seen.items())
    if findings:  # warnings only: they never fail an item
        count = f"{len(findings)} warning{'' if len(findings) == 1 else 's'}"
        message = f"{count} in {summary}: " + _quoted(sorted({f.message for f in findings}))
        checks.append(CheckResult(RECORDED_CHECK, Status.PASS, message, tuple(f.to_dict() for f in findings)))
    else:
        checks.append(CheckResult(RECORDED_CHECK, Status.PASS, f"no finding in {summary}"))
    return result(item_status(checks), tuple(checks))


_MESSAGE_LIMIT = 500
"""Characters of distinct finding messages a failed item's message quotes; the evidence holds them all."""


def _failed(check_id: str, findings: list[Finding], by_line: dict[int, Exchange]) -> CheckResult:
    """A failed result quoting the findings, with the recorded requests behind them (to send them again)."""
    lines = sorted({f.exchange for f in findings if f.exchange is not None})
    where = ""
    if lines:
        where = f" (cassette line{'' if len(lines) == 1 else 's'} {', '.join(map(str, lines))})"
    head = f"{len(findings)} finding{'' if len(findings) == 1 else 's'}{where}: "
    result = CheckResult(
        check_id,
        Status.FAIL,
        head + _quoted(sorted({f.message for f in findings})),
        tuple(f.to_dict() for f in findings),
    )
    return with_requests(result, [by_line[line] for line in lines if line in by_line], api_key=None)


def _quoted(messages: list[str]) -> str:
    """Whole messages joined with `; ` up to `_MESSAGE_LIMIT` characters, then how many were left out; a single
    message longer than that is cut at a word boundary."""
    shown: list[str] = []
    length = 0
    for message in messages:
        if shown and length + len(message) + 2 > _MESSAGE_LIMIT:
            break
        if len(message) > _MESSAGE_LIMIT:
            message = message[
                : message.rfind(" ", 0, _MESSAGE_LIMIT) if " " in message[:_MESSAGE_LIMIT] else _MESSAGE_LIMIT
            ]
            message = message.rstrip(" ,;:") + " ..."
        shown.append(message)
        length += len(message) + 2
    left = len(messages) - len(shown)
    return "; ".join(shown) + (f" (and {left} more)" if left else "")


def _target(cassette: Cassette, models: set[str]) -> TargetInfo:
    base_url = ""
    server = None
    for entry in cassette.entries:
        parts = urlsplit(entry.exchange.request.url)
        if parts.scheme and parts.netloc and not base_url:
            base_url = f"{parts.scheme}://{parts.netloc}"
        response = entry.exchange.response
        if response is not None and server is None:
            server = response.headers.get("server")
    return TargetInfo(base_url=base_url or str(cassette.path), model=", ".join(sorted(models)), server=server)
