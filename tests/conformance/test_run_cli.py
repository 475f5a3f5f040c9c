"""Tests for conformance/run.py: `conformance run` in-process against a tiny fake server and a tiny catalog."""

from __future__ import annotations

import argparse
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
from conformance.run import _server, default_report_dir, select
from reference_server import embedded
from reference_server.model import default_model_path


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
def test_the_model_option_is_used_and_the_api_key_is_sent(fake_url: str, tmp_path: Path) -> None:
    _FakeLLM.authorizations.clear()
    argv = ["--base-url", fake_url, "--model", "tiny-model", "--api-key", "sk-test", "--only", "base"]
    assert _run(*argv, "--report-dir", str(tmp_path)) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"]["model"] == "tiny-model"
    assert _FakeLLM.authorizations == ["Bearer sk-test", "Bearer sk-test"]
    assert report["run"]["command"].endswith("--api-key '[REDACTED]' --only base --report-dir " + str(tmp_path))
    assert report["run"]["only"] == ["base"]
    assert report["run"]["source"] == "run"
    assert "sk-test" not in (tmp_path / "report.json").read_text()


@pytest.mark.usefixtures("catalog")
def test_a_model_the_server_does_not_list_stops_before_running(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--base-url", fake_url, "--model", "other", "--report-dir", str(tmp_path / "r")) == 2
    assert capsys.readouterr().err == (
        f"conformance run: --model 'other' is not among the models GET {fake_url}/v1/models lists: tiny-model; "
        "pass one of them (or load 'other' in the server)\n"
    )
    assert not (tmp_path / "r").exists()


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
    served: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def serve_in_thread(**options: Any) -> Iterator[str]:
        models = Path(options["models_dir"])
        served.append({**options, "models": sorted(str(p.relative_to(models)) for p in models.rglob("*.gguf"))})
        served[-1]["link"] = next(models.rglob("*.gguf")).resolve()
        served[-1]["presets"] = sorted(p.name for p in Path(options["presets_dir"]).iterdir())
        yield fake_url

    monkeypatch.setattr(embedded, "serve_in_thread", serve_in_thread)  # a stand-in for the real server
    monkeypatch.chdir(tmp_path)
    _FakeLLM.authorizations.clear()
    assert _run("--only", "base/models") == 0
    [options] = served
    token = options["api_key"]
    assert token.startswith("sk-lm-")
    assert _FakeLLM.authorizations, "the fake server was asked"
    assert set(_FakeLLM.authorizations) == {f"Bearer {token}"}, "the run uses the embedded server's token"
    assert options["allow_remote_mcp"] is True, "the -remote-mcp check needs remote MCP on the embedded server"
    assert (options["ttl"], options["max_jit_models"]) == (3600.0, 1)
    assert options["models"] == ["local/smollm2-jit/SmolLM2-JIT.Q4_1.gguf"]
    assert options["link"] == default_model_path().resolve()
    assert options["presets"] == ["conformance-test.preset.json"]
    assert not Path(options["models_dir"]).exists(), "the run's scratch directory is removed"
    (directory,) = (tmp_path / "reports").iterdir()
    assert directory.name.startswith("embedded-")
    assert sorted(p.name for p in directory.iterdir()) == ["junit.xml", "report.html", "report.json", "report.md"]
    assert token not in (directory / "report.json").read_text()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"api_key": "users-key", "preset": "@local:mine"}, ("users-key", "@local:mine")),
        ({"api_key": None, "preset": None}, (None, "conformance-test")),
        ({"api_key": None}, (None, "conformance-test")),  # a build without --preset
    ],
)
def test_the_users_api_key_and_preset_win_over_the_embedded_ones(
    given: dict[str, Any], expected: tuple[str | None, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str] = []

    @contextlib.contextmanager
    def serve_in_thread(**options: Any) -> Iterator[str]:
        keys.append(options["api_key"])
        yield "http://127.0.0.1:9"

    monkeypatch.setattr(embedded, "serve_in_thread", serve_in_thread)  # a stand-in for the real server
    args = argparse.Namespace(base_url=None, **given)
    with _server(args) as url:
        assert url == "http://127.0.0.1:9"
    key, preset = expected
    [served] = keys
    assert args.api_key == served, "the run sends the server's token"
    assert served == key if key else served.startswith("sk-lm-")
    assert args.preset == preset


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


def _lists_capabilities(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
    response = exchanges[0].response
    if response is None or response.status != 200:
        yield Finding(item="0.0.4/lms", check="caps", message="GET /api/v0/models failed", endpoint="/api/v0/models")


@pytest.fixture
def lmstudio_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    item = _item("0.0.4/lms", ("caps", RequestSpec("GET", "/api/v0/models"), _lists_capabilities), extension="lmstudio")
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = (item,)  # type: ignore[attr-defined]  # a stand-in for the real catalog
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)


@pytest.mark.usefixtures("lmstudio_catalog")
def test_a_missing_extension_skips_unless_expected(fake_url: str, tmp_path: Path) -> None:
    assert _run("--base-url", fake_url, "--report-dir", str(tmp_path / "plain")) == 0
    item = json.loads((tmp_path / "plain" / "report.json").read_text())["items"][0]
    assert item["status"] == "skip"
    assert item["reason"].startswith("not implemented by this server: GET /api/v0/models answered 404")
    assert item["checks"][0]["evidence"][0]["status"] == 404
    argv = ["--base-url", fake_url, "--expect", "lmstudio", "--exchange-timeout", "30"]
    assert _run(*argv, "--report-dir", str(tmp_path / "expected")) == 1
    item = json.loads((tmp_path / "expected" / "report.json").read_text())["items"][0]
    assert (item["status"], item["checks"][0]["message"]) == ("fail", "GET /api/v0/models failed")


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Refuses(_FakeLLM):
    def do_GET(self) -> None:
        self._json(401, {"error": {"message": "invalid api key"}})


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            ["--api-key", "sk-wrong"],
            "the server refused the API key: GET {url}/v1/models answered 401; check --api-key",
        ),
        ([], "GET {url}/v1/models answered 401: the server wants a key, pass --api-key KEY"),
    ],
)
def test_a_refused_key_says_so(
    key: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, url = _serve(_Refuses)
    try:
        assert _run("--base-url", url, *key, "--model", "m", "--report-dir", str(tmp_path)) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert capsys.readouterr().err == f"conformance run: {message.format(url=url)}\n"


@pytest.mark.usefixtures("catalog")
def test_an_empty_only_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--only", "") == 2
    assert capsys.readouterr().err.startswith("conformance run: --only '' names no item; pass item or check ids")


def _stopping_catalog(monkeypatch: pytest.MonkeyPatch, verdict: Any) -> None:
    """base/models, then an item whose verdict runs `verdict`, then ten more items that each ask the server."""
    later = tuple(
        _item(f"0.0.{n}/later", ("asks", RequestSpec("GET", "/v1/models"), _models_listed)) for n in range(10)
    )
    items = (ITEMS[0], _item("0.0.1/stop", ("stop", RequestSpec("GET", "/v1/models"), verdict)), *later)
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = items  # type: ignore[attr-defined]  # a stand-in for the real catalog
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)


