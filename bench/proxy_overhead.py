"""What the recording proxy adds to streamed responses: time to first byte, per-event latency, total time.

Runs the same seeded streaming chat completion directly against the reference server and through the recording
proxy (reverse mode, live verdicts on), interleaved, and prints medians, p99 and ratios. A second part does the
same against a paced synthetic upstream whose event times are fixed, which isolates the proxy from the model's
jitter. Targets on 2 cores: added TTFB under 5 ms median, added per-event latency under 1 ms median.

    .venv/bin/python bench/proxy_overhead.py [--rounds 5] [--max-tokens 64] [--skip-model]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # after the path line above, so the bench runs from anywhere

from conformance.sse import SSEParser
from reference_server.embedded import run_app

TTFB_TARGET_MS = 5.0
EVENT_TARGET_MS = 1.0


@dataclass(frozen=True)
class Run:
    ttfb_ms: float
    events_ms: tuple[float, ...]
    total_ms: float


def measure(client: httpx.Client, url: str, body: dict[str, Any]) -> Run:
    parser = SSEParser()
    events: list[float] = []
    start = time.perf_counter()
    ttfb = 0.0
    with client.stream("POST", url + "/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        for chunk in reply.iter_raw():
            now = (time.perf_counter() - start) * 1000
            if not ttfb:
                ttfb = now
            events.extend(now for _ in parser.feed(chunk, now))
    total = (time.perf_counter() - start) * 1000
    return Run(ttfb, tuple(events), total)


def interleaved(
    client: httpx.Client, direct: str, proxied: str, body: dict[str, Any], rounds: int
) -> list[tuple[Run, Run]]:
    """`rounds` pairs (direct, proxied), alternating which goes first, after one warm-up pair."""
    measure(client, direct, body)
    measure(client, proxied, body)
    pairs = []
    for n in range(rounds):
        if n % 2:
            p = measure(client, proxied, body)
            d = measure(client, direct, body)
        else:
            d = measure(client, direct, body)
            p = measure(client, proxied, body)
        pairs.append((d, p))
    return pairs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(title: str, pairs: list[tuple[Run, Run]]) -> dict[str, float]:
    ttfb_d = statistics.median(d.ttfb_ms for d, _ in pairs)
    ttfb_p = statistics.median(p.ttfb_ms for _, p in pairs)
    total_d = statistics.median(d.total_ms for d, _ in pairs)
    total_p = statistics.median(p.total_ms for _, p in pairs)
    added_ttfb = statistics.median(p.ttfb_ms - d.ttfb_ms for d, p in pairs)
    # per event, paired by index: added arrival time from the request start, and after the response's first byte
    # (the second leaves out the request's way through the proxy: it is what relaying each chunk costs)
    same = [(d, p) for d, p in pairs if len(d.events_ms) == len(p.events_ms)]
    from_start = [pe - de for d, p in same for de, pe in zip(d.events_ms, p.events_ms, strict=True)]
    relayed = [
        (pe - p.ttfb_ms) - (de - d.ttfb_ms) for d, p in same for de, pe in zip(d.events_ms, p.events_ms, strict=True)
    ]
    unpaired = len(pairs) - len(same)
    events_per_run = statistics.median(len(d.events_ms) for d, _ in pairs)
    print(f"\n{title}: {len(pairs)} interleaved pairs, {events_per_run:g} events per response")
    print("  (added: median of the differences within each pair; ratio: proxied median / direct median)")
    print(f"  {'(ms)':34}{'direct':>10}{'proxied':>10}{'added':>10}{'ratio':>8}")
    print(f"  {'time to first byte, median':34}{ttfb_d:10.2f}{ttfb_p:10.2f}{added_ttfb:+10.2f}{ttfb_p / ttfb_d:7.2f}x")
    print(
        f"  {'total time, median':34}{total_d:10.2f}{total_p:10.2f}{total_p - total_d:+10.2f}{total_p / total_d:7.2f}x"
    )
    event_median = statistics.median(relayed) if relayed else float("nan")
    print(f"  added per-event latency over {len(relayed)} events paired by index (ms):")
    if from_start:
        print(
            f"    arrival from the request start:       median {statistics.median(from_start):+.3f}, "
            f"p99 {percentile(from_start, 99):+.3f}"
        )
        print(
            f"    relaying, after the first byte:       median {event_median:+.3f}, p99 {percentile(relayed, 99):+.3f}"
        )
    if unpaired:
        print(f"    ({unpaired} pairs had different event counts and were left out)")
    verdict_ttfb = "met" if added_ttfb < TTFB_TARGET_MS else "MISSED"
    verdict_event = "met" if event_median < EVENT_TARGET_MS else "MISSED"  # relaying cost per event
    print(
        f"  targets: added TTFB < {TTFB_TARGET_MS:g} ms median: {verdict_ttfb}; "
        f"added per-event < {EVENT_TARGET_MS:g} ms median: {verdict_event}"
    )
    return {"added_ttfb_ms": added_ttfb, "event_median_ms": event_median}


# --- a paced synthetic upstream: events at fixed times, so any difference is the proxy's ---------------------


def _paced_app(events: int, interval_s: float) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        start = time.perf_counter()
        for n in range(events):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": f"t{n}"}}],
            }
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True}
            )
            await asyncio.sleep(max(0.0, start + (n + 1) * interval_s - time.perf_counter()))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


@contextmanager
def recording_proxy(upstream: str, folder: Path, name: str, *, script: bool = True) -> Iterator[str]:
    """The proxy in its own process, as users run it: `conformance record` (or bare mitmdump for a baseline)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    if script:
        command = [sys.executable, "-W", "ignore", "-m", "conformance", "record", "--upstream", upstream]
        command += ["--listen-port", str(port), "--out", str(folder / f"{name}.jsonl")]
    else:
        mitmdump = Path(sys.executable).with_name("mitmdump")
        command = [str(mitmdump), "-q", "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1"]
        command += ["--listen-port", str(port), "--set", "connection_strategy=lazy"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) as process:
        try:
            _wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the proxy did not start listening")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved pairs against the reference server")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--synthetic-rounds", type=int, default=10)
    parser.add_argument(
        "--server-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="llama.cpp threads of the reference server (default: all cores but one, left to the proxy)",
    )
    parser.add_argument("--skip-model", action="store_true", help="only the synthetic upstream")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's dependencies warn on import
    folder = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    with httpx.Client(timeout=300) as client:
        with run_app(_paced_app(64, 0.01)) as upstream, recording_proxy(upstream, folder, "synthetic") as proxied:
            body = {"model": "synthetic", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            report(
                "synthetic upstream (64 events, 10 ms apart)",
                interleaved(client, upstream, proxied, body, args.synthetic_rounds),
            )
        if not args.skip_model:
            from reference_server.embedded import serve_in_thread

            # llama.cpp's threads spin at barriers: a server using every core is slowed by the proxy's own work
            # on a 2-core machine, and that contention, not the proxy's latency, would be measured.
            threads = args.server_threads
            print(f"\nreference server with {threads} llama.cpp thread(s), proxy and client on the other core(s)")
            with (
                serve_in_thread(threads=threads) as upstream,
                recording_proxy(upstream, folder, "reference") as proxied,
            ):
                model = httpx.get(upstream + "/v1/models").json()["data"][0]["id"]
                body = {
                    "model": model,
                    "stream": True,
                    "messages": [{"role": "user", "content": "Write a short poem about the sea."}],
                    "max_tokens": args.max_tokens,
                    "temperature": 0,
                    "seed": 11,
                }
                report(
                    f"reference server ({model}, {args.max_tokens} tokens)",
                    interleaved(client, upstream, proxied, body, args.rounds),
                )
    lines = sum(len(p.read_text().splitlines()) for p in folder.glob("*.jsonl"))
    print(f"\n(recorded {lines} exchanges in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
