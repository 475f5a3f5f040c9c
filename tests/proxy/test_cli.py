"""Tests for proxy/cli.py through the `conformance` command: exit codes, output, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path

import httpx
import pytest

from conformance.check import Item, Kind
from conformance.cli import main
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.findings import Finding
from proxy.cassette import CassetteWriter, Entry
from tests.proxy.conftest import FakeVerdicts

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
    module = types.ModuleType("conformance.catalog")
    module.ITEMS = (  # type: ignore[attr-defined]  # a stand-in catalog module
        Item("base/chat", "0", "chat", Kind.API, ("/v1/chat/completions",)),
        Item("0.3.6/embeddings", "0.3.6", "embeddings", Kind.API, ("/v1/embeddings",)),
    )
    monkeypatch.setitem(sys.modules, "conformance.catalog", module)


def test_check_writes_reports_and_exits_by_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_verdicts: FakeVerdicts, fake_catalog: None
) -> None:
    cassette = _write(tmp_path / "a.jsonl", _chat())
    assert main(["check", str(cassette), "--report-dir", str(tmp_path / "ok")]) == 0
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert {i["id"]: i["status"] for i in report["items"]} == {"base/chat": "pass", "0.3.6/embeddings": "not_covered"}
    assert {p.name for p in (tmp_path / "ok").iterdir()} >= {"report.json", "junit.xml", "report.md", "report.html"}

    fake_verdicts.result = lambda exchange: [Finding("base/chat", "rule", "broken", endpoint=exchange.endpoint)]
    assert main(["check", str(cassette), "--report-dir", str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert "FAIL base/chat" in out
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert report["items"][0]["checks"][0]["evidence"][0]["message"] == "broken"


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
    assert "stopped: 1 exchanges recorded" in stdout
    assert "Traceback" not in stderr
    assert len(out.read_text().splitlines()) == 1
    assert json.loads((tmp_path / "s.har").read_text())["log"]["entries"]
