"""`conformance serve`: load the start-up model, build the model registry and serve until interrupted."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import time
from pathlib import Path

import uvicorn

from conformance.errors import UsageError
from reference_server.app import create_app
from reference_server.auth import load_api_keys
from reference_server.embedded import base_url, bind, server_config
from reference_server.engine import Engine
from reference_server.limits import Limits
from reference_server.model import LlamaSettings, check_gguf, default_model_path
from reference_server.models import DEFAULT_TTL, Models, engine_loader
from reference_server.presets import PresetError, Presets
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
    models_dir = _models_dir(args)
    ttl = getattr(args, "ttl", DEFAULT_TTL)
    if ttl is not None and ttl <= 0:
        raise UsageError(f"--ttl {ttl:g} must be more than 0 seconds")
    max_jit_models = getattr(args, "max_jit_models", 1)
    if max_jit_models < 1:
        raise UsageError(f"--max-jit-models {max_jit_models} must be at least 1")
    presets = _presets(args)
    download_sources = _download_sources(args)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); {_bind_hint(exc)}") from exc
    try:
        threads = getattr(args, "threads", None) or LlamaSettings().n_threads
        settings = LlamaSettings(n_ctx=args.ctx, n_threads=threads)
        started = time.perf_counter()
        engine = Engine(path, settings)
    except (ValueError, RuntimeError) as exc:
        sock.close()
        raise UsageError(f"llama.cpp could not load {str(path)!r}: {exc}") from exc
    models = Models(
        models_dir=models_dir,
        default_ttl=ttl,
        max_jit_models=max_jit_models,
        loader=engine_loader(settings),
        context_length=args.ctx,
    )
    models.adopt(engine, load_seconds=time.perf_counter() - started)
    url = base_url(sock)
    auth = "; API key required" if api_keys.required else ""
    print(f"Serving {engine.info.id} at {url} (OpenAI base URL {url}/v1){auth}; Ctrl+C stops.", flush=True)
    app = create_app(
        models,
        api_keys=api_keys,
        limits=limits,
        max_stored_responses=stored,
        allow_remote_mcp=getattr(args, "allow_remote_mcp", False),
        presets=presets,
        download_sources=download_sources,
    )
    server = uvicorn.Server(server_config(app))
    try:
        server.run(sockets=[sock])
    finally:
        models.close()
    print("Stopped.", file=sys.stderr)
    return 0


def _models_dir(args: argparse.Namespace) -> Path | None:
    """--models-dir, checked: an existing directory (GGUFs as DIR/publisher/model/file.gguf, or anywhere below)."""
    value = getattr(args, "models_dir", None)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UsageError(f"--models-dir {value!r} {what}; pass a directory holding .gguf files (or create it)")
    return path


def _presets(args: argparse.Namespace) -> Presets:
    """The presets of --presets-dir (none without it); a file the server cannot use stops the start-up."""
    directory = getattr(args, "presets_dir", None)
    try:
        return Presets.load(None if directory is None else Path(directory))
    except PresetError as exc:
        raise UsageError(f"cannot load the presets of --presets-dir: {exc}") from None


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
