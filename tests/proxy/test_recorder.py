"""Tests for proxy/recorder.py with mitmproxy's own test helpers: the stream callable, cassette lines, redaction."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import brotli
import httpx
import pytest
import zstandard
from mitmproxy import exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from conformance.exchange import Exchange, SSEEvent
from conformance.findings import Finding
from conformance.sse import SSEParser
from proxy.cassette import read_cassette
from proxy.recorder import Recorder, summary_line
from proxy.serve import ProxySettings, proxy_in_thread
from tests.proxy.conftest import FakeVerdicts, serve_app

TOKEN = "sk-unit-test-token-42"

CHUNKS = [
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n',
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel',
    b'lo"}}]}\n\ndata: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\n',
    b": keep-alive comment\n\n",
    b"data: [DONE]\n\n",
]


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[Recorder, taddons.context, Path]]:
    addon = Recorder()
    cassette = tmp_path / "session.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette=str(cassette), verdicts_process=False)
        yield addon, tctx, cassette
        addon.done()


def _chat_flow(body: dict[str, object] | None = None) -> http.HTTPFlow:
    request = tutils.treq(
        method=b"POST",
        path=b"/v1/chat/completions?api-key=" + TOKEN.encode(),
        headers=http.Headers([(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]),
        content=json.dumps(body or {"model": "m", "stream": True, "max_tokens": 8}).encode(),
    )
    flow = tflow.tflow(req=request)
    flow.request.timestamp_start = time.time()
    return flow


def _sse_response(encoding: str | None = None) -> http.Response:
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    if encoding:
        headers.append((b"content-encoding", encoding.encode()))
    response = tutils.tresp(headers=http.Headers(headers), content=b"")
    response.timestamp_start = time.time()
    return response


def test_stream_chunks_pass_unchanged_and_events_are_recorded(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _sse_response()
    addon.responseheaders(flow)
    stream = flow.response.stream
    assert callable(stream)
    returned = []
    for chunk in CHUNKS:
        returned.append(stream(chunk))
        time.sleep(0.002)
    assert stream(b"") == b""
    assert returned == CHUNKS, "every chunk reaches the client unchanged, as it arrives"
    addon.response(flow)
    addon.drain()

    lines = cassette.read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["version"] == 1
    assert line["id"] == flow.id
    events = line["response"]["events"]
    assert [e["data"] for e in events] == [
        '{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}',
        '{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"}}]}',
        '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        None,
        "[DONE]",
    ]
    assert events[3]["raw"] == ": keep-alive comment"
    times = [e["t_ms"] for e in events]
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] > times[0], "each event keeps its own arrival time"
    assert line["request"]["body"] == {"model": "m", "stream": True, "max_tokens": 8}
    assert line["findings"] == []
    assert len(fake_verdicts.seen) == 1
    assert fake_verdicts.seen[0].response is not None
    assert fake_verdicts.seen[0].response.is_stream
    assert TOKEN not in cassette.read_text()
    assert line["request"]["headers"]["authorization"] == "[REDACTED]"


def _compress(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "br":
        return cast(bytes, brotli.compress(data))
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_stream_is_decoded_for_recording_but_passed_on_compressed(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, encoding: str
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _sse_response(encoding)
    addon.responseheaders(flow)
    stream = flow.response.stream
    assert callable(stream)
    compressed = _compress(encoding, b"".join(CHUNKS))
    pieces = [compressed[i : i + 7] for i in range(0, len(compressed), 7)]
    assert [stream(p) for p in pieces] == pieces
    stream(b"")
    addon.response(flow)
    addon.drain()
    events = json.loads(cassette.read_text())["response"]["events"]
    assert len(events) == 5
    assert events[-1]["data"] == "[DONE]"


def test_json_response_is_stored_decoded_with_findings(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, caplog: pytest.LogCaptureFixture
) -> None:
    addon, _, cassette = recorder
    fake_verdicts.result = lambda exchange: [
        Finding(item="0.3.18/stream-include-usage", check="usage-chunk", message="no usage chunk")
    ]
    flow = _chat_flow({"model": "m", "stream": False})
    body = {"id": "c1", "object": "chat.completion", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    flow.response = tutils.tresp(
        headers=http.Headers([(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]),
        content=b"",
    )
    flow.response.content = json.dumps(body).encode()  # encodes with gzip per the header
    assert flow.response.raw_content != flow.response.content
    addon.responseheaders(flow)
    assert not flow.response.stream, "plain bodies are left to mitmproxy's buffering"
    with caplog.at_level("INFO", logger="proxy.recorder"):
        addon.response(flow)
        addon.drain()
    line = json.loads(cassette.read_text())
    assert line["response"]["body"] == body
    assert line["findings"][0]["item"] == "0.3.18/stream-include-usage"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["  [0.3.18/stream-include-usage] usage-chunk: no usage chunk"]


def test_validator_crash_is_logged_and_recorded_not_raised(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, caplog: pytest.LogCaptureFixture
) -> None:
    addon, _, cassette = recorder

    def crash(exchange: object) -> list[Finding]:
        raise KeyError("choices")

    fake_verdicts.result = crash
    flow = _chat_flow()
    flow.response = tutils.tresp(content=b'{"ok": true}')
    with caplog.at_level("ERROR", logger="proxy.recorder"):
        addon.response(flow)
        addon.drain()
    line = json.loads(cassette.read_text())
    assert line["response"]["body"] == {"ok": True}
    assert line["validator_error"].startswith("KeyError: 'choices'")
    assert any("verdicts crashed" in r.getMessage() for r in caplog.records)


def test_each_exchange_is_appended_and_flushed_at_once(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    for n in range(3):
        flow = _chat_flow({"n": n})
        flow.response = tutils.tresp(content=b"{}")
        addon.response(flow)
        addon.drain()
        # readable before the addon is done: nothing waits for a final flush
        assert len(read_cassette(cassette).entries) == n + 1


def test_transport_error_is_recorded(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.error = tflow.terr("Connection reset by peer")
    addon.error(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert "response" not in line
    assert "Connection reset by peer" in line["error"]


def test_stream_broken_off_keeps_the_events_that_arrived(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _sse_response()
    addon.responseheaders(flow)
    stream = flow.response.stream
    assert callable(stream)
    stream(CHUNKS[0])
    stream(b'data: {"unfinished')
    flow.error = tflow.terr("server closed connection")
    addon.error(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert len(line["response"]["events"]) == 1
    assert line["response"]["tail"] == 'data: {"unfinished'
    assert "server closed connection" in line["error"]


def test_refused_upstream_is_answered_with_a_json_502(tmp_path: Path, fake_verdicts: FakeVerdicts) -> None:
    addon = Recorder()
    cassette = tmp_path / "c.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette=str(cassette), verdicts_process=False)
        flow = _chat_flow()
        flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:9")
        asyncio.run(addon.request(flow))
        assert flow.response is not None
        assert flow.response.status_code == 502
        error = json.loads(flow.response.content or b"")["error"]
        assert "http://127.0.0.1:9" in error["message"]
        assert error["code"] == "upstream_unreachable"
        addon.response(flow)
        addon.done()
    line = json.loads(cassette.read_text())
    assert line["response"]["status"] == 502
    assert "could not connect" in line["error"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cassette": "/nonexistent-dir/x.jsonl"}, "does not exist"),
        ({"cassette": "/tmp"}, "is a directory"),
        ({"har": "/nonexistent-dir/x.har"}, "does not exist"),
        ({"redact": ["x-ok", "bad name"]}, "not a header"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(options: dict[str, object], message: str) -> None:
    addon = Recorder()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match=message):
        tctx.configure(addon, **options)


def test_har_is_written_on_done(tmp_path: Path, fake_verdicts: FakeVerdicts) -> None:
    addon = Recorder()
    har = tmp_path / "s.har"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, har=str(har), verdicts_process=False)
        flow = _chat_flow()
        flow.response = _sse_response()
        addon.responseheaders(flow)
        stream = flow.response.stream
        assert callable(stream)
        for chunk in CHUNKS:
            stream(chunk)
        stream(b"")
        addon.response(flow)
        addon.done()
    text = har.read_text()
    assert TOKEN not in text
    doc = json.loads(text)
    assert doc["log"]["version"] == "1.2"
    (entry,) = doc["log"]["entries"]
    assert entry["response"]["content"]["text"].endswith("data: [DONE]\n\n")
    assert entry["response"]["content"]["mimeType"].startswith("text/event-stream")
    assert set(entry["timings"]) >= {"send", "wait", "receive"}
    assert entry["request"]["postData"]["text"]


def test_script_loads_without_the_repository_on_sys_path(tmp_path: Path) -> None:
    """`mitmdump -s proxy/recorder.py` from elsewhere: mitmproxy's script loader, no repository on sys.path."""
    script = Path(__file__).resolve().parents[2] / "proxy" / "recorder.py"
    code = (
        "import importlib.util, sys; from mitmproxy.addons import script; "
        # an editable install (as in CI) puts the packages on the path: take its finder away
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]; "
        "sys.path_hooks[:] = [h for h in sys.path_hooks "
        "if not getattr(h, '__module__', '').startswith('__editable__')]; "
        "sys.path_importer_cache.clear(); "
        f"assert importlib.util.find_spec('proxy') is None; m = script.load_script({str(script)!r}); "
        "print(type(m.addons[0]).__name__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "Recorder", done.stderr


