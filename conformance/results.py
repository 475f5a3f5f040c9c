"""Results of a run, as report.json holds them (schema_version 1): one type per level, frozen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.check import Kind, Status
from conformance.exchange import Exchange
from conformance.findings import WARNING

__all__ = [
    "SCHEMA_VERSION",
    "CheckResult",
    "ItemResult",
    "RunContext",
    "RunReport",
    "TargetInfo",
    "item_status",
    "with_requests",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str = ""
    evidence: Sequence[Mapping[str, Any]] = ()
    """Finding dicts (see Finding.to_dict) and, for errors, what went wrong."""
    shape: Any = None
    """Normalised fingerprint of what was seen: no ids, timestamps or model text."""
    duration_s: float = 0.0
    server_s: float = 0.0
    """Time spent waiting on the server (sum of exchange durations)."""
    requests: Sequence[Mapping[str, Any]] = ()
    """For a check that did not pass cleanly: the requests it sent (`method`, `url`, `headers` with the API
    key redacted, `body`, `curl`), see conformance.report.reproduce."""

    @property
    def warnings(self) -> tuple[Mapping[str, Any], ...]:
        """The warning-level findings in the evidence: shown in every report, never a failure."""
        return tuple(e for e in self.evidence if e.get("severity") == WARNING)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "status": str(self.status),
            "message": self.message,
            "evidence": [dict(e) for e in self.evidence],
            "shape": self.shape,
        }
        if self.requests:
            d["requests"] = [dict(r) for r in self.requests]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            id=d["id"],
            status=Status(d["status"]),
            message=d.get("message", ""),
            evidence=tuple(d.get("evidence") or ()),
            shape=d.get("shape"),
            requests=tuple(d.get("requests") or ()),
        )


@dataclass(frozen=True)
class ItemResult:
    id: str
    version: str
    title: str
    kind: Kind
    status: Status
    checks: Sequence[CheckResult] = ()
    reason: str = ""
    """Why an item was skipped or not covered."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "kind": str(self.kind),
            "status": str(self.status),
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.reason:
            d["reason"] = self.reason
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ItemResult:
        return cls(
            id=d["id"],
            version=d["version"],
            title=d.get("title", ""),
            kind=Kind(d["kind"]),
            status=Status(d["status"]),
            checks=tuple(CheckResult.from_dict(c) for c in d.get("checks") or ()),
            reason=d.get("reason", ""),
        )


@dataclass(frozen=True)
class TargetInfo:
    base_url: str
    model: str
    server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "server": self.server}


@dataclass(frozen=True)
class RunContext:
    """How a report was made, so that it can be read (and compared) later without guessing."""

    source: str = "run"
    """`run` (checks sent to a server) or `check` (verdicts over a recorded cassette)."""
    suite_version: str = ""
    only: tuple[str, ...] | None = None
    """The `--only` selectors, None for the whole catalog."""
    command: str = ""
    """The command line, with the API key redacted."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "suite_version": self.suite_version,
            "only": None if self.only is None else list(self.only),
            "command": self.command,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunContext:
        only = d.get("only")
        return cls(
            d.get("source", "run"),
            d.get("suite_version", ""),
            None if only is None else tuple(only),
            d.get("command", ""),
        )


@dataclass(frozen=True)
class RunReport:
    target: TargetInfo
    started_at: str
    duration_s: float
    items: Sequence[ItemResult] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Extra figures not in the schema (server wait time, checks run); not written to report.json."""
    context: RunContext | None = None
    """Written to report.json as `run` when known."""
    interrupted: bool = False
    """The run was stopped (Ctrl+C, server gone) before the end: the report holds what ran."""

    @property
    def summary(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "not_covered": 0}
        key = {
            Status.PASS: "passed",
            Status.FAIL: "failed",
            Status.SKIP: "skipped",
            Status.ERROR: "errors",
            Status.NOT_COVERED: "not_covered",
        }
        for item in self.items:
            counts[key[item.status]] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "target": self.target.to_dict(),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "items": [i.to_dict() for i in self.items],
        }
        if self.context is not None:
            d["run"] = self.context.to_dict()
        if self.interrupted:
            d["interrupted"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunReport:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"report schema_version {d.get('schema_version')!r} is not {SCHEMA_VERSION}")
        t = d["target"]
        return cls(
            target=TargetInfo(t["base_url"], t["model"], t.get("server")),
            started_at=d["started_at"],
            duration_s=float(d["duration_s"]),
            items=tuple(ItemResult.from_dict(i) for i in d["items"]),
            context=RunContext.from_dict(d["run"]) if d.get("run") else None,
            interrupted=bool(d.get("interrupted")),
        )


def with_requests(result: CheckResult, exchanges: Sequence[Exchange], *, api_key: str | None) -> CheckResult:
    """The result with the requests its exchanges sent, when it did not pass cleanly (evidence to reproduce)."""
    if (result.status == Status.PASS and not result.evidence) or not exchanges:
        return result
    from conformance.report.reproduce import request_records

    return replace(result, requests=request_records((e.request for e in exchanges), api_key=api_key))


def item_status(checks: Sequence[CheckResult]) -> Status:
    """An item fails if any check failed, errors if any errored, passes if all passed; skips if all skipped."""
    statuses = {c.status for c in checks}
    if not statuses:
        return Status.NOT_COVERED
    for status in (Status.FAIL, Status.ERROR, Status.NOT_COVERED):
        if status in statuses:
            return status
    if statuses == {Status.SKIP}:
        return Status.SKIP
    return Status.PASS
