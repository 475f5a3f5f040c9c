"""Tests for proxy/serve.py: a real mitmproxy in a thread in front of a small upstream, reverse and forward."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from conformance.errors import UsageError
from proxy.cassette import read_cassette
from proxy.serve import ProxySettings, proxy_in_thread, upstream_root
from tests.proxy.conftest import FakeVerdicts

IN_THREAD = {"verdicts_process": False}
"""The fake verdicts live in this process."""

STREAM_BODY = {"model": "fake", "stream": True, "max_tokens": 5}


def _stream(client: httpx.Client, url: str) -> tuple[bytes, list[float]]:
    start = time.perf_counter()
    arrivals = []
    data = b""
    with client.stream("POST", url + "/v1/chat/completions", json=STREAM_BODY) as reply:
        assert reply.status_code == 200
        for chunk in reply.iter_raw():
            arrivals.append(time.perf_counter() - start)
            data += chunk
    return data, arrivals


def test_reverse_mode_streams_byte_for_byte_as_it_arrives(
    fake_upstream: str, tmp_path: Path, fake_verdicts: FakeVerdicts
) -> None:
    cassette = tmp_path / "c.jsonl"
    with (
        proxy_in_thread(ProxySettings(cassette, upstream=fake_upstream, listen_port=0, extra=IN_THREAD)) as proxy,
        httpx.Client() as client,
    ):
        direct, _ = _stream(client, fake_upstream)
        proxied, arrivals = _stream(client, proxy.url)
        proxy.recorder.drain()
    assert proxied == direct
    assert len(arrivals) > 3, "the client sees the events one by one"
    assert arrivals[0] < arrivals[-1] - 0.02, "the first event is not held back until the end"
    (entry,) = read_cassette(cassette).entries
    assert entry.exchange.response is not None
    events = entry.exchange.response.events
    assert events is not None
    assert "".join(e.raw + "\n\n" for e in events).encode() == direct
    assert [e.t_ms for e in events] == sorted(e.t_ms for e in events)
    assert len(fake_verdicts.seen) == 1


def test_forward_mode_records_too(fake_upstream: str, tmp_path: Path, fake_verdicts: FakeVerdicts) -> None:
    cassette = tmp_path / "c.jsonl"
    with proxy_in_thread(ProxySettings(cassette, upstream=None, listen_port=0, extra=IN_THREAD)) as proxy:
        with httpx.Client(proxy=proxy.url) as client:
            reply = client.get(fake_upstream + "/v1/models?api_key=secret-value-1")
            assert reply.status_code == 200
            assert reply.json()["data"][0]["id"] == "fake-model"
        proxy.recorder.drain()
    (entry,) = read_cassette(cassette).entries
    assert entry.exchange.request.path == "/v1/models?api_key=[REDACTED]"
    assert entry.exchange.request.url == fake_upstream + "/v1/models?api_key=[REDACTED]"
    assert "secret-value-1" not in cassette.read_text()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_upstream_gives_a_json_502_and_a_failure_line(tmp_path: Path, fake_verdicts: FakeVerdicts) -> None:
    cassette = tmp_path / "c.jsonl"
    upstream = f"http://127.0.0.1:{_closed_port()}"
    with proxy_in_thread(ProxySettings(cassette, upstream=upstream, listen_port=0, extra=IN_THREAD)) as proxy:
        reply = httpx.post(proxy.url + "/v1/chat/completions", json=STREAM_BODY)
        proxy.recorder.drain()
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert upstream in error["message"]
    assert "could not connect" in error["message"]
    (line,) = [json.loads(x) for x in cassette.read_text().splitlines()]
    assert line["response"]["status"] == 502
    assert upstream in line["error"]


def test_refused_upstream_without_probe_is_still_recorded(tmp_path: Path, fake_verdicts: FakeVerdicts) -> None:
    cassette = tmp_path / "c.jsonl"
    upstream = f"http://127.0.0.1:{_closed_port()}"
    settings = ProxySettings(cassette, upstream=upstream, listen_port=0, extra={**IN_THREAD, "upstream_probe": False})
    with proxy_in_thread(settings) as proxy:
        reply = httpx.get(proxy.url + "/v1/models")
        proxy.recorder.drain()
    assert reply.status_code == 502  # mitmproxy's own page: the error hook cannot replace it (mitmproxy 12.2)
    (line,) = [json.loads(x) for x in cassette.read_text().splitlines()]
    assert "response" not in line
    assert upstream.removeprefix("http://") in line["error"]


def test_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = ProxySettings(tmp_path / "c.jsonl", upstream="http://127.0.0.1:9", listen_port=port, extra=IN_THREAD)
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"), proxy_in_thread(settings):
            pass


def test_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    settings = ProxySettings(tmp_path / "missing" / "c.jsonl", upstream="http://127.0.0.1:9", listen_port=0)
    with pytest.raises(UsageError, match="does not exist"), proxy_in_thread(settings):
        pass


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("http://localhost:1234", "http://localhost:1234"),
        ("http://localhost:1234/", "http://localhost:1234"),
        ("https://api.example.com", "https://api.example.com"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_upstream_root(text: str, root: str) -> None:
    assert upstream_root(text) == root


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost:1234", "not an http"),
        ("ftp://h", "not an http"),
        ("http://", "no host"),
        ("http://h:99999", "invalid port"),
        ("http://h:1234/v1", "has a path"),
    ],
)
def test_bad_upstream(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        upstream_root(text)
