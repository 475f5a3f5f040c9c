"""`conformance serve`: load the model and serve the reference server until interrupted."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

import uvicorn

from conformance.errors import UsageError
from reference_server.app import create_app
from reference_server.auth import load_api_keys
from reference_server.embedded import base_url, bind, server_config
from reference_server.engine import Engine
from reference_server.limits import Limits
from reference_server.model import LlamaSettings, check_gguf, default_model_path
from reference_server.responses_api import DEFAULT_MAX_STORED

__all__ = ["serve"]

MIN_CTX = 64


def _bind_hint(exc: OSError) -> str:
    """What to change when binding failed: the address for an address error, else the port."""
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return "--host must be an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
    if exc.errno == errno.EACCES:
        return "ports below 1024 need privileges; pick another --port"
    return "pick another --port"


def serve(args: argparse.Namespace) -> int:
    """Handler of `conformance serve`; returns the exit status."""
    path = check_gguf(args.model) if args.model else default_model_path()
    stored = getattr(args, "responses_store", DEFAULT_MAX_STORED)
    if stored < 0:
        raise UsageError(f"--responses-store {stored} must be 0 (store nothing) or more")
    if args.ctx < MIN_CTX:
        raise UsageError(f"--ctx {args.ctx} is too small; use at least {MIN_CTX} tokens")
    try:
        api_keys = load_api_keys(args.api_key or (), args.api_key_file)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    limits = _limits(args)
    download_sources = _download_sources(args)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); {_bind_hint(exc)}") from exc
    try:
        threads = getattr(args, "threads", None) or LlamaSettings().n_threads  # no --threads flag yet
        engine = Engine(path, LlamaSettings(n_ctx=args.ctx, n_threads=threads))
    except (ValueError, RuntimeError) as exc:
        sock.close()
        raise UsageError(f"llama.cpp could not load {str(path)!r}: {exc}") from exc
    url = base_url(sock)
    auth = "; API key required" if api_keys.required else ""
    print(f"Serving {engine.info.id} at {url} (OpenAI base URL {url}/v1){auth}; Ctrl+C stops.", flush=True)
    app = create_app(
        engine,
        api_keys=api_keys,
        limits=limits,
        max_stored_responses=stored,
        allow_remote_mcp=getattr(args, "allow_remote_mcp", False),
        download_sources=download_sources,
    )
    server = uvicorn.Server(server_config(app))
    server.run(sockets=[sock])
    print("Stopped.", file=sys.stderr)
    return 0


def _limits(args: argparse.Namespace) -> Limits:
    """The request limits from --max-body-bytes, --max-messages, --max-output-tokens, --max-embedding-inputs."""
    defaults = Limits()
    values = {
        name: getattr(defaults, name) if getattr(args, name, None) is None else getattr(args, name)
        for name in vars(defaults)
    }
    for name, value in values.items():
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be at least 1, not {value}")
    return Limits(**values)


def _download_sources(args: argparse.Namespace) -> tuple[Path, ...]:
    """The --download-source directories, each checked to exist."""
    sources = tuple(Path(source).expanduser() for source in getattr(args, "download_source", None) or ())
    for source in sources:
        if not source.is_dir():
            raise UsageError(
                f"--download-source {str(source)!r} is not a directory; give a directory of GGUF files "
                "(LM Studio's layout: publisher/model/file.gguf)"
            )
    return sources
