"""Robustness under a storm: hostile requests and abandoned streams against the reference server, and what a
well-behaved client sees meanwhile.

Run: .venv/bin/python bench/robustness.py [--hostile N] [--streams M] [--disconnects K] [--probes P]
It starts `conformance serve` in a subprocess (so a crash is counted here instead of ending the benchmark),
times P probe requests alone, then sends N hostile requests (a fixed, seeded mix of what once crashed the
server or made it answer 500) and M streams of which K hang up after their first chunk, all at once, while
the probe client keeps asking. It prints the answers by status, the crashes (must be 0), the probe latency
alone and during the storm, and the server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference_server.embedded import ServerProcess, serve_subprocess  # noqa: E402  # after the sys.path insert

PROBE: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Name three colours."}],
    "max_tokens": 8,
    "temperature": 0,
    "seed": 1,
}
HELLO: Any = [{"role": "user", "content": "hi"}]


def _tool(parameters: Any) -> Any:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


def _format(schema: Any) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def _deep(levels: int) -> Any:
    schema: Any = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def _long_string(bound: int) -> Any:
    return {"type": "object", "properties": {"s": {"type": "string", "maxLength": bound}}, "required": ["s"]}


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


CHAT = "/v1/chat/completions"
# (path, body) makers: each a kind of request that once crashed the server, answered 500 or cost too much
HOSTILE: list[tuple[str, Callable[[random.Random], bytes]]] = [
    ("/v1/completions", lambda r: _json({"prompt": r.choice(["", [""]]), "max_tokens": 2})),
    (
        CHAT,
        lambda r: _json(
            {"messages": HELLO, "max_tokens": 2, "tools": _tool(_long_string(r.choice([20_000, 1_000_000])))}
        ),
    ),
    (
        CHAT,
        lambda r: _json(
            {
                "messages": HELLO,
                "max_tokens": 2,
                "response_format": _format({"type": "string", "pattern": f"^a{{0,{r.randint(1, 40000)}}}$"}),
            }
        ),
    ),
    (
        CHAT,
        lambda r: _json(
            {
                "messages": HELLO,
                "max_tokens": 2,
                "response_format": _format({"type": "string", "pattern": "^" + "(" * 3000 + "a" + ")" * 3000 + "$"}),
            }
        ),
    ),
    (CHAT, lambda r: _json({"messages": HELLO, "max_tokens": 2, "tools": _tool(_deep(r.randint(30, 300)))})),
    (
        CHAT,
        lambda r: _json(
            {
                "messages": HELLO,
                "max_tokens": 2,
                "tools": _tool({"type": "object", "properties": {"a": False, "b": True}}),
            }
        ),
    ),
    (CHAT, lambda r: b'{"messages": [{"role": "user", "content": "a\\ud800b"}], "max_tokens": 2}'),
    ("/v1/embeddings", lambda r: b'{"input": ["ok", "a\\udfffb"]}'),
    (CHAT, lambda r: _json({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]})),
    (CHAT, lambda r: _json({"messages": HELLO, "max_tokens": r.choice([10**9, -1, "many"])})),
    (CHAT, lambda r: _json({"messages": HELLO * 5000, "max_tokens": 2})),
    (CHAT, lambda r: _json({"messages": [{"role": "user", "content": "word " * 60_000}], "max_tokens": 2})),
    (CHAT, lambda r: _json({"messages": [{"role": "user", "content": "x" * 9_000_000}]})),
    ("/v1/embeddings", lambda r: _json({"input": ["a"] * 3000})),
    (CHAT, lambda r: b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    (CHAT, lambda r: r.randbytes(r.randint(0, 200))),
    ("/v1/completions", lambda r: _json({"prompt": "Count:", "max_tokens": 2, "stop": [""] * r.randint(0, 50)})),
]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _probe(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post(CHAT, json=PROBE)
    response.raise_for_status()
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.2f} s  p99 {p99:.2f} s  (n={len(ordered)})"


def _hostile(server: ServerProcess, count: int, seed: int, statuses: Counter[str]) -> None:
    rng = random.Random(seed)
    plan = [HOSTILE[index % len(HOSTILE)] for index in range(count)]
    rng.shuffle(plan)
    bodies = [(path, make(rng)) for path, make in plan]

    def send(item: tuple[str, bytes]) -> None:
        path, body = item
        try:
            with httpx.Client(base_url=server.url, timeout=300) as client:
                response = client.post(path, content=body, headers={"content-type": "application/json"})
            statuses[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, bodies))


def _streams(server: ServerProcess, count: int, drops: int, outcomes: Counter[str]) -> None:
    def stream(index: int) -> None:
        body = {**PROBE, "max_tokens": 48, "stream": True, "seed": index}
        try:
            with (
                httpx.Client(base_url=server.url, timeout=300) as client,
                client.stream("POST", CHAT, json=body) as response,
            ):
                lines = response.iter_lines()
                next(lines)
                if index < drops:
                    outcomes["dropped after the first chunk"] += 1
                    return  # leaving the block closes the connection mid-stream
                complete = any(line == "data: [DONE]" for line in lines)
                outcomes["read to [DONE]" if complete else "ended without [DONE]"] += 1
        except httpx.HTTPError as exc:
            outcomes[type(exc).__name__] += 1

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(stream, range(count)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hostile", type=int, default=200, help="hostile requests (default 200)")
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams (default 16)")
    parser.add_argument("--disconnects", type=int, default=8, help="streams dropped after a chunk (default 8)")
    parser.add_argument("--probes", type=int, default=20, help="probe requests timed alone (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads of the server (default 1)")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        with (
            serve_subprocess(log, "--threads", str(args.threads)) as server,
            httpx.Client(base_url=server.url, timeout=300) as client,
        ):
            model = client.get("/v1/models").json()["data"][0]["id"]
            _probe(client)  # warm-up
            client.post("/v1/embeddings", json={"input": "warm"})  # loads the embedding context
            alone = [_probe(client) for _ in range(args.probes)]
            rss_before = _rss_mb(server.process.pid)
            statuses: Counter[str] = Counter()
            outcomes: Counter[str] = Counter()
            storm = [
                threading.Thread(target=_hostile, args=(server, args.hostile, args.seed, statuses)),
                threading.Thread(target=_streams, args=(server, args.streams, args.disconnects, outcomes)),
            ]
            for thread in storm:
                thread.start()
            during: list[float] = []
            failed_probes = 0
            while any(thread.is_alive() for thread in storm) and server.alive():
                try:
                    during.append(_probe(client))
                except httpx.HTTPError:
                    failed_probes += 1
            for thread in storm:
                thread.join()
            crashes = 0 if server.alive() else 1
            rss_after = _rss_mb(server.process.pid) if server.alive() else float("nan")
    print(
        f"robustness: {model}, {args.hostile} hostile requests ({len(HOSTILE)} kinds), {args.streams} streams "
        f"({args.disconnects} dropped), server with {args.threads} llama.cpp threads"
    )
    print("hostile answers by status: " + ", ".join(f"{key}: {value}" for key, value in sorted(statuses.items())))
    print("streams: " + ", ".join(f"{key}: {value}" for key, value in sorted(outcomes.items())))
    print(f"crashes: {crashes}; failed probe requests during the storm: {failed_probes}")
    print(f"probe latency alone:        {_percentiles(alone)}")
    print(f"probe latency in the storm: {_percentiles(during) if during else 'no probe completed'}")
    print(
        f"server RSS: {rss_before:.0f} MB before the storm, {rss_after:.0f} MB after ({rss_after - rss_before:+.0f} MB)"
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
