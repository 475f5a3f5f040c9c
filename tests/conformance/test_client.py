"""Tests for conformance/client.py over real sockets: the keep-alive retry and the per-exchange deadline."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from conformance.catalog.expect import make_check, succeeded
from conformance.check import RequestSpec, Status, Target
from conformance.client import send
from conformance.exchange import Exchange, Request
from conformance.findings import WARNING
from conformance.runner import run_check
from conformance.verdicts import validate_exchange

_OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n"

Handler = Callable[[socket.socket, int], None]
"""Serves one request on a connection: (socket, number of the request on this connection, from 0)."""


def _read_request(sock: socket.socket) -> bool:
    """Read one request (headers and a content-length body); False when the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


class _Server:
    def __init__(self, handler: Handler) -> None:
        self.connections = 0
        outer = self

        class Connection(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                n = 0
                while _read_request(self.request):
                    if not handler(self.request, n):
                        return
                    n += 1

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def target(self) -> Target:
        host, port = self.server.server_address[:2]
        return Target(base_url=f"http://{host}:{port}", model="m")


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], _Server]]:
    servers: list[_Server] = []

    def start(handler: Handler) -> _Server:
        server = _Server(handler)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def _drops_second_request(sock: socket.socket, n: int) -> bool:
    """Answers the first request with keep-alive, then closes without a word when the next one arrives."""
    if n == 0:
        sock.sendall(_OK)
        return True
    return False


def _pings_forever(sock: socket.socket, n: int) -> bool:
    sock.sendall(_SSE_HEAD)
    try:
        while True:
            sock.sendall(b": ping\n\n")
            time.sleep(0.05)
    except OSError:
        return False


def _spec() -> RequestSpec:
    return RequestSpec("POST", "/v1/chat/completions", body={"model": "m", "messages": [], "max_tokens": 8})


def test_a_dropped_keep_alive_connection_is_retried_once_and_reported_as_a_warning(
    serve: Callable[[Handler], _Server],
) -> None:
    server = serve(_drops_second_request)
    with httpx.Client() as client:
        first = send(client, server.target, _spec())
        second = send(client, server.target, _spec())
    assert first.retried is None
    assert second.response is not None
    assert second.response.status == 200
    assert second.retried is not None
    assert "RemoteProtocolError" in second.retried
    assert server.connections == 2
    warnings = [f for f in validate_exchange(second) if f.check == "keep-alive-closed"]
    assert [(f.item, f.severity) for f in warnings] == [("base/chat-completions", WARNING)]
    assert "without sending `Connection: close`" in warnings[0].message
    assert not [f for f in validate_exchange(first) if f.check == "keep-alive-closed"]


def test_a_failure_on_a_fresh_connection_is_not_retried(serve: Callable[[Handler], _Server]) -> None:
    server = serve(lambda sock, n: False)
    with httpx.Client() as client:
        exchange = send(client, server.target, _spec())
    assert exchange.response is None
    assert exchange.retried is None
    assert exchange.error is not None
    assert "RemoteProtocolError" in exchange.error
    assert server.connections == 1


def test_comments_do_not_keep_an_exchange_alive_past_its_deadline(serve: Callable[[Handler], _Server]) -> None:
    server = serve(_pings_forever)
    with httpx.Client() as client:
        exchange = send(client, server.target, _spec(), timeout=1.0)
    assert exchange.response is None
    assert exchange.error == "timed out after 1 s"


def test_a_check_past_its_deadline_is_an_error_naming_the_request(serve: Callable[[Handler], _Server]) -> None:
    server = serve(_pings_forever)
    check = make_check("base/chat-streaming", "c", "t", [lambda t: _spec()], succeeded())
    with httpx.Client() as client:
        result = run_check(client, server.target, check, timeout=1.0)
    assert result.status == Status.ERROR
    assert result.message == "no response to POST /v1/chat/completions: timed out after 1 s"


def test_the_retry_is_recorded_in_the_cassette_format() -> None:
    exchange = Exchange(_request(), None, error="x", retried="RemoteProtocolError: gone")
    assert Exchange.from_dict(exchange.to_dict()).retried == "RemoteProtocolError: gone"
    assert "retried" not in Exchange(_request(), None).to_dict()


def _request() -> Request:
    return Request("POST", "http://x.invalid/v1/chat/completions", "/v1/chat/completions", body={})