def test_summary_line_names_items() -> None:
    from conformance.exchange import Exchange, Request, Response
    from proxy.cassette import Entry

    entry = Entry(
        Exchange(Request("POST", "u", "/v1/chat/completions"), Response(200, events=())),
        (Finding("a/x", "c", "m"), Finding("b/y", "c", "m"), Finding("a/x", "d", "m")),
    )
    assert summary_line(entry) == "POST /v1/chat/completions 200 · 0 events · 3 findings (a/x, b/y)"


def test_verdicts_run_in_a_worker_process(tmp_path: Path) -> None:
    """The default: redaction and the real verdicts in a spawned process; a broken stream gets findings."""
    addon = Recorder()
    cassette = tmp_path / "c.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette=str(cassette))
        flow = _chat_flow()
        flow.response = _sse_response()
        addon.responseheaders(flow)
        stream = flow.response.stream
        assert callable(stream)
        stream(b'data: {"not": "a chunk"}\n\n')
        stream(b"")
        addon.response(flow)
        addon.done()
    text = cassette.read_text()
    assert TOKEN not in text
    line = json.loads(text)
    assert line.get("validator_error") is None
    assert line["findings"], "a stream of one bogus chunk breaks some rule"


# --- streams that are not SSE ---------------------------------------------------------------------------------

