"""Times the whole catalog against the embedded reference server: wall time, server wait, the suite's own share.

Run from the repository root: `.venv/bin/python bench/suite_time.py` (with the project installed, or
PYTHONPATH=.). The server is the one `conformance run` starts (`serve_for_suite`: a second model, a preset,
a token, remote MCP), so every item runs. Targets: the whole catalog under 60 s wall on 2 cores with the
default model (model load included), and the suite's own share of the run (1 - server wait / run wall)
under 10 %.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from conformance.check import Status
from conformance.run import catalog, resolve_target, select
from conformance.runner import default_client, run_catalog

WALL_TARGET_S = 60.0
SHARE_TARGET = 0.10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default="", help="comma-separated item or check ids, as for `conformance run`")
    args = parser.parse_args(argv)
    items = select(catalog(), [s for s in args.only.split(",") if s])
    embedded = importlib.import_module("reference_server.embedded")

    start = time.perf_counter()
    with embedded.serve_for_suite() as server, default_client() as client:  # as `conformance run` starts it
        ready = time.perf_counter()
        base_url = server.url
        target = replace(resolve_target(client, base_url, api_key=server.api_key), preset=server.preset)
        report = run_catalog(target, items, client=client)
    wall = time.perf_counter() - start

    run_wall = float(report.meta["wall_s"])
    server = float(report.meta["server_s"])
    share = 1 - server / run_wall if run_wall else 0.0
    checks = Counter(str(c.status) for i in report.items for c in i.checks)
    print(f"target: {target.model} at {base_url} ({target.server or 'unknown server'})")
    print(f"items: {len(report.items)} {dict(report.summary)}")
    print(f"checks: {sum(checks.values())} {dict(checks)}")
    wall_ok = _verdict(wall < WALL_TARGET_S)
    print(f"{'wall, model load included':<34}{wall:8.2f} s   target < {WALL_TARGET_S:.0f} s   {wall_ok}")
    print(f"{'  server start and model load':<34}{ready - start:8.2f} s")
    print(f"{'  run':<34}{run_wall:8.2f} s")
    print(f"{'waiting on the server':<34}{server:8.2f} s")
    print(
        f"{"suite's own share (1 - server/run)":<34}{share:8.1%}     target < {SHARE_TARGET:.0%}    "
        f"{_verdict(share < SHARE_TARGET)}"
    )
    print(f"{"suite's share of the whole wall":<34}{1 - server / wall:8.1%}")
    slowest = sorted(((c.duration_s, f"{i.id}::{c.id}") for i in report.items for c in i.checks), reverse=True)[:5]
    print("slowest checks: " + ", ".join(f"{name} {seconds:.2f} s" for seconds, name in slowest))
    failed = [f"{i.id}::{c.id}" for i in report.items for c in i.checks if c.status in (Status.FAIL, Status.ERROR)]
    if failed:
        print(f"failed or errored against the reference server ({len(failed)}): " + ", ".join(failed))
    return 0


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
