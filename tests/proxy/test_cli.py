"""Tests for proxy/cli.py through the `conformance` command: exit codes, output, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.check import Item, Kind
from conformance.cli import main
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.findings import Finding
from proxy.cassette import CassetteWriter, Entry
from tests.proxy.conftest import FakeVerdicts, serve_app

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, *exchanges: Exchange) -> Path:
    writer = CassetteWriter(path)
    for exchange in exchanges:
        writer.write(Entry(exchange))
    writer.close()
    return path


def _chat(finish: str = "stop") -> Exchange:
    data = json.dumps({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return Exchange(
        Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {}, {"model": "m"}),
        Response(200, {"content-type": "text/event-stream"}, events=(SSEEvent(1, None, data, "data: " + data),)),
    )


def test_diff_same_and_different(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.jsonl", _chat())
    b = _write(tmp_path / "b.jsonl", _chat())
    c = _write(tmp_path / "c.jsonl", _chat("length"))
    assert main(["diff", str(a), str(b)]) == 0
    assert "no structural difference" in capsys.readouterr().err
    assert main(["diff", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert 'events[0].data.choices[0].finish_reason changed: "stop" -> "length"' in out
    assert main(["diff", "--json", str(a), str(c)]) == 1
    (difference,) = json.loads(capsys.readouterr().out)
    assert difference["change"] == "changed"
    assert difference["new"] == "length"


def test_corrupt_line_is_reported_with_its_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.jsonl", _chat(), _chat())
    lines = a.read_text().splitlines()
    lines.insert(1, '{"version": 1, "request": ')
    a.write_text("\n".join(lines) + "\n")
    b = _write(tmp_path / "b.jsonl", _chat(), _chat())
    assert main(["diff", str(a), str(b)]) == 0
    err = capsys.readouterr().err
    assert f"{a}:2: not valid JSON" in err
    assert "Traceback" not in err


def test_missing_cassette_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(tmp_path / "nope.jsonl"), str(tmp_path / "nope.jsonl")]) == 2
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 2
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("no such cassette") == 3


def test_bad_upstream_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--upstream", "localhost:1234", "--out", str(tmp_path / "c.jsonl")]) == 2
    assert "--upstream 'localhost:1234' is not an http:// or https:// URL" in capsys.readouterr().err


def test_replay_bad_speed_and_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.jsonl", _chat())
    assert main(["replay", str(a), "--speed", "-1"]) == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["replay", str(a), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "--speed -1" in err
    assert "cannot listen on 127.0.0.1" in err


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.catalog

    items = (
        Item("base/chat-completions", "0", "chat", Kind.API, ("/v1/chat/completions",)),
        Item("0.3.6/embeddings", "0.3.6", "embeddings", Kind.API, ("/v1/embeddings",)),
    )
    monkeypatch.setattr(conformance.catalog, "ITEMS", items)


def test_check_writes_reports_and_exits_by_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_verdicts: FakeVerdicts, fake_catalog: None
) -> None:
    cassette = _write(tmp_path / "a.jsonl", _chat())
    assert main(["check", str(cassette), "--report-dir", str(tmp_path / "ok")]) == 0
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert {i["id"]: i["status"] for i in report["items"]} == {
        "base/chat-completions": "pass",
        "0.3.6/embeddings": "not_covered",
    }
    assert {p.name for p in (tmp_path / "ok").iterdir()} >= {"report.json", "junit.xml", "report.md", "report.html"}

    fake_verdicts.result = lambda exchange: [
        Finding("base/chat-completions", "rule", "broken", endpoint=exchange.endpoint)
    ]
    assert main(["check", str(cassette), "--report-dir", str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert "FAIL base/chat-completions" in out
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert report["items"][0]["checks"][0]["evidence"][0]["message"] == "broken"
    (request,) = report["items"][0]["checks"][0]["requests"]  # the recorded request, to send again
    assert (request["method"], request["url"]) == ("POST", "http://h/v1/chat/completions")
    assert request["curl"].startswith("curl ")
    assert report["run"]["source"] == "check"


def test_record_until_interrupted(fake_upstream: str, tmp_path: Path) -> None:
    """The real command in a subprocess: one line per exchange, Ctrl+C stops it cleanly with the cassette written."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "c.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-W", "ignore", "-m", "conformance", "record", "--upstream", fake_upstream]
    command += ["--listen-port", str(port), "--out", str(out), "--har", str(tmp_path / "s.har")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith(f"recording http://127.0.0.1:{port} -> {fake_upstream}")
            reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"stream": True, "max_tokens": 2})
            assert reply.status_code == 200
            line = process.stdout.readline()
            assert line.startswith("POST /v1/chat/completions 200 · 5 events · ")
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr
    assert "stopped: 1 exchange recorded" in stdout
    assert "Traceback" not in stderr
    assert len(out.read_text().splitlines()) == 1
    assert json.loads((tmp_path / "s.har").read_text())["log"]["entries"]


