"""Tests for conformance/report/reproduce.py: request records and curl commands that really resend the request."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conformance.exchange import Request
from conformance.report.reproduce import API_KEY_VARIABLE, REDACTED, curl, request_records

KEY = "sk-secret-1234567890"


class _Echo(BaseHTTPRequestHandler):
    """Remembers what it received and answers 200."""

    received: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.received.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length) if length else b"",
            }
        )
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _request(url: str, body: Any, **headers: str) -> Request:
    return Request("POST", url + "/v1/chat/completions", "/v1/chat/completions", headers, body)


def test_the_api_key_is_redacted_and_read_back_from_the_environment() -> None:
    request = _request("http://h:1", {"stream": True}, authorization=f"Bearer {KEY}", **{"x-test": "it's"})
    (record,) = request_records([request], api_key=KEY)
    assert record["headers"]["authorization"] == f"Bearer {REDACTED}"
    assert KEY not in json.dumps(record)
    assert record["curl"].splitlines()[0] == "curl -sS -N http://h:1/v1/chat/completions \\"
    assert f'-H "authorization: Bearer ${{{API_KEY_VARIABLE}}}"' in record["curl"]
    assert record["body"] == {"stream": True}


def test_made_up_tokens_of_a_probe_are_kept_and_without_a_key_nothing_is_redacted() -> None:
    request = _request("http://h:1", None, authorization="Bearer wrong-token")
    (record,) = request_records([request], api_key=None)
    assert record["headers"]["authorization"] == "Bearer wrong-token"
    assert record["curl"].startswith("curl -sS -X POST http://h:1/v1/chat/completions")


def test_an_over_long_body_is_cut_and_has_no_curl() -> None:
    (record,) = request_records([_request("http://h:1", {"input": "x" * 30_000})], api_key=None)
    assert record["curl"] is None
    assert record["body"].endswith("chars)")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": 'it\'s "quoted" $HOME `x` \\ é'}], "stream": True},
        '{"model": "m", "messages": [',  # the text of a malformed-JSON probe, sent as is
        None,
    ],
)
def test_the_curl_command_resends_the_same_request(echo_url: str, body: Any) -> None:
    request = _request(echo_url, body, authorization=f"Bearer {KEY}", **{"content-type": "application/json"})
    (record,) = request_records([request], api_key=KEY)
    _Echo.received.clear()
    env = {**os.environ, API_KEY_VARIABLE: KEY}
    done = subprocess.run(["bash", "-c", record["curl"]], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (seen,) = _Echo.received
    assert seen["method"] == "POST"
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {KEY}"
    expected = b"" if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    assert seen["body"] == expected


def test_curl_quotes_the_url_and_other_methods() -> None:
    command = curl("DELETE", "http://h:1/v1/x?a=1&b=2", {}, None)
    assert command == "curl -sS -X DELETE 'http://h:1/v1/x?a=1&b=2'"
