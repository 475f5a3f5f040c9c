"""Judging one recorded exchange: redaction, then the live verdicts; picklable, so it can run in a worker process."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from conformance.exchange import Exchange
from conformance.findings import Finding
from proxy.cassette import Entry
from proxy.redact import Redactor

__all__ = ["judge", "warm_up", "worker_init"]


def judge(exchange: Exchange, redact: Sequence[str], validate: bool) -> Entry:
    """The cassette entry for `exchange`: redacted first (findings quote the wire), then judged. Never raises
    for a verdict that crashes: the crash is returned as `validator_error`."""
    exchange = Redactor.with_names(redact).exchange(exchange)
    if not validate:
        return Entry(exchange)
    findings, error = _validate(exchange)
    return Entry(exchange, findings, error)


def warm_up() -> None:
    """Import the verdicts ahead of the first exchange (in a worker process, its first job)."""
    with contextlib.suppress(ImportError):  # then each exchange records why there are no verdicts
        import conformance.verdicts  # noqa: F401  # imported for its side effect: loading the rules


def worker_init(parent: int) -> None:
    """Initializer of the verdicts worker process: Ctrl+C and SIGTERM are the parent's to handle (they reach the
    whole process group; the parent then waits for the exchanges being judged, and ends the worker), and the
    worker ends when its parent is gone (killed with `kill -9`, say) instead of living on as an orphan."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


_PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


def _validate(exchange: Exchange) -> tuple[tuple[Finding, ...], str | None]:
    try:
        from conformance.verdicts import validate_exchange
    except ImportError as exc:
        return (), f"verdicts unavailable: {exc}"
    try:
        return tuple(validate_exchange(exchange)), None
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return (), f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
