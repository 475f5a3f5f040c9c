"""report.html: one self-contained page (inline CSS, no external assets), everything escaped, usable without scripts.

At the top: the target, how the run was made, counts, a grid of items by version coloured by status (each cell
a link), and links to every failure and warning. Below: failing and erroring items first, then every item by
version. Each failing check shows its evidence and the requests it sent with a curl command in a `<pre>`
selected with one click; a copy button appears only where scripts may run (the page's CSP allows its one
inline script by hash, so a stricter policy just leaves the button hidden).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from html import escape
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from conformance.check import Status
from conformance.report._text import clip, evidence_text, shown
from conformance.report.reproduce import API_KEY_VARIABLE
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["STYLE", "badge", "inline_markdown", "render", "write"]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; padding: 0 1rem; color: #1b1f24; }
h1 { margin-bottom: .25rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
dl.target { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; }
dl.target dt { font-weight: 600; } dl.target dd { margin: 0; }
ul.summary { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; padding: 0; }
.badge { display: inline-block; min-width: 5.5rem; text-align: center; border-radius: 1rem; padding: 0 .6rem;
  font-size: 12px; font-weight: 600; color: #fff; text-decoration: none; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .error { background: #8250df; }
.skip { background: #9a6700; } .not_covered { background: #6e7781; } .warning { background: #bf8700; }
.badge.zero { background: #eaeef2; color: #57606a; }
table.grid { border-collapse: collapse; margin: .5rem 0; } table.grid th { text-align: right; padding-right: .6rem;
  font: 12px ui-monospace, monospace; white-space: nowrap; } table.grid td { padding: 0; }
a.cell { display: inline-block; width: 1.1rem; height: 1.1rem; margin: 1px; border-radius: 3px; }
a.cell.warned { outline: 2px solid #bf8700; outline-offset: -4px; }
article { border: 1px solid #d0d7de; border-radius: .4rem; padding: .4rem .8rem; margin: .5rem 0; }
article:target, li:target { box-shadow: 0 0 0 3px #54aeff; }
article h3 { font-size: 15px; margin: .2rem 0; } .reason, .message { color: #57606a; }
ul.checks { list-style: none; padding-left: 1rem; margin: .3rem 0; } ul.checks li { margin: .25rem 0; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
pre.curl { user-select: all; border-left: 3px solid #54aeff; }
code { font: 12px ui-monospace, monospace; } button.copy { font-size: 12px; }
"""

_SCRIPT = (
    "for(const b of document.querySelectorAll('button.copy')){b.hidden=false;"
    "b.addEventListener('click',()=>navigator.clipboard.writeText("
    "document.getElementById(b.dataset.for).textContent).then(()=>{b.textContent='copied'}))}"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_CSP = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'"
_BROKEN = (Status.FAIL, Status.ERROR)
_LABELS = {"passed": "pass", "failed": "fail", "skipped": "skip", "errors": "error", "not_covered": "not_covered"}
_markdown = MarkdownIt("zero").enable("backticks")
"""Only code spans: titles and messages use them, and server text quoted in a message must not become a link,
an image or emphasis."""


def write(report: RunReport, path: Path) -> None:
    path.write_text(render(report), encoding="utf-8")


def render(report: RunReport) -> str:
    target = report.target
    title = f"Conformance report: {target.model} at {target.base_url}"
    broken = [item for item in report.items if item.status in _BROKEN]
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
            "<header><h1>Conformance report</h1>",
            _target(report),
            _summary(report),
            _grid(report.items),
            _links(report),
            "</header><main>",
            *(
                [
                    '<section id="failures-and-errors"><h2>Failing and erroring items</h2>',
                    *map(_item, broken),
                    "</section>",
                ]
                if broken
                else []
            ),
            *_versions(item for item in report.items if item.status not in _BROKEN),
            f"</main><script>{_SCRIPT}</script></body></html>",
            "",
        ]
    )


def inline_markdown(text: str) -> str:
    """Our titles and messages use Markdown code spans: render them (everything else, HTML too, stays text).

    Long text is clipped (see _text.MAX_MESSAGE)."""
    rendered: str = _markdown.renderInline(clip(text))
    return rendered.strip()


