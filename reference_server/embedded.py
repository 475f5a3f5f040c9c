"""Run the reference server inside this process: uvicorn in a thread on a free port, model cached per process."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from reference_server.app import create_app
from reference_server.auth import ApiKeys
from reference_server.engine import Engine
from reference_server.limits import Limits
from reference_server.model import LlamaSettings, check_gguf, default_model_path
from reference_server.models import DEFAULT_TTL, Models, engine_loader
from reference_server.presets import Presets, write_conformance_preset

__all__ = [
    "JIT_MODEL_KEY",
    "ServerProcess",
    "SuiteServer",
    "bind",
    "engine_for",
    "jit_models_dir",
    "run_app",
    "serve_for_suite",
    "serve_in_thread",
    "serve_subprocess",
]

_engines: dict[tuple[Path, int, int], Engine] = {}
# All cores, as `conformance serve`: the in-process client mostly waits on the socket. Measured on 2 cores,
# the whole catalog ran in 40 s with 2 threads against 54 s with 1. (On a machine already oversubscribed,
# llama.cpp's threads spin at barriers and slow down badly: run one model job at a time.)
EMBEDDED_THREADS = max(1, os.cpu_count() or 1)
_engines_lock = threading.Lock()
STARTUP_TIMEOUT_S = 30.0


def engine_for(model_path: str | None = None, *, ctx: int = 2048, threads: int | None = None) -> Engine:
    """The process-wide engine for this model, context size and thread count, loaded on first use."""
    path = check_gguf(model_path) if model_path else default_model_path()
    key = (path, ctx, threads or EMBEDDED_THREADS)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(path, LlamaSettings(n_ctx=ctx, n_threads=key[2]))
        return engine


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); OSError if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


SERVER_HEADER = "llm-conformance-reference"


def server_config(app: ASGIApp) -> uvicorn.Config:
    """Uvicorn settings of the reference server; it names itself in `Server` so reports can tell."""
    return uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        server_header=False,
        headers=[("server", SERVER_HEADER)],
    )


@contextmanager
def run_app(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a daemon thread; yields its base URL, stops it on exit."""
    sock = bind(host, port)
    server = uvicorn.Server(server_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the embedded reference server did not start")
        time.sleep(0.01)
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_in_thread(
    model_path: str | None = None,
    *,
    ctx: int = 2048,
    api_key: str | None = None,
    api_keys: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    threads: int | None = None,
    limits: Limits | None = None,
    allow_remote_mcp: bool = False,
    models_dir: str | os.PathLike[str] | None = None,
    ttl: float | None = DEFAULT_TTL,
    max_jit_models: int = 1,
    presets_dir: Path | None = None,
    download_sources: Sequence[Path] = (),
) -> Iterator[str]:
    """The reference server on a free port in this process: yields e.g. "http://127.0.0.1:54321".

    The start-up model is the process-wide engine of engine_for (shared, never closed here); models it
    JIT-loads (from installed wheels or models_dir) get engines of their own, closed on unload and on exit.
    presets_dir: where its presets are (`*.preset.json`); PresetError when one cannot be used.
    """
    presets = Presets.load(presets_dir)
    engine = engine_for(model_path, ctx=ctx, threads=threads)
    keys = ApiKeys([*api_keys, *(() if api_key is None else (api_key,))])
    models = Models(
        models_dir=None if models_dir is None else Path(models_dir),
        default_ttl=ttl,
        max_jit_models=max_jit_models,
        loader=engine_loader(engine.settings),
        context_length=ctx,
    )
    models.adopt(engine, owned=False)
    app = create_app(
        models,
        api_keys=keys,
        limits=limits,
        allow_remote_mcp=allow_remote_mcp,
        presets=presets,
        download_sources=download_sources,
    )
    try:
        with run_app(app, host=host, port=port) as url:
            yield url
    finally:
        models.close()


SUITE_TTL = 3600.0
"""The suite server's `--ttl` for JIT loads (LM Studio's 60 minutes); 0.3.9/ttl sends a short `ttl` of its own."""
JIT_MODEL_KEY = "smollm2-jit"
"""The suite server's second model, not loaded at start-up: what 0.3.9/ttl JIT-loads."""


def jit_models_dir(root: Path) -> Path:
    """A models directory in LM Studio's layout whose one model is the default GGUF under the key `smollm2-jit`."""
    link = root / "local" / JIT_MODEL_KEY / "SmolLM2-JIT.Q4_1.gguf"
    link.parent.mkdir(parents=True)
    try:
        link.symlink_to(default_model_path())
    except OSError:  # no symlinks here (Windows without developer mode): a copy, 100 MB, removed with its dir
        shutil.copyfile(default_model_path(), link)
    return root


@dataclass(frozen=True)
class SuiteServer:
    """The reference server as `conformance run` starts it, with the token and preset the run must send."""

    url: str
    api_key: str
    preset: str


@contextmanager
def serve_for_suite(*, api_key: str | None = None, threads: int | None = None) -> Iterator[SuiteServer]:
    """The reference server with what every catalog item needs to run on it: a second model key to JIT-load
    (0.3.9/ttl), a preset (0.3.14/presets), a token (0.4.0/auth-tokens; api_key, else a new one) and remote
    MCP (the MCP checks bring their own loopback server). Its directories are removed on exit."""
    with tempfile.TemporaryDirectory(prefix="conformance-run-") as scratch:
        root = Path(scratch)
        token = api_key or f"sk-lm-{secrets.token_hex(4)}:{secrets.token_urlsafe(15)}"
        preset = write_conformance_preset(root / "presets")
        with serve_in_thread(
            api_key=token,
            threads=threads,
            allow_remote_mcp=True,
            models_dir=jit_models_dir(root / "models"),
            ttl=SUITE_TTL,
            max_jit_models=1,
            presets_dir=root / "presets",
        ) as url:
            yield SuiteServer(url, token, preset)


@dataclass(frozen=True)
class ServerProcess:
    """`conformance serve` running in a child process (a crash there ends it, not the caller)."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def why_dead(self) -> str:
        return f"the server exited with {self.process.poll()}; its log ends:\n{self.log.read_text()[-2000:]}"


@contextmanager
def serve_subprocess(log: Path, *flags: str) -> Iterator[ServerProcess]:
    """`conformance serve --port 0 FLAGS...` in a child process writing stderr to log; stopped on exit."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    env.pop("CONFORMANCE_API_KEY", None)
    command = [sys.executable, "-m", "conformance", "serve", "--port", "0", *flags]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None
    try:
        line = process.stdout.readline()  # "Serving <model> at http://127.0.0.1:PORT (...)"; "" if it died
        if " at http" not in line:
            raise RuntimeError(f"the server did not start: {line!r}\n{log.read_text()[-2000:]}")
        yield ServerProcess(process, line.split(" at ", 1)[1].split()[0], log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
