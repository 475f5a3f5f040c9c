"""report.html: one self-contained page (inline CSS, no scripts, no external assets), everything escaped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html import escape
from pathlib import Path

from conformance.report._text import evidence_text
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["render", "write"]

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1f24; }
h1 { margin-bottom: .25rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
dl.target { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; }
dl.target dt { font-weight: 600; } dl.target dd { margin: 0; }
ul.summary { display: flex; gap: .5rem; list-style: none; padding: 0; }
.badge { display: inline-block; min-width: 5.5rem; text-align: center; border-radius: 1rem; padding: 0 .6rem;
  font-size: 12px; font-weight: 600; color: #fff; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .error { background: #8250df; }
.skip { background: #9a6700; } .not_covered { background: #6e7781; }
article { border: 1px solid #d0d7de; border-radius: .4rem; padding: .4rem .8rem; margin: .5rem 0; }
article h3 { font-size: 15px; margin: .2rem 0; } .reason, .message { color: #57606a; }
ul.checks { list-style: none; padding-left: 1rem; margin: .3rem 0; } ul.checks li { margin: .25rem 0; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
code { font: 12px ui-monospace, monospace; }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def write(report: RunReport, path: Path) -> None:
    path.write_text(render(report), encoding="utf-8")


def render(report: RunReport) -> str:
    target = report.target
    title = f"Conformance report: {target.model} at {target.base_url}"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
            "<header><h1>Conformance report</h1>",
            _target(report),
            _summary(report),
            "</header><main>",
            *_versions(report),
            "</main></body></html>",
            "",
        ]
    )


def _target(report: RunReport) -> str:
    rows = [
        ("base URL", report.target.base_url),
        ("model", report.target.model),
        ("server", report.target.server or "unknown"),
        ("started", report.started_at),
        ("duration", f"{report.duration_s:.1f} s"),
    ]
    return '<dl class="target">' + "".join(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def _summary(report: RunReport) -> str:
    classes = {"passed": "pass", "failed": "fail", "skipped": "skip", "errors": "error", "not_covered": "not_covered"}
    badges = (
        f'<li><span class="badge {classes[label]}">{count} {label.replace("_", " ")}</span></li>'
        for label, count in report.summary.items()
    )
    return '<ul class="summary">' + "".join(badges) + "</ul>"


def _versions(report: RunReport) -> Iterator[str]:
    groups: dict[str, list[ItemResult]] = {}
    for item in report.items:
        groups.setdefault(item.version, []).append(item)
    for version, items in groups.items():
        yield f"<section><h2>{escape(version)}</h2>"
        yield from (_item(item) for item in items)
        yield "</section>"


def _item(item: ItemResult) -> str:
    parts = [
        f'<article id="{escape(item.id)}"><h3>{_badge(str(item.status))} <code>{escape(item.id)}</code> '
        f"{escape(item.title)}</h3>"
    ]
    if item.reason:
        parts.append(f'<p class="reason">{escape(item.reason)}</p>')
    if item.checks:
        parts.append('<ul class="checks">' + "".join(_check(c) for c in item.checks) + "</ul>")
    parts.append("</article>")
    return "".join(parts)


def _check(check: CheckResult) -> str:
    parts = [f"<li>{_badge(str(check.status))} <code>{escape(check.id)}</code>"]
    if check.message:
        parts.append(f' <span class="message">{escape(check.message)}</span>')
    if check.evidence:
        parts.append(
            f"<details><summary>evidence</summary><pre>{escape(evidence_text(check.evidence))}</pre></details>"
        )
    if check.shape is not None:
        shape = json.dumps(check.shape, indent=2, ensure_ascii=False, default=str)
        parts.append(f"<details><summary>shape</summary><pre>{escape(shape)}</pre></details>")
    parts.append("</li>")
    return "".join(parts)


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status.replace("_", " "))}</span>'
