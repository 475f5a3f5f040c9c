"""mitmproxy addon that records LLM API traffic to a cassette, streams SSE through untouched and checks it live."""

from __future__ import annotations

# mitmproxy is only partly annotated: its unannotated calls (OptionsError, Options.update, Headers.items,
# AddonManager.add) are what this module is built on.
# mypy: disable-error-code="no-untyped-call"
import sys
from pathlib import Path

if __name__ != "proxy.recorder":  # loaded by `mitmdump -s proxy/recorder.py`: the repository root may be missing
    _ROOT = str(Path(__file__).resolve().parent.parent)
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

# The imports below need the path set above when mitmproxy loads this file as a script.
import asyncio
import json
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import resource_tracker
from typing import Any, cast

from mitmproxy import exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.net import encoding
from mitmproxy.options import Options
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.mode_specs import RegularMode, ReverseMode

from conformance.client import decode_body
from conformance.exchange import Exchange, Request, Response, SSEEvent
from conformance.sse import SSEParser
from proxy.cassette import CassetteWriter, Entry
from proxy.har import HarRecord, HarTimings, write_har
from proxy.live import judge, warm_up, worker_init
from proxy.redact import Redactor

__all__ = ["Recorder", "addons"]

logger = logging.getLogger("proxy.recorder")

_FAILURE = "conformance.failure"
_PROBE_TIMEOUT_S = 5.0
_VERDICTS_TIMEOUT_S = 10
"""Default of the `verdicts_timeout` option: how long one exchange's verdicts may take."""
_WARM_UP_TIMEOUT_S = 60.0
"""How long a fresh worker process may take to start and import the verdicts before the timer starts."""
_EXIT_VERDICTS_S = 5.0
"""At exit, how long the verdicts may still run on the exchanges waiting for them; those left are written without
verdicts, with a `verdicts_not_run` note (`conformance check` runs them later)."""
_EXIT_GRACE_S = 20.0
"""At exit, how long to wait beyond that for the writer (redaction, the disk) before giving up on what is left."""
_STOPPED = "the recorder stopped before the verdicts could run"
_CUT_OFF = "the recorder stopped before the exchange completed"
_NO_BODY_STATUS = frozenset({204, 304})


