"""Every report format carries the requests of a failing check (with curl) and shows warnings as warnings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from conformance.check import Kind, Status
from conformance.exchange import Request
from conformance.findings import WARNING, Finding
from conformance.report import html, junit, markdown, write_reports
from conformance.report.json import schema
from conformance.report.reproduce import request_records
from conformance.results import CheckResult, ItemResult, RunContext, RunReport, TargetInfo, with_requests

KEY = "sk-live-abcdef123456"
REQUEST = Request(
    "POST",
    "http://127.0.0.1:1234/v1/chat/completions",
    "/v1/chat/completions",
    {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    {"model": "m", "messages": [{"role": "user", "content": "hi <b>"}], "stream": True},
)
FAILURE = Finding("0.3.18/usage", "usage-chunk", "no `usage` chunk", endpoint="/v1/chat/completions", seen="")
WARN = Finding("0.3.20/seed", "same-seed", "two answers differ for one `seed`", severity=WARNING)


def report() -> RunReport:
    requests = request_records([REQUEST], api_key=KEY)
    failing = CheckResult("usage-chunk", Status.FAIL, FAILURE.message, (FAILURE.to_dict(),), requests=requests)
    erroring = CheckResult(
        "crash", Status.ERROR, "no response to POST /v1/chat/completions", ({"error": "reset"},), requests=requests
    )
    warned = CheckResult("same-seed", Status.PASS, "", (WARN.to_dict(),), requests=requests)
    return RunReport(
        TargetInfo("http://127.0.0.1:1234", "m", "fake"),
        "2025-01-01T00:00:00+00:00",
        1.0,
        (
            ItemResult("0.3.18/usage", "0.3.18", "`stream_options`", Kind.API, Status.FAIL, (failing, erroring)),
            ItemResult("0.3.20/seed", "0.3.20", "seed", Kind.API, Status.PASS, (warned,)),
        ),
        context=RunContext("run", "0.1.0", ("0.3.18", "0.3.20"), "conformance run --api-key '[REDACTED]'"),
    )


def test_report_json_holds_the_requests_and_context_and_no_secret(tmp_path: Path) -> None:
    path = write_reports(report(), tmp_path)["json"]
    text = path.read_text()
    assert KEY not in text
    data = json.loads(text)
    jsonschema.validate(data, schema())
    check = data["items"][0]["checks"][0]
    (request,) = check["requests"]
    assert request["method"] == "POST"
    assert request["url"] == "http://127.0.0.1:1234/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer [REDACTED]"
    assert request["body"]["stream"] is True
    assert request["curl"].startswith("curl -sS -N http://127.0.0.1:1234/v1/chat/completions")
    assert data["run"] == {
        "source": "run",
        "suite_version": "0.1.0",
        "only": ["0.3.18", "0.3.20"],
        "command": "conformance run --api-key '[REDACTED]'",
    }
    assert data["items"][1]["checks"][0]["evidence"][0]["severity"] == "warning"
    assert RunReport.from_dict(data).to_dict() == data


def test_markdown_shows_the_request_the_curl_command_and_warnings_apart() -> None:
    text = markdown.render(report())
    failures, warnings = text.split("## Failures and errors")[1].split("## Warnings")
    assert "### `0.3.18/usage::usage-chunk` (fail)" in failures
    assert "Request: `POST http://127.0.0.1:1234/v1/chat/completions`" in failures
    assert "```sh\ncurl -sS -N http://127.0.0.1:1234/v1/chat/completions \\\n" in failures
    assert 'seen: ""' in failures  # an empty string is visible
    assert "### `0.3.20/seed::same-seed` (pass, 1 warnings)" in warnings
    assert "warning: two answers differ" in warnings
    assert "| `0.3.20/seed` | 0.3.20 | pass (warnings) | seed |" in text
    assert KEY not in text


def test_markdown_item_table_has_a_reason_column() -> None:
    text = markdown.render(report())
    assert "| item | version | status | title | reason |" in text
    assert "| `0.3.18/usage` | 0.3.18 | fail | `stream_options` | usage-chunk: no \\`usage\\` chunk |" in text


def test_junit_failure_carries_the_curl_command_and_warnings_do_not_fail(tmp_path: Path) -> None:
    root = junit.render(report())
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "conformance m"  # no port: stable across runs
    failure = root.find(".//testcase[@name='usage-chunk']/failure")
    assert failure is not None
    assert failure.text is not None
    assert "curl -sS -N http://127.0.0.1:1234/v1/chat/completions" in failure.text
    assert "${CONFORMANCE_API_KEY}" in failure.text
    error = root.find(".//testcase[@name='crash']/error")
    assert error is not None
    assert "curl" in (error.text or "")
    warned = root.find(".//testcase[@name='same-seed']")
    assert warned is not None
    assert warned.find("failure") is None
    assert warned.find("error") is None
    out = warned.find("system-out")
    assert out is not None
    assert "warning: two answers differ" in (out.text or "")
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "1"
    path = tmp_path / "junit.xml"
    junit.write(report(), path)
    assert KEY not in path.read_text()
    ET.parse(path)


def test_html_has_the_curl_command_in_a_selectable_pre_and_marks_warnings() -> None:
    page = html.render(report())
    assert '<pre class="curl" id="check-0.3.18/usage::usage-chunk::request-1::curl">curl -sS -N ' in page
    assert "hi &lt;b&gt;" in page
    assert "hi <b>" not in page
    assert 'class="copy" type="button" data-for="check-0.3.18/usage::usage-chunk::request-1::curl" hidden' in page
    assert '<nav id="warnings"' in page
    assert "<code>usage</code> chunk" in page  # Markdown in messages rendered
    assert "<dt>seen</dt><dd><code>&quot;&quot;</code></dd>" in page
    assert KEY not in page


def test_with_requests_adds_them_only_when_the_check_did_not_pass_cleanly() -> None:
    from conformance.exchange import Exchange, Response

    exchange = Exchange(REQUEST, Response(200, {}, body={}))
    clean = CheckResult("c", Status.PASS)
    assert with_requests(clean, [exchange], api_key=KEY) is clean
    failed = with_requests(CheckResult("c", Status.FAIL, "x", (FAILURE.to_dict(),)), [exchange], api_key=KEY)
    assert failed.requests[0]["headers"]["authorization"] == "Bearer [REDACTED]"
    skipped = with_requests(CheckResult("c", Status.SKIP, "not exercised: no call"), [exchange], api_key=None)
    assert skipped.requests[0]["url"] == REQUEST.url


def test_a_huge_message_is_clipped_in_every_view_but_kept_whole_in_json(tmp_path: Path) -> None:
    message = "body breaks the schema: " + "0.123456789, " * 3000
    finding = Finding("0.3.25/embeddings", "batch", message)
    check = CheckResult("batch", Status.FAIL, message, (finding.to_dict(),))
    big = RunReport(
        TargetInfo("http://h:1", "m", None),
        "2025-01-01T00:00:00+00:00",
        1.0,
        (ItemResult("0.3.25/embeddings", "0.3.25", "embeddings", Kind.API, Status.FAIL, (check,)),),
    )
    paths = write_reports(big, tmp_path)
    assert json.loads(paths["json"].read_text())["items"][0]["checks"][0]["message"] == message
    for name in ("html", "markdown", "junit"):
        text = paths[name].read_text()
        assert f"... ({len(message)} chars)" in text, name
        assert len(text) < 20_000, name
