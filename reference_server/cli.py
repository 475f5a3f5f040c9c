"""`conformance serve`: load the model and serve the reference server until interrupted."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from conformance.errors import UsageError
from reference_server.app import create_app
from reference_server.embedded import base_url, bind, server_config
from reference_server.engine import Engine
from reference_server.model import LlamaSettings, check_gguf, default_model_path
from reference_server.responses_api import DEFAULT_MAX_STORED

__all__ = ["serve"]

MIN_CTX = 64


def serve(args: argparse.Namespace) -> int:
    """Handler of `conformance serve`; returns the exit status."""
    path = check_gguf(args.model) if args.model else default_model_path()
    stored = getattr(args, "responses_store", DEFAULT_MAX_STORED)
    if stored < 0:
        raise UsageError(f"--responses-store {stored} must be 0 (store nothing) or more")
    if args.ctx < MIN_CTX:
        raise UsageError(f"--ctx {args.ctx} is too small; use at least {MIN_CTX} tokens")
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port") from exc
    try:
        threads = getattr(args, "threads", None) or LlamaSettings().n_threads  # no --threads flag yet
        engine = Engine(path, LlamaSettings(n_ctx=args.ctx, n_threads=threads))
    except (ValueError, RuntimeError) as exc:
        sock.close()
        raise UsageError(f"llama.cpp could not load {str(path)!r}: {exc}") from exc
    url = base_url(sock)
    print(f"Serving {engine.info.id} at {url} (OpenAI base URL {url}/v1); Ctrl+C stops.", flush=True)
    server = uvicorn.Server(
        server_config(
            create_app(
                engine,
                api_key=args.api_key,
                max_stored_responses=stored,
                allow_remote_mcp=getattr(args, "allow_remote_mcp", False),
            )
        )
    )
    server.run(sockets=[sock])
    print("Stopped.", file=sys.stderr)
    return 0