class Recorder:
    """Records every HTTP exchange to the `cassette` option's file, redacted, with the live verdicts' findings.

    `mitmdump -s proxy/recorder.py --mode reverse:http://localhost:1234 --set cassette=out.jsonl`, or
    `conformance record`. Options: cassette, redact, har, validate, upstream_probe.

    SSE responses are streamed: `responseheaders` sets `flow.response.stream` to a capture that hands each
    chunk on unchanged and parses a copy into events. Other streams (the request asked for `stream: true`,
    NDJSON, or no content-length) are streamed too, through a capture that keeps a copy of the body, recorded
    as a plain body: a stream of the wrong content type stays visible to the verdicts. Remaining bodies go
    through mitmproxy's normal buffering. Completed exchanges go to one writer thread, in order; it has
    redaction and verdicts done in a worker process (`verdicts_process`), so that they never compete with the
    traffic for the GIL, then writes the line. Verdicts that take longer than `verdicts_timeout` are given up
    (the worker process is replaced) and the line records `validator_error`.
    """

    def __init__(self, on_entry: Callable[[Entry], None] | None = None) -> None:
        self._on_entry = on_entry
        self._options: Options | None = None
        self._writer: CassetteWriter | None = None
        self._redact: tuple[str, ...] = ()
        self._har_path: Path | None = None
        self._har: list[HarRecord] = []
        self._executor = _SerialWorker("cassette")
        self._pool: ProcessPoolExecutor | None = None
        self._warm: Future[None] | None = None
        self._pool_failed = False
        self._pending: list[Future[None]] = []
        self._captures: dict[str, _StreamCapture | _BodyCapture] = {}
        """Streams being captured, by flow id (not in flow.metadata, which mitmproxy may serialize)."""
        self._verdicts_missing_logged = False
        self._open_upstreams: Counter[tuple[str, int]] = Counter()
        """Open server connections per address: while there is one, the upstream is known to accept."""
        self._in_flight: dict[str, http.HTTPFlow] = {}
        """Flows whose request has arrived and that are not recorded yet: at exit they are recorded as failed."""
        self._stop_at: float | None = None
        """Once `done` has begun: the monotonic time after which the verdicts are no longer waited for."""
        self._stopping = False

    # --- mitmproxy events ---------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        self._options = loader.master.options
        loader.add_option("cassette", str, "", "Append each exchange to this JSONL cassette (created if missing).")
        loader.add_option(
            "redact",
            cast(type, Sequence[str]),
            [],
            "Another header, query parameter or JSON field name whose values are redacted (exact, case-insensitive).",
        )
        loader.add_option("har", str, "", "Also write the recorded exchanges as HAR 1.2 to this file on exit.")
        loader.add_option("validate", bool, True, "Run the conformance verdicts on each exchange as it completes.")
        loader.add_option(
            "verdicts_process",
            bool,
            True,
            "Redact and judge exchanges in a worker process, so that the verdicts never compete with the traffic "
            "for the GIL; when off, a thread does it.",
        )
        loader.add_option(
            "verdicts_timeout",
            int,
            _VERDICTS_TIMEOUT_S,
            "Seconds the verdicts may take on one exchange; past that the exchange is recorded with a "
            "validator_error and the worker process is replaced.",
        )
        loader.add_option(
            "upstream_probe",
            bool,
            True,
            "Before a request opens a new upstream connection, check that the upstream accepts connections, so that "
            "a refused connection is answered with an OpenAI-style 502 JSON error instead of mitmproxy's HTML page.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = self._opts()
        if "redact" in updated:
            bad = [n for n in opts.redact if not n.strip() or any(c in n for c in " \t:=&")]
            if bad:
                raise exceptions.OptionsError(
                    f"redact: {bad[0]!r} is not a header, query or field name (give a bare name like x-custom-auth)"
                )
            self._redact = tuple(opts.redact)
        if "verdicts_timeout" in updated and opts.verdicts_timeout < 1:
            raise exceptions.OptionsError(
                f"verdicts_timeout: {opts.verdicts_timeout} is not a number of seconds (give 1 or more)"
            )
        if "cassette" in updated:
            self._open_cassette(opts.cassette)
        if "har" in updated:
            self._har_path = _writable_path("har", opts.har) if opts.har else None

    def running(self) -> None:
        opts = self._opts()
        if opts.connection_strategy == "eager":
            # Eager connects upstream before any request: a refused upstream would drop the client's
            # connection without a flow to answer or record.
            opts.update(connection_strategy="lazy")
            logger.info("recorder: connection_strategy set to lazy so that upstream failures are recorded")
        if opts.verdicts_process and not self._pool_failed:
            self._start_pool()

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or not self._opts().upstream_probe or flow.server_conn.connected:
            return
        address = _upstream_address(flow)
        if address is None or self._open_upstreams[address] > 0:
            return
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(*address), _PROBE_TIMEOUT_S)
        except TimeoutError:
            return  # let mitmproxy try and report what it finds
        except OSError as exc:
            upstream = f"{flow.request.scheme}://{address[0]}:{address[1]}"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            message = f"the proxy could not connect to the upstream server {upstream}: {reason}"
            flow.metadata[_FAILURE] = message
            flow.response = _error_response(502, message, "upstream_unreachable")
            logger.warning(f"recorder: {message}")
            return
        writer.close()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._in_flight[flow.id] = flow

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is not None:
            self._open_upstreams[_address(data.server.address)] += 1

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is not None:
            address = _address(data.server.address)
            self._open_upstreams[address] = max(0, self._open_upstreams[address] - 1)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.stream:
            return
        capture: _StreamCapture | _BodyCapture
        if _is_event_stream(response):
            capture = _StreamCapture(flow.request.timestamp_start, response.headers.get("content-encoding", ""))
        elif _streams(flow.request, response):
            capture = _BodyCapture(response.headers.get("content-encoding", ""))
        else:
            return
        self._captures[flow.id] = capture
        response.stream = capture

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None
        capture = self._captures.pop(flow.id, None)
        if isinstance(capture, _StreamCapture) and capture.undecodable:
            recorded = Response(response.status_code, _headers(response.headers))
            self._record(flow, recorded, flow.metadata.get(_FAILURE), not_run=capture.undecodable)
            return
        if isinstance(capture, _StreamCapture):
            recorded = Response(
                response.status_code, _headers(response.headers), events=tuple(capture.events), tail=capture.tail
            )
        else:
            raw = capture.raw() if capture is not None else b"" if response.stream else response.raw_content or b""
            content, undecodable = _decoded(raw, response.headers.get("content-encoding", ""))
            if undecodable:  # judging the encoded bytes as text would only find false faults
                recorded = Response(response.status_code, _headers(response.headers))
                self._record(flow, recorded, flow.metadata.get(_FAILURE), not_run=undecodable)
                return
            recorded = Response(response.status_code, _headers(response.headers), body=_decode_body(content))
        self._record(flow, recorded, flow.metadata.get(_FAILURE))

    def error(self, flow: http.HTTPFlow) -> None:
        message = flow.error.msg if flow.error else "unknown error"
        if self._stopping:  # mitmproxy closing the connections on its way out, not the client or the server
            message = f"{_CUT_OFF} ({message.rstrip('.')})"
        self._record_broken_off(flow, message)

    def stopping(self) -> None:
        """Say that the proxy is about to shut down (thread-safe): exchanges it cuts off are recorded as such."""
        self._stopping = True

    def done(self) -> None:
        self._stopping = True
        for flow in list(self._in_flight.values()):  # cut off by the exit: keep what arrived
            self._record_broken_off(flow, _CUT_OFF)
        window = min(self._verdicts_timeout(), _EXIT_VERDICTS_S)
        self._stop_at = time.monotonic() + window
        grace = window + _EXIT_GRACE_S
        left = self.drain(timeout=grace)
        if left:
            what = "1 exchange was" if left == 1 else f"{left} exchanges were"
            logger.error(f"recorder: {what} still being written {grace:g} s after exit; not recorded")
        self._executor.shutdown()
        self._stop_pool(kill=bool(left))
        if self._har_path is not None and self._har:
            write_har(self._har_path, list(self._har))
            logger.info(f"recorder: HAR written to {self._har_path} ({len(self._har)} entries)")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    # --- helpers ------------------------------------------------------------------------------------

    def _record_broken_off(self, flow: http.HTTPFlow, message: str) -> None:
        """Record a flow that failed or was cut off, with the part of the response that did arrive."""
        capture = self._captures.pop(flow.id, None)
        recorded = None
        if flow.response is not None and isinstance(capture, _StreamCapture):
            tail = capture.close()  # the stream broke off: keep what arrived
            recorded = Response(
                flow.response.status_code, _headers(flow.response.headers), events=tuple(capture.events), tail=tail
            )
        elif flow.response is not None and isinstance(capture, _BodyCapture):
            body = _decode_body(capture.body())
            recorded = Response(flow.response.status_code, _headers(flow.response.headers), body=body)
        upstream = f"{flow.request.scheme}://{flow.request.host}:{flow.request.port}"
        self._record(flow, recorded, f"{message} (upstream {upstream})")

    def drain(self, timeout: float | None = None) -> int:
        """Wait until every completed exchange is written (tests call it before reading the cassette), or at
        most `timeout` seconds; returns how many are still pending."""
        pending, self._pending = self._pending, []
        deadline = None if timeout is None else time.monotonic() + timeout
        for n, future in enumerate(pending):
            try:
                future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._pending = pending[n:] + self._pending
                return len(pending) - n
        return 0

    def _verdicts_timeout(self) -> float:
        return float(getattr(self._opts(), "verdicts_timeout", _VERDICTS_TIMEOUT_S))

    def _opts(self) -> Options:
        if self._options is None:
            raise RuntimeError("Recorder used before mitmproxy loaded it")
        return self._options

    def _open_cassette(self, value: str) -> None:
        self.drain()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not value:
            return
        self._writer = CassetteWriter(_writable_path("cassette", value))

    def _record(
        self, flow: http.HTTPFlow, response: Response | None, error: str | None, *, not_run: str | None = None
    ) -> None:
        """Queue the exchange for the writer; `not_run` says why it must be written without verdicts."""
        if self._in_flight.pop(flow.id, None) is None and self._stop_at is not None:
            return  # recorded by `done` already, as cut off by the exit
        end = time.time()
        request = flow.request
        exchange = Exchange(
            request=Request(
                method=request.method,
                url=request.url,
                path=request.path,
                headers=_headers(request.headers),
                body=_decode_body(request.get_content(strict=False) or b""),
            ),
            response=response,
            error=error,
            id=flow.id,
            started_at=datetime.fromtimestamp(request.timestamp_start, UTC).isoformat(),
            duration_ms=round((end - request.timestamp_start) * 1000, 3),
        )
        timings = _timings(flow, end)
        job = (exchange, timings, request.http_version, self._redact, self._opts().validate, not_run)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._executor.submit(self._finish, *job))

    def _finish(
        self,
        exchange: Exchange,
        timings: HarTimings,
        http_version: str,
        redact: tuple[str, ...],
        validate: bool,
        not_run: str | None,
    ) -> None:
        """On the writer thread, in completion order: judge, write, report. Never raises into mitmproxy."""
        try:
            entry = _not_run(exchange, redact, not_run) if not_run else self._judge(exchange, redact, validate)
            if self._writer is not None:
                self._writer.write(entry)
            if self._har_path is not None:
                self._har.append(HarRecord(entry.exchange, timings, http_version))
            if self._on_entry is not None:
                self._on_entry(entry)
            _log(entry)
            self._log_validator_error(entry)
        except Exception:
            logger.exception(f"recorder: could not record {exchange.request.method} {exchange.endpoint}")

    def _start_pool(self) -> None:
        if self._pool is not None:
            return
        # The worker starts with SIGINT and SIGTERM blocked (a signal mask survives fork and exec), so a Ctrl+C or
        # a SIGTERM sent to the process group while it is still starting cannot kill it; its initializer then
        # ignores them for good. The resource tracker starts first: starting it unblocks both in this thread
        # (bpo-33613).
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init,
                initargs=(os.getpid(),),
            )
            self._warm = self._pool.submit(warm_up)  # starts the process, from this thread
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _stop_pool(self, *, kill: bool) -> None:
        """Shut the worker process down; `kill` terminates it first (it may be stuck in a verdict)."""
        pool, self._pool, self._warm = self._pool, None, None
        if pool is None:
            return
        # ProcessPoolExecutor cannot cancel a running job (terminate_workers() arrives in Python 3.14); the
        # worker ignores SIGTERM, so it is killed
        processes = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
        for process in processes:
            process.kill()
        pool.shutdown(wait=not kill, cancel_futures=True)
        for process in processes:
            process.join(5)

    def _judge(self, exchange: Exchange, redact: tuple[str, ...], validate: bool) -> Entry:
        timeout = self._verdicts_timeout()
        warm_up_timeout = _WARM_UP_TIMEOUT_S
        stopping = self._stop_at is not None
        if self._stop_at is not None:  # exiting: the verdicts get what is left of the exit window, or nothing
            left = self._stop_at - time.monotonic()
            if left <= 0:
                return _not_run(exchange, redact)
            timeout = warm_up_timeout = min(timeout, left)
        elif self._opts().verdicts_process and not self._pool_failed:
            self._start_pool()
        if self._pool is not None:
            try:
                if self._warm is not None:  # a fresh worker's start-up is not the verdicts' time
                    self._warm.result(warm_up_timeout)
                return self._pool.submit(judge, exchange, redact, validate).result(timeout)
            except TimeoutError:
                if stopping:
                    return _not_run(exchange, redact)
                logger.error(f"recorder: verdicts timed out after {timeout:g} s; starting a new worker process")
                self._stop_pool(kill=True)
                return _timed_out(exchange, redact, timeout)
            except Exception as exc:  # a dead worker, an unpicklable value: judge here from now on
                logger.error(f"recorder: the verdicts worker process failed ({exc!r}); judging in this process")
                self._stop_pool(kill=True)
                self._pool_failed = True
        entry = _judge_in_thread(exchange, redact, validate, timeout)
        if entry is not None:
            return entry
        if stopping:
            return _not_run(exchange, redact)
        logger.error(f"recorder: verdicts timed out after {timeout:g} s; their thread is left behind")
        return _timed_out(exchange, redact, timeout)

    def _log_validator_error(self, entry: Entry) -> None:
        error = entry.validator_error
        if error is None:
            return
        if error.startswith("verdicts unavailable"):
            if not self._verdicts_missing_logged:
                self._verdicts_missing_logged = True
                logger.error(f"recorder: live {error}; recording without them")
            return
        request = entry.exchange.request
        what = "timed out" if error.startswith("verdicts timed out") else "crashed"
        logger.error(f"recorder: the verdicts {what} on {request.method} {entry.exchange.endpoint}: {error}")