NDJSON = [
    b'{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}\n',
    b'{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}\n{"model":"m",',
    b'"message":{"role":"assistant","content":""},"done":true,"eval_count":2}\n',
]


def _response(headers: list[tuple[bytes, bytes]], status: int = 200) -> http.Response:
    response = tutils.tresp(status_code=status, headers=http.Headers(headers), content=None)
    response.timestamp_start = time.time()
    return response


def _pass_through(flow: http.HTTPFlow, chunks: list[bytes]) -> None:
    assert flow.response is not None
    stream = flow.response.stream
    assert callable(stream), "the body is streamed through, not buffered"
    assert [stream(c) for c in chunks] == chunks, "every chunk reaches the client unchanged"
    assert stream(b"") == b""


def test_ndjson_stream_is_streamed_and_recorded_as_its_body(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow({"model": "m", "messages": []})  # Ollama streams /api/chat unless told `stream: false`
    flow.request.path = "/api/chat"
    flow.response = _response([(b"content-type", b"application/x-ndjson"), (b"content-length", b"999")])
    addon.responseheaders(flow)
    _pass_through(flow, NDJSON)
    addon.response(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert line["response"]["body"] == b"".join(NDJSON).decode()
    assert "events" not in line["response"]
    (seen,) = fake_verdicts.seen
    assert seen.response is not None
    assert not seen.response.is_stream
    assert seen.response.body == b"".join(NDJSON).decode()


def test_sse_with_a_wrong_content_type_is_streamed_and_judged_as_received(
    recorder: tuple[Recorder, taddons.context, Path],
) -> None:
    """The real verdicts, in this process: the body arrives as text, so `stream-is-sse` catches the header."""
    addon, _, cassette = recorder
    flow = _chat_flow()  # stream: true
    flow.response = _response([(b"content-type", b"application/json"), (b"content-length", b"999")])
    addon.responseheaders(flow)
    _pass_through(flow, CHUNKS)
    addon.response(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert line["response"]["body"] == b"".join(CHUNKS).decode()
    assert line.get("validator_error") is None
    assert "stream-is-sse" in {f["check"] for f in line["findings"]}


def test_chunked_compressed_json_is_streamed_and_decoded(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow({"model": "m", "stream": False})
    flow.response = _response(
        [(b"content-type", b"application/json"), (b"content-encoding", b"gzip"), (b"transfer-encoding", b"chunked")]
    )
    addon.responseheaders(flow)
    body = {"id": "c1", "object": "chat.completion", "choices": []}
    compressed = gzip.compress(json.dumps(body).encode())
    _pass_through(flow, [compressed[:10], compressed[10:]])
    addon.response(flow)
    addon.drain()
    assert json.loads(cassette.read_text())["response"]["body"] == body


def test_stream_flag_alone_streams_a_body_with_a_length(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, _ = recorder
    asked = _chat_flow()
    asked.response = _response([(b"content-type", b"application/json"), (b"content-length", b"2")])
    addon.responseheaders(asked)
    assert callable(asked.response.stream)
    not_asked = _chat_flow({"model": "m", "stream": False})
    not_asked.response = _response([(b"content-type", b"application/json"), (b"content-length", b"2")])
    addon.responseheaders(not_asked)
    assert not not_asked.response.stream, "a plain body of known length is left to mitmproxy's buffering"


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_bodiless_responses_are_not_streamed(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, method: str, status: int
) -> None:
    addon, _, _ = recorder
    flow = _chat_flow()
    flow.request.method = method
    flow.response = _response([], status)
    addon.responseheaders(flow)
    assert not flow.response.stream


def test_broken_off_ndjson_stream_keeps_what_arrived(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _response([(b"content-type", b"application/x-ndjson")])
    addon.responseheaders(flow)
    stream = flow.response.stream
    assert callable(stream)
    stream(NDJSON[0])
    flow.error = tflow.terr("server closed connection")
    addon.error(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert line["response"]["body"] == {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False}
    assert "server closed connection" in line["error"]


# --- verdicts that hang ---------------------------------------------------------------------------------------


def test_verdicts_that_hang_in_the_worker_time_out_and_the_worker_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.proxy import hang

    monkeypatch.setattr("proxy.recorder.judge", hang.judge)
    addon = Recorder()
    cassette = tmp_path / "c.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cassette=str(cassette), verdicts_timeout=1)
        for body in ({"n": 1}, {"hang": True}, {"n": 3}):
            flow = _chat_flow(body)
            flow.response = tutils.tresp(content=b"{}")
            addon.response(flow)
        started = time.monotonic()
        assert addon.drain() == 0
        assert time.monotonic() - started < 30
        addon.done()
    first, hung, third = (json.loads(line) for line in cassette.read_text().splitlines())
    assert hung["validator_error"] == "verdicts timed out after 1 s"
    assert hung["findings"] == []
    assert TOKEN not in json.dumps(hung), "a timed-out exchange is still redacted"
    assert hung["request"]["headers"]["authorization"] == "[REDACTED]"
    assert third.get("validator_error") is None
    old_pid, new_pid = int(first["findings"][0]["message"]), int(third["findings"][0]["message"])
    assert new_pid != old_pid, "the exchange after the timeout is judged by a fresh worker"
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid, 0)  # the stuck worker was ended, not left running


def test_verdicts_that_hang_in_a_thread_time_out(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    addon, tctx, cassette = recorder
    tctx.configure(addon, verdicts_timeout=1)
    release = threading.Event()

    def slow(exchange: object) -> list[Finding]:
        if isinstance(exchange, Exchange) and exchange.request.json.get("hang"):
            release.wait(30)
        return [Finding("a/b", "c", "judged")]

    fake_verdicts.result = slow
    try:
        for body in ({"hang": True}, {"n": 2}):
            flow = _chat_flow(body)
            flow.response = tutils.tresp(content=b"{}")
            addon.response(flow)
        with caplog.at_level("ERROR", logger="proxy.recorder"):
            addon.drain()
    finally:
        release.set()
    hung, after = (json.loads(line) for line in cassette.read_text().splitlines())
    assert hung["validator_error"] == "verdicts timed out after 1 s"
    assert after["findings"][0]["message"] == "judged"
    assert any("verdicts timed out on POST /v1/chat/completions" in r.getMessage() for r in caplog.records)


def test_exit_waits_a_bounded_time_for_a_stuck_writer(
    tmp_path: Path, fake_verdicts: FakeVerdicts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    monkeypatch.setattr("proxy.recorder._EXIT_GRACE_S", 0.2)
    release = threading.Event()
    addon = Recorder(on_entry=lambda entry: release.wait(30) and None)
    try:
        with taddons.context(addon) as tctx:
            tctx.configure(addon, verdicts_process=False, verdicts_timeout=1)
            flow = _chat_flow()
            flow.response = tutils.tresp(content=b"{}")
            addon.response(flow)
            started = time.monotonic()
            with caplog.at_level("ERROR", logger="proxy.recorder"):
                addon.done()
            assert time.monotonic() - started < 5
    finally:
        release.set()
    assert any("1 exchange was still being written" in r.getMessage() for r in caplog.records)


def test_verdicts_timeout_must_be_positive() -> None:
    addon = Recorder()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match="verdicts_timeout"):
        tctx.configure(addon, verdicts_timeout=0)


def test_at_exit_exchanges_the_verdicts_cannot_reach_are_written_without_them(
    tmp_path: Path, fake_verdicts: FakeVerdicts, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.setattr("proxy.recorder._EXIT_VERDICTS_S", 0.5)
    release = threading.Event()

    def stuck(exchange: object) -> list[Finding]:
        release.wait(30)
        return []

    fake_verdicts.result = stuck
    addon = Recorder()
    cassette = tmp_path / "c.jsonl"
    try:
        with taddons.context(addon) as tctx:
            tctx.configure(addon, cassette=str(cassette), verdicts_process=False, verdicts_timeout=1)
            for n in range(3):
                flow = _chat_flow({"n": n})
                flow.response = tutils.tresp(content=b"{}")
                addon.response(flow)
            started = time.monotonic()
            addon.done()
            assert time.monotonic() - started < 20
    finally:
        release.set()
    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert [line["request"]["body"]["n"] for line in lines] == [0, 1, 2], "every completed exchange is written"
    assert lines[2]["verdicts_not_run"] == "the recorder stopped before the verdicts could run"
    assert lines[2]["findings"] == []
    assert TOKEN not in cassette.read_text(), "written without verdicts, still redacted"
    assert read_cassette(cassette).entries[2].verdicts_not_run == lines[2]["verdicts_not_run"]


# --- content encodings and large events ---------------------------------------------------------------------


def _block_modules(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError


@pytest.mark.parametrize("encoding", ["xz", "gzip, br", "zstd"])
def test_a_stream_that_cannot_be_decoded_is_passed_through_without_findings(
    recorder: tuple[Recorder, taddons.context, Path],
    fake_verdicts: FakeVerdicts,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
) -> None:
    _block_modules(monkeypatch, "zstandard")  # no zstd decoder
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _sse_response(encoding)
    with caplog.at_level("INFO", logger="proxy.recorder"):
        addon.responseheaders(flow)
        payload = zstandard.ZstdCompressor().compress(b"".join(CHUNKS))
        _pass_through(flow, [payload[:9], payload[9:]])
        addon.response(flow)
        addon.drain()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback, no error"
    line = json.loads(cassette.read_text())
    assert line["verdicts_not_run"].startswith(f"the event stream is encoded with {encoding!r}, which this recorder")
    assert line["findings"] == []
    assert fake_verdicts.seen == [], "nothing judged, so nothing falsely found"
    assert "events" not in line["response"]


class _CountingParser:
    """Wraps the real SSE parser and counts the characters it has to scan: what it holds plus what it is fed."""

    work = 0

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._held = b""

    def feed(self, chunk: bytes, t_ms: float) -> list[SSEEvent]:
        _CountingParser.work += len(self._held) + len(chunk)
        joined = self._held + chunk
        self._held = joined[max(joined.rfind(b"\n"), joined.rfind(b"\r")) + 1 :]
        return self._parser.feed(chunk, t_ms)

    def close(self, t_ms: float) -> str:
        return self._parser.close(t_ms)


def test_a_large_event_costs_work_in_proportion_to_its_size(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("proxy.recorder.SSEParser", _CountingParser)
    _CountingParser.work = 0
    addon, _, cassette = recorder
    flow = _chat_flow()
    flow.response = _sse_response()
    addon.responseheaders(flow)
    content = "x" * 4_000_000
    stream = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"' + content.encode() + b'"}}]}\n\n'
    stream += b"data: [DONE]\n\n"
    pieces = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    _pass_through(flow, pieces)
    addon.response(flow)
    addon.drain()
    assert _CountingParser.work <= 3 * len(stream), f"{_CountingParser.work} characters scanned for {len(stream)}"
    events = json.loads(cassette.read_text())["response"]["events"]
    assert len(events) == 2
    assert len(events[0]["data"]) > 4_000_000


async def _zstd_upstream(scope: dict[str, Any], receive: Any, send_: Any) -> None:
    """A zstd-encoded SSE stream, one block flushed per write; the rest waits until the test releases it."""
    if scope["type"] != "http":
        return
    compressor = zstandard.ZstdCompressor().compressobj()
    await send_(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"content-encoding", b"zstd")],
        }
    )

    def piece(data: bytes) -> bytes:
        return compressor.compress(data) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    await send_({"type": "http.response.body", "body": piece(CHUNKS[0]), "more_body": True})
    for _ in range(600):  # at most a minute
        if _RELEASE.is_set():
            break
        await asyncio.sleep(0.1)
    await send_({"type": "http.response.body", "body": piece(b"".join(CHUNKS[1:])), "more_body": True})
    await send_({"type": "http.response.body", "body": compressor.flush()})


_RELEASE = threading.Event()


def test_a_zstd_event_stream_reaches_the_client_as_it_arrives(tmp_path: Path) -> None:
    _RELEASE.clear()
    cassette = tmp_path / "c.jsonl"
    with serve_app(_zstd_upstream) as upstream:
        settings = ProxySettings(cassette, upstream=upstream, listen_port=0, validate=False)
        with proxy_in_thread(settings) as proxy, httpx.Client(timeout=httpx.Timeout(30, read=20)) as client:
            with client.stream("POST", f"{proxy.url}/v1/chat/completions", json={"stream": True}) as response:
                raw = response.iter_raw()
                first = next(raw)  # before the upstream sends the rest: the proxy does not hold the stream
                _RELEASE.set()
                rest = b"".join(raw)
            assert proxy.recorder.drain() == 0
    assert zstandard.ZstdDecompressor().decompressobj().decompress(first) == CHUNKS[0]
    assert first + rest, "the client got the encoded bytes"
    events = json.loads(cassette.read_text())["response"]["events"]
    assert [e["data"] for e in events][-1] == "[DONE]"
    assert len(events) == 5


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed body", "buffered body"])
def test_a_body_that_cannot_be_decoded_is_recorded_without_verdicts(
    recorder: tuple[Recorder, taddons.context, Path], fake_verdicts: FakeVerdicts, streamed: bool
) -> None:
    addon, _, cassette = recorder
    flow = _chat_flow({"model": "m", "stream": streamed})
    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"xz")]
    if streamed:
        flow.response = _response(headers)
        addon.responseheaders(flow)
        _pass_through(flow, [b"\xfd7zXZ\x00", b"\x00\x04"])
    else:
        flow.response = tutils.tresp(headers=http.Headers([*headers, (b"content-length", b"8")]), content=b"")
        flow.response.raw_content = b"\xfd7zXZ\x00\x00\x04"
        addon.responseheaders(flow)
        assert not flow.response.stream
    addon.response(flow)
    addon.drain()
    line = json.loads(cassette.read_text())
    assert line["verdicts_not_run"].startswith("the body is encoded with 'xz', which this recorder cannot decode")
    assert line["response"]["body"] is None
    assert fake_verdicts.seen == []
