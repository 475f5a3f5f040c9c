"""A server under test for a benchmark: a free port, its process running until /v1/models answers, its stop."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import httpx

__all__ = ["NotStarted", "free_port", "serving"]


class NotStarted(Exception):
    """The server exited, or did not answer GET /v1/models, before its deadline."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(
    command: Sequence[str], url: str, log: IO[bytes], *, cwd: Path | None = None, timeout_s: float = 300.0
) -> Iterator[int]:
    """Run command (its output to log) until the block ends; yields its process id once GET url/v1/models
    answers 200. Raises NotStarted, saying why, if it exits first or does not answer within timeout_s."""
    process = subprocess.Popen(list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5) as client:
            while True:
                if process.poll() is not None:
                    raise NotStarted(f"exited with status {process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url + "/v1/models").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise NotStarted(f"did not answer within {timeout_s:g} s")
                time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