class _SerialWorker:
    """Runs submitted calls one at a time, in order, on one daemon thread: a stuck call cannot hold up exit."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[None], Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()  # on first use: a Recorder that never records starts no thread
        future: Future[None] = Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Stop after the queued calls, without waiting for them."""
        if self._thread.ident is not None:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)


def _judge_in_thread(exchange: Exchange, redact: tuple[str, ...], validate: bool, timeout: float) -> Entry | None:
    """`judge` on a daemon thread; None when it is given up after `timeout` seconds (the thread is left to finish
    on its own)."""
    result: list[Entry] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(judge(exchange, redact, validate))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="verdicts", daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    return result[0] if result else None


def _timed_out(exchange: Exchange, redact: tuple[str, ...], timeout: float) -> Entry:
    return Entry(Redactor.with_names(redact).exchange(exchange), (), f"verdicts timed out after {timeout:g} s")


def _not_run(exchange: Exchange, redact: tuple[str, ...], why: str = _STOPPED) -> Entry:
    return Entry(Redactor.with_names(redact).exchange(exchange), verdicts_not_run=why)


class _BodyCapture:
    """The `flow.response.stream` callable of a stream that is not SSE: returns every chunk unchanged and keeps
    a copy of the body, decoded at the end like a buffered body."""

    def __init__(self, content_encoding: str) -> None:
        self._encoding = content_encoding.strip()
        self._chunks: list[bytes] = []

    def __call__(self, chunk: bytes) -> bytes:
        self._chunks.append(chunk)
        return chunk

    def raw(self) -> bytes:
        return b"".join(self._chunks)

    def body(self) -> bytes:
        raw = b"".join(self._chunks)
        if not self._encoding or not raw:
            return raw
        try:
            decoded = encoding.decode(raw, self._encoding)
        except ValueError:  # an unknown or broken encoding (or a stream cut short): keep the bytes as received
            return raw
        return decoded if isinstance(decoded, bytes) else raw


