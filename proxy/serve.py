"""Runs mitmproxy in-process with the recorder: in the foreground for the CLI, in a thread for tests and benchmarks."""

from __future__ import annotations

# mitmproxy is only partly annotated: its unannotated calls (OptionsError, Options.update, Headers.items,
# AddonManager.add) are what this module is built on.
# mypy: disable-error-code="no-untyped-call"
import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import exceptions
from mitmproxy.addons import default_addons
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.master import Master
from mitmproxy.options import Options

from conformance.errors import UsageError
from proxy.cassette import Entry
from proxy.recorder import Recorder

__all__ = ["ProxySettings", "RunningProxy", "check_port_free", "proxy_in_thread", "run_foreground", "upstream_root"]

_START_TIMEOUT_S = 30.0


def upstream_root(text: str) -> str:
    """`text` checked as a server root for reverse mode (`http://host:port`); UsageError when it is not one."""
    parts = urlsplit(text.strip())
    example = "e.g. --upstream http://localhost:1234"
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"--upstream {text!r} is not an http:// or https:// URL ({example})")
    if not parts.hostname:
        raise UsageError(f"--upstream {text!r} has no host ({example})")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--upstream {text!r} has an invalid port ({example})") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(
            f"--upstream {text!r} has a path; give the server root ({example}): clients' paths such as "
            "/v1/chat/completions are forwarded as they are"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


@dataclass(frozen=True)
class ProxySettings:
    cassette: Path | None
    upstream: str | None = None
    """Server root for reverse mode; None runs a regular (forward) proxy."""
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    redact: tuple[str, ...] = ()
    har: Path | None = None
    validate: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    """Further mitmproxy options."""

    def options(self) -> dict[str, Any]:
        return {
            "mode": [f"reverse:{self.upstream}" if self.upstream else "regular"],
            "listen_host": self.listen_host,
            "listen_port": self.listen_port,
            "connection_strategy": "lazy",
            "cassette": str(self.cassette) if self.cassette else "",
            "redact": list(self.redact),
            "har": str(self.har) if self.har else "",
            "validate": self.validate,
            **self.extra,
        }


@dataclass(frozen=True)
class RunningProxy:
    host: str
    port: int
    recorder: Recorder
    master: Master

    @property
    def url(self) -> str:
        """The proxy's own root URL, e.g. `http://127.0.0.1:8080` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"


class _Startup:
    """Addon that reports the listening address once mitmproxy runs, or that it could not listen."""

    def __init__(self, on_ready: Callable[[list[tuple[str, int]]], None]) -> None:
        self._on_ready = on_ready

    def running(self) -> None:
        from mitmproxy import ctx

        proxyserver = ctx.master.addons.get("proxyserver")
        assert isinstance(proxyserver, Proxyserver)
        self._on_ready([(str(a[0]), int(a[1])) for a in proxyserver.listen_addrs()])


def _master(settings: ProxySettings, recorder: Recorder, startup: _Startup, *, termlog: bool) -> Master:
    master = Master(Options(), with_termlog=termlog)
    master.addons.add(*default_addons())
    master.addons.add(recorder, startup)
    try:
        master.options.update(**settings.options())
    except exceptions.OptionsError as exc:
        raise UsageError(str(exc)) from None
    return master


async def _run(master: Master) -> None:
    """Run until shut down, then close the listening sockets and let open connections end before the loop does."""
    try:
        await master.run()
    finally:
        proxyserver = master.addons.get("proxyserver")
        assert isinstance(proxyserver, Proxyserver)
        await proxyserver.servers.update([])
        for handler in list(proxyserver.connections.values()):
            io = handler.transports.get(handler.client)
            if io is not None and io.handler is not None:
                io.handler.cancel("the proxy is shutting down")
        for _ in range(200):
            if not proxyserver.connections:
                break
            await asyncio.sleep(0.01)


def _cannot_listen(settings: ProxySettings) -> UsageError:
    return UsageError(
        f"cannot listen on {settings.listen_host}:{settings.listen_port} (is the port in use?); pick another with "
        "--listen-port"
    )


def check_port_free(host: str, port: int) -> None:
    """UsageError when `host:port` cannot be listened on, before mitmproxy tries it (and prints its own advice)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check the host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            probe.bind(address)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise UsageError(f"cannot listen on {host}:{port} ({reason}); pick another with --listen-port") from None


@contextmanager
def proxy_in_thread(settings: ProxySettings, on_entry: Callable[[Entry], None] | None = None) -> Iterator[RunningProxy]:
    """mitmproxy with the recorder on its own event loop in a thread; leaving the block stops it and flushes.

    Only one mitmproxy master may run in a process at a time (mitmproxy keeps its context in globals).
    """
    ready = threading.Event()
    state: dict[str, Any] = {}
    recorder = Recorder(on_entry)

    def on_ready(addrs: list[tuple[str, int]]) -> None:
        state["addrs"] = addrs
        ready.set()

    async def main() -> None:
        master = _master(settings, recorder, _Startup(on_ready), termlog=False)
        state["master"] = master
        await _run(master)

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="mitmproxy", daemon=True)
    thread.start()
    ready.wait(_START_TIMEOUT_S)
    master = state.get("master")
    try:
        if "error" in state:
            raise state["error"]
        if not state.get("addrs"):
            raise _cannot_listen(settings)
        host, port = state["addrs"][0]
        assert master is not None
        yield RunningProxy(host, port, recorder, master)
    finally:
        if master is not None and thread.is_alive():
            recorder.stopping()
            master.shutdown()
        thread.join(_START_TIMEOUT_S)


def run_foreground(settings: ProxySettings, on_entry: Callable[[Entry], None], on_ready: Callable[[str], None]) -> None:
    """Serve until SIGINT (Ctrl+C) or SIGTERM (`kill`, `timeout`, the end of a CI step), then stop the same way
    for both: the exchanges in flight are recorded as cut off, the completed ones are written, the HAR too."""
    check_port_free(settings.listen_host, settings.listen_port)
    recorder = Recorder(on_entry)

    async def main() -> None:
        loop_master: list[Master] = []

        def ready(addrs: list[tuple[str, int]]) -> None:
            if not addrs:
                loop_master[0].shutdown()
                state["failed"] = True
                return
            host, port = addrs[0]
            on_ready(f"http://{host}:{port}")

        master = _master(settings, recorder, _Startup(ready), termlog=True)
        master.options.update(termlog_verbosity="warn")
        loop_master.append(master)
        loop = asyncio.get_running_loop()

        def stop() -> None:
            recorder.stopping()
            master.shutdown()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        await _run(master)

    state: dict[str, bool] = {}
    asyncio.run(main())
    if state.get("failed"):
        raise _cannot_listen(settings)