def test_a_server_that_stops_answering_ends_the_run_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = _serve(_FakeLLM)

    def stop(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        server.shutdown()
        server.server_close()
        return ()

    _stopping_catalog(monkeypatch, stop)
    assert _run("--base-url", url, "--report-dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("ERROR") == 1  # the first check that got no answer, not one row per remaining check
    last = err.rstrip().splitlines()[-1]
    assert last.startswith(f"conformance run: the server at {url} stopped answering after 3 checks (last: ")
    assert last.startswith("0.0.0/later::asks: no response", last.index("(last: ") + 7)
    report = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(report, schema())
    assert report["interrupted"] is True
    assert [i["id"] for i in report["items"]] == ["base/models", "0.0.1/stop"]


@pytest.mark.usefixtures("fake_url")
def test_ctrl_c_says_interrupted_and_writes_the_partial_report(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(exchanges: Sequence[Exchange]) -> Iterable[Finding]:
        raise KeyboardInterrupt

    _stopping_catalog(monkeypatch, interrupt)
    assert _run("--base-url", fake_url, "--report-dir", str(tmp_path)) == 130
    assert capsys.readouterr().err.rstrip().splitlines()[-1] == (
        f"conformance run: interrupted; partial report in {tmp_path}"
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True
    assert [i["id"] for i in report["items"]] == ["base/models"]
    assert "interrupted" in (tmp_path / "report.html").read_text()


@pytest.mark.usefixtures("catalog")
def test_off_a_terminal_lines_are_never_wrapped(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert _run("--base-url", fake_url, "--report-dir", str(tmp_path / ("d" * 120))) == 1
    out, err = capsys.readouterr()
    line = next(x for x in err.splitlines() if "0.0.1/chat::usage" in x)
    assert line.endswith("no usage chunk although stream_options.include_usage was true")
    assert any(
        x.endswith("0.0.1/chat::usage  no usage chunk although stream_options.include_usage was true")
        for x in out.splitlines()
    )
    assert f"json: {tmp_path / ('d' * 120) / 'report.json'}" in out.splitlines()
    assert "┃" not in out  # no table off a terminal


def test_unknown_options_print_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: conformance run [-h] [--base-url BASE_URL]")
    assert err.rstrip().endswith("conformance run: error: unrecognized arguments: --bogus")


def test_help_describes_every_command_with_defaults_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "exit status:" in top
    assert "130" in top
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, argparse.ArgumentParser] = subparsers.choices
    for name, command in commands.items():
        text = command.format_help()
        assert command.description, name
        assert "exit status:" in text, name
        for action in command._actions:
            if action.option_strings and action.dest not in ("help",) and not action.required:
                assert "default" in (action.help or "") or action.default, (name, action.dest)
    assert "(default: 1234)" in commands["serve"].format_help()
    assert "(default: 1.0)" in commands["replay"].format_help()
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("conformance ")


def test_serve_refuses_zero_threads(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--threads", "0"])
    assert "0 threads cannot run a model; pass 1 or more" in capsys.readouterr().err