class _StreamCapture:
    """The `flow.response.stream` callable: returns every chunk unchanged and parses a copy into timed events.

    Decoded bytes are handed to the parser only once they hold a line end, so that an event of any size costs
    time in proportion to its size (the parser joins what it holds with each new piece it is fed). When the
    content encoding cannot be decoded here, the stream is still passed through but not parsed: `undecodable`
    says why.
    """

    def __init__(self, started: float, content_encoding: str) -> None:
        self._started = started
        self._parser = SSEParser()
        self._decode = _decompressor(content_encoding)
        self.undecodable = None if self._decode is not None else _cannot_decode(content_encoding)
        self._broken = False
        self._held: list[bytes] = []
        self.events: list[SSEEvent] = []
        self.tail = ""

    def __call__(self, chunk: bytes) -> bytes:
        if self._broken or self._decode is None:
            return chunk
        try:
            if chunk:
                self._feed(self._decode(chunk))
            else:
                self.close()
        except Exception:
            self._broken = True
            logger.exception("recorder: could not parse the event stream; it is passed on but no longer recorded")
        return chunk

    def _feed(self, decoded: bytes) -> None:
        if not decoded:
            return
        if b"\n" not in decoded and b"\r" not in decoded:
            self._held.append(decoded)  # the middle of a line: nothing to parse yet
            return
        if self._held:
            decoded = b"".join([*self._held, decoded])
            self._held.clear()
        self.events.extend(self._parser.feed(decoded, self._now()))

    def close(self) -> str:
        if self._held:
            self.events.extend(self._parser.feed(b"".join(self._held), self._now()))
            self._held.clear()
        self.tail = self._parser.close(self._now())
        return self.tail

    def _now(self) -> float:
        return round((time.time() - self._started) * 1000, 3)