# --- `record` stopped by signals: nothing completed is lost, nothing is left running ---------------------------


async def _slow_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/slow` sends one event and then nothing for a minute; any other path answers JSON at once."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b'data: {"first": true}\n\n', "more_body": True})
        await asyncio.sleep(60)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"object": "list", "data": []}'})


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    with serve_app(_slow_upstream) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_record(upstream: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`conformance record` in its own process group (as a terminal runs it), once it listens: (process, url)."""
    port = _free_port()
    command = [sys.executable, "-m", "conformance", "record", "--upstream", upstream, "--listen-port", str(port)]
    command += ["--out", str(tmp_path / "c.jsonl"), "--har", str(tmp_path / "s.har"), *extra]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        start_new_session=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("recording "):
        _, stderr = _finish(process)
        pytest.fail(f"`conformance record` did not start: {first}{stderr}")
    return process, f"http://127.0.0.1:{port}"


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return stdout, stderr


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None once it is gone (a zombie counts as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = text.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else (int(parent), state)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] == pid:
            found.add(int(entry))
    return found


def _wait_until(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _two_exchanges(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/chat/completions", json={"stream": True, "max_tokens": 2}).status_code == 200
        assert client.get("/v1/models").status_code == 200


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize(
    "how", ["SIGINT to the process group (Ctrl+C)", "SIGTERM to the process (kill)", "SIGTERM to the process group"]
)
def test_a_stop_right_after_the_last_response_keeps_every_exchange(
    fake_upstream: str, tmp_path: Path, how: str
) -> None:
    process, url = _start_record(fake_upstream, tmp_path)
    _two_exchanges(url)  # the verdicts worker may well be still starting
    children = _children(process.pid)
    signum = signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM
    if how.endswith("(kill)"):
        process.send_signal(signum)
    else:
        os.killpg(process.pid, signum)
    stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
    assert "worker process failed" not in stderr
    assert "stopped: 2 exchanges recorded" in stdout
    lines = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert sorted(line["request"]["path"] for line in lines) == ["/v1/chat/completions", "/v1/models"]
    assert len(json.loads((tmp_path / "s.har").read_text())["log"]["entries"]) == 2, "the HAR is written, as on Ctrl+C"
    assert _wait_until(lambda: not any(_stat(pid) for pid in children)), "no worker process outlives the recorder"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_the_exchange_in_flight_at_ctrl_c_is_recorded_with_what_arrived(slow_upstream: str, tmp_path: Path) -> None:
    process, url = _start_record(slow_upstream, tmp_path)
    with httpx.Client(timeout=30) as client, client.stream("POST", f"{url}/slow", json={"stream": True}) as response:
        lines = response.iter_lines()  # kept: a dropped iterator would close the response
        assert next(lines) == 'data: {"first": true}'
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert "stopped: 1 exchange recorded" in stdout
    (line,) = (json.loads(text) for text in (tmp_path / "c.jsonl").read_text().splitlines())
    assert "stopped before the exchange completed" in line["error"]
    assert [e["data"] for e in line["response"]["events"]] == ['{"first": true}']


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_the_worker_processes_end_when_the_recorder_is_killed(fake_upstream: str, tmp_path: Path) -> None:
    process, url = _start_record(fake_upstream, tmp_path)
    _two_exchanges(url)
    assert _wait_until(lambda: len(_children(process.pid)) >= 2), "the verdicts worker and the resource tracker"
    children = _children(process.pid)
    process.kill()
    _finish(process)
    assert _wait_until(lambda: not any(_stat(pid) for pid in children)), "orphans left after kill -9 of the recorder"


def test_a_stop_without_exchanges_claims_no_file(fake_upstream: str, tmp_path: Path) -> None:
    process, _ = _start_record(fake_upstream, tmp_path)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert "stopped: no exchange recorded" in stdout
    assert "HAR" not in stdout
    assert not (tmp_path / "s.har").exists()
    assert not (tmp_path / "c.jsonl").exists(), "no empty cassette is left behind"


def test_record_on_a_busy_port_says_so_in_one_line(fake_upstream: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = [sys.executable, "-m", "conformance", "record", "--upstream", fake_upstream]
        command += ["--listen-port", str(port), "--out", str(tmp_path / "c.jsonl")]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"conformance record: cannot listen on 127.0.0.1:{port} (Address already in use); pick another with "
        "--listen-port"
    ]
    assert not (tmp_path / "c.jsonl").exists()


# --- unreadable inputs: said once, exit 2 ----------------------------------------------------------------------


def test_no_readable_exchange_is_a_usage_error_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n")
    good = _write(tmp_path / "good.jsonl", _chat())
    assert main(["diff", str(good), str(empty)]) == 2
    assert main(["diff", str(junk), str(good)]) == 2
    assert main(["replay", str(empty)]) == 2
    assert main(["check", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("no readable exchange in this cassette") == 4
    assert f"{junk}:1: not valid JSON" in err
    assert "Traceback" not in err


def test_a_har_given_to_any_command_is_recognised_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.har import HarRecord, HarTimings, write_har

    har = tmp_path / "session.har"
    write_har(har, [HarRecord(_chat(), HarTimings(1, 1, 1))] * 3)
    good = _write(tmp_path / "good.jsonl", _chat())
    for argv in (["check", str(har)], ["diff", str(good), str(har)], ["replay", str(har)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "this is a HAR file, not a cassette; convert it with `python -m proxy.har" in err


