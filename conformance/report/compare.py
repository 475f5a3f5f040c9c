"""`conformance compare OLD NEW`: regressions, fixes, shape changes and other differences between two runs."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff

from conformance.report import json as json_report

__all__ = ["Change", "Comparison", "compare", "main", "render", "source"]

_BROKEN = frozenset({"fail", "error"})
_RECORDED_CHECKS = frozenset({"recorded-traffic", "verdicts"})
"""Check ids of a `conformance check` report (see proxy.offline), for reports without a `run` context."""


@dataclass(frozen=True)
class Change:
    """One check (`item::check`) or check-less item whose status or shape differs."""

    key: str
    old: str
    new: str
    message: str = ""
    """The new run's message (why it fails now)."""
    shape_diff: str = ""


@dataclass(frozen=True)
class Comparison:
    regressions: tuple[Change, ...] = ()
    lost: tuple[Change, ...] = ()
    """pass -> skip: the feature is no longer exercised (or the surface no longer implemented)."""
    fixes: tuple[Change, ...] = ()
    shape_changes: tuple[Change, ...] = ()
    status_changes: tuple[Change, ...] = ()
    new: tuple[str, ...] = ()
    """Items (or checks of items in both runs) only in the new report."""
    removed: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()
    """Items of one report that the other's `--only` filter left out: not a change of the catalog."""
    by_item: bool = False
    """True when one report came from `conformance check` and the other from `run`: items compared, not checks."""

    @property
    def empty(self) -> bool:
        return not any(astuple(self)[:-2])


def main(args: argparse.Namespace) -> int:
    old = json_report.load(Path(args.old))
    new = json_report.load(Path(args.new))
    comparison = compare(old, new)
    print(f"old: {_describe(old)}\nnew: {_describe(new)}")
    for line in render(comparison):
        print(line)
    return 1 if comparison.regressions or comparison.lost else 0


def source(report: Mapping[str, Any]) -> str:
    """`run` or `check`: from the report's `run` context, else from its check ids (older reports)."""
    context = report.get("run")
    if context:
        return str(context.get("source", "run"))
    ids = {c["id"] for i in report["items"] for c in i["checks"]}
    return "check" if ids and ids <= _RECORDED_CHECKS else "run"


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """Differences between two report.json dicts, check by check (item by item across run and check)."""
    by_item = source(old) != source(new)
    old_items = {i["id"]: i for i in old["items"]}
    new_items = {i["id"]: i for i in new["items"]}
    entries = _item_entries if by_item else _entries
    old_entries = entries(i for k, i in old_items.items() if k in new_items)
    new_entries = entries(i for k, i in new_items.items() if k in old_items)
    buckets: dict[str, list[Change]] = {
        "regressions": [],
        "lost": [],
        "fixes": [],
        "shape_changes": [],
        "status_changes": [],
    }
    for key, (status, shape, message) in new_entries.items():
        if key not in old_entries:
            continue
        old_status, old_shape, _ = old_entries[key]
        if status == old_status:
            if shape != old_shape:
                diff = DeepDiff(old_shape, shape, verbose_level=2).pretty()
                buckets["shape_changes"].append(Change(key, old_status, status, message, diff))
            continue
        change = Change(key, old_status, status, message)
        if old_status == "pass" and status in _BROKEN:
            buckets["regressions"].append(change)
        elif old_status == "pass" and status == "skip":
            buckets["lost"].append(change)
        elif old_status in _BROKEN and status == "pass":
            buckets["fixes"].append(change)
        else:
            buckets["status_changes"].append(change)
    only_new = [k for k in new_items if k not in old_items]
    only_old = [k for k in old_items if k not in new_items]
    filtered = _filtered(old) or _filtered(new)
    not_run = (only_new + only_old) if filtered else []
    new_keys = ([] if filtered else only_new) + [k for k in new_entries if k not in old_entries]
    removed_keys = ([] if filtered else only_old) + [k for k in old_entries if k not in new_entries]
    return Comparison(
        **{name: tuple(changes) for name, changes in buckets.items()},
        new=tuple(new_keys),
        removed=tuple(removed_keys),
        not_run=tuple(not_run),
        by_item=by_item,
    )


def render(comparison: Comparison) -> Iterator[str]:
    if comparison.by_item:
        yield "one report is from 'conformance run', the other from 'conformance check': compared item by item"
    if comparison.not_run:
        yield f"not run in both (an --only filter left them out, not a catalog change): {len(comparison.not_run)} items"
    if comparison.empty:
        yield "no differences"
        return
    titles = {
        "regressions": "regressions (pass -> fail/error)",
        "lost": "lost (pass -> skip: no longer exercised or implemented)",
        "fixes": "fixes (fail/error -> pass)",
        "shape_changes": "shape changes (same status, different shape)",
        "status_changes": "other status changes",
    }
    for name, title in titles.items():
        changes: tuple[Change, ...] = getattr(comparison, name)
        if not changes:
            continue
        yield f"{title}: {len(changes)}"
        for change in changes:
            line = f"  {change.key}: {change.old} -> {change.new}" if change.old != change.new else f"  {change.key}"
            yield line + (f"  ({change.message})" if change.message and change.new in _BROKEN else "")
            yield from ("      " + text for text in change.shape_diff.splitlines())
    for name, keys in (("new", comparison.new), ("removed", comparison.removed)):
        if keys:
            yield f"{name}: {len(keys)}"
            yield from (f"  {key}" for key in keys)


def _entries(items: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, Any, str]]:
    """key -> (status, shape, message) per check, or per item for an item without checks."""
    entries: dict[str, tuple[str, Any, str]] = {}
    for item in items:
        if not item["checks"]:
            entries[item["id"]] = (item["status"], None, item.get("reason", ""))
        for check in item["checks"]:
            entries[f"{item['id']}::{check['id']}"] = (check["status"], check["shape"], check["message"])
    return entries


def _item_entries(items: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, Any, str]]:
    """key -> (status, None, reason or first message) per item."""
    entries: dict[str, tuple[str, Any, str]] = {}
    for item in items:
        message = item.get("reason") or next((c["message"] for c in item["checks"] if c["status"] in _BROKEN), "")
        entries[item["id"]] = (item["status"], None, message)
    return entries


def _filtered(report: Mapping[str, Any]) -> bool:
    """Whether the report ran an --only selection (so missing items were not removed from the catalog)."""
    context = report.get("run") or {}
    return context.get("only") is not None


def _describe(report: Mapping[str, Any]) -> str:
    target = report["target"]
    return f"{target['model']} at {target['base_url']} ({target['server'] or 'unknown server'}), {report['started_at']}"