def _decompressor(content_encoding: str) -> Callable[[bytes], bytes] | None:
    """A streaming decoder for the content encoding, None when there is none here (an unknown encoding, several
    encodings, or a decoder that is not installed)."""
    name = content_encoding.strip().lower()
    if name in ("", "identity"):
        return _identity
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if name == "deflate":
        return zlib.decompressobj().decompress
    try:
        if name == "br":
            import brotli

            return cast(Callable[[bytes], bytes], brotli.Decompressor().process)
        if name == "zstd":
            return _zstd_decompressor()
    except ImportError:
        return None
    return None


def _zstd_decompressor() -> Callable[[bytes], bytes]:
    import zstandard

    return cast(Callable[[bytes], bytes], zstandard.ZstdDecompressor().decompressobj().decompress)


def _cannot_decode(content_encoding: str) -> str:
    return (
        f"the event stream is encoded with {content_encoding.strip()!r}, which this recorder cannot decode: it was "
        "passed through to the client but not recorded"
    )


def _identity(chunk: bytes) -> bytes:
    return chunk


def _decode_body(raw: bytes) -> Any:
    """`decode_body`, with a body nested too deeply for the JSON parser kept as text."""
    try:
        return decode_body(raw)
    except RecursionError:
        return raw.decode(errors="replace")


