"""Handlers of `conformance record`, `check`, `diff` and `replay`: each takes the arguments, returns an exit code."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from conformance.check import Status
from conformance.errors import UsageError
from proxy.cassette import Cassette, Entry, read_cassette

__all__ = ["check", "diff", "record", "replay"]

EXIT_OK = 0
EXIT_DIFFERENT = 1


def record(args: argparse.Namespace) -> int:
    """Reverse proxy to --upstream on --listen-port, recording to --out, until Ctrl+C."""
    from proxy.recorder import summary_line
    from proxy.serve import ProxySettings, run_foreground, upstream_root

    upstream = upstream_root(args.upstream)
    out = Path(args.out)
    settings = ProxySettings(
        cassette=out,
        upstream=upstream,
        listen_port=args.listen_port,
        redact=tuple(args.redact),
        har=Path(args.har) if args.har else None,
    )
    count = 0

    def on_entry(entry: Entry) -> None:
        nonlocal count
        count += 1
        print(summary_line(entry), flush=True)

    def on_ready(url: str) -> None:
        print(f"recording {url} -> {upstream} into {out} (Ctrl+C to stop)", flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C before the proxy runs
        run_foreground(settings, on_entry, on_ready)
    if not count:
        print("stopped: no exchange recorded" + (f" (no cassette written to {out})" if not out.exists() else ""))
        return EXIT_OK
    har = f", HAR in {args.har}" if args.har and Path(args.har).exists() else ""
    print(f"stopped: {_count(count, 'exchange')} recorded in {out}{har}", flush=True)
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    """Run the verdicts over a cassette and write report.json, report.html, junit.xml and report.md."""
    path = Path(args.cassette)
    cassette = _read_exchanges(path)

    from conformance.catalog import ITEMS
    from conformance.report import write_reports
    from conformance.results import RunContext
    from conformance.run import command_line, suite_version
    from conformance.verdicts import validate_exchange
    from proxy.offline import judge

    report = judge(cassette, ITEMS, validate_exchange)
    context = RunContext("check", suite_version(), None, command_line(getattr(args, "argv", None), None))
    report = dataclasses.replace(report, context=context)
    directory = Path(args.report_dir) if args.report_dir else _default_report_dir(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report-dir {directory}: cannot create it ({exc.strerror or exc})") from None
    written = write_reports(report, directory)
    summary = report.summary
    exchanges = _count(len(cassette.entries), "exchange")
    print(
        f"{exchanges} from {path}: {summary['passed']} passed, {summary['failed']} failed, "
        f"{_count(summary['errors'], 'error')}, {summary['skipped']} skipped, {summary['not_covered']} not covered"
    )
    for item in report.items:
        if item.status in (Status.FAIL, Status.ERROR):
            for result in item.checks:
                if result.status in (Status.FAIL, Status.ERROR):
                    print(f"  {item.status.upper()} {item.id}: {result.message}")
    for name in sorted(written):
        print(f"  {name}: {written[name]}")
    failed = summary["failed"] + summary["errors"]
    return EXIT_DIFFERENT if failed else EXIT_OK


def diff(args: argparse.Namespace) -> int:
    """Structural differences between two cassettes; exit 1 when there are any."""
    from proxy.diff import Change, diff_exchanges

    old = _read_exchanges(Path(args.old))
    new = _read_exchanges(Path(args.new))
    differences = diff_exchanges(old.exchanges, new.exchanges, args.ignore)
    if args.json:
        print(json.dumps([d.to_dict() for d in differences], indent=2, ensure_ascii=False, default=str))
    else:
        for difference in differences:
            print(difference)
        unpaired = sum(d.change in (Change.ONLY_IN_OLD, Change.ONLY_IN_NEW) for d in differences)
        if differences:
            print(
                f"{_count(len(differences), 'difference')} ({_count(unpaired, 'unpaired exchange')})", file=sys.stderr
            )
        else:
            print(f"no structural difference ({_count(len(old.entries), 'exchange')} paired)", file=sys.stderr)
    return EXIT_DIFFERENT if differences else EXIT_OK


def replay(args: argparse.Namespace) -> int:
    """Serve the cassette's responses to matching requests until Ctrl+C."""
    import uvicorn

    from proxy.replay import ReplayApp, ReplayServer, absurd_time

    path = Path(args.cassette)
    cassette = _read_exchanges(path)
    if not args.speed >= 0 or args.speed == float("inf"):
        raise UsageError(f"--speed {args.speed}: give 0 (no delay) or a positive multiplier such as 1 or 2")
    if args.speed > 0:
        for entry in cassette.entries:
            problem = absurd_time(entry.exchange)
            if problem:
                raise UsageError(
                    f"{path}:{entry.line}: {problem}; fix or remove that line, or replay with --speed 0 (no delay)"
                )
    app = ReplayApp(cassette.exchanges, speed=args.speed, log=_print)
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); try another --port"
        ) from None
    host, port = sock.getsockname()[:2]
    exchanges = _count(len(cassette.entries), "exchange")
    _print(f"replaying {exchanges} from {path} on http://{host}:{port} (speed {args.speed:g})")
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        server_header=False,  # the recorded `Server` header is replayed instead
        timeout_graceful_shutdown=_REPLAY_SHUTDOWN_S,
    )
    server = ReplayServer(config, app)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return EXIT_OK


_REPLAY_SHUTDOWN_S = 2
"""On Ctrl+C, how long `replay` lets responses in progress go on before it cuts them."""


def _print(line: str) -> None:
    print(line, flush=True)


def _count(n: int, noun: str) -> str:
    """`1 exchange`, `2 exchanges`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_MAX_BAD_LINES = 10
"""Bad lines reported one by one per file; the rest are counted."""


def _read_exchanges(path: Path) -> Cassette:
    """The cassette, its bad lines reported on stderr; UsageError when not one exchange in it can be read."""
    cassette = read_cassette(path)
    for bad in cassette.bad_lines[:_MAX_BAD_LINES]:
        print(str(bad), file=sys.stderr)
    more = len(cassette.bad_lines) - _MAX_BAD_LINES
    if more > 0:
        print(f"{path}: ... and {_count(more, 'more bad line')} skipped", file=sys.stderr)
    if not cassette.entries:
        raise UsageError(f"{path}: no readable exchange in this cassette")
    return cassette


def _default_report_dir(cassette: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{cassette.stem}-{stamp}"
