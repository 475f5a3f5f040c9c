"""Tests for conformance/run.py: `conformance run` in-process against a tiny fake server and a tiny catalog."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.check import Check, Item, Kind, RequestSpec, send_all
from conformance.cli import main
from conformance.errors import UsageError
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.report.json import schema
from conformance.run import default_report_dir, select


class _FakeLLM(BaseHTTPRequestHandler):
    """/v1/models and a chat endpoint that streams without the usage chunk it was asked for."""

    authorizations: list[str | None] = []

    def version_string(self) -> str:
        return "fake-llm/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.authorizations.append(self.headers.get("authorization"))
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "tiny-model", "object": "model", "owned_by": "me"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if not body.get("stream"):
            self._json(200, {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "hi"}}]})
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n')

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _models_listed(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    response = exchanges[0].response
    if response is None or not response.body.get("data"):
        yield Finding(item="base/models", check="listed", message="no model listed", endpoint="/v1/models")


def _answers(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    if exchanges[0].response is None or exchanges[0].response.status != 200:
        yield Finding(item="0.0.1/chat", check="answers", message="not 200")


def _usage_chunk(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    events = (exchanges[0].response.events if exchanges[0].response else None) or ()
    if not any(e.data and e.data != "[DONE]" and "usage" in e.json() for e in events):
        yield Finding(
            item="0.0.1/chat",
            check="usage",
            message="no usage chunk although stream_options.include_usage was true",
            endpoint="/v1/chat/completions",
            expected="a chunk with choices: [] and usage",
        )


def _broken(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    raise RuntimeError("verdict bug")


def _item(item_id: str, *checks: tuple[str, Any, Any], **kw: Any) -> Item:
    built = tuple(Check(id=c, item=item_id, title=c, plan=send_all(spec), verdict=v) for c, spec, v in checks)
    return Item(id=item_id, version=item_id.split("/")[0], title=item_id, kind=Kind.API, checks=built, **kw)


CHAT = "/v1/chat/completions"
ITEMS = (
    _item("base/models", ("listed", RequestSpec("GET", "/v1/models"), _models_listed)),
    _item(
        "0.0.1/chat",
        ("answers", RequestSpec("POST", CHAT, body={"messages": []}), _answers),
        (
            "usage",
            RequestSpec("POST", CHAT, body={"stream": True, "stream_options": {"include_usage": True}}),
            _usage_chunk,
        ),
    ),
    _item("0.0.2/cli", skip_reason="CLI feature: not an API"),
    _item("0.0.3/none"),
    _item("0.0.10/broken", ("bug", RequestSpec("GET", "/v1/models"), _broken)),
)


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> tuple[Item, ...]:
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = ITEMS  # type: ignore[attr-defined]  # a stand-in for the real catalog
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)
    return ITEMS


def _run(*argv: str) -> int:
    return main(["run", *argv])


@pytest.mark.usefixtures("catalog")
def test_passing_selection_exits_0_and_writes_valid_reports(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--base-url", fake_url, "--only", "base,0.0.1/chat::answers", "--report-dir", str(tmp_path)) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(report, schema())
    assert report["target"] == {"base_url": fake_url, "model": "tiny-model", "server": "fake-llm/1.0"}
    assert [(i["id"], [c["id"] for c in i["checks"]]) for i in report["items"]] == [
        ("base/models", ["listed"]),
        ("0.0.1/chat", ["answers"]),
    ]
    assert report["summary"]["passed"] == 2
    assert ET.parse(tmp_path / "junit.xml").getroot().get("tests") == "2"
    assert "<!doctype html>" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "report.md").read_text().startswith("# Conformance report")
    out = capsys.readouterr()
    assert "passed" in out.out
    assert str(tmp_path / "report.json") in out.out.replace("\n", "")


@pytest.mark.usefixtures("catalog")
def test_a_failing_check_exits_1_and_shows_up_everywhere(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--base-url", fake_url, "--report-dir", str(tmp_path)) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {i["id"]: i["status"] for i in report["items"]}
    assert statuses == {
        "base/models": "pass",
        "0.0.1/chat": "fail",
        "0.0.2/cli": "skip",
        "0.0.3/none": "not_covered",
        "0.0.10/broken": "error",
    }
    usage = report["items"][1]["checks"][1]
    assert usage["message"] == "no usage chunk although stream_options.include_usage was true"
    assert usage["evidence"][0]["expected"] == "a chunk with choices: [] and usage"
    err = capsys.readouterr().err
    assert "FAIL" in err
    assert "0.0.1/chat::usage" in err
    assert "verdict raised RuntimeError: verdict bug" in err


@pytest.mark.usefixtures("catalog")
def test_an_error_alone_exits_1(fake_url: str, tmp_path: Path) -> None:
    assert _run("--base-url", fake_url, "--only", "0.0.10", "--report-dir", str(tmp_path)) == 1


@pytest.mark.usefixtures("catalog")
def test_the_model_option_skips_discovery_and_the_api_key_is_sent(fake_url: str, tmp_path: Path) -> None:
    _FakeLLM.authorizations.clear()
    argv = ["--base-url", fake_url, "--model", "other", "--api-key", "sk-test", "--only", "base"]
    assert _run(*argv, "--report-dir", str(tmp_path)) == 0
    assert json.loads((tmp_path / "report.json").read_text())["target"]["model"] == "other"
    assert _FakeLLM.authorizations == ["Bearer sk-test", "Bearer sk-test"]


@pytest.mark.usefixtures("catalog")
def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _run("--base-url", f"http://127.0.0.1:{port}", "--report-dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"conformance run: cannot reach http://127.0.0.1:{port}: connection refused; is the server running? "
        "pass --base-url with the server root, e.g. http://localhost:1234\n"
    )


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "0.0.1/chta"], "--only '0.0.1/chta' matches no item or check; did you mean 0.0.1/chat,"),
        (["--only", "0.0.1/chat::nope"], "--only '0.0.1/chat::nope' matches no item or check"),
        (["--base-url", "http://localhost:1234/v1"], "--base-url is the server root without /v1"),
        (["--base-url", "localhost:1234"], "--base-url 'localhost:1234' is not an http(s) URL"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "reports").exists()


@pytest.mark.usefixtures("catalog")
def test_without_base_url_the_embedded_server_runs_and_reports_go_under_reports(
    fake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str | None] = []
    mcp: list[bool] = []

    @contextlib.contextmanager
    def serve_in_thread(api_key: str | None = None, allow_remote_mcp: bool = False) -> Iterator[str]:
        served.append(api_key)
        mcp.append(allow_remote_mcp)
        yield fake_url

    embedded = types.ModuleType("reference_server.embedded")
    embedded.serve_in_thread = serve_in_thread  # type: ignore[attr-defined]  # stand-in for the real server
    monkeypatch.setitem(sys.modules, "reference_server.embedded", embedded)
    monkeypatch.chdir(tmp_path)
    assert _run("--only", "base/models") == 0
    assert served == [None]
    assert mcp == [True], "the -remote-mcp check needs remote MCP on the embedded server"
    (directory,) = (tmp_path / "reports").iterdir()
    assert directory.name.startswith("embedded-")
    assert sorted(p.name for p in directory.iterdir()) == ["junit.xml", "report.html", "report.json", "report.md"]


def test_default_report_dir_names_the_target_and_time() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert default_report_dir("http://127.0.0.1:1234", now) == Path("reports/127.0.0.1_1234-20250102T030405Z")
    assert default_report_dir(None, now) == Path("reports/embedded-20250102T030405Z")


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ([], ["base/models::listed", "0.0.1/chat::answers", "0.0.1/chat::usage", "0.0.10/broken::bug"]),
        (["0.0.1"], ["0.0.1/chat::answers", "0.0.1/chat::usage"]),
        (["0.0.1/chat::us"], ["0.0.1/chat::usage"]),
        (["0.0.10/broken", "base"], ["base/models::listed", "0.0.10/broken::bug"]),
        (["0.0.1/chat::usage", "0.0.1/chat"], ["0.0.1/chat::answers", "0.0.1/chat::usage"]),
    ],
)
def test_select_matches_ids_and_prefixes_but_not_inside_numbers(only: list[str], expected: list[str]) -> None:
    assert [f"{i.id}::{c.id}" for i in select(ITEMS, only) for c in i.checks] == expected


def test_select_keeps_check_less_items_it_names() -> None:
    assert [i.id for i in select(ITEMS, ["0.0.2", "0.0.3/none"])] == ["0.0.2/cli", "0.0.3/none"]


def test_select_lists_versions_when_nothing_matches() -> None:
    with pytest.raises(UsageError, match=r"versions: base, 0\.0\.1, 0\.0\.2, 0\.0\.3, 0\.0\.10"):
        select(ITEMS, ["9.9"])