def test_wrong_typed_and_deep_lines_do_not_stop_diff_or_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "good.jsonl", _chat())
    line = json.loads(good.read_text())
    bad_lines = [
        json.dumps({**line, "request": {**line["request"], "path": 5}}),
        json.dumps({**line, "request": {**line["request"], "method": None}}),
        json.dumps({**line, "findings": "none"}),
        json.dumps({**line, "response": []}),
        json.dumps({**line, "request": {**line["request"], "headers": "a: b"}}),
        '{"version": 1, "request": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ] * 3
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\ufeff" + good.read_text() + "\n".join(bad_lines) + "\n")
    assert main(["diff", str(good), str(mixed)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{mixed}:2: not a cassette line (request.path: 5 is not of type 'string'); line skipped" in err
    assert f"{mixed}:7: nested too deeply to read" in err
    assert err.count("line skipped") == 10, "the first ten bad lines, one by one"
    assert f"{mixed}: ... and 8 more bad lines skipped" in err
    assert f"{mixed}:1:" not in err, "a byte order mark is not a bad line"


def test_check_messages_are_whole_words_and_counted_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_verdicts: FakeVerdicts, fake_catalog: None
) -> None:
    long_message = " ".join(["the chunk lacks its finish_reason field"] * 20)
    fake_verdicts.result = lambda exchange: [
        Finding("base/chat-completions", "rule", long_message, endpoint=exchange.endpoint)
    ]
    cassette = _write(tmp_path / "a.jsonl", _chat())
    assert main(["check", str(cassette), "--report-dir", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"1 exchange from {cassette}: 0 passed, 1 failed, 0 errors")
    (failure,) = [line for line in out.splitlines() if line.startswith("  FAIL")]
    assert failure.startswith("  FAIL base/chat-completions: 1 finding (cassette line 1): the chunk lacks")
    assert failure.endswith(" ..."), "cut, and said so"
    assert failure.removesuffix(" ...").split()[-1] in long_message.split(), "at a word boundary"
    assert len(failure) < 580


# --- replay: the recorded server, a line per request, a bounded stop ----------------------------------------------


def _long_stream_cassette(path: Path) -> Path:
    events = tuple(
        SSEEvent(t, None, data, f"data: {data}")
        for t, data in ((0.0, '{"n": 1}'), (60_000.0, '{"n": 2}'), (120_000.0, "[DONE]"))
    )
    exchange = Exchange(
        Request("POST", "http://h/v1/chat/completions", "/v1/chat/completions", {}, {"model": "m", "stream": True}),
        Response(200, {"content-type": "text/event-stream", "server": "llama.cpp"}, events=events),
    )
    return _write(path, exchange)


def test_replay_keeps_the_server_logs_each_request_and_stops_promptly(tmp_path: Path) -> None:
    cassette = _long_stream_cassette(tmp_path / "long.jsonl")
    port = _free_port()
    command = [sys.executable, "-m", "conformance", "replay", str(cassette), "--port", str(port)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"replaying 1 exchange from {cassette} on http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/v1/nothing").status_code == 404
            assert process.stdout.readline() == "GET /v1/nothing 404 · no recorded exchange matches\n"
            with client.stream("POST", "/v1/chat/completions", json={"model": "m", "stream": True}) as reply:
                assert reply.headers["server"] == "llama.cpp", "the recorded server, not uvicorn"
                chunks = reply.iter_raw()
                assert next(chunks) == b'data: {"n": 1}\n\n'
                process.send_signal(signal.SIGINT)  # two minutes of recorded stream left: not waited out
                stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stdout == "POST /v1/chat/completions 200 · recording 1 of 1 · cut by the shutdown after 1 of 3 events\n"


def test_replay_refuses_absurd_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cassette = _long_stream_cassette(tmp_path / "long.jsonl")
    cassette.write_text(cassette.read_text().replace('"t_ms": 120000.0', '"t_ms": 1e300'))
    assert main(["replay", str(cassette), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{cassette}:1: events[2].t_ms is 1e+300, not a time from 0 to 86400000 ms" in err
    assert "--speed 0" in err
