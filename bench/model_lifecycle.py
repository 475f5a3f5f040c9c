"""Model lifecycle: what a JIT load costs a request, and how soon a TTL unload shows in /api/v0/models.

Run: .venv/bin/python bench/model_lifecycle.py [--runs N] [--threads N]
`conformance serve --models-dir TMP` runs in a subprocess; TMP holds the default model (SmolLM2) once more under
another key, `smollm2-jit` (a symlink), which no request has loaded. Each run:
  1. cold: POST /v1/completions naming smollm2-jit with `ttl: 1` (the server JIT-loads it), max_tokens 8, greedy;
  2. warm: the same request again at once (the model is loaded);
  3. idle: poll GET /api/v0/models/smollm2-jit every 10 ms from the end of the warm answer until its `state` is
     `not-loaded`; the time printed is that wait minus the 1 s TTL (how late the unload becomes visible).
The JIT load time is the cold request's latency; its added latency is cold minus warm, per run. (The prompt is
under the 64 tokens from which the server reuses a cached prompt, so the warm request reuses none of the cold
one's.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference_server.embedded import JIT_MODEL_KEY, jit_models_dir, serve_subprocess  # noqa: E402  # after the sys.path insert
from reference_server.model import default_model_path  # noqa: E402  # after the sys.path insert

KEY = JIT_MODEL_KEY
TTL_S = 1.0
POLL_S = 0.01
UNLOAD_DEADLINE_S = 120.0


def request_s(client: httpx.Client) -> float:
    """Seconds for one whole non-streamed completion naming the JIT model."""
    body = {"model": KEY, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "seed": 1}
    started = time.perf_counter()
    response = client.post("/v1/completions", json={**body, "ttl": TTL_S})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def state(client: httpx.Client) -> str:
    state: str = client.get(f"/api/v0/models/{KEY}").json()["state"]
    return state


def unload_visible_s(client: httpx.Client) -> float:
    """Seconds from now until /api/v0/models says the JIT model is not loaded."""
    started = time.perf_counter()
    while state(client) != "not-loaded":
        if time.perf_counter() - started > UNLOAD_DEADLINE_S:
            raise SystemExit(f"{KEY} was still loaded {UNLOAD_DEADLINE_S:.0f} s after its last request (ttl {TTL_S})")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def describe(name: str, values: list[float]) -> str:
    ms = [value * 1000 for value in values]
    return (
        f"{name:<44} median {statistics.median(ms):>8.1f} ms   "
        f"min {min(ms):>8.1f}   max {max(ms):>8.1f}   (n={len(ms)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold/warm/unload cycles (default: 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads of the server (default: 1; its threads spin at barriers, so on a busy machine "
        "more threads make every figure noisier)",
    )
    parser.add_argument("--ctx", type=int, default=2048, help="context length of every load (default: 2048)")
    args = parser.parse_args()
    model = default_model_path()
    print(
        f"model {model.name} ({model.stat().st_size / 1e6:.0f} MB) as key {KEY}, n_ctx {args.ctx}, "
        f"n_threads {args.threads}; {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"server: conformance serve --models-dir TMP (JIT loads, request ttl {TTL_S:g} s), {args.runs} runs")
    cold: list[float] = []
    warm: list[float] = []
    late: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        jit_models_dir(Path(tmp))
        flags = ("--models-dir", tmp, "--threads", str(args.threads), "--ctx", str(args.ctx))
        with (
            serve_subprocess(Path(tmp) / "server.log", *flags) as server,
            httpx.Client(base_url=server.url, timeout=300) as client,
        ):
            if state(client) != "not-loaded":
                raise SystemExit(f"{KEY} is loaded before any request: nothing cold to measure")
            for _ in range(args.runs):
                cold.append(request_s(client))
                warm.append(request_s(client))
                late.append(unload_visible_s(client) - TTL_S)
    print(describe("cold request (JIT load + answer)", cold))
    print(describe("warm request (answer only)", warm))
    print(describe("added latency of a JIT load (cold - warm)", [c - w for c, w in zip(cold, warm, strict=True)]))
    print(describe(f"TTL unload visible in /api/v0/models, minus ttl {TTL_S:g} s", late))
    return 0


if __name__ == "__main__":
    sys.exit(main())