def badge(status: str, label: str | None = None, *, href: str | None = None, extra: str = "") -> str:
    text = escape(label if label is not None else status.replace("_", " "))
    classes = f"badge {escape(status)} {extra}".strip()
    if href is None:
        return f'<span class="{classes}">{text}</span>'
    return f'<a class="{classes}" href="{escape(href)}">{text}</a>'


def item_anchor(item_id: str) -> str:
    return f"item-{item_id}"


def check_anchor(item_id: str, check_id: str) -> str:
    return f"check-{item_id}::{check_id}"


def _target(report: RunReport) -> str:
    rows = [
        ("base URL", report.target.base_url),
        ("model", report.target.model),
        ("server", report.target.server or "unknown"),
        ("started", report.started_at),
        ("duration", f"{report.duration_s:.1f} s" + (" (interrupted: partial report)" if report.interrupted else "")),
    ]
    if report.context is not None:
        only = report.context.only
        rows += [
            ("suite", f"llm-conformance {report.context.suite_version} ({report.context.source})"),
            ("selection", "whole catalog" if only is None else "--only " + ",".join(only)),
            ("command", report.context.command),
        ]
    return '<dl class="target">' + "".join(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def _summary(report: RunReport) -> str:
    badges = []
    first_broken = next((i for i in report.items if i.status in _BROKEN), None)
    for label, count in report.summary.items():
        status = _LABELS[label]
        href = "#failures-and-errors" if count and status in _BROKEN and first_broken else None
        text = f"{count} {label.replace('_', ' ')}"
        badges.append(f"<li>{badge(status, text, href=href, extra='' if count else 'zero')}</li>")
    warned = sum(bool(c.warnings) for i in report.items for c in i.checks)
    text = f"{warned} warned"
    badges.append(
        f"<li>{badge('warning', text, href='#warnings' if warned else None, extra='' if warned else 'zero')}</li>"
    )
    return '<ul class="summary">' + "".join(badges) + "</ul>"


def _grid(items: Iterable[ItemResult]) -> str:
    """One row per version, one small coloured link per item."""
    rows: dict[str, list[str]] = {}
    for item in items:
        warned = any(c.warnings for c in item.checks)
        tip = f"{item.id}: {item.status}" + (" (with warnings)" if warned else "")
        rows.setdefault(item.version, []).append(
            f'<a class="cell {escape(str(item.status))}{" warned" if warned else ""}" '
            f'href="#{escape(item_anchor(item.id))}" title="{escape(tip)}" aria-label="{escape(tip)}"></a>'
        )
    body = "".join(f"<tr><th>{escape(version)}</th><td>{''.join(cells)}</td></tr>" for version, cells in rows.items())
    return f'<table class="grid" aria-label="items by version">{body}</table>'


def _links(report: RunReport) -> str:
    """Links to every failing or erroring check, then to every check with warnings."""
    parts = []
    broken: list[tuple[ItemResult, CheckResult | None]] = [
        (i, c) for i in report.items for c in i.checks if c.status in _BROKEN
    ]
    broken += [(i, None) for i in report.items if i.status in _BROKEN and not i.checks]
    if broken:
        parts.append(f'<nav aria-label="failures"><h2>Failures and errors ({len(broken)})</h2><ul>')
        parts.extend(_link(item, check) for item, check in broken)
        parts.append("</ul></nav>")
    warned = [(i, c) for i in report.items for c in i.checks if c.warnings]
    if warned:
        parts.append(f'<nav id="warnings" aria-label="warnings"><h2>Warnings ({len(warned)})</h2><ul>')
        parts.extend(_link(item, check, warning=True) for item, check in warned)
        parts.append("</ul></nav>")
    return "".join(parts)


def _link(item: ItemResult, check: CheckResult | None, *, warning: bool = False) -> str:
    if check is None:
        href, name, status, message = item_anchor(item.id), item.id, str(item.status), item.reason
    else:
        href, name, status = check_anchor(item.id, check.id), f"{item.id}::{check.id}", str(check.status)
        message = str(check.warnings[0].get("message", "")) if warning else check.message
    label = badge("warning") if warning else badge(status)
    return (
        f'<li>{label} <a href="#{escape(href)}"><code>{escape(name)}</code></a> '
        f'<span class="message">{inline_markdown(message)}</span></li>'
    )


def _versions(items: Iterable[ItemResult]) -> Iterator[str]:
    groups: dict[str, list[ItemResult]] = {}
    for item in items:
        groups.setdefault(item.version, []).append(item)
    for version, members in groups.items():
        yield f"<section><h2>{escape(version)}</h2>"
        yield from (_item(item) for item in members)
        yield "</section>"


def _item(item: ItemResult) -> str:
    parts = [
        f'<article id="{escape(item_anchor(item.id))}"><h3>{badge(str(item.status))} <code>{escape(item.id)}</code> '
        f"{inline_markdown(item.title)}</h3>"
    ]
    if item.reason:
        parts.append(f'<p class="reason">{inline_markdown(item.reason)}</p>')
    if item.checks:
        parts.append('<ul class="checks">' + "".join(_check(item.id, c) for c in item.checks) + "</ul>")
    parts.append("</article>")
    return "".join(parts)


def _check(item_id: str, check: CheckResult) -> str:
    anchor = check_anchor(item_id, check.id)
    warnings = check.warnings
    parts = [f'<li id="{escape(anchor)}">{badge(str(check.status))}']
    if warnings:
        parts.append(" " + badge("warning", f"{len(warnings)} warning" + ("s" if len(warnings) > 1 else "")))
    parts.append(f" <code>{escape(check.id)}</code>")
    if check.message:
        parts.append(f' <span class="message">{inline_markdown(check.message)}</span>')
    open_ = " open" if check.status in _BROKEN else ""
    if check.evidence:
        parts.append(
            f"<details{open_}><summary>evidence</summary>{''.join(_evidence(e) for e in check.evidence)}</details>"
        )
    for number, request in enumerate(check.requests, 1):
        parts.append(_request(anchor, number, len(check.requests), request, open_))
    if check.shape is not None:
        shape = json.dumps(check.shape, indent=2, ensure_ascii=False, default=str)
        parts.append(f"<details><summary>shape</summary><pre>{escape(shape)}</pre></details>")
    parts.append("</li>")
    return "".join(parts)


def _evidence(entry: Mapping[str, Any]) -> str:
    """A finding as a definition list (warnings labelled), other entries as text."""
    if "message" not in entry or "item" not in entry:
        return f"<pre>{escape(evidence_text([entry]))}</pre>"
    label = badge("warning") + " " if entry.get("severity") == "warning" else ""
    rows = [
        f"<dt>{escape(key)}</dt><dd><code>{escape(_value(entry[key]))}</code></dd>"
        for key in ("item", "check", "endpoint", "exchange", "chunk", "pointer", "expected", "seen")
        if entry.get(key) is not None
    ]
    raw = entry.get("raw")
    if raw is not None:
        rows.append(f"<dt>raw</dt><dd><pre>{escape(str(shown(raw)))}</pre></dd>")
    return (
        f'<div class="finding"><p>{label}{inline_markdown(str(entry["message"]))}</p>'
        f'<dl class="target">{"".join(rows)}</dl></div>'
    )


def _request(anchor: str, number: int, total: int, request: Mapping[str, Any], open_: str) -> str:
    label = f"request {number} of {total}" if total > 1 else "request"
    request_id = f"{anchor}::request-{number}"
    headers = "".join(f"{name}: {value}\n" for name, value in request.get("headers", {}).items())
    body = request.get("body")
    text = f"{request['method']} {request['url']}\n{headers}"
    if body is not None:
        text += "\n" + (body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False))
    parts = [
        f'<details{open_} class="request"><summary>{label}: <code>{escape(request["method"])} '
        f"{escape(request['url'])}</code></summary><pre>{escape(text)}</pre>"
    ]
    if request.get("curl"):
        curl_id = f"{request_id}::curl"
        parts.append(
            f"<p>reproduce with curl (when the key was redacted, set <code>${API_KEY_VARIABLE}</code>) "
            f'<button class="copy" type="button" data-for="{escape(curl_id)}" hidden>copy</button></p>'
            f'<pre class="curl" id="{escape(curl_id)}">{escape(request["curl"])}</pre>'
        )
    parts.append("</details>")
    return "".join(parts)


def _value(value: Any) -> str:
    value = shown(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
