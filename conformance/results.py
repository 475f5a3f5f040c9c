"""Results of a run, as report.json holds them (schema_version 1): one type per level, frozen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.check import Kind, Status

__all__ = ["SCHEMA_VERSION", "CheckResult", "ItemResult", "RunReport", "TargetInfo", "item_status"]

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": str(self.status),
            "message": self.message,
            "evidence": [dict(e) for e in self.evidence],
            "shape": self.shape,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            id=d["id"],
            status=Status(d["status"]),
            message=d.get("message", ""),
            evidence=tuple(d.get("evidence") or ()),
            shape=d.get("shape"),
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
class RunReport:
    target: TargetInfo
    started_at: str
    duration_s: float
    items: Sequence[ItemResult] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Extra figures not in the schema (server wait time, suite version); not written to report.json."""

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
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target.to_dict(),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "items": [i.to_dict() for i in self.items],
        }

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
        )


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
