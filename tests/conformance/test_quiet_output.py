"""`conformance run` and `serve` print only their own lines: llama.cpp's log lines (written to fd 2 by C code)
never reach the terminal or the CI log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

_LLAMA = re.compile(r"llama|ggml|gguf|load_tensors|clip_|print_info|sched_reserve", re.IGNORECASE)
_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_run_on_the_embedded_server_prints_only_its_own_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--only", "base/models", "--report-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_ENV,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines()[0] == "running 1 items"
    assert all(re.match(r"^(running \d+ items|[A-Z_]+ +\S+  .*)$", line) for line in done.stderr.splitlines())
    assert not _LLAMA.search(done.stdout + done.stderr), done.stdout + done.stderr


def test_serve_prints_its_own_lines_only() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", "serve", "--port", "0", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(
            r"^Serving (\S+) at (http://127\.0\.0\.1:\d+) \(OpenAI base URL \2/v1\); Ctrl\+C stops\.$", first
        )
        assert match, first
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0, "seed": 1}
        reply = httpx.post(match.group(2) + "/v1/chat/completions", json=body, timeout=300)
        assert reply.status_code == 200, reply.text
        assert json.loads(reply.text)["usage"]["completion_tokens"] <= 2
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert out == ""
    assert not _LLAMA.search(err), err