def _decoded(raw: bytes, content_encoding: str) -> tuple[bytes, str | None]:
    """A whole body decoded, or the bytes as they are and why they could not be decoded."""
    name = content_encoding.strip()
    if not raw or name.lower() in ("", "identity"):
        return raw, None
    try:
        decoded = encoding.decode(raw, name)
    except ValueError:
        decoded = None
    if isinstance(decoded, bytes):
        return decoded, None
    return raw, (
        f"the body is encoded with {name!r}, which this recorder cannot decode: it was passed through to the client "
        "but not recorded"
    )


def _is_event_stream(response: http.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def _streams(request: http.Request, response: http.Response) -> bool:
    """Whether a non-SSE response is (or may be) a stream that mitmproxy must not hold until its end: the request
    asked for `stream: true`, the body is NDJSON (Ollama's native API), or its length is not known up front."""
    if request.method == "HEAD" or response.status_code < 200 or response.status_code in _NO_BODY_STATUS:
        return False
    content_type = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    if content_type in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return True
    if "content-length" not in response.headers:
        return True
    return _asked_stream(request)


def _asked_stream(request: http.Request) -> bool:
    content = request.get_content(strict=False) or b""
    if b'"stream"' not in content:  # cheap test first: most request bodies are never parsed here
        return False
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


def _headers(headers: http.Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _upstream_address(flow: http.HTTPFlow) -> tuple[str, int] | None:
    mode = flow.client_conn.proxy_mode
    if isinstance(mode, ReverseMode):
        return _address(mode.address)
    if isinstance(mode, RegularMode):
        return flow.request.host, flow.request.port
    return None


def _address(address: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    return str(address[0]), int(address[1])


def _error_response(status: int, message: str, code: str) -> http.Response:
    body = {"error": {"message": message, "type": "proxy_error", "param": None, "code": code}}
    return http.Response.make(status, json.dumps(body).encode(), {"content-type": "application/json"})


def _timings(flow: http.HTTPFlow, end: float) -> HarTimings:
    request, response = flow.request, flow.response
    request_end = request.timestamp_end or request.timestamp_start
    headers_at = response.timestamp_start if response is not None and response.timestamp_start else end
    response_end = response.timestamp_end if response is not None and response.timestamp_end else end
    return HarTimings(
        send=max(0.0, (request_end - request.timestamp_start) * 1000),
        wait=max(0.0, (headers_at - request_end) * 1000),
        receive=max(0.0, (response_end - headers_at) * 1000),
    )


def _writable_path(option: str, value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_dir():
        raise exceptions.OptionsError(f"{option}: {path} is a directory; give a file path like {path}/session.jsonl")
    if not path.parent.exists():
        raise exceptions.OptionsError(f"{option}: the directory {path.parent} does not exist; create it first")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise exceptions.OptionsError(f"{option}: cannot write {path} (permission denied); choose another path")
    return path


def _log(entry: Entry) -> None:
    logger.info(summary_line(entry))
    for finding in entry.findings:
        where = "" if finding.chunk is None else f" (chunk #{finding.chunk})"
        logger.warning(f"  [{finding.item}] {finding.check}: {finding.message}{where}")


def summary_line(entry: Entry) -> str:
    """One line per exchange: method, path, status, events, findings (the `conformance record` output)."""
    exchange = entry.exchange
    response = exchange.response
    status = str(response.status) if response is not None else "---"
    parts = [f"{exchange.request.method} {exchange.request.path} {status}"]
    if response is not None and response.events is not None:
        parts.append(f"{len(response.events)} events")
    items = sorted({f.item for f in entry.findings})
    parts.append(f"{len(entry.findings)} findings" + (f" ({', '.join(items)})" if items else ""))
    if exchange.error:
        parts.append(f"error: {exchange.error}")
    if entry.validator_error:
        parts.append(f"verdicts failed: {entry.validator_error}")
    if entry.verdicts_not_run:
        parts.append(f"verdicts not run: {entry.verdicts_not_run}")
    return " · ".join(parts)


addons = [Recorder()]
