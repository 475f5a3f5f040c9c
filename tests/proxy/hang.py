"""A stand-in for proxy.live.judge that a worker process can import: hangs on request, else names its process."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from conformance.exchange import Exchange
from conformance.findings import Finding
from proxy.cassette import Entry


def judge(exchange: Exchange, redact: Sequence[str], validate: bool) -> Entry:
    """Sleeps far past any test's timeout when the request body has `"hang": true`; otherwise one finding whose
    message is the pid of the process that judged."""
    if exchange.request.json.get("hang"):
        time.sleep(120)
    return Entry(exchange, (Finding("test/pid", "pid", str(os.getpid())),))
